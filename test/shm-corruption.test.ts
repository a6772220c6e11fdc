/**
 * The corruption checks of the shared-memory structures, in one process and
 * without a link: build a BipBuffer or a segment, scribble the words the peer
 * controls (ring indices, free-list heads, slot metadata, class and extent
 * headers), and check what the code reports — the exact rule id and which
 * index — and that nothing is read or handed out through a bad value.
 * (The multi-process tests reach the same checks through a hostile peer, but
 * are too slow to run once per mutant.)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BipBuffer, FAULT } from "../src/transport/shm/bipbuf.js";
import { MemoryBacking, type Backing } from "../src/transport/shm/backing.js";
import { align, B, C, computeLayout, EXTENT_MAGIC, extentDataOffset, extentSize, M, PAGE, SLOT_META_SIZE, SlotState, type SegmentConfig } from "../src/transport/shm/layout.js";
import { Segment } from "../src/transport/shm/segment.js";
import { SegmentFault, VarSlotPool } from "../src/transport/shm/varslot.js";

/**
 * A 64-byte ring whose 128-byte header sits at offset 128 (not 0, so that an
 * index computed from the wrong field offset lands somewhere else), and whose
 * data region ends exactly where the buffer ends (a read past the ring throws).
 */
const CAP = 64;
const HDR = 128;
function ring() {
  const sab = new SharedArrayBuffer(HDR + 128 + CAP);
  const i32 = new Int32Array(sab);
  const dv = new DataView(sab);
  const bb = new BipBuffer(i32, HDR, CAP);
  bb.reset();
  const at = (field: number) => (HDR + field) >> 2;
  const set = (f: { write?: number; watermark?: number; read?: number }) => {
    if (f.write !== undefined) Atomics.store(i32, at(B.write), f.write);
    if (f.watermark !== undefined) Atomics.store(i32, at(B.watermark), f.watermark);
    if (f.read !== undefined) Atomics.store(i32, at(B.read), f.read);
  };
  const get = () => ({ write: Atomics.load(i32, at(B.write)), watermark: Atomics.load(i32, at(B.watermark)), read: Atomics.load(i32, at(B.read)) });
  /** Writes a frame length word at `p` in the data region. */
  const frame = (p: number, len: number) => dv.setUint32(HDR + 128 + p, len, true);
  return { sab, i32, dv, bb, set, get, frame, u8: new Uint8Array(sab) };
}

