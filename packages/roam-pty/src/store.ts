/**
 * A session's output, addressed by absolute byte offset: a queue of the
 * chunks read from the PTY, trimmed from the front as soon as neither the
 * scrollback window nor any client's cursor needs them. It is the scrollback
 * ring buffer and every client's backlog at once (nothing is copied per
 * client), and its size is bounded by the flow control around it.
 */
export class OutputStore {
  private chunks: Uint8Array[] = [];
  /** Absolute offset of chunks[i] is starts[i]. */
  private starts: number[] = [];
  private first = 0;
  /** Offset of the first retained byte. */
  private base = 0;
  /** Offset one past the last byte ever appended. */
  private end = 0;

  /** Total bytes ever appended (the offset of the next byte). */
  get head(): number {
    return this.end;
  }
  /** Offset of the oldest byte still held. */
  get start(): number {
    return this.base;
  }
  /** Bytes held. */
  get size(): number {
    return this.end - this.base;
  }

  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.starts.push(this.end);
    this.end += chunk.length;
  }

  /**
   * Up to `max` bytes starting at absolute `offset` (which must be retained).
   * A view when they lie in one chunk, else a copy.
   */
  read(offset: number, max: number): Uint8Array {
    if (offset < this.base || offset > this.end) throw new RangeError(`offset ${offset} is outside [${this.base}, ${this.end}]`);
    const want = Math.min(max, this.end - offset);
    if (want <= 0) return new Uint8Array(0);
    let i = this.indexOf(offset);
    let c = this.chunks[i]!;
    let at = offset - this.starts[i]!;
    if (c.length - at >= want) return c.subarray(at, at + want);
    const out = new Uint8Array(want);
    let filled = 0;
    while (filled < want) {
      const n = Math.min(want - filled, c.length - at);
      out.set(c.subarray(at, at + n), filled);
      filled += n;
      i++;
      if (filled < want) {
        c = this.chunks[i]!;
        at = 0;
      }
    }
    return out;
  }

  /** The last `n` bytes (or fewer if fewer are held), copied. */
  tail(n: number): { offset: number; bytes: Uint8Array } {
    const offset = Math.max(this.base, this.end - n);
    return { offset, bytes: this.read(offset, this.end - offset) };
  }

  /** Drops every whole chunk that ends at or before `offset`. */
  trimBefore(offset: number): void {
    const limit = Math.min(offset, this.end);
    let i = this.first;
    while (i < this.chunks.length && this.starts[i]! + this.chunks[i]!.length <= limit) i++;
    if (i === this.first) return;
    this.first = i;
    this.base = i < this.chunks.length ? this.starts[i]! : this.end;
    if (this.first > 64 && this.first * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.first);
      this.starts = this.starts.slice(this.first);
      this.first = 0;
    } else if (this.first === this.chunks.length) {
      this.chunks = [];
      this.starts = [];
      this.first = 0;
    }
  }

  /** Index of the chunk holding `offset` (binary search over retained chunks). */
  private indexOf(offset: number): number {
    let lo = this.first;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
