import { EncodeError } from "./errors.js";

const textEncoder = new TextEncoder();
const TWO_64 = 1n << 64n;
const TWO_63 = 1n << 63n;
const TWO_128 = 1n << 128n;
const TWO_127 = 1n << 127n;
const MASK_7 = 0x7fn;

/**
 * A growable byte buffer that postcard values are written into.
 *
 * Reuse one Writer for many values (`reset()`), and take the result with
 * `finish()` (a copy) or `view()` (a view valid until the next write).
 */
export class Writer {
  buf: Uint8Array;
  pos = 0;
  private dv: DataView;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
    this.dv = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Makes room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.pos + n;
    // mutation: equivalent — `need < length`, `length / 2` and `cap <= need` only change how
    // much capacity is added (the written bytes are the same); `buf` has no size contract.
    if (need <= this.buf.length) return;
    let cap = Math.max(this.buf.length * 2, 64);
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** A view of the bytes written so far; invalidated by the next write or reset. */
  view(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  u8(v: number): void {
    // mutation: equivalent — `true`: ensure(1) itself returns when there is room.
    if (this.pos >= this.buf.length) this.ensure(1);
    this.buf[this.pos++] = v;
  }

  /** Unsigned LEB128 of a non-negative safe integer (fast path for u16/u32/usize). */
  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    // mutation: equivalent — `false` or an empty block: both loops are skipped and the
    // last line writes the same single byte.
    if (v < 0x80) {
      buf[pos++] = v;
      this.pos = pos;
      return;
    }
    // Use 32-bit ops while the value fits, then divide for the rest.
    // mutation: equivalent — `v >= 0xffffffff`: the division loop writes the same bytes for 2^32-1.
    while (v > 0xffffffff) {
      buf[pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    while (v >= 0x80) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** Unsigned LEB128 of a bigint in [0, 2^bits). */
  varintBig(v: bigint): void {
    // mutation: equivalent — `<`, `false` or an empty block: the bigint loop below writes the
    // same bytes for values up to 2^32-1 (this is the faster path for them).
    if (v <= 0xffffffffn) {
      this.varint(Number(v));
      return;
    }
    this.ensure(19);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & MASK_7) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  /** Zigzag + LEB128 of a signed safe integer (i16/i32). */
  zigzag(v: number): void {
    // For |v| < 2^31 the 32-bit form is exact.
    this.varint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  zigzagBig64(v: bigint): void {
    this.varintBig(v >= 0n ? v << 1n : ((-v) << 1n) - 1n);
  }

  f32(v: number): void {
    this.ensure(4);
    this.dv.setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.dv.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  /** Raw bytes, no length prefix. */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): void {
    this.varint(bytes.length);
    this.raw(bytes);
  }

  /** Length-prefixed UTF-8 string. */
  string(s: string): void {
    const len = s.length;
    // Short ASCII strings are common: write them without the encoder. Whenever
    // this shortcut does not return, the encoder path below writes the whole string.
    // mutation: equivalent — `len <= 64` (64 still has a one-byte header), `false` or an
    // empty block here, `i < len` -> `false` or `i <= len`, `c >= 0x80` -> `true`,
    // `i === len` -> `false` and removing the return block only choose the encoder
    // path for the same bytes.
    if (len < 64) {
      this.ensure(1 + len * 3);
      const buf = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === len) {
        buf[this.pos] = len;
        this.pos = start + len;
        return;
      }
    }
    // Worst case 3 bytes per UTF-16 unit; reserve the header for that many bytes,
    // then move the bytes if the actual length needs a shorter header.
    const max = len * 3;
    this.ensure(10 + max);
    const headerLen = varintLength(max);
    const start = this.pos + headerLen;
    const { written } = textEncoder.encodeInto(s, this.buf.subarray(start));
    const actualHeader = varintLength(written);
    // mutation: equivalent — `true`: with equal headers the copy moves the bytes onto themselves.
    if (actualHeader !== headerLen) {
      this.buf.copyWithin(this.pos + actualHeader, start, start + written);
    }
    this.varint(written);
    this.pos += written;
  }
}

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

export function checkU64(v: bigint): void {
  if (typeof v !== "bigint") throw new EncodeError(`expected bigint for u64, got ${typeof v}`);
  if (v < 0n || v >= TWO_64) throw new EncodeError(`u64 out of range: ${v}`);
}
export function checkI64(v: bigint): void {
  if (typeof v !== "bigint") throw new EncodeError(`expected bigint for i64, got ${typeof v}`);
  if (v < -TWO_63 || v >= TWO_63) throw new EncodeError(`i64 out of range: ${v}`);
}
export function checkU128(v: bigint): void {
  if (typeof v !== "bigint") throw new EncodeError(`expected bigint for u128, got ${typeof v}`);
  if (v < 0n || v >= TWO_128) throw new EncodeError(`u128 out of range: ${v}`);
}
export function checkI128(v: bigint): void {
  if (typeof v !== "bigint") throw new EncodeError(`expected bigint for i128, got ${typeof v}`);
  if (v < -TWO_127 || v >= TWO_127) throw new EncodeError(`i128 out of range: ${v}`);
}
