/**
 * The limits path on SHM (issue 11, item 3): the host's maxPayloadSize and
 * initialCredit go through the same resolver as every transport into the
 * segment header; 4 MiB and 16 MiB calls and channel elements succeed across
 * processes; a spec-only guest (test/helpers/spec-guest.ts) sending one byte
 * over max_payload_size gets the rule-id Goodbye, as a postcard String.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { channel } from "../src/session/channel/pair.js";
import { client, serve } from "../src/session/serve.js";
import { establishHostPeer, ShmHost } from "../src/transport/shm/index.js";
import { GUEST_SCRIPT, leftoverSegments, nativeSkip, segmentPath, within } from "./helpers/shm-harness.js";

const SPEC_GUEST = fileURLToPath(new URL("./helpers/spec-guest.js", import.meta.url));
const MiB = 1024 * 1024;

const hosts: ShmHost[] = [];
const children: ChildProcess[] = [];
after(async () => {
  await Promise.all(hosts.map((h) => h.close()));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  assert.deepEqual(leftoverSegments(), [], "no segment file is left behind");
});

describe("limits over SHM", { skip: nativeSkip }, () => {
  test("4 MiB and 16 MiB calls and channel elements across processes", async () => {
    const host = ShmHost.create({ path: segmentPath("limits"), initialCredit: 16 * MiB + 1024, heartbeatIntervalMs: 10_000 });
    hosts.push(host);
    const ticket = host.addPeer({ name: "limits guest" });
    children.push(ticket.spawn(process.execPath, [GUEST_SCRIPT], { stdio: ["ignore", "inherit", "inherit"] }));
    const link = establishHostPeer(host, ticket.peerId, serve(Testbed, testbedImpl));
    await within(host.waitAttached(ticket.peerId), 10_000, "guest attaching");
    const tb = client(Testbed, link.root);
    for (const n of [4 * MiB, 16 * MiB]) {
      const data = new Uint8Array(n);
      data[0] = 1;
      data[n - 1] = 2;
      const r = await within(tb.processMessage({ tag: "Data", value: data }), 30_000, `${n} byte call`);
      assert.equal(r.tag, "Data");
      const v = r.value as Uint8Array;
      assert.deepEqual([v.length, v[0], v[n - 1]], [n, 2, 1]);
    }
    const [inTx, inRx] = channel<string>();
    const [outTx, outRx] = channel<string>();
    const done = tb.transform(inRx, outTx);
    const collected = outRx.collect();
    await inTx.send("a".repeat(4 * MiB));
    await inTx.send("b".repeat(16 * MiB));
    await inTx.close();
    await within(done, 30_000, "transform");
    assert.deepEqual((await collected).map((s) => s.length), [4 * MiB, 16 * MiB]);
    link.close();
  });

  test("one byte over max_payload_size from a spec-only guest: rule-id Goodbye as a postcard String", async () => {
    const host = ShmHost.create({ path: segmentPath("limits-over"), maxPayloadSize: 100, heartbeatIntervalMs: 0 });
    hosts.push(host);
    const ticket = host.addPeer({ name: "over-limit guest" });
    const child = ticket.spawn(process.execPath, [SPEC_GUEST, "--scenario=over-limit"], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    establishHostPeer(host, ticket.peerId, serve(Testbed, testbedImpl));
    // The host ends a guest that broke the rules (it may SIGKILL it once it had its Goodbye): what counts is what the guest read.
    await within(exited, 30_000, "spec guest exit");
    assert.ok(out.trim() !== "", `the spec guest reported nothing (stderr: ${err})`);
    const r = JSON.parse(out.trim()) as { ok: boolean; reason: string };
    assert.ok(r.ok);
    assert.ok(r.reason.startsWith("message.hello.enforcement"), r.reason);
  });
});
