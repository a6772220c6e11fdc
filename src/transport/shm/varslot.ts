/**
 * The shared VarSlotPool (r[shm.varslot.*]): size classes of slots for
 * payloads above the inline threshold, one lock-free Treiber free list per
 * extent (head = slot index << 32 | tag, the tag defeating ABA), slot
 * metadata with generation, state and owner, and extents appended by the
 * host when a class runs dry.
 */
import type { Backing } from "./backing.js";
import {
  align,
  C,
  EXTENT_HEADER_SIZE,
  EXTENT_MAGIC,
  extentDataOffset,
  extentSize,
  H,
  M,
  MAX_EXTENTS_PER_CLASS,
  PAGE,
  SLOT_META_SIZE,
  SlotState,
  type ClassLayout,
} from "./layout.js";

/**
 * A free-list head is (slot index << 32 | tag). An empty list has index NONE;
 * the tag keeps counting through empty states (resetting it, as a bare u64::MAX
 * sentinel would, lets a stale pop succeed after pop-pop-push: ABA).
 */
const END = 0xffffffffffffffffn;
const NONE = 0xffffffff;

/** Shared memory held something that fails a bounds check; the message starts with the rule id. */
export class SegmentFault extends Error {
  override readonly name = "SegmentFault";
}

/** A slot reference (r[shm.frame.slot-ref]). */
export interface SlotRef {
  classIdx: number;
  extentIdx: number;
  slotIdx: number;
  generation: number;
}

/**
 * The host's own record of the pool's geometry. The class headers in the
 * segment are shared memory a guest can overwrite, so the host never follows
 * an extent count, extent offset or segment size read from there: it uses
 * what it wrote itself (and restores the shared copy, see `repairHeaders`).
 */
interface HostGeometry {
  extentCounts: number[];
  extentOffsets: number[][];
  size: number;
}

export class VarSlotPool {
  /** Extent growths performed by this process (stats). */
  grown = 0;
  private host: HostGeometry | null = null;
  /** Guest: extent offsets seen valid once (they never change after publication). */
  private readonly seenOffsets: number[][];

  constructor(
    private readonly backing: Backing,
    private readonly u8: Uint8Array,
    private readonly i32: Int32Array,
    private readonly u64: BigUint64Array,
    readonly classes: readonly ClassLayout[],
    /** Address range the segment may grow to (extents must lie inside it). */
    private readonly maxSize = Number.MAX_SAFE_INTEGER,
    /** Initial segment size: appended extents start at or after it. */
    private readonly initialSize = 0,
  ) {
    this.seenOffsets = classes.map(() => []);
  }

  /** Initializes every class with its extent 0 (segment creation, host). */
  init(): void {
    this.host = { extentCounts: this.classes.map(() => 1), extentOffsets: this.classes.map(() => []), size: Number(Atomics.load(this.u64, H.currentSize >> 3)) };
    this.classes.forEach((k, c) => {
      const h = k.header;
      this.u8.fill(0, h, h + 64);
      // mutation: equivalent — `h - C.slotSize`: C.slotSize is 0.
      this.i32[(h + C.slotSize) >> 2] = k.slotSize;
      this.i32[(h + C.slotsPerExtent) >> 2] = k.count;
      this.i32[(h + C.extentCount) >> 2] = 1;
      for (let e = 0; e < MAX_EXTENTS_PER_CLASS; e++) this.u64[(h + C.freeHeads + 8 * e) >> 3] = END;
      this.initExtent(c, 0);
    });
  }

  private initExtent(c: number, e: number): void {
    const k = this.classes[c]!;
    const metas = this.metaBase(c, e);
    for (let i = 0; i < k.count; i++) {
      const m = (metas + i * SLOT_META_SIZE) >> 2;
      this.i32[m] = 0; // generation
      this.i32[m + 1] = SlotState.Free;
      this.i32[m + 2] = 0; // owner
      this.i32[m + 3] = i + 1 < k.count ? i + 1 : NONE;
    }
    Atomics.store(this.u64, (k.header + C.freeHeads + 8 * e) >> 3, 0n);
  }

  extentCount(c: number): number {
    if (this.host) return this.host.extentCounts[c]!;
    const n = Atomics.load(this.i32, (this.classes[c]!.header + C.extentCount) >> 2);
    // mutation: equivalent — `n > 1`: at n == 1 both branches give 1.
    return n >= 1 && n <= MAX_EXTENTS_PER_CLASS ? n : 1;
  }