describe("BipBuffer header checks", () => {
  test("FAULT is neither an offset nor 'full'", () => {
    assert.ok(FAULT < 0);
    assert.notEqual(FAULT as number, -1);
  });

  test("the fields sit at the header's offsets; reset zeroes them and stores the capacity", () => {
    const { sab, i32, bb } = ring();
    assert.equal(bb.data, HDR + 128);
    assert.equal(bb.iSleeping, (HDR + B.sleeping) >> 2);
    new Uint8Array(sab).fill(0x5a);
    assert.equal(bb.storedCapacity(), 0x5a5a5a5a);
    bb.reset();
    const words = [...i32.subarray(HDR >> 2, (HDR + 128) >> 2)];
    const want = new Array(32).fill(0x5a5a5a5a);
    want[B.write >> 2] = 0;
    want[B.watermark >> 2] = 0;
    want[B.read >> 2] = 0;
    want[B.sleeping >> 2] = 0;
    want[B.capacity >> 2] = CAP;
    assert.deepEqual(words, want, "exactly the five header words are written");
    assert.deepEqual([...i32.subarray(0, HDR >> 2)], new Array(32).fill(0x5a5a5a5a), "nothing before the header");
    assert.equal(bb.storedCapacity(), CAP);
  });

  test("grant: write and read must lie in [0, capacity], else FAULT with shm.bipbuf.header naming the index, and nothing is written", () => {
    const cases: [{ write: number; read: number }, number | string][] = [
      [{ write: 0, read: 0 }, 0],
      [{ write: CAP, read: 0 }, -1], // at the end, nothing freed: full, not corrupt
      [{ write: 0, read: CAP }, 0], // after a wrap with everything before read free
      [{ write: CAP + 1, read: 0 }, "write index 65"],
      [{ write: -1, read: 0 }, "write index -1"],
      [{ write: 0, read: CAP + 1 }, "read index 65"],
      [{ write: 0, read: -1 }, "read index -1"],
      [{ write: -4, read: CAP + 4 }, "write index -4"],
    ];
    for (const [state, want] of cases) {
      const { bb, set, get } = ring();
      set(state);
      const got = bb.grant(8);
      if (typeof want === "number") {
        assert.equal(got, want, JSON.stringify(state));
        assert.equal(bb.fault, "");
      } else {
        assert.equal(got, FAULT, JSON.stringify(state));
        assert.ok(bb.fault.startsWith(`shm.bipbuf.header: ${want} `), bb.fault);
        assert.deepEqual(get(), { ...state, watermark: 0 }, "a corrupt header is not written through");
      }
    }
  });

  test("grant: the size limits and the exact-fit boundaries", () => {
    {
      const { bb, get } = ring();
      assert.equal(bb.grant(0), -1, "an empty grant is refused");
      assert.equal(bb.grant(-4), -1);
      assert.equal(bb.grant(CAP), -1, "n must be below the capacity");
      assert.equal(bb.grant(CAP - 4), 0);
      assert.deepEqual(get(), { write: 0, watermark: 0, read: 0 }, "grant publishes nothing");
    }
    {
      // Empty at 40 (write == read): 24 bytes fit exactly at the end, no wrap.
      const { bb, set, get } = ring();
      set({ write: 40, read: 40 });
      assert.equal(bb.grant(24), 40);
      assert.deepEqual(get(), { write: 40, watermark: 0, read: 40 });
      bb.commit(24);
      assert.deepEqual(get(), { write: 64, watermark: 0, read: 40 });
    }
    {
      // write 60, read 32: a wrap needs n < read strictly.
      const { bb, set, get } = ring();
      set({ write: 60, read: 32 });
      assert.equal(bb.grant(32), -1, "n == read: the wrapped write would reach read");
      assert.deepEqual(get(), { write: 60, watermark: 0, read: 32 }, "a refused wrap publishes nothing");
      assert.equal(bb.grant(28), 0);
      assert.deepEqual(get(), { write: 0, watermark: 60, read: 32 }, "write goes to 0 and the watermark is published at grant time");
      bb.commit(28);
      assert.deepEqual(get(), { write: 28, watermark: 60, read: 32 });
    }
    {
      // After a wrap: write + n < read.
      const { bb, set, get } = ring();
      set({ write: 8, watermark: 56, read: 32 });
      assert.equal(bb.grant(24), -1, "8 + 24 = 32 is not below read");
      assert.equal(bb.grant(23), 8);
      bb.commit(23);
      assert.deepEqual(get(), { write: 31, watermark: 56, read: 32 });
    }
  });

  test("producerSeesEmpty: write == read and no watermark", () => {
    const cases: [{ write: number; watermark: number; read: number }, boolean][] = [
      [{ write: 0, watermark: 0, read: 0 }, true],
      [{ write: 40, watermark: 0, read: 40 }, true],
      [{ write: 40, watermark: 0, read: 32 }, false],
      [{ write: 8, watermark: 40, read: 8 }, false],
      [{ write: 8, watermark: 40, read: 16 }, false],
    ];
    for (const [state, want] of cases) {
      const { bb, set } = ring();
      set(state);
      assert.equal(bb.producerSeesEmpty, want, JSON.stringify(state));
    }
  });

  test("readable: read, watermark and write must lie in [0, capacity], else FAULT with shm.bipbuf.header naming the index", () => {
    const cases: [{ write: number; watermark: number; read: number }, [number, number] | string][] = [
      [{ write: CAP, watermark: 0, read: CAP }, [-1, 0]],
      [{ write: CAP, watermark: 0, read: 0 }, [0, CAP]],
      [{ write: 48, watermark: 0, read: 8 }, [8, 40]],
      [{ write: 0, watermark: CAP, read: 8 }, [8, CAP - 8]],
      [{ write: 0, watermark: 0, read: CAP + 1 }, "read index 65"],
      [{ write: 0, watermark: 0, read: -1 }, "read index -1"],
      [{ write: 0, watermark: CAP + 1, read: 8 }, "watermark index 65"],
      [{ write: 0, watermark: -1, read: 8 }, "watermark index -1"],
      [{ write: CAP + 1, watermark: 0, read: 8 }, "write index 65"],
      [{ write: -1, watermark: 0, read: 0 }, "write index -1"],
      // The read index is checked before the watermark.
      [{ write: 0, watermark: -8, read: -4 }, "read index -4"],
    ];
    for (const [state, want] of cases) {
      const { bb, set, get } = ring();
      set(state);
      const got = bb.readable();
      if (Array.isArray(want)) {
        assert.deepEqual([got, bb.readableLength], want, JSON.stringify(state));
        assert.equal(bb.fault, "");
      } else {
        assert.equal(got, FAULT, JSON.stringify(state));
        assert.ok(bb.fault.startsWith(`shm.bipbuf.header: ${want} `), bb.fault);
        assert.deepEqual(get(), state, "nothing written");
      }
    }
  });

  test("readable: at the watermark the consumer goes back to 0 and reads the new write index; nothing readable resets the length", () => {
    const { bb, set, get } = ring();
    set({ write: 8, watermark: 40, read: 40 });
    assert.equal(bb.readable(), 0);
    assert.equal(bb.readableLength, 8);
    assert.deepEqual(get(), { write: 8, watermark: 0, read: 0 });
    // At the watermark with nothing written after the wrap: empty, and reset all the same.
    set({ write: 0, watermark: 40, read: 40 });
    assert.equal(bb.readable(), -1);
    assert.equal(bb.readableLength, 0, "no stale length");
    assert.deepEqual(get(), { write: 0, watermark: 0, read: 0 });
    // Before the watermark: the bytes up to it.
    set({ write: 8, watermark: 40, read: 24 });
    assert.equal(bb.readable(), 24);
    assert.equal(bb.readableLength, 16);
    assert.deepEqual(get(), { write: 8, watermark: 40, read: 24 });
    set({ write: 24, watermark: 0, read: 24 });
    assert.equal(bb.readable(), -1);
    assert.equal(bb.readableLength, 0);
  });

  test("hasData: the consumer's side-effect-free look", () => {
    const cases: [{ write: number; watermark: number; read: number }, boolean][] = [
      [{ write: 0, watermark: 0, read: 0 }, false],
      [{ write: 8, watermark: 0, read: 8 }, false],
      [{ write: 16, watermark: 0, read: 8 }, true],
      [{ write: 0, watermark: 40, read: 32 }, true],
      [{ write: 0, watermark: 40, read: 40 }, false],
      [{ write: 8, watermark: 40, read: 40 }, true],
    ];
    for (const [state, want] of cases) {
      const { bb, set, get } = ring();
      set(state);
      assert.equal(bb.hasData(), want, JSON.stringify(state));
      assert.deepEqual(get(), state);
    }
  });

  test("release: advances read; reaching the watermark resets both to 0", () => {
    const cases: [{ write: number; watermark: number; read: number }, number, { watermark: number; read: number }][] = [
      [{ write: 40, watermark: 0, read: 8 }, 16, { watermark: 0, read: 24 }],
      [{ write: 8, watermark: 40, read: 16 }, 8, { watermark: 40, read: 24 }],
      [{ write: 8, watermark: 40, read: 32 }, 8, { watermark: 0, read: 0 }],
    ];
    for (const [state, n, want] of cases) {
      const { bb, set, get } = ring();
      set(state);
      bb.release(n);
      assert.deepEqual(get(), { write: state.write, ...want }, `${JSON.stringify(state)} release ${n}`);
    }
  });
});

