/**
 * Postcard by hand, for the raw-wire test peers (the compliance harness, the
 * spec-only SHM guest and host): they are written from the specs and the
 * reference's facts, not with roam-ts's codec, so a codec bug cannot hide
 * behind itself.
 */

/** An unsigned LEB128 varint. */
export function varint(v: number | bigint): number[] {
  let x = BigInt(v);
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
}

/** Signed integers are zigzag varints. */
export function zigzag(v: number | bigint): number[] {
  const x = BigInt(v);
  return varint(x >= 0n ? x << 1n : (-x << 1n) - 1n);
}

/** A String: length varint, UTF-8 bytes. */
export function str(s: string): number[] {
  const b = Buffer.from(s, "utf8");
  return [...varint(b.length), ...b];
}

/** A fixed 8-byte little-endian u64 (SHM frame fields, not postcard). */
export function u64le(v: number | bigint): number[] {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return [...b];
}

export function bytes(...parts: number[][]): Uint8Array {
  return Uint8Array.from(parts.flat());
}

/** A tiny postcard reader; every read is bounds-checked. */
export class Cursor {
  #pos = 0;
  constructor(private readonly b: Uint8Array) {}
  /** Bytes read so far. */
  get pos(): number {
    return this.#pos;
  }
  byte(): number {
    if (this.#pos >= this.b.length) throw new Error(`postcard: end of input at ${this.#pos}`);
    return this.b[this.#pos++]!;
  }
  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
    }
    throw new Error("postcard: varint too long");
  }
  zigzag(): bigint {
    const v = this.varint();
    return (v & 1n) === 0n ? v >> 1n : -((v >> 1n) + 1n);
  }
  bytes(): Uint8Array {
    const n = Number(this.varint());
    if (this.#pos + n > this.b.length) throw new Error("postcard: byte string beyond the input");
    const out = this.b.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }
  string(): string {
    return Buffer.from(this.bytes()).toString("utf8");
  }
  /** Asserts that everything was read. */
  end(): void {
    if (this.#pos !== this.b.length) throw new Error(`postcard: ${this.b.length - this.#pos} trailing bytes`);
  }
}
