import { FramingError } from "./errors.js";

/**
 * COBS (Consistent Overhead Byte Stuffing), as used by roam's byte-stream
 * transports: every frame is COBS-encoded and followed by one 0x00 byte.
 *
 * Speed matters here (every byte of a stream passes through it twice), so
 * nothing is done byte by byte in JS for large inputs:
 * - zeros are found with Node's `Buffer#indexOf` (memchr) where Node's
 *   Buffer exists, else with `Uint8Array#indexOf`;
 * - encoding copies the raw bytes once, then moves blocks with `copyWithin`
 *   (no per-block subarray objects);
 * - decoding works in place with `copyWithin`, so a received frame costs no
 *   allocation at all.
 * Short inputs take plain loops, which beat native calls below ~24 bytes.
 */

interface NodeBufferCtor {
  from(ab: ArrayBufferLike, byteOffset: number, length: number): Uint8Array;
}
const NodeBuffer = (globalThis as { Buffer?: NodeBufferCtor }).Buffer;

/**
 * A view of buf[from, from + length) whose `indexOf` is fast: a Node Buffer
 * (memchr) where available, else a plain subarray. Create one per scan range,
 * not per search.
 */
function scanView(buf: Uint8Array, from: number, length: number): Uint8Array {
  return NodeBuffer ? NodeBuffer.from(buf.buffer, buf.byteOffset + from, length) : buf.subarray(from, from + length);
}

/** Upper bound of the encoded size of `n` raw bytes (without the delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.floor(n / 254) + 1;
}

/** Blocks up to this length are copied with a loop rather than a native call. */
const SHORT_BLOCK = 24;
/** Inputs below this size are encoded with the simple forward loop. */
const SMALL_INPUT = 512;

let blockScratch = new Int32Array(1024);

/**
 * Encodes in place: the `n` raw bytes must already sit at
 * `buf[at + 1, at + 1 + n)`; the encoded bytes are written from `buf[at]`.
 * `buf` must have room for `at + cobsMaxEncodedLength(n)` bytes.
 * Returns the position after the encoded bytes.
 */
export function cobsEncodeInPlace(buf: Uint8Array, at: number, n: number): number {
  const base = at + 1; // raw byte j lives at buf[base + j]
  const raw = scanView(buf, base, n);
  // Pass 1: block boundaries [start, stop) in raw coordinates.
  let count = 0;
  let i = 0;
  for (;;) {
    let z = raw.indexOf(0, i);
    if (z === -1) z = n;
    let stop = z;
    if (stop - i > 254) stop = i + 254;
    if (count + 2 > blockScratch.length) {
      const next = new Int32Array(blockScratch.length * 2);
      next.set(blockScratch);
      blockScratch = next;
    }
    blockScratch[count++] = i;
    blockScratch[count++] = stop;
    if (stop - i === 254) {
      if (stop === n) break;
      i = stop; // a full block consumes no zero
    } else {
      if (z === n) break;
      i = z + 1;
    }
  }
  // Output position of each block's code byte: every full block before it
  // adds one byte (its code byte replaces no zero).
  // Pass 2 (backwards, so moves never overwrite unread data): shift each
  // block right by the number of full blocks before it, write its code byte.
  let shift = 0;
  for (let k = 0; k < count; k += 2) if (blockScratch[k + 1]! - blockScratch[k]! === 254 && k + 2 < count) shift++;
  const outEnd = at + (blockScratch[count - 1]! - 0) + 1 + shift;
  for (let k = count - 2; k >= 0; k -= 2) {
    const s = blockScratch[k]!;
    const e = blockScratch[k + 1]!;
    const len = e - s;
    if (len === 254 && k + 2 < count) shift--;
    const codeAt = at + s + shift;
    if (shift !== 0 && len > 0) buf.copyWithin(codeAt + 1, base + s, base + e);
    buf[codeAt] = len + 1;
  }
  return outEnd;
}

/**
 * Encodes `src` into `dst` starting at `at`; returns the position after the
 * encoded bytes. `dst` must have `cobsMaxEncodedLength(src.length)` bytes free.
 */
export function cobsEncodeInto(src: Uint8Array, dst: Uint8Array, at: number): number {
  const n = src.length;
  if (n >= SMALL_INPUT) {
    dst.set(src, at + 1);
    return cobsEncodeInPlace(dst, at, n);
  }
  let out = at;
  let i = 0;
  for (;;) {
    // One block: up to 254 non-zero bytes, ended by a zero or the block limit.
    let stop = i;
    const limit = Math.min(n, i + 254);
    while (stop < limit && src[stop] !== 0) stop++;
    const len = stop - i;
    dst[out++] = len + 1;
    for (let k = i; k < stop; k++) dst[out++] = src[k]!;
    if (len === 254) {
      // Full block (code 0xFF): it carries no implicit zero, so a zero right
      // after it (if any) starts the next block. At the very end of the input
      // no empty block follows, as with the reference's `cobs` encoder.
      if (stop === n) return out;
      i = stop;
    } else {
      // Block ended by a zero (consumed) or by the end of input.
      if (stop === n) return out;
      i = stop + 1;
    }
  }
}