describe("BipBuffer.forEachUnread (crash recovery walk)", () => {
  const walk = (r: ReturnType<typeof ring>) => {
    const seen: [number, number][] = [];
    r.bb.forEachUnread(r.u8, (at, len) => seen.push([at, len]));
    return seen;
  };

  test("walks [read, watermark) then [0, write), frames of 24 bytes up to the ends of the ring", () => {
    const r = ring();
    r.frame(0, 24);
    r.frame(24, 40); // runs exactly to the end of the ring
    r.set({ write: CAP, read: 0 });
    assert.deepEqual(walk(r), [[0, 24], [24, 40]]);
    r.set({ read: 24 });
    assert.deepEqual(walk(r), [[24, 40]], "from read, not from 0");
    const w = ring();
    w.frame(32, 24);
    w.frame(0, 24);
    w.set({ write: 24, watermark: 56, read: 32 });
    assert.deepEqual(walk(w), [[32, 24], [0, 24]]);
    // Read at the watermark: only the wrapped part.
    w.set({ read: 56 });
    assert.deepEqual(walk(w), [[0, 24]]);
    // Watermark at the end of the ring, read at it.
    w.set({ write: 24, watermark: CAP, read: CAP });
    assert.deepEqual(walk(w), [[0, 24]]);
    // Nothing after the wrap.
    w.set({ write: 0, watermark: 56, read: 32 });
    assert.deepEqual(walk(w), [[32, 24]]);
  });

  test("stops at a malformed frame: too short, unaligned, or past the end of what was written", () => {
    for (const [len, want] of [
      [20, []],
      [26, []],
      [28, [[0, 28]]],
      [32, [[0, 32]]],
      [36, []],
    ] as [number, [number, number][]][]) {
      const r = ring();
      r.frame(0, len);
      r.set({ write: 32, read: 0 });
      assert.deepEqual(walk(r), want, `frame length ${len}`);
    }
  });

  test("visits nothing when any header index lies outside the ring", () => {
    // Valid frames at 0 (24 bytes) and 16 (24 bytes): a walk that skipped the check would find one.
    for (const state of [
      { read: -4, watermark: 40, write: 24 },
      { read: CAP + 4, watermark: 40, write: 24 },
      { read: 16, watermark: 40, write: -4 },
      { read: 16, watermark: 40, write: CAP + 4 },
      { read: 0, watermark: -4, write: 24 },
      { read: 0, watermark: CAP + 4, write: 24 },
    ]) {
      const r = ring();
      r.frame(0, 24);
      r.frame(16, 24);
      r.set(state);
      assert.deepEqual(walk(r), [], JSON.stringify(state));
    }
  });
});

// --- VarSlotPool -------------------------------------------------------------

/**
 * A small pool: class 0 has 80 slots of 64 B (enough for the bound of 64
 * scribbled slots), class 1 eight 1 KiB slots, class 2 two 160 KiB slots (the
 * largest must hold maxPayloadSize plus the frame overhead).
 */
const cfg: SegmentConfig = {
  maxPayloadSize: 64 * 1024,
  initialCredit: 1024,
  maxGuests: 1,
  bipbufCapacity: 1024,
  inlineThreshold: 0,
  maxChannels: 4,
  heartbeatIntervalMs: 0,
  sizeClasses: [
    { slotSize: 64, count: 80 },
    { slotSize: 1024, count: 8 },
    { slotSize: 160 * 1024, count: 2 },
  ],
};
const NONE = 0xffffffff;
const END = 0xffffffffffffffffn;

function hostSegment(c: SegmentConfig = cfg) {
  const l = computeLayout(c);
  const backing = new MemoryBacking(l.totalSize, l.maxSize);
  const host = Segment.create(backing, c);
  return { l, backing, host };
}
/** u32 field `f` (M.*) of slot `i` of extent 0 of class `c`. */
const metaAt = (s: Segment, c: number, i: number, f: number) => s.layout.classes[c]!.meta0 + i * SLOT_META_SIZE + f;
const readMeta = (s: Segment, c: number, i: number) => [M.generation, M.state, M.owner, M.nextFree].map((f) => s.dv.getUint32(metaAt(s, c, i, f), true));
const setMeta = (s: Segment, c: number, i: number, f: number, v: number) => s.dv.setUint32(metaAt(s, c, i, f), v, true);
const headAt = (s: Segment, c: number, e: number) => (s.layout.classes[c]!.header + C.freeHeads + 8 * e) >> 3;
const head = (s: Segment, c: number, e = 0) => Atomics.load(s.u64, headAt(s, c, e));
const setHead = (s: Segment, c: number, e: number, idx: number, tag: number) => Atomics.store(s.u64, headAt(s, c, e), (BigInt(idx) << 32n) | BigInt(tag));
const headOf = (idx: number, tag: number) => (BigInt(idx) << 32n) | BigInt(tag);

