/**
 * One BipBuffer: a variable-length single-producer single-consumer byte ring
 * in shared memory (r[shm.bipbuf.*]). Frames are written whole and never span
 * the wrap point.
 *
 * The grant rule is the spec's strict one: after wrapping, the producer may
 * only write while `write + n < read`, so `write == read` always means empty
 * (a `<=` there made the reference's ring look empty when full and hang).
 * The producer decides whether a wrap fits before it publishes the wrap, so
 * it never has to undo a published watermark, and it resets `write` before
 * it publishes the watermark (see grant).
 */
import { B, BIPBUF_HEADER_SIZE } from "./layout.js";

/** Returned by `grant`/`readable` when the header holds an index outside the ring. */
export const FAULT = -2;

export class BipBuffer {
  /** Int32Array indices of the header fields. */
  private readonly iWrite: number;
  private readonly iWatermark: number;
  private readonly iRead: number;
  /** Index of the consumer's "sleeping" flag (see layout.B). */
  readonly iSleeping: number;
  /** Byte offset of the data region in the segment. */
  readonly data: number;
  // mutation: equivalent — the initial value (and the reset to -1 in commit) is read only by a
  // commit that no grant preceded, which the producer never does.
  private granted = -1;

  constructor(
    private readonly i32: Int32Array,
    /** Byte offset of the 128-byte header. */
    readonly header: number,
    readonly capacity: number,
  ) {
    // mutation: equivalent — `header - B.write`: B.write is 0.
    this.iWrite = (header + B.write) >> 2;
    this.iWatermark = (header + B.watermark) >> 2;
    this.iRead = (header + B.read) >> 2;
    this.iSleeping = (header + B.sleeping) >> 2;
    this.data = header + BIPBUF_HEADER_SIZE;
  }

  /** Zeroes the header (segment creation, crash recovery) and records the capacity. */
  reset(): void {
    Atomics.store(this.i32, this.iWrite, 0);
    Atomics.store(this.i32, this.iWatermark, 0);
    Atomics.store(this.i32, this.iRead, 0);
    Atomics.store(this.i32, this.iSleeping, 0);
    Atomics.store(this.i32, (this.header + B.capacity) >> 2, this.capacity);
  }

  /** The capacity field as stored in the segment. */
  storedCapacity(): number {
    return Atomics.load(this.i32, (this.header + B.capacity) >> 2) >>> 0;
  }

  // --- producer -----------------------------------------------------------

  /**
   * What was wrong when `grant` or `readable` returned FAULT: the header holds
   * an index outside the ring (the other side wrote it — shared memory is
   * untrusted, so nothing is read or written through it).
   */
  fault = "";

  private badIndex(what: string, v: number): number {
    this.fault = `shm.bipbuf.header: ${what} index ${v} is outside the ring (capacity ${this.capacity})`;
    return FAULT;
  }

  /**
   * Reserves `n` contiguous bytes (r[shm.bipbuf.grant]); returns their offset
   * inside the data region, -1 when full, or FAULT when the header is corrupt.
   * Follow with `commit(n)`.
   */
  grant(n: number): number {
    const cap = this.capacity;
    const w = Atomics.load(this.i32, this.iWrite);
    const r = Atomics.load(this.i32, this.iRead);
    // Both indices are checked before use: the consumer writes `read`, and
    // either side's memory can be scribbled on by a broken peer.
    if (!(w >= 0 && w <= cap)) return this.badIndex("write", w);
    if (!(r >= 0 && r <= cap)) return this.badIndex("read", r);
    if (n <= 0 || n >= cap) return -1;
    if (w >= r) {
      if (cap - w >= n) {
        this.granted = w;
        return w;
      }
      if (n < r) {
        // Wrap: the bytes [w, cap) are skipped; the consumer stops at the
        // watermark. `write` goes to 0 *before* the watermark appears: a
        // consumer that sees the watermark, finds itself at it and resets to
        // 0 must then read the new `write`, never the old one (which would
        // make stale bytes at the start look readable).
        Atomics.store(this.i32, this.iWrite, 0);
        Atomics.store(this.i32, this.iWatermark, w);
        this.granted = 0;
        return 0;
      }
      return -1;
    }
    if (w + n < r) {
      this.granted = w;
      return w;
    }
    return -1;
  }

