import { FramingError } from "./errors.js";

/**
 * COBS (Consistent Overhead Byte Stuffing), as used by roam's byte-stream
 * transports: every frame is COBS-encoded and followed by one 0x00 byte.
 *
 * Encoding and decoding scan with native `indexOf`/`set`, never byte by byte
 * in JS, so a 64 KiB payload costs a few hundred native calls.
 */

/** Upper bound of the encoded size of `n` raw bytes (without the delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.floor(n / 254) + 1;
}

/**
 * Encodes `src` into `dst` starting at `at`; returns the position after the
 * encoded bytes. `dst` must have `cobsMaxEncodedLength(src.length)` bytes free.
 */
export function cobsEncodeInto(src: Uint8Array, dst: Uint8Array, at: number): number {
  const n = src.length;
  let out = at;
  let i = 0;
  for (;;) {
    // One block: up to 254 non-zero bytes, ended by a zero or the block limit.
    let z = src.indexOf(0, i);
    if (z === -1) z = n;
    let blockEnd = z;
    if (blockEnd - i > 254) blockEnd = i + 254;
    const len = blockEnd - i;
    dst[out++] = len + 1;
    if (len > SHORT_BLOCK) {
      dst.set(src.subarray(i, blockEnd), out);
      out += len;
    } else {
      // Short blocks: a plain loop beats creating a subarray.
      for (let k = i; k < blockEnd; k++) dst[out++] = src[k]!;
    }
    if (len === 254) {
      // Full block (code 0xFF): it carries no implicit zero, so a zero right
      // after it (if any) starts the next block. At the very end of the input
      // no empty block follows, as with the reference's `cobs` encoder.
      if (blockEnd === n) return out;
      i = blockEnd;
    } else {
      // Block ended by a zero (consumed) or by the end of input.
      if (z === n) return out;
      i = z + 1;
    }
  }
}

export function cobsEncode(src: Uint8Array): Uint8Array {
  const dst = new Uint8Array(cobsMaxEncodedLength(src.length));
  const end = cobsEncodeInto(src, dst, 0);
  return dst.subarray(0, end);
}

/**
 * Decodes one COBS frame (delimiter excluded) into a new array.
 * Throws FramingError on a zero byte inside the frame or a block that runs
 * past the end.
 */
export function cobsDecode(src: Uint8Array): Uint8Array {
  const n = src.length;
  // One native scan for a stray zero instead of one per block.
  const zero = src.indexOf(0);
  if (zero !== -1) throw new FramingError(`COBS: zero byte inside frame at offset ${zero}`);
  const dst = new Uint8Array(n); // decoded is never longer than encoded
  let out = 0;
  let i = 0;
  while (i < n) {
    const code = src[i]!;
    const blockEnd = i + code;
    if (blockEnd > n) throw new FramingError(`COBS: block at offset ${i} runs past the end of the frame`);
    if (code - 1 > SHORT_BLOCK) {
      dst.set(src.subarray(i + 1, blockEnd), out);
      out += code - 1;
    } else {
      for (let k = i + 1; k < blockEnd; k++) dst[out++] = src[k]!;
    }
    i = blockEnd;
    if (code !== 0xff && i < n) dst[out++] = 0;
  }
  return dst.subarray(0, out);
}

/** Blocks up to this length are copied with a loop rather than a native call. */
const SHORT_BLOCK = 24;

/**
 * Incremental frame splitter + decoder for a byte stream.
 *
 * Feed it chunks as they arrive; it returns every complete decoded frame.
 * Frames may be split across chunks or many may share one chunk. A peer
 * that sends more than `maxFrameBytes` encoded bytes without a delimiter
 * gets a FramingError instead of unbounded buffering.
 */
export class CobsFrameDecoder {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  constructor(readonly maxFrameBytes: number) {}

  /** Bytes currently buffered for an unterminated frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /**
   * Splits `chunk` into frames; `onFrame` gets each decoded frame (a fresh
   * array it may keep). Throws FramingError on a bad or oversized frame.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    let start = 0;
    const n = chunk.length;
    while (start < n) {
      const z = chunk.indexOf(0, start);
      if (z === -1) {
        const rest = n - start;
        if (this.pendingBytes + rest > this.maxFrameBytes) {
          throw new FramingError(
            `COBS: frame exceeds ${this.maxFrameBytes} bytes without a delimiter`,
          );
        }
        // Copy: the caller may reuse its buffer.
        this.pending.push(chunk.slice(start));
        this.pendingBytes += rest;
        return;
      }
      let encoded: Uint8Array;
      if (this.pendingBytes === 0) {
        encoded = chunk.subarray(start, z);
      } else {
        const total = this.pendingBytes + (z - start);
        if (total > this.maxFrameBytes) {
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
      onFrame(cobsDecode(encoded));
    }
  }
}
