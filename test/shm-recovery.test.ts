/**
 * SHM crash recovery (r[shm.death.*], r[shm.crash.recovery]) where only one
 * mechanism can notice or undo the damage:
 *   - a guest process that is alive but closed its doorbell is found by the
 *     hang-up (its exit would come much later);
 *   - slots the host sent to a guest that died before freeing them come back;
 *   - the dead guest's channel table is reset (entries Free, zero credit).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { channel } from "../src/session/channel/pair.js";
import { client, serve } from "../src/session/serve.js";
import { establishHostPeer, ShmHost, type DeathInfo } from "../src/transport/shm/index.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { GuestTest } from "./helpers/shm-api.js";
import { GUEST_SCRIPT, segmentPath, within } from "./helpers/shm-harness.js";
import { optedOut } from "./helpers/requirements.js";
import { nativeShm } from "../src/transport/shm/native.js";

const hosts: ShmHost[] = [];
after(async () => {
  await Promise.all(hosts.map((h) => h.close()));
});

/** Polls `cond` (a state the test cannot await directly) with a bounded number of tries. */
async function until(what: string, cond: () => boolean, tries = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${what}: not reached after ${tries} checks`);
}

describe("SHM recovery after a guest's death", () => {
  test("slots the host sent and the guest never freed come back; the channel table is reset", async () => {
    const host = ShmHost.create({ backing: "memory" });
    hosts.push(host);
    const seg = host.segment;
    const full = seg.layout.classes.map((_, c) => seg.pool.freeCount(c));
    let death: DeathInfo | null = null;
    const ticket = host.addPeer({ name: "victim", onDeath: (_id, i) => (death = i) });
    const worker = ticket.spawnWorker(GUEST_SCRIPT);
    const link = establishHostPeer(host, ticket.peerId, serve(Testbed, testbedImpl));
    await host.waitAttached(ticket.peerId, 10_000);
    const gt = client(GuestTest, link.root);
    const tb = client(Testbed, link.root);
    // Open channels in the guest's table: a stream into the guest it never finishes reading.
    const [tx, rx] = channel<Uint8Array>();
    const draining = gt.drain(rx).catch((e: unknown) => e);
    await tx.send(new Uint8Array(100));
    const table = seg.guest(ticket.peerId).channels;
    const activeBefore = Array.from({ length: table.size }, (_, i) => table.state(i)).filter((s) => s !== 0).length;
    assert.ok(activeBefore > 0, "the open channel has an active table entry");
    // The guest stops reading (busy loop), then the host sends it large payloads: slots in flight.
    const paused = gt.pause(60_000).catch((e: unknown) => e);
    const calls = [0, 1, 2].map(() => tb.processMessage({ tag: "Data", value: new Uint8Array(40_000).fill(1) }).catch((e: unknown) => e));
    await until("host slots in flight", () => seg.layout.classes.some((_, c) => seg.pool.freeCount(c) < full[c]!));
    await worker.terminate();
    await within(host.whenReclaimed(ticket.peerId), 10_000, "reclaim");
    assert.equal((death as DeathInfo | null)?.peerId, ticket.peerId);
    for (const [c, n] of full.entries()) assert.equal(seg.pool.freeCount(c), n, `size class ${c}: every slot is free again`);
    for (let i = 0; i < table.size; i++) {
      assert.equal(table.state(i), 0, `channel table entry ${i} is Free`);
      assert.equal(table.granted(i), 0, `channel table entry ${i} has no credit left`);
    }
    for (const r of [await draining, await paused, ...(await Promise.all(calls))]) assert.ok(r instanceof Error, "every call failed");
    void tx.close().catch(() => {});
  });

  test(
    "a guest that hangs up its doorbell while still running is declared dead by the hang-up (not its exit)",
    { skip: optedOut({ what: "the native SHM addon", problem: nativeShm() ? null : "not loaded", install: "npm run build:native", optOut: "ROAM_SKIP_NATIVE" }) },
    async () => {
      const host = ShmHost.create({ path: segmentPath("hangup") });
      hosts.push(host);
      let died!: (i: DeathInfo) => void;
      const death = new Promise<DeathInfo>((r) => (died = r));
      const ticket = host.addPeer({ name: "hang-up", onDeath: (_id, i) => died(i) });
      // Closes its end of the doorbell (fd 3), then stays alive far longer than the bound below.
      const child = ticket.spawn(process.execPath, ["-e", "require('node:fs').closeSync(3); setTimeout(() => {}, 120000)", "--"], { stdio: ["ignore", "inherit", "inherit", "pipe"] });
      try {
        const info = await within(death, 20_000, "death by doorbell hang-up");
        assert.equal(info.cause, "doorbell");
        await within(host.whenReclaimed(ticket.peerId), 10_000, "reclaim");
        const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once("exit", r));
        await within(exited, 10_000, "the guest process ending");
        assert.equal(child.signalCode, "SIGKILL", "the host killed the hung-up guest (it would have lived 120 s)");
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
    },
  );
});