export function cobsEncode(src: Uint8Array): Uint8Array {
  const dst = new Uint8Array(cobsMaxEncodedLength(src.length));
  const end = cobsEncodeInto(src, dst, 0);
  return dst.subarray(0, end);
}

/**
 * Decodes one COBS frame (delimiter excluded) in place: the decoded bytes
 * end up at the start of `buf`. Returns their length. Throws FramingError on
 * a zero byte inside the frame or a block that runs past the end.
 */
export function cobsDecodeInPlace(buf: Uint8Array): number {
  const n = buf.length;
  const zero = n < 64 ? buf.indexOf(0) : scanView(buf, 0, n).indexOf(0);
  if (zero !== -1) throw new FramingError(`COBS: zero byte inside frame at offset ${zero}`);
  let out = 0;
  let i = 0;
  while (i < n) {
    const code = buf[i]!;
    const blockEnd = i + code;
    if (blockEnd > n) throw new FramingError(`COBS: block at offset ${i} runs past the end of the frame`);
    const len = code - 1;
    if (len > SHORT_BLOCK) {
      buf.copyWithin(out, i + 1, blockEnd);
      out += len;
    } else {
      for (let k = i + 1; k < blockEnd; k++) buf[out++] = buf[k]!;
    }
    i = blockEnd;
    if (code !== 0xff && i < n) buf[out++] = 0;
  }
  return out;
}

/** Decodes one COBS frame (delimiter excluded) into a new array. */
export function cobsDecode(src: Uint8Array): Uint8Array {
  const copy = src.slice();
  return copy.subarray(0, cobsDecodeInPlace(copy));
}

/**
 * Incremental frame splitter + decoder for a byte stream.
 *
 * Feed it chunks as they arrive; it returns every complete decoded frame.
 * Frames may be split across chunks or many may share one chunk. A peer
 * that sends more than `maxFrameBytes` encoded bytes without a delimiter
 * gets a FramingError instead of unbounded buffering.
 *
 * `push` takes ownership of each chunk: frames are decoded in place and
 * handed out as views into it (socket reads are fresh buffers, so this
 * costs no copy). Do not reuse a chunk after pushing it.
 */
export class CobsFrameDecoder {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private readonly decodeInPlace: (buf: Uint8Array) => number;

  /**
   * @param decodeInPlace an alternative in-place decoder (the native addon):
   *   returns the decoded length, -1 for a zero inside the frame, -2 for a
   *   block past the end.
   */
  constructor(
    readonly maxFrameBytes: number,
    decodeInPlace?: (buf: Uint8Array) => number,
  ) {
    this.decodeInPlace = decodeInPlace
      ? (buf) => {
          const n = decodeInPlace(buf);
          if (n === -1) throw new FramingError("COBS: zero byte inside frame");
          if (n < 0) throw new FramingError("COBS: a block runs past the end of the frame");
          return n;
        }
      : cobsDecodeInPlace;
  }

  /** Bytes currently buffered for an unterminated frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Splits `chunk` into frames; `onFrame` gets each decoded frame (a view it
   * may keep). Throws FramingError on a bad or oversized frame.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let start = 0;
    const n = chunk.length;
    const scan = scanView(chunk, 0, n);
    while (start < n) {
      const z = scan.indexOf(0, start);
      if (z === -1) {
        const rest = n - start;
        if (this.pendingBytes + rest > this.maxFrameBytes) {
          this.pending = [];
          this.pendingBytes = 0;
          throw new FramingError(`COBS: frame exceeds ${this.maxFrameBytes} bytes without a delimiter`);
        }
        this.pending.push(start === 0 ? chunk : chunk.subarray(start));
        this.pendingBytes += rest;
        return;
      }
      let encoded: Uint8Array;
      if (this.pendingBytes === 0) {
        encoded = chunk.subarray(start, z);
      } else {
        const total = this.pendingBytes + (z - start);
        if (total > this.maxFrameBytes) {
          this.pending = [];
          this.pendingBytes = 0;
          throw new FramingError(`COBS: frame of ${total} bytes exceeds the ${this.maxFrameBytes} byte limit`);
        }
        encoded = new Uint8Array(total);
        let off = 0;
        for (const p of this.pending) {
          encoded.set(p, off);
          off += p.length;
        }
        encoded.set(chunk.subarray(start, z), off);
        this.pending = [];
        this.pendingBytes = 0;
      }
      start = z + 1;
      if (encoded.length > this.maxFrameBytes) {
        throw new FramingError(`COBS: frame of ${encoded.length} bytes exceeds the ${this.maxFrameBytes} byte limit`);
      }
      if (encoded.length === 0) continue; // empty frames (double delimiters) carry nothing
      onFrame(encoded.subarray(0, this.decodeInPlace(encoded)));
    }
  }
}