  /**
   * Offset of appended extent `e` of class `c`. The host answers from its own
   * record. A guest takes the class header's value when the extent's own
   * header there names this class and index; otherwise (any guest can write
   * the class header) it walks the chain of appended extents from the end of
   * the initial segment — the host appends each one right after the previous
   * — and remembers what it found. Throws SegmentFault when there is no such
   * extent.
   */
  private extentOffset(c: number, e: number): number {
    if (this.host) {
      const off = this.host.extentOffsets[c]![e - 1];
      if (off === undefined) throw new SegmentFault(`shm.varslot.extents: class ${c} has no extent ${e}`);
      return off;
    }
    const seen = this.seenOffsets[c]![e - 1];
    if (seen !== undefined) return seen;
    const claimed = Number(Atomics.load(this.u64, (this.classes[c]!.header + C.extentOffsets + 8 * (e - 1)) >> 3));
    let off = this.extentAt(claimed);
    if (!off || off.c !== c || off.e !== e) off = this.findExtent(c, e);
    if (!off) throw new SegmentFault(`shm.varslot.extents: class ${c} has no extent ${e} (the class header says offset ${claimed})`);
    this.seenOffsets[c]![e - 1] = off.at;
    return off.at;
  }

  /**
   * The appended extent whose header is at `at`, if one is: page-aligned,
   * after the initial segment, inside the file, with the magic and the
   * geometry of the class it names (written by the host once the extent is
   * ready, magic last).
   */
  private extentAt(at: number): { at: number; c: number; e: number; end: number } | null {
    // mutation: equivalent — dropping `Number.isSafeInteger(at)`, or `at + PAGE <= maxSize` (or
    // `at - PAGE`): `end > maxSize` below rejects the same offsets (end >= at + PAGE, and an
    // offset above 2^53 is far above maxSize); these only reject before the header is read.
    if (!(Number.isSafeInteger(at) && at >= this.initialSize && at % PAGE === 0 && at + PAGE <= this.maxSize)) return null;
    // mutation: equivalent — not returning here (or ensuring less): ensure(end) below fails for
    // every offset this one fails for (end > at + EXTENT_HEADER_SIZE). This one keeps the header
    // read inside what the backing maps.
    try {
      this.backing.ensure(at + EXTENT_HEADER_SIZE);
    } catch {
      return null; // beyond the file
    }
    for (let i = 0; i < EXTENT_MAGIC.length; i++) if (this.u8[at + i] !== EXTENT_MAGIC[i]) return null;
    const c = this.i32[(at + 8) >> 2]!;
    const e = this.i32[(at + 12) >> 2]!;
    const k = this.classes[c];
    if (!k || !(e >= 1 && e < MAX_EXTENTS_PER_CLASS) || this.i32[(at + 16) >> 2] !== k.count || this.i32[(at + 20) >> 2] !== k.slotSize) return null;
    const end = at + align(extentSize(k), PAGE);
    if (end > this.maxSize) return null;
    try {
      this.backing.ensure(end);
    } catch {
      return null;
    }
    return { at, c, e, end };
  }

  /** Walks the appended extents in the order the host appended them, looking for (c, e). */
  private findExtent(c: number, e: number): { at: number; c: number; e: number; end: number } | null {
    let at = align(this.initialSize, PAGE);
    for (let steps = 0; steps < this.classes.length * MAX_EXTENTS_PER_CLASS; steps++) {
      const x = this.extentAt(at);
      if (!x) return null;
      if (x.c === c && x.e === e) return x;
      at = x.end;
    }
    return null;
  }

