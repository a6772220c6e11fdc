/**
 * The SHM write and read paths (transport/shm/outbox.ts, inbox.ts) on their
 * own, over one ring of an in-memory segment: frames written inline or through
 * a slot come out whole, a full ring queues frames in order, the queue's
 * high-water mark and hard cap, and the reader's checks of what the peer wrote.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Inbox } from "../src/transport/shm/inbox.js";
import { computeLayout, EXT, type SegmentConfig } from "../src/transport/shm/layout.js";
import { MemoryBacking } from "../src/transport/shm/backing.js";
import { Outbox } from "../src/transport/shm/outbox.js";
import { Segment } from "../src/transport/shm/segment.js";
import { PeerBell, WANTS_FRAMES } from "../src/transport/shm/sleeper.js";
import type { Waker } from "../src/transport/shm/waker.js";

const config: SegmentConfig = {
  maxPayloadSize: 8 * 1024,
  initialCredit: 32 * 1024,
  maxGuests: 2,
  bipbufCapacity: 4096,
  inlineThreshold: 0,
  maxChannels: 64,
  heartbeatIntervalMs: 100,
  sizeClasses: [
    { slotSize: 1024, count: 8 },
    { slotSize: 96 * 1024, count: 2 },
  ],
};

interface Frame {
  type: number;
  id: number;
  methodId: bigint;
  payload: number[];
}

function setup(o: { highWaterMark?: number; maxQueuedBytes?: number } = {}) {
  const l = computeLayout(config);
  const seg = Segment.create(new MemoryBacking(l.totalSize, l.maxSize), config);
  const g = seg.guest(1);
  seg.setPeerExtensions(1, EXT.sleeping);
  let rings = 0;
  const waker = { ring: () => rings++ } as unknown as Waker;
  const bell = new PeerBell({ i32: seg.i32, index: g.h2g.iSleeping }, waker, () => seg.peerExtensions(1));
  const failures: string[] = [];
  const violations: string[] = [];
  const stats = { framesSent: 0, slotFramesSent: 0, queuedFrames: 0, queuedHighWater: 0, framesReceived: 0 };
  const out = new Outbox(
    { segment: seg, tx: g.h2g, isHost: true, peerId: 1, highWaterMark: o.highWaterMark ?? 1 << 20, maxQueuedBytes: o.maxQueuedBytes ?? 1 << 24, stats },
    bell,
    { stopped: () => false, fail: (e) => failures.push(e.message), violate: (rule) => violations.push(rule) },
  );
  const frames: Frame[] = [];
  const payloads: Uint8Array[] = [];
  const inbox = new Inbox(seg, g.h2g, stats, {
    reading: () => violations.length === 0,
    violate: (rule) => violations.push(rule),
    frame: (type, id, methodId, payload) => {
      frames.push({ type, id, methodId, payload: [...payload] });
      payloads.push(payload);
    },
  });
  return { seg, g, out, inbox, frames, payloads, failures, violations, stats, rings: () => rings };
}

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

describe("SHM outbox and inbox", () => {
  test("a frame's payload is a ++ b ++ c, inline or through a slot, and reads back whole", () => {
    const h = setup();
    h.out.emit(4, 3, 0n, Uint8Array.of(1, 2), Uint8Array.of(3), Uint8Array.of(4, 5));
    const big = bytes(5000);
    h.out.emit(1, 9, 77n, Uint8Array.of(9), big, null);
    assert.equal(h.stats.framesSent, 2);
    assert.equal(h.stats.slotFramesSent, 1, "5 kB is above the inline threshold");
    assert.equal(h.inbox.drain(), 2);
    assert.deepEqual(h.frames[0], { type: 4, id: 3, methodId: 0n, payload: [1, 2, 3, 4, 5] });
    assert.equal(h.frames[1]!.methodId, 77n, "a Request keeps its method id");
    assert.deepEqual(h.frames[1]!.payload, [9, ...big]);
    assert.equal(h.stats.framesReceived, 2);
  });

  test("received payloads are private copies in heap-sized buffers: small ones share an arena, none lands in fresh pages", () => {
    const h = setup();
    const sizes = [100, 3000, 5000, 64 * 1024, 96 * 1024];
    for (const [k, n] of sizes.entries()) h.out.emit(3, k, 0n, bytes(n, k), null, null);
    assert.equal(h.inbox.drain(), sizes.length);
    for (const [k, p] of h.payloads.entries()) {
      assert.equal(p.length, sizes[k]);
      assert.ok(!(p.buffer instanceof SharedArrayBuffer), `payload ${k} is copied out of the segment`);
      // Below the C allocator's mmap threshold (128 KiB): heap memory, not pages that fault on first write.
      assert.ok(p.buffer.byteLength < 128 * 1024, `payload ${k} (${p.length} B) in a ${p.buffer.byteLength}-byte buffer`);
    }
    assert.equal(h.payloads[0]!.buffer, h.payloads[1]!.buffer, "small payloads share one arena");
    assert.notEqual(h.payloads[2]!.buffer, h.payloads[3]!.buffer);
    // The slot was freed at once: the copy does not change when the slot is reused.
    h.out.emit(3, 9, 0n, bytes(64 * 1024, 200), null, null);
    assert.equal(h.inbox.drain(), 1);
    assert.deepEqual([...h.payloads[3]!], [...bytes(64 * 1024, 3)]);
  });

  test("the peer is rung when it sleeps waiting for frames", () => {
    const h = setup();
    h.out.emit(4, 1, 0n, Uint8Array.of(1), null, null);
    assert.equal(h.rings(), 0, "awake: no ring");
    Atomics.store(h.seg.i32, h.g.h2g.iSleeping, WANTS_FRAMES);
    h.out.emit(4, 1, 0n, Uint8Array.of(2), null, null);
    h.out.emit(4, 1, 0n, Uint8Array.of(3), null, null);
    assert.equal(h.rings(), 1, "one ring per sleep");
  });

  test("a full ring queues frames in order; writable() waits until the queue fell below half the high-water mark", async () => {
    const h = setup({ highWaterMark: 600 });
    const payload = bytes(200);
    let sent = 0;
    while (!h.out.queued) h.out.emit(4, ++sent, 0n, payload, null, null);
    for (let i = 0; i < 3; i++) h.out.emit(4, ++sent, 0n, Uint8Array.of(i), null, null); // small ones would fit, but wait their turn
    h.out.emit(4, ++sent, 0n, payload, null, null);
    h.out.emit(4, ++sent, 0n, payload, null, null);
    const w = h.out.writable();
    assert.ok(w instanceof Promise, "above the high-water mark");
    let released = false;
    void w.then(() => (released = true));
    let reads = 0;
    while (h.out.queued || h.g.h2g.hasData()) {
      reads += h.inbox.drain();
      h.out.flush();
    }
    await Promise.resolve();
    assert.equal(released, true);
    assert.equal(reads, sent);
    assert.deepEqual(
      h.frames.map((f) => f.id),
      Array.from({ length: sent }, (_, i) => i + 1),
      "frames come out in the order they were emitted",
    );
    assert.equal(h.out.writable(), undefined);
    assert.ok(h.stats.queuedHighWater >= 600);
  });

  test("a queue past the hard cap fails the link", () => {
    const h = setup({ maxQueuedBytes: 2000 });
    for (let i = 0; i < 40 && h.failures.length === 0; i++) h.out.emit(4, i, 0n, bytes(200), null, null);
    assert.equal(h.failures.length, 1);
    assert.match(h.failures[0]!, /does not consume them \(limit 2000\)/);
  });

  test("the reader checks what the peer wrote: a corrupt frame length is a violation, and reading stops", () => {
    const h = setup();
    h.out.emit(4, 1, 0n, Uint8Array.of(1), null, null);
    h.out.emit(4, 2, 0n, Uint8Array.of(2), null, null);
    // The second frame starts 28 bytes in (24-byte header + 1 byte payload, 4-aligned).
    h.seg.dv.setUint32(h.g.h2g.data + 28, 3, true);
    assert.equal(h.inbox.drain(), 1);
    assert.deepEqual(h.violations, ["shm.frame.header"]);
  });

  test("unknown frame flags and an inline payload_len that disagrees with the frame length are violations", () => {
    const a = setup();
    a.out.emit(4, 1, 0n, Uint8Array.of(1), null, null);
    a.seg.u8[a.g.h2g.data + 5] = 0x80;
    assert.equal(a.inbox.drain(), 0);
    assert.deepEqual(a.violations, ["shm.frame.header"]);
    const b = setup();
    b.out.emit(4, 1, 0n, Uint8Array.of(1), null, null);
    b.seg.dv.setUint32(b.g.h2g.data + 20, 9, true);
    assert.equal(b.inbox.drain(), 0);
    assert.deepEqual(b.violations, ["shm.frame.inline"]);
  });

  test("a stale slot reference is a violation, not a read of someone else's slot", () => {
    const h = setup();
    h.out.emit(4, 1, 0n, bytes(3000), null, null);
    h.seg.dv.setUint32(h.g.h2g.data + 32, 12345, true); // generation
    assert.equal(h.inbox.drain(), 0);
    assert.deepEqual(h.violations, ["shm.frame.slot-ref"]);
  });
});
