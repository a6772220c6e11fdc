/**
 * The host's per-tick verdict on one peer (transport/shm/peer-watch.ts) and
 * the spawn ticket's contract with its host (transport/shm/spawn.ts), on
 * their own: no segment, no process.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PeerState } from "../src/transport/shm/layout.js";
import { assessPeer, DETACHED, type WatchedPeer, type WatchReading } from "../src/transport/shm/peer-watch.js";
import { SpawnTicket, WakerSlot } from "../src/transport/shm/spawn.js";

const MS = 1_000_000n;

function peer(p: Partial<WatchedPeer> = {}): WatchedPeer {
  return { attached: true, attachDeadline: 0, closingSince: 0, attachedAtNs: 1000n * MS, ...p };
}

function reading(r: Partial<Omit<WatchReading, "heartbeat">> & { hb?: bigint } = {}): WatchReading {
  const { hb = 0n, ...rest } = r;
  return { state: PeerState.Attached, heartbeat: () => hb, now: 5000, nowNs: 1100n * MS, heartbeatNs: 100n * MS, goodbyeMs: 2000, ...rest };
}

describe("SHM peer watch", () => {
  test("a live peer: no verdict", () => {
    assert.equal(assessPeer(peer(), reading({ hb: 1050n * MS })), null);
  });

  test("peer state Goodbye: detached, whatever else holds", () => {
    assert.equal(assessPeer(peer({ closingSince: 1 }), reading({ state: PeerState.Goodbye })), DETACHED);
  });

  test("a spawned guest that misses its attach deadline is dead (attach-timeout); no deadline, no verdict", () => {
    const v = assessPeer(peer({ attached: false, attachDeadline: 4000 }), reading({ now: 4001 }));
    assert.deepEqual(v, { cause: "attach-timeout", detail: "it did not attach in time" });
    assert.equal(assessPeer(peer({ attached: false, attachDeadline: 4000 }), reading({ now: 4000 })), null);
    assert.equal(assessPeer(peer({ attached: false }), reading({ now: 1e12 })), null);
  });

  test("a heartbeat older than two intervals is death (heartbeat); within two, life", () => {
    const stale = assessPeer(peer(), reading({ hb: 899n * MS }));
    assert.deepEqual(stale, { cause: "heartbeat", detail: "no heartbeat for 201 ms (interval 100 ms)" });
    assert.equal(assessPeer(peer(), reading({ hb: 900n * MS })), null);
  });

  test("a heartbeat of 0 or from the future counts from the attach time: it cannot switch hang detection off", () => {
    assert.equal(assessPeer(peer({ attachedAtNs: 1000n * MS }), reading({ hb: 0n })), null, "100 ms since attach");
    assert.equal((assessPeer(peer({ attachedAtNs: 800n * MS }), reading({ hb: 0n })) as { cause: string }).cause, "heartbeat");
    assert.equal((assessPeer(peer({ attachedAtNs: 800n * MS }), reading({ hb: 5000n * MS })) as { cause: string }).cause, "heartbeat");
  });

  test("heartbeats off (interval 0): never a heartbeat death, and the heartbeat is not read", () => {
    let reads = 0;
    const r = { ...reading({ heartbeatNs: 0n }), heartbeat: () => (reads++, 0n) };
    assert.equal(assessPeer(peer({ attachedAtNs: 1n }), r), null);
    assert.equal(reads, 0);
  });

  test("a guest that does not detach within goodbyeMs after the host closed its link is unresponsive", () => {
    const v = assessPeer(peer({ closingSince: 1000 }), reading({ now: 3001, hb: 1090n * MS }));
    assert.deepEqual(v, { cause: "unresponsive", detail: "it did not detach within 2000 ms after the host closed the link" });
    assert.equal(assessPeer(peer({ closingSince: 1000 }), reading({ now: 3000, hb: 1090n * MS })), null);
  });
});

describe("SHM spawn ticket", () => {
  function port(hubPath: string | null) {
    const log: string[] = [];
    let spawned = false;
    const ticket = new SpawnTicket({
      peerId: 3,
      hubPath,
      sab: () => new SharedArrayBuffer(8),
      spawned: () => spawned,
      adoptChild: () => log.push("child"),
      adoptWorker: () => log.push("worker"),
      cancel: () => {
        spawned = true;
        log.push("cancel");
      },
    });
    return { ticket, log, setSpawned: () => (spawned = true) };
  }

  test("arguments name the hub file, the peer id and the doorbell fd (r[shm.spawn.args])", () => {
    const { ticket } = port("/dev/shm/hub-x");
    assert.deepEqual(ticket.args(), ["--hub-path=/dev/shm/hub-x", "--peer-id=3", "--doorbell-fd=3"]);
    assert.equal(ticket.peerId, 3);
    assert.equal(ticket.hubPath, "/dev/shm/hub-x");
  });

  test("a memory-backed hub has no arguments; a peer is spawned once; cancel reaches the host", () => {
    assert.throws(() => port(null).ticket.args(), /use spawnWorker/);
    const p = port("/dev/shm/hub-y");
    p.setSpawned();
    assert.throws(() => p.ticket.spawn(process.execPath), /peer 3 was already spawned/);
    assert.throws(() => p.ticket.spawnWorker(new URL("data:text/javascript,")), /peer 3 was already spawned/);
    const q = port("/dev/shm/hub-z");
    q.ticket.cancel();
    assert.deepEqual(q.log, ["cancel"]);
  });

  test("the waker slot forwards to the waker set up at spawn, and polls on its own before", async () => {
    const slot = new WakerSlot();
    let wakes = 0;
    slot.wake = () => wakes++;
    slot.sleep(1, 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(wakes, 1, "no inner waker yet: the safety timeout wakes");
    const calls: string[] = [];
    slot.inner = { kind: "atomics", start() {}, sleep: (ms) => calls.push(`sleep ${ms}`), ring: () => calls.push("ring"), close: () => calls.push("close") };
    slot.sleep(5, 1);
    slot.ring();
    slot.close();
    assert.deepEqual(calls, ["sleep 5", "ring", "close"]);
  });
});