  /**
   * Host: writes the shared copies of the pool geometry back from its own
   * record (a guest may have overwritten them; other guests read them).
   */
  repairHeaders(): void {
    const h = this.host;
    if (!h) return;
    // mutation: equivalent — each `if (load !== value)` made `if (true)`: storing the value that
    // is already there changes nothing (the compare only avoids writing to a shared cache line).
    // And `k.header - C.slotSize`: C.slotSize is 0.
    this.classes.forEach((k, c) => {
      if (Atomics.load(this.i32, (k.header + C.slotSize) >> 2) !== k.slotSize) Atomics.store(this.i32, (k.header + C.slotSize) >> 2, k.slotSize);
      if (Atomics.load(this.i32, (k.header + C.slotsPerExtent) >> 2) !== k.count) Atomics.store(this.i32, (k.header + C.slotsPerExtent) >> 2, k.count);
      const n = h.extentCounts[c]!;
      for (let e = 1; e < n; e++) {
        const i = (k.header + C.extentOffsets + 8 * (e - 1)) >> 3;
        if (Atomics.load(this.u64, i) !== BigInt(h.extentOffsets[c]![e - 1]!)) Atomics.store(this.u64, i, BigInt(h.extentOffsets[c]![e - 1]!));
      }
      if (Atomics.load(this.i32, (k.header + C.extentCount) >> 2) !== n) Atomics.store(this.i32, (k.header + C.extentCount) >> 2, n);
    });
    if (Number(Atomics.load(this.u64, H.currentSize >> 3)) !== h.size) Atomics.store(this.u64, H.currentSize >> 3, BigInt(h.size));
  }

  /** Byte offset of the SlotMeta array of extent `e` (mapping it in if needed). */
  private metaBase(c: number, e: number): number {
    if (e === 0) return this.classes[c]!.meta0;
    const off = this.extentOffset(c, e);
    // mutation: equivalent — `off - extentSize`: extentOffset already ensured [0, end) with
    // end >= off + extentSize (a guest, in extentAt) or grew it (the host); nothing shrinks it.
    this.backing.ensure(off + extentSize(this.classes[c]!));
    return off + EXTENT_HEADER_SIZE;
  }

  private dataBase(c: number, e: number): number {
    const k = this.classes[c]!;
    if (e === 0) return k.data0;
    const off = this.extentOffset(c, e);
    // mutation: equivalent — `off - extentSize`: see metaBase.
    this.backing.ensure(off + extentSize(k));
    return off + extentDataOffset(k);
  }

  /** Byte offset of a slot's data. */
  dataOffset(ref: SlotRef): number {
    return this.dataBase(ref.classIdx, ref.extentIdx) + ref.slotIdx * this.classes[ref.classIdx]!.slotSize;
  }

  private metaIndex(ref: SlotRef): number {
    return (this.metaBase(ref.classIdx, ref.extentIdx) + ref.slotIdx * SLOT_META_SIZE) >> 2;
  }

  /** Smallest class index whose slots hold `size` bytes, or -1. */
  classFor(size: number): number {
    for (let c = 0; c < this.classes.length; c++) if (this.classes[c]!.slotSize >= size) return c;
    return -1;
  }

  /**
   * Allocates a slot for `size` bytes owned by `owner` (0 = host)
   * (r[shm.slot.allocate]): the smallest fitting class first, then larger
   * ones. With `grow` (host only), a dry class gets a new extent before
   * falling back. Returns null when everything suitable is exhausted.
   */
  alloc(size: number, owner: number, grow = false): SlotRef | null {
    const first = this.classFor(size);
    if (first < 0) return null;
    for (let c = first; c < this.classes.length; c++) {
      const ref = this.allocFromClass(c, owner);
      if (ref) return ref;
      if (grow && c === first && this.grow(c)) {
        const again = this.allocFromClass(c, owner);
        // mutation: equivalent — `if (true)`: a freshly appended extent has free slots, so
        // `again` is never null here.
        if (again) return again;
      }
    }
    return null;
  }

  private allocFromClass(c: number, owner: number): SlotRef | null {
    const n = this.extentCount(c); // at most MAX_EXTENTS_PER_CLASS
    for (let e = 0; e < n; e++) {
      let ref: SlotRef | null;
      try {
        ref = this.pop(c, e, owner);
      } catch (err) {
        // A guest found an extent offset that fails its check (someone wrote
        // it): that extent is not used; the host restores the header.
        // mutation: equivalent — an empty catch block, or `if (true)`: pop throws nothing but
        // SegmentFault (extentAt catches the backing's errors, and the extent's range is ensured
        // before metaBase returns), and an empty block also goes on to the next extent.
        if (err instanceof SegmentFault) continue;
        throw err;
      }
      if (ref) return ref;
    }
    return null;
  }

