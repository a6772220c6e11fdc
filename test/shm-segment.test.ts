/**
 * SHM segment format v2: header and peer table bytes, the BipBuffer grant
 * rules (strict after wrap) and wrap-around under load, the VarSlotPool
 * (classes, generations, ownership recovery, extents), the channel table, and
 * both backings (growable SharedArrayBuffer, file mapped by the native addon).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { BipBuffer } from "../src/transport/shm/bipbuf.js";
import { FileBacking, MemoryBacking } from "../src/transport/shm/backing.js";
import { C, computeLayout, DEFAULT_SEGMENT_CONFIG, H, MAGIC, P, PeerState, SlotState, type SegmentConfig } from "../src/transport/shm/layout.js";
import { nativeShm } from "../src/transport/shm/native.js";
import { Segment, SegmentError } from "../src/transport/shm/segment.js";
import { slowForMutation } from "./helpers/mutation.js";

const small: SegmentConfig = {
  maxPayloadSize: 64 * 1024,
  initialCredit: 32 * 1024,
  maxGuests: 4,
  bipbufCapacity: 4096,
  inlineThreshold: 0,
  maxChannels: 64,
  heartbeatIntervalMs: 100,
  sizeClasses: [
    { slotSize: 1024, count: 8 },
    { slotSize: 16 * 1024, count: 4 },
    { slotSize: 160 * 1024, count: 2 },
  ],
};

function memorySegment(c: SegmentConfig = small): Segment {
  const l = computeLayout(c);
  return Segment.create(new MemoryBacking(l.totalSize, l.maxSize), c);
}

test("header: magic, version 2, 128 bytes, offsets and limits as the spec lays them out", () => {
  const s = memorySegment();
  const dv = s.dv;
  assert.deepEqual(s.u8.subarray(0, 8), MAGIC);
  assert.equal(Buffer.from(s.u8.subarray(0, 7)).toString(), "RAPAHUB");
  assert.equal(dv.getUint32(8, true), 2, "version");
  assert.equal(dv.getUint32(12, true), 128, "header_size");
  assert.equal(Number(dv.getBigUint64(16, true)), s.layout.totalSize, "total_size");
  assert.equal(dv.getUint32(24, true), small.maxPayloadSize);
  assert.equal(dv.getUint32(28, true), small.initialCredit);
  assert.equal(dv.getUint32(32, true), 4, "max_guests");
  assert.equal(dv.getUint32(36, true), 4096, "bipbuf_capacity");
  assert.equal(Number(dv.getBigUint64(40, true)), 128, "peer table right after the header");
  assert.equal(dv.getBigUint64(48, true), 0n, "slot_region_offset unused in v2");
  assert.equal(dv.getUint32(56, true), 0, "slot_size must be 0 in v2");
  assert.equal(dv.getUint32(60, true), 0, "inline_threshold 0 = default 256");
  assert.equal(s.inlineThreshold, 256);
  assert.equal(dv.getUint32(64, true), 64, "max_channels");
  assert.equal(dv.getUint32(68, true), 0, "host_goodbye");
  assert.equal(dv.getBigUint64(72, true), 100_000_000n, "heartbeat interval in ns");
  const pool = Number(dv.getBigUint64(80, true));
  assert.ok(pool > 0 && pool % 64 === 0, "var_slot_pool_offset non-zero, aligned");
  assert.equal(Number(dv.getBigUint64(88, true)), s.layout.totalSize, "current_size");
  assert.equal(s.layout.totalSize % 4096, 0);
  // Peer table: 64-byte entries, ring and channel table offsets, all Empty.
  for (let p = 1; p <= 4; p++) {
    const e = 128 + (p - 1) * 64;
    assert.equal(dv.getUint32(e + P.state, true), PeerState.Empty);
    const ring = Number(dv.getBigUint64(e + P.ringOffset, true));
    const table = Number(dv.getBigUint64(e + P.channelTableOffset, true));
    assert.equal(ring % 64, 0);
    assert.equal(table, ring + Math.ceil((2 * (128 + 4096)) / 64) * 64, "channel table after both BipBuffers, aligned");
    assert.equal(dv.getBigUint64(e + P.slotPoolOffset, true), 0n, "per-guest slot pools are gone in v2");
    const g = s.guest(p);
    assert.equal(g.g2h.header, ring);
    assert.equal(g.h2g.header, ring + 128 + 4096);
    assert.equal(g.g2h.storedCapacity(), 4096);
  }
  // Size class headers.
  for (const [i, k] of small.sizeClasses.entries()) {
    const h = pool + i * 64;
    assert.equal(dv.getUint32(h, true), k.slotSize);
    assert.equal(dv.getUint32(h + 4, true), k.count);
    assert.equal(dv.getUint32(h + 8, true), 1, "one extent to start");
  }
  // A guest reading the header computes the same layout.
  const again = Segment.readConfig(s.u8.subarray(0, 65536));
  assert.deepEqual(again.layout, s.layout);
});

test("attach rejects a bad magic, another version and a v1-style header", () => {
  const s = memorySegment();
  const bytes = s.u8.slice(0, 65536);
  const bad = bytes.slice();
  bad[0] = 0x58;
  assert.throws(() => Segment.readConfig(bad), SegmentError);
  const v3 = bytes.slice();
  new DataView(v3.buffer).setUint32(H.version, 3, true);
  assert.throws(() => Segment.readConfig(v3), /version 3/);
  const v1 = bytes.slice();
  new DataView(v1.buffer).setUint32(H.slotSize, 4096, true);
  assert.throws(() => Segment.readConfig(v1), /slot_size/);
});

test("BipBuffer: the strict grant rule — after a wrap, write never catches up with read", () => {
  const sab = new SharedArrayBuffer(128 + 64);
  const i32 = new Int32Array(sab);
  const bb = new BipBuffer(i32, 0, 64);
  bb.reset();
  assert.equal(bb.grant(40), 0);
  bb.commit(40);
  assert.equal(bb.readable(), 0);
  assert.equal(bb.readableLength, 40);
  bb.release(32); // read = 32
  // 24 bytes left at the end: a 28-byte grant must wrap; 28 < read (32) → granted at 0.
  assert.equal(bb.grant(28), 0);
  bb.commit(28); // write = 28, watermark = 40
  // write + n < read is strict: 28 + 4 = 32 is NOT < 32 → full.
  assert.equal(bb.grant(4), -1, "write must never reach read after a wrap");
  // The consumer sees [32, 40) first, then wraps to [0, 28).
  assert.equal(bb.readable(), 32);
  assert.equal(bb.readableLength, 8);
  bb.release(8);
  assert.equal(bb.readable(), 0);
  assert.equal(bb.readableLength, 28);
  bb.release(28);
  assert.equal(bb.readable(), -1, "empty");
  // From an empty buffer at the start, exactly capacity-sized grants are refused (n < capacity).
  assert.equal(bb.grant(64), -1);
  // read == 0 and no room at the end: full, no wrap.
  const bb2 = new BipBuffer(new Int32Array(new SharedArrayBuffer(192)), 0, 64);
  bb2.reset();
  assert.equal(bb2.grant(60), 0);
  bb2.commit(60);
  assert.equal(bb2.grant(8), -1);
});

test("BipBuffer: wrap-around under load — 300k frames from a worker thread, read one by one, in order and intact", { skip: slowForMutation }, async () => {
  const capacity = 1024;
  const sab = new SharedArrayBuffer(128 + capacity);
  const i32 = new Int32Array(sab);
  const u8 = new Uint8Array(sab);
  const dv = new DataView(sab);
  const bb = new BipBuffer(i32, 0, capacity);
  bb.reset();
  const count = 300_000;
  const worker = new Worker(new URL("./helpers/shm-bipbuf-producer.js", import.meta.url), {
    workerData: { sab, header: 0, capacity, count, maxFrame: 232, seed: 12345 },
  });
  const done = new Promise<{ fullWaits: number }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  let seq = 0;
  let wraps = 0;
  let lastStart = 0;
  let emptyPolls = 0;
  const deadline = Date.now() + 60_000;
  try {
    // Like the transport: look for readable bytes, take one frame, release it.
    while (seq < count) {
      const start = bb.readable();
      if (start < 0) {
        if ((++emptyPolls & 1023) === 0) {
          assert.ok(Date.now() < deadline, "consumer timed out");
          Atomics.wait(i32, 0, Atomics.load(i32, 0), 1);
        }
        continue;
      }
      if (start < lastStart) wraps++;
      lastStart = start;
      const base = bb.data + start;
      const len = dv.getUint32(base, true);
      assert.ok(len >= 8 && len % 4 === 0 && len <= bb.readableLength, `frame length ${len} at ${start} (${bb.readableLength} readable)`);
      const got = dv.getUint32(base + 4, true);
      if (got !== seq) assert.fail(`frame ${seq} expected at ${start}, found frame ${got} (a stale frame read as new)`);
      for (let q = 8; q < len; q++) if (u8[base + q] !== ((seq + q) & 0xff)) assert.fail(`frame ${seq} corrupted at byte ${q}`);
      seq++;
      bb.release(len);
      Atomics.notify(i32, 64 >> 2);
    }
    const { fullWaits } = await done;
    assert.ok(wraps > 1000, `the buffer wrapped ${wraps} times`);
    assert.ok(fullWaits > 0, "the producer found the buffer full at times (and waited)");
  } finally {
    await worker.terminate();
  }
});

test("VarSlotPool: smallest fitting class, fallback, generations, double free, owner recovery, extents", () => {
  const s = memorySegment();
  const pool = s.pool;
  const a = pool.alloc(500, 0)!;
  assert.equal(a.classIdx, 0);
  assert.equal(a.generation, 1);
  assert.equal(pool.alloc(5000, 0)!.classIdx, 1);
  // Exhaust class 0 (8 slots): the 9th small allocation falls back to class 1.
  const held = [a];
  for (let i = 0; i < 7; i++) held.push(pool.alloc(10, 2)!);
  assert.ok(held.every((r) => r.classIdx === 0));
  assert.equal(pool.alloc(10, 0)!.classIdx, 1, "falls back to the next larger class");
  // Free needs InFlight and the right generation.
  pool.markInFlight(a);
  assert.equal(pool.check(a, 100), undefined);
  assert.match(pool.check({ ...a, generation: 7 }, 100)!, /generation/);
  assert.match(pool.check(a, 5000)!, /does not fit/);
  assert.equal(pool.free(a), true);
  assert.equal(pool.free(a), false, "double free is detected");
  const again = pool.alloc(10, 0)!;
  assert.equal(again.slotIdx, a.slotIdx, "LIFO reuse");
  assert.equal(again.generation, 2, "generation advanced");
  // Recovery: the 7 slots owned by peer 2 come back.
  const before = pool.freeCount(0);
  for (const r of held.slice(1)) pool.markInFlight(r);
  assert.equal(pool.recoverPeer(2), 7);
  assert.equal(pool.freeCount(0), before + 7);
  // Extents: the host grows a dry class (at most 2 extra extents).
  const big = [pool.alloc(100_000, 0)!, pool.alloc(100_000, 0)!];
  assert.equal(pool.alloc(100_000, 0), null, "class 2 is dry");
  const sizeBefore = s.currentSize;
  const grown = pool.alloc(100_000, 0, true)!;
  assert.equal(grown.classIdx, 2);
  assert.equal(grown.extentIdx, 1);
  assert.ok(s.currentSize > sizeBefore, "current_size grew");
  assert.equal(pool.extentCount(2), 2);
  assert.equal(Buffer.from(s.u8.subarray(sizeBefore, sizeBefore + 7)).toString(), "ROAPEXT");
  s.u8.fill(9, pool.dataOffset(grown), pool.dataOffset(grown) + 100_000);
  pool.alloc(100_000, 0, true);
  assert.ok(pool.alloc(100_000, 0, true));
  assert.equal(pool.extentCount(2), 3);
  pool.alloc(100_000, 0, true);
  assert.equal(pool.alloc(100_000, 0, true), null, "three extents at most");
  void big;
});

test("VarSlotPool, guest view: extents are believed from their own header, not from the class header another guest can scribble", () => {
  const l = computeLayout(small);
  const backing = new MemoryBacking(l.totalSize, l.maxSize);
  const host = Segment.create(backing, small);
  const guest = Segment.attach(backing);
  // The host grows class 2 to two extents and hands out a slot of extent 1.
  host.pool.alloc(100_000, 0);
  host.pool.alloc(100_000, 0);
  const ref = host.pool.alloc(100_000, 0, true)!;
  assert.equal(ref.extentIdx, 1);
  host.pool.markInFlight(ref);
  assert.equal(guest.pool.check(ref, 100), undefined, "the guest reads the host's slot");
  const k2 = l.classes[2]!.header;
  const k1 = l.classes[1]!.header;
  // Another guest writes count 1 into class 2's header: a slot in extent 1 is still the host's.
  Atomics.store(guest.i32, (k2 + C.extentCount) >> 2, 1);
  assert.equal(guest.pool.check(ref, 100), undefined, "a scribbled count does not make the host's slot a violation");
  // A count of 3 with extent 2 pointing at class 2's own extent 1: no such extent, so nothing is allocated from it.
  const ext1 = Number(Atomics.load(guest.u64, (k2 + C.extentOffsets) >> 3));
  Atomics.store(guest.i32, (k2 + C.extentCount) >> 2, 3);
  Atomics.store(guest.u64, (k2 + C.extentOffsets + 8) >> 3, BigInt(ext1));
  // Class 1 claims an extent 1 at that offset too (it is class 2's): the guest must not use it.
  Atomics.store(guest.i32, (k1 + C.extentCount) >> 2, 2);
  Atomics.store(guest.u64, (k1 + C.extentOffsets) >> 3, BigInt(ext1));
  // ... with free-list heads that name a free slot there (slot 1 of that extent is free), and
  // extent 1's own entry scribbled away, for a guest that attaches now.
  Atomics.store(guest.u64, (k2 + C.freeHeads + 16) >> 3, 1n << 32n);
  Atomics.store(guest.u64, (k1 + C.freeHeads + 8) >> 3, 1n << 32n);
  Atomics.store(guest.u64, (k2 + C.extentOffsets) >> 3, 0n);
  const late = Segment.attach(backing);
  assert.equal(late.pool.check(ref, 100), undefined, "a guest that never saw extent 1 finds it by walking the appended extents");
  const got: NonNullable<ReturnType<typeof late.pool.alloc>>[] = [];
  for (let i = 0; i < 20; i++) {
    const r = late.pool.alloc(10_000, 1);
    if (!r) break;
    got.push(r);
  }
  assert.ok(got.length > 0);
  for (const r of got) {
    assert.ok(!(r.classIdx === 1 && r.extentIdx === 1), "class 1 has no extent 1 (that memory is class 2's)");
    assert.ok(!(r.classIdx === 2 && r.extentIdx === 2), "class 2 has no extent 2");
    assert.doesNotMatch(host.pool.check(r, 0) ?? "", /does not exist|outside|no extent/, `the host knows ${JSON.stringify(r)}`);
  }
});

test("channel table: activate sets granted_total to the initial credit, grant adds, resetAll frees", () => {
  const s = memorySegment();
  const t = s.guest(1).channels;
  t.activate(3, 32 * 1024);
  assert.equal(t.state(3), 1);
  assert.equal(t.granted(3), 32 * 1024);
  assert.equal(t.grant(3, 1000), 32 * 1024 + 1000);
  t.resetAll();
  assert.equal(t.state(3), 0);
  assert.equal(t.granted(3), 0);
});

test("peer states and heartbeat fields", () => {
  const s = memorySegment();
  assert.equal(s.casPeerState(2, PeerState.Empty, PeerState.Reserved), true);
  assert.equal(s.casPeerState(2, PeerState.Empty, PeerState.Attached), false);
  assert.equal(s.peerState(2), PeerState.Reserved);
  assert.equal(s.bumpEpoch(2), 1);
  s.writeHeartbeat(2, 123456789n);
  assert.equal(s.dv.getBigUint64(128 + 64 + P.lastHeartbeat, true), 123456789n);
  assert.equal(SlotState.InFlight, 2);
  assert.deepEqual(DEFAULT_SEGMENT_CONFIG.maxGuests, 16);
});

test("file backing: the native addon maps the file as a SharedArrayBuffer; growth maps more in place", { skip: !nativeShm() && "native addon not built" }, () => {
  const path = `/dev/shm/roam-test-${process.pid}-${Date.now()}`;
  const l = computeLayout(small);
  const b = FileBacking.create(path, l.totalSize, l.maxSize);
  try {
    assert.ok(b.sab instanceof SharedArrayBuffer);
    const s = Segment.create(b, small);
    // A second mapping of the same file (as another process would) sees the same bytes.
    const other = FileBacking.open(path, l.maxSize);
    const s2 = Segment.attach(other);
    assert.deepEqual(s2.layout, s.layout);
    s.setHostGoodbye(7);
    assert.equal(s2.hostGoodbye, 7);
    // Grow class 2 on the host; the other mapping remaps when it meets the extent.
    s.pool.alloc(100_000, 0);
    s.pool.alloc(100_000, 0);
    const ref = s.pool.alloc(100_000, 0, true)!;
    assert.equal(ref.extentIdx, 1);
    const at = s.pool.dataOffset(ref);
    s.u8.fill(0xab, at, at + 1000);
    s.pool.markInFlight(ref);
    assert.equal(s2.pool.check(ref, 1000), undefined, "the other side validates the slot in the new extent");
    assert.equal(s2.u8[s2.pool.dataOffset(ref) + 999], 0xab);
    assert.equal(fs.statSync(path).size, s.currentSize);
    other.close();
    assert.equal(s2.u8[0], 0, "after unmap the range reads zeros instead of crashing");
  } finally {
    b.close();
    fs.rmSync(path, { force: true });
  }
  assert.equal(fs.existsSync(path), false);
});

test("file backing: a stale file at the path is replaced", { skip: !nativeShm() && "native addon not built" }, () => {
  const path = `/dev/shm/roam-test-stale-${process.pid}-${Date.now()}`;
  fs.writeFileSync(path, "left behind by a crashed host");
  const l = computeLayout(small);
  const b = FileBacking.create(path, l.totalSize, l.maxSize);
  try {
    const s = Segment.create(b, small);
    assert.equal(Buffer.from(s.u8.subarray(0, 7)).toString(), "RAPAHUB");
    assert.equal(fs.statSync(path).size, l.totalSize);
  } finally {
    b.close();
    fs.rmSync(path, { force: true });
  }
});