describe("VarSlotPool: the pool format and the checks of what a peer wrote", () => {
  test("init writes the class headers, free-list heads and slot metadata over whatever the memory held", () => {
    const l = computeLayout(cfg);
    const backing = new MemoryBacking(l.totalSize, l.maxSize);
    new Uint8Array(backing.sab).fill(0xee);
    const s = Segment.create(backing, cfg);
    cfg.sizeClasses.forEach((k, c) => {
      const h = l.classes[c]!.header;
      const want = new DataView(new ArrayBuffer(64));
      want.setUint32(C.slotSize, k.slotSize, true);
      want.setUint32(C.slotsPerExtent, k.count, true);
      want.setUint32(C.extentCount, 1, true);
      want.setBigUint64(C.freeHeads, headOf(0, 0), true);
      want.setBigUint64(C.freeHeads + 8, END, true);
      want.setBigUint64(C.freeHeads + 16, END, true);
      assert.deepEqual([...s.u8.subarray(h, h + 64)], [...new Uint8Array(want.buffer)], `class ${c} header`);
      for (let i = 0; i < k.count; i++) assert.deepEqual(readMeta(s, c, i), [0, SlotState.Free, 0, i + 1 < k.count ? i + 1 : NONE], `class ${c} slot ${i}`);
      // Class 0's data starts right after its last SlotMeta: nothing is written past the metadata.
      const d = l.classes[c]!.data0;
      assert.deepEqual([...s.u8.subarray(d, d + 16)], new Array(16).fill(0xee), `class ${c} slot data untouched`);
    });
    assert.equal(l.classes[0]!.data0, l.classes[0]!.meta0 + 80 * SLOT_META_SIZE, "(the layout this test relies on)");
  });

  test("classFor and alloc: the smallest class whose slots hold the size, null above the largest", () => {
    const { host } = hostSegment();
    assert.equal(host.pool.classFor(64), 0);
    assert.equal(host.pool.classFor(65), 1);
    assert.equal(host.pool.classFor(160 * 1024), 2);
    assert.equal(host.pool.classFor(160 * 1024 + 1), -1);
    assert.equal(host.pool.alloc(160 * 1024 + 1, 0), null);
    assert.deepEqual(host.pool.alloc(64, 9), { classIdx: 0, extentIdx: 0, slotIdx: 0, generation: 1 });
    assert.deepEqual(readMeta(host, 0, 0), [1, SlotState.Allocated, 9, 1]);
  });

  test("every pop and push advances the free-list head's tag by one (ABA), and free pushes the slot on top", () => {
    const { host } = hostSegment();
    const pool = host.pool;
    assert.equal(head(host, 1), headOf(0, 0));
    const a = pool.alloc(1000, 0)!;
    assert.equal(head(host, 1), headOf(1, 1));
    const b = pool.alloc(1000, 0)!;
    assert.deepEqual([a.slotIdx, b.slotIdx], [0, 1]);
    assert.equal(head(host, 1), headOf(2, 2));
    pool.markInFlight(a);
    assert.equal(pool.free(a), true);
    assert.equal(head(host, 1), headOf(0, 3));
    assert.equal(readMeta(host, 1, 0)[3], 2, "the freed slot links to the old head");
    pool.freeAllocated(b);
    assert.equal(head(host, 1), headOf(1, 4));
    assert.equal(readMeta(host, 1, 1)[3], 0);
    // The tag wraps at 2^32 without touching the index.
    setHead(host, 1, 0, 1, NONE);
    assert.equal(pool.alloc(1000, 0)!.slotIdx, 1);
    assert.equal(head(host, 1), headOf(0, 0));
  });

  test("check: every rule at its boundary (host, which knows its extents)", () => {
    const { host } = hostSegment();
    const pool = host.pool;
    const ref = pool.alloc(1024, 5)!;
    assert.deepEqual(ref, { classIdx: 1, extentIdx: 0, slotIdx: 0, generation: 1 });
    assert.equal(pool.check(ref, 1024), "slot is not sent");
    pool.markInFlight(ref);
    assert.equal(pool.check(ref, 1024), undefined, "a payload of exactly the slot size");
    assert.equal(pool.check(ref, 1025), "payload of 1025 bytes does not fit a 1024-byte slot");
    assert.equal(pool.check({ ...ref, classIdx: 3 }, 0), "slot class 3 does not exist");
    assert.equal(pool.check({ ...ref, extentIdx: 1 }, 0), "extent 1 of class 1 does not exist");
    assert.equal(pool.check({ ...ref, extentIdx: 3 }, 0), "extent 3 of class 1 does not exist");
    assert.equal(pool.check({ ...ref, slotIdx: 8 }, 0), "slot 8 is beyond class 1 (8 slots)");
    assert.equal(pool.check({ ...ref, slotIdx: 7 }, 0), "slot generation 1 does not match 0");
    assert.equal(pool.check({ ...ref, generation: 2 }, 0), "slot generation 2 does not match 1");
    setMeta(host, 1, 0, M.generation, 0xffffffff);
    assert.equal(pool.check({ ...ref, generation: 0xffffffff }, 0), undefined, "generations are u32");
    setMeta(host, 1, 0, M.generation, 1);
    assert.equal(pool.free(ref), true);
    assert.equal(pool.check(ref, 0), "slot is free");
    // The host never follows an extent it did not append.
    assert.throws(
      () => pool.dataOffset({ ...ref, extentIdx: 1 }),
      (e: unknown) => e instanceof SegmentFault && e.message === "shm.varslot.extents: class 1 has no extent 1",
    );
  });

  test("check: a guest reports a missing extent with the shm.varslot.extents rule, and indices past the last extent", () => {
    const { backing, host } = hostSegment();
    const guest = Segment.attach(backing);
    const ref = host.pool.alloc(1024, 0)!;
    host.pool.markInFlight(ref);
    assert.equal(guest.pool.check(ref, 1024), undefined);
    const msg = guest.pool.check({ ...ref, extentIdx: 1 }, 0);
    assert.equal(msg, "shm.varslot.extents: class 1 has no extent 1 (the class header says offset 0)");
    assert.equal(guest.pool.check({ ...ref, extentIdx: 2 }, 0), "shm.varslot.extents: class 1 has no extent 2 (the class header says offset 0)");
    assert.equal(guest.pool.check({ ...ref, extentIdx: 3 }, 0), "extent 3 of class 1 does not exist");
  });

  test("free and freeAllocated act only on the state and generation they expect; owner reads the slot's owner", () => {
    const { host } = hostSegment();
    const pool = host.pool;
    const a = pool.alloc(1000, 7)!;
    assert.equal(pool.owner(a), 7);
    assert.equal(pool.free(a), false, "an Allocated slot was never sent: not freed by the receiver");
    assert.equal(pool.freeCount(1), 7);
    pool.freeAllocated(a);
    assert.equal(pool.freeCount(1), 8);
    assert.equal(pool.check(a, 0), "slot is free");
    pool.freeAllocated(a);
    assert.equal(pool.freeCount(1), 8, "a second freeAllocated does not push the slot again");
    const b = pool.alloc(1000, 7)!;
    assert.deepEqual([b.slotIdx, b.generation], [a.slotIdx, 2]);
    pool.markInFlight(b);
    pool.freeAllocated(b);
    assert.equal(pool.check(b, 0), undefined, "freeAllocated leaves an in-flight slot alone");
    assert.equal(pool.freeCount(1), 7);
    assert.equal(pool.free({ ...b, generation: 1 }), false, "a stale generation is not freed");
    assert.equal(pool.freeCount(1), 7);
    assert.equal(pool.free(b), true);
    assert.equal(pool.freeCount(1), 8);
    assert.equal(pool.free(b), false);
    assert.equal(pool.freeCount(1), 8);
  });

  test("a scribbled free-list head (index past the class) makes the extent dry: the next class serves, the head is left as it is", () => {
    const { host } = hostSegment();
    setHead(host, 1, 0, 8, 5);
    assert.equal(host.pool.alloc(1000, 0)!.classIdx, 2);
    assert.equal(head(host, 1), headOf(8, 5));
    assert.equal(host.pool.freeCount(1), 0);
  });

  test("a scribbled next link (past the class) ends the list there", () => {
    const { host } = hostSegment();
    setMeta(host, 1, 0, M.nextFree, 8);
    assert.equal(host.pool.alloc(1000, 0)!.slotIdx, 0);
    assert.equal(head(host, 1), headOf(NONE, 1), "the head is the empty index, not the scribbled one");
    assert.equal(host.pool.alloc(1000, 0)!.classIdx, 2);
    setMeta(host, 1, 1, M.nextFree, 1000);
    setHead(host, 1, 0, 1, 7);
    assert.equal(host.pool.alloc(1000, 0)!.slotIdx, 1);
    assert.equal(head(host, 1), headOf(NONE, 8));
  });

  test("a listed slot that is not Free is skipped and left alone; the 65th such slot makes the extent dry", () => {
    for (const scribbled of [64, 65]) {
      const { host } = hostSegment();
      for (let i = 0; i < scribbled; i++) setMeta(host, 0, i, M.state, SlotState.InFlight);
      const got = host.pool.alloc(10, 4)!;
      if (scribbled === 64) assert.deepEqual(got, { classIdx: 0, extentIdx: 0, slotIdx: 64, generation: 1 });
      else assert.equal(got.classIdx, 1, "class 0 counts as dry");
      assert.equal(head(host, 0), headOf(65, 65), `${scribbled}: one pop per skipped slot`);
      for (let i = 0; i < scribbled; i++) assert.deepEqual(readMeta(host, 0, i), [0, SlotState.InFlight, 0, i + 1], `slot ${i} untouched`);
    }
  });

  test("freeCount walks a cyclic list at most count + 1 steps", () => {
    const { host } = hostSegment();
    setMeta(host, 1, 3, M.nextFree, 0);
    assert.equal(host.pool.freeCount(1), 4 + 4 + 1);
  });

  test("countOwned and recoverPeer: every extent, only slots in use, only that owner", () => {
    const { backing, host } = hostSegment();
    const pool = host.pool;
    pool.alloc(100_000, 3); // class 2, extent 0, slot 0
    const other = pool.alloc(100_000, 5)!; // slot 1
    const inExtent1 = pool.alloc(100_000, 3, true)!;
    assert.deepEqual([inExtent1.classIdx, inExtent1.extentIdx], [2, 1]);
    pool.markInFlight(inExtent1);
    const sent = pool.alloc(1000, 3)!;
    pool.markInFlight(sent);
    pool.freeAllocated(pool.alloc(1000, 3)!); // Free, owner field still 3
    assert.equal(pool.countOwned(3), 3);
    assert.equal(pool.countOwned(5), 1);
    assert.equal(Segment.attach(backing).pool.countOwned(3), 3, "a guest counts the appended extent too");
    assert.equal(pool.recoverPeer(3), 3);
    assert.equal(pool.countOwned(3), 0);
    assert.equal(pool.recoverPeer(3), 0);
    assert.equal(pool.countOwned(5), 1);
    assert.equal(pool.check({ ...other, generation: 1 }, 0), "slot is not sent", "the other owner's slot is untouched");
    assert.equal(pool.freeCount(2), 3);
    assert.equal(pool.freeCount(1), 8);
    assert.equal(Segment.attach(backing).pool.recoverPeer(5), 1, "a guest recovers in every extent too");
  });

  test("a guest believes an extent count of 1..3 only", () => {
    const { backing, host } = hostSegment();
    const guest = Segment.attach(backing);
    const at = (host.layout.classes[1]!.header + C.extentCount) >> 2;
    for (const [n, want] of [
      [0, 1],
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 1],
      [-1, 1],
    ]) {
      Atomics.store(host.i32, at, n!);
      assert.equal(guest.pool.extentCount(1), want, `count ${n}`);
      assert.equal(host.pool.extentCount(1), 1, "the host keeps its own count");
    }
  });

  test("a guest skips an extent it cannot find and allocates from the next class", () => {
    const { backing, host } = hostSegment();
    const guest = Segment.attach(backing);
    Atomics.store(host.i32, (host.layout.classes[1]!.header + C.extentCount) >> 2, 2);
    setHead(host, 1, 0, NONE, 0);
    assert.equal(guest.pool.alloc(1000, 1)!.classIdx, 2);
    assert.equal(guest.pool.grow(1), false, "only the host appends extents");
  });

  test("alloc with grow appends to the smallest fitting class only", () => {
    const { host } = hostSegment();
    setHead(host, 1, 0, NONE, 0);
    const got = host.pool.alloc(1000, 0, true)!;
    assert.deepEqual([got.classIdx, got.extentIdx], [1, 1]);
    assert.equal(host.pool.grown, 1);
    setHead(host, 1, 1, NONE, 0);
    setHead(host, 0, 0, NONE, 0);
    assert.equal(host.pool.alloc(64, 0, true)!.classIdx, 0, "class 0 grows rather than class 1");
    assert.equal(host.pool.extentCount(1), 2);
    assert.equal(host.pool.grown, 2);
  });

  test("grow writes the extent header (class, index, geometry, magic) and publishes size, offset and count", () => {
    const { l, host } = hostSegment();
    const pool = host.pool;
    assert.equal(pool.grow(1), true);
    assert.equal(pool.grow(2), true);
    assert.equal(pool.grow(1), true);
    assert.equal(pool.grow(1), false, "three extents at most");
    const x1 = l.totalSize;
    const x2 = x1 + align(extentSize(cfg.sizeClasses[1]!), PAGE);
    const x3 = x2 + align(extentSize(cfg.sizeClasses[2]!), PAGE);
    const end = x3 + align(extentSize(cfg.sizeClasses[1]!), PAGE);
    for (const [at, c, e] of [
      [x1, 1, 1],
      [x2, 2, 1],
      [x3, 1, 2],
    ] as const) {
      assert.deepEqual([...host.u8.subarray(at, at + 8)], [...EXTENT_MAGIC]);
      assert.deepEqual([8, 12, 16, 20].map((o) => host.dv.getUint32(at + o, true)), [c, e, cfg.sizeClasses[c]!.count, cfg.sizeClasses[c]!.slotSize]);
    }
    assert.equal(host.currentSize, end);
    const h1 = l.classes[1]!.header;
    assert.deepEqual([host.dv.getBigUint64(h1 + C.extentOffsets, true), host.dv.getBigUint64(h1 + C.extentOffsets + 8, true)], [BigInt(x1), BigInt(x3)]);
    assert.equal(host.dv.getUint32(h1 + C.extentCount, true), 3);
    assert.equal(host.dv.getBigUint64(l.classes[2]!.header + C.extentOffsets, true), BigInt(x2));
    assert.equal(pool.dataOffset({ classIdx: 1, extentIdx: 2, slotIdx: 1, generation: 0 }), x3 + extentDataOffset(cfg.sizeClasses[1]!) + 1024);
    assert.equal(pool.grown, 3);
    // The SlotMeta array follows the 64-byte extent header.
    const metaWords = (at: number, i: number) => [0, 4, 8, 12].map((f) => host.dv.getUint32(at + 64 + i * SLOT_META_SIZE + f, true));
    for (let i = 0; i < 8; i++) assert.deepEqual(metaWords(x1, i), [0, SlotState.Free, 0, i + 1 < 8 ? i + 1 : NONE], `extent 1 slot ${i}`);
    setHead(host, 1, 0, NONE, 0);
    for (let i = 0; i < 3; i++) assert.deepEqual(Object.values(pool.alloc(1000, 6)!), [1, 1, i, 1]);
    assert.deepEqual(metaWords(x1, 2), [1, SlotState.Allocated, 6, 3]);
    assert.equal(pool.freeCount(1), 5 + 8, "extent 1 has 5 left, extent 2 all 8");
  });

  test("slot offsets: data and metadata of extent 0 come from the layout", () => {
    const { l, host } = hostSegment();
    const pool = host.pool;
    assert.equal(pool.dataOffset({ classIdx: 1, extentIdx: 0, slotIdx: 3, generation: 0 }), l.classes[1]!.data0 + 3 * 1024);
    setMeta(host, 1, 5, M.owner, 77);
    assert.equal(pool.owner({ classIdx: 1, extentIdx: 0, slotIdx: 5, generation: 0 }), 77);
  });

  test("alloc with grow does not grow a larger class it falls back to", () => {
    const { host } = hostSegment();
    const pool = host.pool;
    assert.equal(pool.grow(1), true);
    assert.equal(pool.grow(1), true);
    for (let e = 0; e < 3; e++) setHead(host, 1, e, NONE, 0);
    setHead(host, 2, 0, NONE, 0);
    assert.equal(pool.alloc(1000, 0, true), null, "class 1 has all its extents, class 2 is dry: nothing");
    assert.equal(pool.extentCount(2), 1, "class 2 was not grown");
  });

  test("a guest allocates only from the extents the class header counts", () => {
    const { backing, host } = hostSegment();
    host.pool.grow(1);
    const guest = Segment.attach(backing);
    setHead(host, 1, 0, NONE, 0);
    Atomics.store(host.i32, (host.layout.classes[1]!.header + C.extentCount) >> 2, 1);
    assert.equal(guest.pool.alloc(1000, 1)!.classIdx, 2, "extent 1 is not counted");
    Atomics.store(host.i32, (host.layout.classes[1]!.header + C.extentCount) >> 2, 2);
    assert.deepEqual(Object.values(guest.pool.alloc(1000, 1)!).slice(0, 2), [1, 1]);
  });

  test("recoverPeer and countOwned read the metadata of the class's slots only (not the slot data after them)", () => {
    const { l, host } = hostSegment();
    const ref = host.pool.alloc(64, 3)!;
    assert.deepEqual([ref.classIdx, ref.slotIdx], [0, 0]);
    // Slot 0's payload happens to look like a SlotMeta owned by peer 3 (it sits right after the last one).
    const d = l.classes[0]!.data0;
    host.dv.setUint32(d + M.state, SlotState.InFlight, true);
    host.dv.setUint32(d + M.owner, 3, true);
    assert.equal(host.pool.countOwned(3), 1);
    assert.equal(host.pool.recoverPeer(3), 1);
    assert.equal(host.dv.getUint32(d + M.state, true), SlotState.InFlight, "the payload is not touched");
  });

  test("repairHeaders (host) writes back the geometry a guest scribbled; a guest's pool repairs nothing", () => {
    const { l, backing, host } = hostSegment();
    host.pool.grow(2);
    host.pool.grow(2);
    const h2 = l.classes[2]!.header;
    const snapshot = () => [...host.u8.subarray(h2, h2 + 64), ...host.u8.subarray(88, 96)];
    const good = snapshot();
    const scribble = () => {
      host.dv.setUint32(h2 + C.slotSize, 16, true);
      host.dv.setUint32(h2 + C.slotsPerExtent, 1, true);
      host.dv.setUint32(h2 + C.extentCount, 1, true);
      host.dv.setBigUint64(h2 + C.extentOffsets, 4096n, true);
      host.dv.setBigUint64(h2 + C.extentOffsets + 8, 8192n, true);
      host.dv.setBigUint64(88, 12288n, true); // current_size
    };
    const guest = Segment.attach(backing);
    scribble();
    // The words just before class 2's header (class 1's reserved tail) happen to hold class 2's
    // slot count and extent count: only the fields themselves are compared.
    host.dv.setUint32(h2 - 4, 2, true);
    host.dv.setUint32(h2 - 8, 3, true);
    const bad = snapshot();
    guest.pool.repairHeaders();
    assert.deepEqual(snapshot(), bad);
    host.pool.repairHeaders();
    assert.deepEqual(snapshot(), good);
  });
});