  /** r[shm.varslot.allocation] */
  private pop(c: number, e: number, owner: number): SlotRef | null {
    const k = this.classes[c]!;
    const fh = (k.header + C.freeHeads + 8 * e) >> 3;
    const metas = this.metaBase(c, e);
    let corrupt = 0;
    // mutation: equivalent — `spins <= 1_000_000` (one more attempt) and `spins--` (no bound):
    // they differ only after a million lost compare-exchange races.
    for (let spins = 0; spins < 1_000_000; spins++) {
      const head = Atomics.load(this.u64, fh);
      const idx = Number(head >> 32n);
      if (idx >= k.count) return null; // empty (NONE), or a corrupted list: the extent is dry
      const tag = Number(head & 0xffffffffn);
      const m = (metas + idx * SLOT_META_SIZE) >> 2;
      const next = Atomics.load(this.i32, m + 3) >>> 0;
      const nextHead = (BigInt(next >= k.count ? NONE : next) << 32n) | BigInt((tag + 1) >>> 0); // NONE >= any count
      if (Atomics.compareExchange(this.u64, fh, head, nextHead) === head) {
        // Only a Free slot may be handed out: a list someone scribbled on
        // could name a slot in use by another peer. Such a slot is left alone
        // (it is off the list now); too many of them and the extent counts as dry.
        if (Atomics.compareExchange(this.i32, m + 1, SlotState.Free, SlotState.Allocated) !== SlotState.Free) {
          if (++corrupt > 64) return null;
          continue;
        }
        const generation = (Atomics.add(this.i32, m, 1) + 1) >>> 0;
        Atomics.store(this.i32, m + 2, owner);
        return { classIdx: c, extentIdx: e, slotIdx: idx, generation };
      }
    }
    return null;
  }

  /** r[shm.varslot.freeing] (push) */
  private push(c: number, e: number, idx: number): void {
    const k = this.classes[c]!;
    const fh = (k.header + C.freeHeads + 8 * e) >> 3;
    const m = (this.metaBase(c, e) + idx * SLOT_META_SIZE) >> 2;
    for (;;) {
      const head = Atomics.load(this.u64, fh);
      const headIdx = Number(head >> 32n);
      const tag = Number(head & 0xffffffffn);
      Atomics.store(this.i32, m + 3, headIdx);
      const nextHead = (BigInt(idx) << 32n) | BigInt((tag + 1) >>> 0);
      if (Atomics.compareExchange(this.u64, fh, head, nextHead) === head) return;
    }
  }

  /** Allocated → InFlight, once the frame that references the slot is committed. */
  markInFlight(ref: SlotRef): void {
    Atomics.store(this.i32, this.metaIndex(ref) + 1, SlotState.InFlight);
  }

  /** Returns an Allocated slot that was never sent. */
  freeAllocated(ref: SlotRef): void {
    const m = this.metaIndex(ref);
    if (Atomics.compareExchange(this.i32, m + 1, SlotState.Allocated, SlotState.Free) === SlotState.Allocated) {
      this.push(ref.classIdx, ref.extentIdx, ref.slotIdx);
    }
  }

  /**
   * Checks a reference received in a frame: returns an error description, or
   * undefined when it names an in-flight slot of the right generation that
   * holds `len` bytes.
   */
  check(ref: SlotRef, len: number): string | undefined {
    const c = ref.classIdx;
    if (c >= this.classes.length) return `slot class ${c} does not exist`;
    const k = this.classes[c]!;
    // The host checks against its own record. A guest does not check against
    // the shared count (another guest may have scribbled it, found by the
    // segment fuzzer): metaIndex below verifies the extent's own header.
    const extents = this.host ? this.host.extentCounts[c]! : MAX_EXTENTS_PER_CLASS; // the host's count is at most MAX too
    if (ref.extentIdx >= extents) return `extent ${ref.extentIdx} of class ${c} does not exist`;
    if (ref.slotIdx >= k.count) return `slot ${ref.slotIdx} is beyond class ${c} (${k.count} slots)`;
    if (len > k.slotSize) return `payload of ${len} bytes does not fit a ${k.slotSize}-byte slot`;
    let m: number;
    try {
      m = this.metaIndex(ref);
    } catch (e) {
      return (e as Error).message;
    }
    const gen = Atomics.load(this.i32, m) >>> 0;
    if (gen !== ref.generation) return `slot generation ${ref.generation} does not match ${gen}`;
    const st = Atomics.load(this.i32, m + 1);
    if (st !== SlotState.InFlight) return `slot is ${st === SlotState.Free ? "free" : "not sent"}`;
    return undefined;
  }

