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

/** A slot reference (r[shm.frame.slot-ref]). */
export interface SlotRef {
  classIdx: number;
  extentIdx: number;
  slotIdx: number;
  generation: number;
}

export class VarSlotPool {
  /** Extent growths performed by this process (stats). */
  grown = 0;

  constructor(
    private readonly backing: Backing,
    private readonly u8: Uint8Array,
    private readonly i32: Int32Array,
    private readonly u64: BigUint64Array,
    readonly classes: readonly ClassLayout[],
  ) {}

  /** Initializes every class with its extent 0 (segment creation). */
  init(): void {
    this.classes.forEach((k, c) => {
      const h = k.header;
      this.u8.fill(0, h, h + 64);
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
    return Atomics.load(this.i32, (this.classes[c]!.header + C.extentCount) >> 2);
  }

  private extentOffset(c: number, e: number): number {
    return Number(Atomics.load(this.u64, (this.classes[c]!.header + C.extentOffsets + 8 * (e - 1)) >> 3));
  }

  /** Byte offset of the SlotMeta array of extent `e` (mapping it in if needed). */
  private metaBase(c: number, e: number): number {
    if (e === 0) return this.classes[c]!.meta0;
    const off = this.extentOffset(c, e);
    this.backing.ensure(off + extentSize(this.classes[c]!));
    return off + EXTENT_HEADER_SIZE;
  }

  private dataBase(c: number, e: number): number {
    const k = this.classes[c]!;
    if (e === 0) return k.data0;
    const off = this.extentOffset(c, e);
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
        if (again) return again;
      }
    }
    return null;
  }

  private allocFromClass(c: number, owner: number): SlotRef | null {
    const n = this.extentCount(c);
    for (let e = 0; e < n && e < MAX_EXTENTS_PER_CLASS; e++) {
      const ref = this.pop(c, e, owner);
      if (ref) return ref;
    }
    return null;
  }

  /** r[shm.varslot.allocation] */
  private pop(c: number, e: number, owner: number): SlotRef | null {
    const k = this.classes[c]!;
    const fh = (k.header + C.freeHeads + 8 * e) >> 3;
    const metas = this.metaBase(c, e);
    for (let spins = 0; spins < 1_000_000; spins++) {
      const head = Atomics.load(this.u64, fh);
      const idx = Number(head >> 32n);
      if (idx >= k.count) return null; // empty (NONE), or a corrupted list: the extent is dry
      const tag = Number(head & 0xffffffffn);
      const m = (metas + idx * SLOT_META_SIZE) >> 2;
      const next = Atomics.load(this.i32, m + 3) >>> 0;
      const nextHead = (BigInt(next === NONE || next >= k.count ? NONE : next) << 32n) | BigInt((tag + 1) >>> 0);
      if (Atomics.compareExchange(this.u64, fh, head, nextHead) === head) {
        const generation = (Atomics.add(this.i32, m, 1) + 1) >>> 0;
        Atomics.store(this.i32, m + 2, owner);
        Atomics.store(this.i32, m + 1, SlotState.Allocated);
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
    if (ref.extentIdx >= this.extentCount(c) || ref.extentIdx >= MAX_EXTENTS_PER_CLASS) return `extent ${ref.extentIdx} of class ${c} does not exist`;
    if (ref.slotIdx >= k.count) return `slot ${ref.slotIdx} is beyond class ${c} (${k.count} slots)`;
    if (len > k.slotSize) return `payload of ${len} bytes does not fit a ${k.slotSize}-byte slot`;
    const m = this.metaIndex(ref);
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
    const k = this.classes[c]!;
    const e = this.extentCount(c);
    if (e >= MAX_EXTENTS_PER_CLASS) return false;
    const current = Number(Atomics.load(this.u64, H.currentSize >> 3));
    const off = align(current, PAGE);
    const size = align(extentSize(k), PAGE);
    this.backing.grow(off + size);
    this.u8.set(EXTENT_MAGIC, off);
    this.i32[(off + 8) >> 2] = c;
    this.i32[(off + 12) >> 2] = e;
    this.i32[(off + 16) >> 2] = k.count;
    this.i32[(off + 20) >> 2] = k.slotSize;
    // Publish in an order a reader can follow: size, then where, then how many.
    Atomics.store(this.u64, H.currentSize >> 3, BigInt(off + size));
    Atomics.store(this.u64, (k.header + C.extentOffsets + 8 * (e - 1)) >> 3, BigInt(off));
    this.initExtent(c, e);
    Atomics.store(this.i32, (k.header + C.extentCount) >> 2, e + 1);
    this.grown++;
    return true;
  }
}