describe("VarSlotPool, guest: an appended extent is used only where its own header vouches for it", () => {
  /**
   * The host appends class 1's extent 1 (x1), then class 2's extent 1 (x2),
   * and sends a slot of x2. A guest pool is built over the same memory with
   * the segment's bounds (or tighter ones, or a backing that admits less).
   */
  function grown() {
    const { l, backing, host } = hostSegment();
    host.pool.grow(1);
    host.pool.grow(2);
    setHead(host, 2, 0, NONE, 0);
    const ref = host.pool.alloc(100_000, 0)!;
    assert.deepEqual([ref.classIdx, ref.extentIdx], [2, 1]);
    host.pool.markInFlight(ref);
    const x1 = l.totalSize;
    const x2 = x1 + align(extentSize(cfg.sizeClasses[1]!), PAGE);
    const x2end = x2 + align(extentSize(cfg.sizeClasses[2]!), PAGE);
    assert.equal(host.currentSize, x2end);
    const claimedAt = l.classes[2]!.header + C.extentOffsets;
    const guest = (opts: { maxSize?: number; backing?: Backing } = {}) => new VarSlotPool(opts.backing ?? backing, host.u8, host.i32, host.u64, l.classes, opts.maxSize ?? l.maxSize, l.totalSize);
    const forge = (at: number, c: number, e: number, k: { count: number; slotSize: number } = cfg.sizeClasses[c] ?? { count: 1, slotSize: 16 }) => {
      host.u8.set(EXTENT_MAGIC, at);
      [c, e, k.count, k.slotSize].forEach((v, i) => host.dv.setUint32(at + 8 + 4 * i, v, true));
    };
    return { l, backing, host, ref, x1, x2, x2end, claimedAt, guest, forge, want: host.pool.dataOffset(ref) };
  }
  const missing = (claimed: number) => `shm.varslot.extents: class 2 has no extent 1 (the class header says offset ${claimed})`;

  test("found at the offset the class header gives, or by walking the appended extents when that offset is scribbled", () => {
    const g = grown();
    const direct = g.guest();
    assert.equal(direct.check(g.ref, 100), undefined);
    assert.equal(direct.dataOffset(g.ref), g.want);
    for (const claimed of [0, g.x1]) {
      g.host.dv.setBigUint64(g.claimedAt, BigInt(claimed), true);
      const p = g.guest();
      assert.equal(p.check(g.ref, 100), undefined, `class header says ${claimed}`);
      assert.equal(p.dataOffset(g.ref), g.want, "the walk stops at class 2's extent, not at the first extent 1");
    }
  });

  test("a header that fails any check breaks the walk there (magic, class, index 1..2, slot count, slot size)", () => {
    const g = grown();
    g.host.dv.setBigUint64(g.claimedAt, 0n, true);
    const k1 = cfg.sizeClasses[1]!;
    for (const [what, spoil] of [
      ["magic", () => (g.host.u8[g.x1 + 7] = 2)],
      ["class", () => g.forge(g.x1, 99, 1, k1)],
      ["index 0", () => g.forge(g.x1, 1, 0)],
      ["index 3", () => g.forge(g.x1, 1, 3)],
      ["slot count", () => g.forge(g.x1, 1, 1, { count: 7, slotSize: 1024 })],
      ["slot size", () => g.forge(g.x1, 1, 1, { count: 8, slotSize: 1008 })],
    ] as const) {
      spoil();
      assert.equal(g.guest().check(g.ref, 100), missing(0), what);
      g.forge(g.x1, 1, 1);
      assert.equal(g.guest().check(g.ref, 100), undefined, `${what} restored`);
    }
  });

  test("a claimed offset is believed only page-aligned and after the initial segment", () => {
    const g = grown();
    g.backing.grow(g.l.maxSize); // the whole range is there: only the offset checks reject
    const k2 = g.l.classes[2]!;
    // A forged header for (class 2, extent 1) in the initial segment (class 2's own slot data), page-aligned ...
    const inside = align(k2.data0 + 1, PAGE);
    // ... and one inside x2's second slot, not page-aligned.
    const unaligned = g.x2 + extentDataOffset(cfg.sizeClasses[2]!) + 160 * 1024 + 64;
    for (const at of [inside, unaligned]) {
      g.forge(at, 2, 1);
      g.host.dv.setBigUint64(g.claimedAt, BigInt(at), true);
      const p = g.guest();
      assert.equal(p.check(g.ref, 100), undefined);
      assert.equal(p.dataOffset(g.ref), g.want, `forged header at ${at} is not used`);
    }
  });

  test("once seen valid, an extent's offset is remembered (it never moves)", () => {
    const g = grown();
    const p = g.guest();
    assert.equal(p.check(g.ref, 100), undefined);
    g.host.u8[g.x2] = 0;
    g.host.dv.setBigUint64(g.claimedAt, 0n, true);
    assert.equal(p.check(g.ref, 100), undefined, "remembered");
    assert.equal(p.dataOffset(g.ref), g.want);
    assert.equal(g.guest().check(g.ref, 100), missing(0), "a fresh guest cannot find it any more");
  });

  test("an extent must end within the address range the segment may grow to", () => {
    const g = grown();
    assert.equal(g.guest({ maxSize: g.x2end }).check(g.ref, 100), undefined, "ending exactly at the limit");
    assert.equal(g.guest({ maxSize: g.x2end - PAGE }).check(g.ref, 100), missing(g.x2));
  });

  test("an extent must lie within what the backing admits (the file may be shorter than its header claims)", () => {
    const g = grown();
    const limited = (limit: number): Backing => ({
      sab: g.backing.sab,
      accessible: limit,
      ensure(size: number) {
        if (size > limit) throw new RangeError(`offset ${size} beyond ${limit}`);
      },
      grow() {
        throw new Error("not the host");
      },
      close() {},
      kind: "memory",
      path: null,
    });
    assert.equal(g.guest({ backing: limited(g.x2end) }).check(g.ref, 100), undefined);
    assert.equal(g.guest({ backing: limited(g.x2 + 64) }).check(g.ref, 100), missing(g.x2), "header inside, slots beyond");
    assert.equal(g.guest({ backing: limited(g.x2 + 63) }).check(g.ref, 100), missing(g.x2));
  });

  test("the class header's offset is followed even where the walk cannot reach (an earlier extent's header is broken)", () => {
    const g = grown();
    g.host.u8[g.x1] = 0;
    const p = g.guest();
    assert.equal(p.check(g.ref, 100), undefined);
    assert.equal(p.dataOffset(g.ref), g.want);
    assert.equal(g.guest().check({ ...g.ref, classIdx: 1 }, 0), "shm.varslot.extents: class 1 has no extent 1 (the class header says offset " + g.x1 + ")");
  });

  test("extent 2: the class header's second offset; an offset that names another index is not believed", () => {
    const g = grown();
    assert.equal(g.host.pool.grow(1), true);
    const x3 = g.x2end;
    const h1 = g.l.classes[1]!.header;
    const ref = { classIdx: 1, extentIdx: 2, slotIdx: 1, generation: 0 };
    const want = g.host.pool.dataOffset(ref);
    assert.equal(want, x3 + extentDataOffset(cfg.sizeClasses[1]!) + 1024);
    // Followed directly, with the walk broken at x1.
    g.host.u8[g.x1] = 0;
    assert.equal(g.guest().dataOffset(ref), want);
    g.host.u8[g.x1] = EXTENT_MAGIC[0]!;
    // The second offset names x1 (class 1's extent 1): the walk finds extent 2 past it.
    g.host.dv.setBigUint64(h1 + C.extentOffsets + 8, BigInt(g.x1), true);
    assert.equal(g.guest().dataOffset(ref), want);
    assert.equal(g.guest().dataOffset({ ...ref, extentIdx: 1 }), g.x1 + extentDataOffset(cfg.sizeClasses[1]!) + 1024);
  });

  test("an extent of one page may end exactly at the limit", () => {
    const one: SegmentConfig = { ...cfg, sizeClasses: [{ slotSize: 16, count: 8 }, { slotSize: 160 * 1024, count: 2 }] };
    const { l, backing, host } = hostSegment(one);
    assert.equal(align(extentSize(one.sizeClasses[0]!), PAGE), PAGE);
    host.pool.grow(0);
    const ref = { classIdx: 0, extentIdx: 1, slotIdx: 0, generation: 0 };
    const at = (maxSize: number) => new VarSlotPool(backing, host.u8, host.i32, host.u64, l.classes, maxSize, l.totalSize).check(ref, 0);
    assert.equal(at(l.totalSize + PAGE), "slot is free");
    assert.match(at(l.totalSize + PAGE - 1)!, /^shm\.varslot\.extents: class 0 has no extent 1/);
  });

  test("the walk takes at most classes x 3 steps", () => {
    const g = grown();
    g.backing.grow(g.l.maxSize);
    const step = align(extentSize(cfg.sizeClasses[0]!), PAGE);
    const target = (n: number) => {
      // n forged class-0 extents, then (class 1, extent 2).
      for (let i = 0; i < n; i++) g.forge(g.l.totalSize + i * step, 0, 1);
      g.forge(g.l.totalSize + n * step, 1, 2);
      const p = g.guest();
      return p.check({ classIdx: 1, extentIdx: 2, slotIdx: 0, generation: 0 }, 0);
    };
    assert.equal(target(8), "slot is free", "found at the ninth step (a forged, zeroed slot)");
    assert.equal(target(9), "shm.varslot.extents: class 1 has no extent 2 (the class header says offset 0)", "not searched at the tenth");
  });
});
