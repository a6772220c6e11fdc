import { DecodeError } from "./errors.js";

// ignoreBOM: a leading U+FEFF is string content, not a byte-order mark to strip.
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * How many elements of zero-sized types (`()`, empty structs/tuples) one
 * Reader will produce in total. They consume no input, so the input length
 * cannot bound a length prefix like `Vec<()>` of 2^50; this does.
 */
export const MAX_ZERO_SIZED_ELEMENTS = 1 << 16;

/**
 * Reads postcard values from a byte slice. Every failure throws `DecodeError`
 * with the offset; lengths are checked against the bytes actually present
 * before anything is allocated.
 */
export class Reader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;
  private dvCache: DataView | undefined;
  /**
   * When true, `bytes()` returns views into the input instead of copies.
   * Only for inputs that are never reused (e.g. a received frame).
   */
  borrowBytes = false;
  /**
   * `bytes()` values of at least this many bytes are views into the input
   * (smaller ones are copied). For received messages, whose buffers the
   * transports never reuse: a bulk value costs no second copy into fresh
   * memory, while a small value kept by the application does not pin the
   * (larger) receive buffer it arrived in. Default: never.
   */
  borrowAtLeast = Infinity;
  private zeroSizedLeft = MAX_ZERO_SIZED_ELEMENTS;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(detail: string, at: number = this.pos): never {
    throw new DecodeError(detail, at);
  }

  private get dv(): DataView {
    return (this.dvCache ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  /** Throws unless the whole input was consumed. */
  expectEnd(): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} trailing byte(s) after value`);
  }

  u8(): number {
    if (this.pos >= this.end) this.fail("unexpected end of input");
    return this.buf[this.pos++]!;
  }

  bool(): boolean {
    const at = this.pos;
    const b = this.u8();
    if (b === 0) return false;
    if (b === 1) return true;
    return this.fail(`invalid bool byte 0x${b.toString(16)}`, at);
  }

  /**
   * Unsigned LEB128 that must fit in `bits` (at most 32) bits.
   * Rejects varints longer than the type allows, high bits beyond the type's
   * width, and non-minimal encodings (a trailing zero group).
   */
  varint32(bits = 32): number {
    const buf = this.buf;
    const start = this.pos;
    let pos = start;
    const end = this.end;
    if (pos < end) {
      const b0 = buf[pos]!;
      if (b0 < 0x80) {
        this.pos = pos + 1;
        // mutation: equivalent — `bits <= 8`: for bits = 8, 1 << 8 = 256 exceeds every one-byte value.
        if (bits < 8 && b0 >= 1 << bits) this.fail(`varint exceeds u${bits}`, start);
        return b0;
      }
    }
    const maxBytes = Math.ceil(bits / 7);
    let result = 0;
    let shift = 0;
    for (let i = 0; ; i++) {
      if (pos >= end) this.fail("unexpected end of input in varint", start);
      if (i >= maxBytes) this.fail(`varint longer than ${maxBytes} bytes for u${bits}`, start);
      const b = buf[pos++]!;
      const low = b & 0x7f;
      // mutation: equivalent — `shift + 7 >= bits`: when shift + 7 === bits, low >>> 7 is 0 (low has 7 bits).
      if (shift + 7 > bits && low >>> (bits - shift) !== 0) this.fail(`varint exceeds u${bits}`, start);
      result += low * 2 ** shift;
      if ((b & 0x80) === 0) {
        // A zero byte here is never the first (that one had its high bit set, or
        // took the one-byte path above): it is a trailing zero group.
        if (b === 0) this.fail("non-canonical varint (trailing zero group)", start);
        this.pos = pos;
        return result;
      }
      shift += 7;
    }
  }

  /** u64 varint as a number; fails if above Number.MAX_SAFE_INTEGER (used for ids and lengths). */
  varintSafe(): number {
    const start = this.pos;
    // A shortcut for one-byte values: varint64 reads them the same way.
    // mutation: equivalent — the `: 0x80` arm forced (`false`), `b0 < 0x80` false, or the block
    // removed: the value then goes through varint64, which returns the same number and position.
    const b0 = this.pos < this.end ? this.buf[this.pos]! : 0x80;
    if (b0 < 0x80) {
      this.pos++;
      return b0;
    }
    const v = this.varint64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`value ${v} exceeds the supported id range (2^53-1)`, start);
    return Number(v);
  }

  /** Unsigned LEB128 up to `bits` (64 or 128) bits as a bigint. */
  varint64(bits = 64): bigint {
    const buf = this.buf;
    const start = this.pos;
    let pos = start;
    const end = this.end;
    const maxBytes = Math.ceil(bits / 7);
    // Accumulate 28-bit chunks as numbers, then combine: far fewer bigint ops.
    let lo = 0; // bits 0..27
    let result = 0n;
    let shift = 0;
    for (let i = 0; ; i++) {
      if (pos >= end) this.fail("unexpected end of input in varint", start);
      if (i >= maxBytes) this.fail(`varint longer than ${maxBytes} bytes for u${bits}`, start);
      const b = buf[pos++]!;
      const low = b & 0x7f;
      // mutation: equivalent — `shift + 7 >= bits`: when shift + 7 === bits, low >>> 7 is 0 (low has 7 bits).
      if (shift + 7 > bits && low >>> (bits - shift) !== 0) this.fail(`varint exceeds u${bits}`, start);
      // mutation: equivalent — `false` (every group through the bigint arm) gives the same value, slower.
      if (shift < 28) {
        lo |= low << shift;
      } else {
        result |= BigInt(low) << BigInt(shift);
      }
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) this.fail("non-canonical varint (trailing zero group)", start);
        this.pos = pos;
        return result | BigInt(lo >>> 0);
      }
      shift += 7;
    }
  }

  zigzag32(bits = 32): number {
    const u = this.varint32(bits);
    // (u >>> 1) ^ -(u & 1), done in float-safe arithmetic for the full u32 range.
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  zigzag64(bits = 64): bigint {
    const u = this.varint64(bits);
    return (u & 1n) === 0n ? u >> 1n : -((u + 1n) >> 1n);
  }

  f32(): number {
    if (this.end - this.pos < 4) this.fail("unexpected end of input in f32");
    const v = this.dv.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  f64(): number {
    if (this.end - this.pos < 8) this.fail("unexpected end of input in f64");
    const v = this.dv.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Reads a length prefix and checks that many bytes (times `minElemSize`) are present. */
  length(minElemSize = 1): number {
    const at = this.pos;
    const n = this.varintSafe();
    if (n * minElemSize > this.end - this.pos) {
      this.fail(`length ${n} exceeds the ${this.end - this.pos} byte(s) remaining`, at);
    }
    return n;
  }

  /**
   * Accounts for `n` elements of a zero-sized type (see MAX_ZERO_SIZED_ELEMENTS);
   * fails, reporting `at`, once this Reader's budget is spent.
   */
  takeZeroSized(n: number, at: number): void {
    if (n > this.zeroSizedLeft) {
      this.fail(`${n} zero-sized elements exceed the limit of ${MAX_ZERO_SIZED_ELEMENTS} per decode`, at);
    }
    this.zeroSizedLeft -= n;
  }

  /** `n` raw bytes as a view into the input (no copy). */
  rawView(n: number): Uint8Array {
    if (n > this.end - this.pos) this.fail(`need ${n} byte(s), ${this.end - this.pos} remaining`);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Length-prefixed bytes, copied out of the input (a view when `borrowBytes`). */
  bytes(): Uint8Array {
    if (this.borrowBytes) return this.bytesView();
    const n = this.length();
    if (n >= this.borrowAtLeast) {
      const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
      this.pos += n;
      return v;
    }
    // A plain Uint8Array copy (never Buffer#slice, which would alias the input).
    const v = new Uint8Array(n);
    v.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return v;
  }

  /** Length-prefixed bytes as a plain Uint8Array view into the input (valid while the input is). */
  bytesView(): Uint8Array {
    const n = this.length();
    const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return v;
  }

  string(): string {
    const n = this.length();
    const start = this.pos;
    const buf = this.buf;
    const end = start + n;
    // The ASCII loop is a shortcut: whenever it does not return, the strict decoder
    // decodes the whole string. mutation: equivalent — any change of `n < 32` or an
    // empty block for it, `i <= end`, `c >= 0x80` -> `true`, `i === end` -> `false` and removing
    // the return block below only change which of the two produces the same string.
    if (n < 32) {
      // Short strings: decode ASCII inline, fall back to the strict decoder otherwise.
      let s = "";
      let i = start;
      for (; i < end; i++) {
        const c = buf[i]!;
        if (c >= 0x80) break;
        s += String.fromCharCode(c);
      }
      if (i === end) {
        this.pos = end;
        return s;
      }
    }
    let s: string;
    try {
      s = textDecoder.decode(buf.subarray(start, end));
    } catch {
      return this.fail("invalid UTF-8 in string", start);
    }
    this.pos = end;
    return s;
  }
}