  /**
   * The receiver frees a slot after copying it out (r[shm.slot.free]).
   * Returns false if the generation or state did not match (double free).
   */
  free(ref: SlotRef): boolean {
    const m = this.metaIndex(ref);
    if ((Atomics.load(this.i32, m) >>> 0) !== ref.generation) return false;
    if (Atomics.compareExchange(this.i32, m + 1, SlotState.InFlight, SlotState.Free) !== SlotState.InFlight) return false;
    this.push(ref.classIdx, ref.extentIdx, ref.slotIdx);
    return true;
  }

  /** Owner of a slot (0 = host). */
  owner(ref: SlotRef): number {
    return Atomics.load(this.i32, this.metaIndex(ref) + 2);
  }

  /** Slots not free whose owner is `peerId` (diagnostics; a racy snapshot). */
  countOwned(peerId: number): number {
    let n = 0;
    this.classes.forEach((k, c) => {
      const extents = Math.min(this.extentCount(c), MAX_EXTENTS_PER_CLASS);
      for (let e = 0; e < extents; e++) {
        const metas = this.metaBase(c, e);
        for (let i = 0; i < k.count; i++) {
          const m = (metas + i * SLOT_META_SIZE) >> 2;
          if (Atomics.load(this.i32, m + 2) === peerId && Atomics.load(this.i32, m + 1) !== SlotState.Free) n++;
        }
      }
    });
    return n;
  }

  /** Frees every slot owned by `peerId` (crash recovery, r[shm.crash.recovery] step 4). Returns the count. */
  recoverPeer(peerId: number): number {
    let n = 0;
    this.classes.forEach((k, c) => {
      const extents = Math.min(this.extentCount(c), MAX_EXTENTS_PER_CLASS);
      for (let e = 0; e < extents; e++) {
        const metas = this.metaBase(c, e);
        for (let i = 0; i < k.count; i++) {
          const m = (metas + i * SLOT_META_SIZE) >> 2;
          if (Atomics.load(this.i32, m + 2) !== peerId) continue;
          const st = Atomics.load(this.i32, m + 1);
          if (st === SlotState.Free) continue;
          if (Atomics.compareExchange(this.i32, m + 1, st, SlotState.Free) === st) {
            this.push(c, e, i);
            n++;
          }
        }
      }
    });
    return n;
  }

  /** Approximate free slots of a class (walks the lists; diagnostics and tests). */
  freeCount(c: number): number {
    const k = this.classes[c]!;
    let total = 0;
    const extents = Math.min(this.extentCount(c), MAX_EXTENTS_PER_CLASS);
    for (let e = 0; e < extents; e++) {
      const metas = this.metaBase(c, e);
      let idx = Number(Atomics.load(this.u64, (k.header + C.freeHeads + 8 * e) >> 3) >> 32n);
      let guard = 0;
      while (idx < k.count && guard++ <= k.count) {
        total++;
        idx = Atomics.load(this.i32, ((metas + idx * SLOT_META_SIZE) >> 2) + 3) >>> 0;
      }
    }
    return total;
  }

  /**
   * Host only: appends an extent to class `c` (r[shm.varslot.extents]),
   * growing the segment. Returns false when the class has all its extents.
   */
  grow(c: number): boolean {
    const h = this.host;
    if (!h) return false; // only the host appends extents
    const k = this.classes[c]!;
    const e = h.extentCounts[c]!;
    if (e >= MAX_EXTENTS_PER_CLASS) return false;
    const off = align(h.size, PAGE);
    const size = align(extentSize(k), PAGE);
    this.backing.grow(off + size);
    h.size = off + size;
    h.extentOffsets[c]![e - 1] = off;
    h.extentCounts[c] = e + 1;
    this.initExtent(c, e);
    // The extent's own header is written after its slots are ready, magic
    // last: a guest uses an extent only once its header names this class and
    // index (a scribbled count or offset in the class header cannot make it
    // allocate from memory the host has not set up).
    this.i32[(off + 8) >> 2] = c;
    this.i32[(off + 12) >> 2] = e;
    this.i32[(off + 16) >> 2] = k.count;
    this.i32[(off + 20) >> 2] = k.slotSize;
    this.u8.set(EXTENT_MAGIC, off);
    // Publish in an order a reader can follow: size, then where, then how many.
    Atomics.store(this.u64, H.currentSize >> 3, BigInt(off + size));
    Atomics.store(this.u64, (k.header + C.extentOffsets + 8 * (e - 1)) >> 3, BigInt(off));
    Atomics.store(this.i32, (k.header + C.extentCount) >> 2, e + 1);
    this.grown++;
    return true;
  }
}