  /** Publishes `n` granted bytes (r[shm.bipbuf.commit]). */
  commit(n: number): void {
    Atomics.store(this.i32, this.iWrite, this.granted + n);
    this.granted = -1; // mutation: equivalent — any value here: see `granted`
  }

  /** True when the consumer has nothing to read (producer's view). */
  get producerSeesEmpty(): boolean {
    return Atomics.load(this.i32, this.iWrite) === Atomics.load(this.i32, this.iRead) && Atomics.load(this.i32, this.iWatermark) === 0;
  }

  // --- consumer -----------------------------------------------------------

  /**
   * Start (offset in the data region) of the readable bytes, with their count
   * in `readableLength` (r[shm.bipbuf.read]); -1 when empty, FAULT when an
   * index in the header lies outside the ring (see `fault`). Every index is
   * checked before it is used as an offset: the producer is untrusted.
   */
  readableLength = 0;
  readable(): number {
    const cap = this.capacity;
    // mutation: equivalent — `attempt <= 2` and `attempt--`: the body runs at most twice anyway.
    // A second pass follows only the reset at the watermark, and it always returns or breaks:
    // it sees the watermark 0 (only the producer sets one, and only when n < read, which is 0
    // now), so it takes the write branch.
    for (let attempt = 0; attempt < 2; attempt++) {
      const wm = Atomics.load(this.i32, this.iWatermark);
      const r = Atomics.load(this.i32, this.iRead);
      if (!(r >= 0 && r <= cap)) return this.badIndex("read", r);
      if (!(wm >= 0 && wm <= cap)) return this.badIndex("watermark", wm);
      if (wm !== 0) {
        if (r < wm) {
          this.readableLength = wm - r;
          return r;
        }
        Atomics.store(this.i32, this.iWatermark, 0);
        Atomics.store(this.i32, this.iRead, 0);
        continue;
      }
      const w = Atomics.load(this.i32, this.iWrite);
      if (!(w >= 0 && w <= cap)) return this.badIndex("write", w);
      if (r < w) {
        this.readableLength = w - r;
        return r;
      }
      break;
    }
    this.readableLength = 0;
    return -1;
  }

  /** Quick check for the consumer: is anything to read? (no side effects) */
  hasData(): boolean {
    const wm = Atomics.load(this.i32, this.iWatermark);
    const r = Atomics.load(this.i32, this.iRead);
    if (wm !== 0) return r < wm || Atomics.load(this.i32, this.iWrite) > 0;
    return r < Atomics.load(this.i32, this.iWrite);
  }

  /** Frees `n` consumed bytes (r[shm.bipbuf.release]). */
  release(n: number): void {
    const r = Atomics.load(this.i32, this.iRead) + n;
    const wm = Atomics.load(this.i32, this.iWatermark);
    if (wm !== 0 && r >= wm) {
      Atomics.store(this.i32, this.iWatermark, 0);
      Atomics.store(this.i32, this.iRead, 0);
    } else {
      Atomics.store(this.i32, this.iRead, r);
    }
  }

  /**
   * Walks the frames not yet consumed (crash recovery: to free the slots they
   * reference). `visit(offsetInData, totalLen)`; stops at anything malformed.
   */
  forEachUnread(u8: Uint8Array, visit: (at: number, len: number) => void): void {
    const dv = new DataView(u8.buffer);
    let r = Atomics.load(this.i32, this.iRead);
    const wm = Atomics.load(this.i32, this.iWatermark);
    const w = Atomics.load(this.i32, this.iWrite);
    const cap = this.capacity;
    // A corrupt header: nothing in this ring can be trusted to walk.
    if (!(r >= 0 && r <= cap && w >= 0 && w <= cap && wm >= 0 && wm <= cap)) return;
    const walk = (from: number, to: number) => {
      let p = from;
      while (p + 24 <= to) {
        const len = dv.getUint32(this.data + p, true);
        if (len < 24 || len % 4 !== 0 || p + len > to) return;
        visit(p, len);
        p += len;
      }
    };
    // A walk from at or past its end visits nothing.
    if (wm !== 0) {
      walk(r, wm);
      r = 0;
    }
    walk(r, w);
  }
}
