/**
 * SHM with a peer that follows only the pinned spec (issue 11, item 5): a
 * guest written from the spec's rules (test/helpers/spec-guest.ts: layout
 * constants only, no roam-ts SHM code) attaches to a roam-ts host, calls it,
 * answers its call, sends 100x the initial credit over one channel and
 * receives 100x over another, then says Goodbye with a postcard String.
 *
 * The guest advertises no roam-ts extension and waits for frames only on the
 * doorbell, so the host must ring after every commit, release and grant
 * (without that it sleeps forever and the run times out).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { ConnectionClosedError } from "../src/session/errors.js";
import type { Link } from "../src/session/link.js";
import { client, serve } from "../src/session/serve.js";
import { establishHostPeer, ShmHost } from "../src/transport/shm/index.js";
import { leftoverSegments, nativeSkip, segmentPath, within } from "./helpers/shm-harness.js";

const SPEC_GUEST = fileURLToPath(new URL("./helpers/spec-guest.js", import.meta.url));

const hosts: ShmHost[] = [];
const children: ChildProcess[] = [];
after(async () => {
  await Promise.all(hosts.map((h) => h.close()));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  assert.deepEqual(leftoverSegments(), [], "no segment file is left behind");
});

describe("SHM with a spec-only guest", { skip: nativeSkip }, () => {
  test("calls both ways, 100x-credit channels both ways, postcard Goodbye", async () => {
    const initialCredit = 64;
    const host = ShmHost.create({ path: segmentPath("spec-guest"), initialCredit, heartbeatIntervalMs: 0 });
    hosts.push(host);
    const ticket = host.addPeer({ name: "spec guest" });
    const child = ticket.spawn(process.execPath, [SPEC_GUEST], { stdio: ["ignore", "pipe", "pipe"] });
    children.push(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    let link: Link | null = null;
    let hostCall: Promise<string> | null = null;
    const impl = {
      ...testbedImpl,
      echo: (m: string) => {
        // The guest's first call: now call it back.
        if (hostCall === null) hostCall = client(Testbed, link!.root).echo("host to spec guest");
        return m;
      },
    };
    link = establishHostPeer(host, ticket.peerId, serve(Testbed, impl));
    await within(host.waitAttached(ticket.peerId), 10_000, "spec guest attaching");
    const reason = await within(link.closed(), 60_000, `the spec guest's Goodbye (stderr: ${err})`);
    assert.equal(await within(exited, 10_000, "spec guest exit"), 0, `spec guest: ${err}`);
    assert.ok(reason instanceof ConnectionClosedError && reason.by === "remote", String(reason));
    assert.equal(reason.reason, "spec guest done", "Goodbye payload decoded as a postcard String");
    assert.equal(await hostCall, "host to spec guest", "the guest answered the host's call");
    const report = JSON.parse(out.trim()) as { ok: boolean; sent: number; got: number };
    assert.ok(report.ok);
    assert.ok(report.sent >= 100 * initialCredit, `sent ${report.sent} bytes, 100x credit is ${100 * initialCredit}`);
    assert.ok(report.got * 1 >= (100 * initialCredit) / 2, `received ${report.got} values`);
  });
});
