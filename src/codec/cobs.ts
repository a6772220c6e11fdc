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
 * - `cobsDecode` works in place with `copyWithin`; the stream decoder
 *   (`CobsFrameDecoder`) decodes straight from each read into output slabs.
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
  // mutation: equivalent — `false` under Node: the plain subarray finds the same zeros, slower.
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
    // mutation: equivalent — `stop - i >= 254`: at exactly 254, stop = i + 254 already.
    if (stop - i > 254) stop = i + 254;
    // mutation: equivalent — `count + 2 >= length`: the table grows one block earlier.
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
  // mutation: equivalent — `k <= count`: the extra step has k + 2 > count, so it never counts.
  for (let k = 0; k < count; k += 2) if (blockScratch[k + 1]! - blockScratch[k]! === 254 && k + 2 < count) shift++;
  const outEnd = at + blockScratch[count - 1]! + 1 + shift;
  for (let k = count - 2; k >= 0; k -= 2) {
    const s = blockScratch[k]!;
    const e = blockScratch[k + 1]!;
    const len = e - s;
    if (len === 254 && k + 2 < count) shift--;
    const codeAt = at + s + shift;
    // Without a shift the block is already in place (codeAt + 1 === base + s).
    // mutation: equivalent — `true`, `||` and `len >= 0`: the copy then moves an empty
    // range or a block onto itself.
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
  // mutation: equivalent — any change of this condition, or an empty block: both paths
  // write the same bytes (the in-place one is faster for long inputs); each is tested on its own.
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
  // mutation: equivalent — any change of `n < 64`: either indexOf finds the same zero.
  const zero = n < 64 ? buf.indexOf(0) : scanView(buf, 0, n).indexOf(0);
  if (zero !== -1) throw new FramingError(`COBS: zero byte inside frame at offset ${zero}`);
  let out = 0;
  let i = 0;
  // mutation: equivalent — `i <= n`: at i === n, code is undefined, so blockEnd and then i
  // become NaN, nothing is written and the loop ends.
  while (i < n) {
    const code = buf[i]!;
    const blockEnd = i + code;
    if (blockEnd > n) throw new FramingError(`COBS: block at offset ${i} runs past the end of the frame`);
    const len = code - 1;
    // mutation: equivalent — any change of `len > SHORT_BLOCK`: the loop and copyWithin move the same bytes.
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
 * One step of a resumable COBS stream decoder: decodes `src[start, end)` into
 * `dst` at `state[2]`, stopping right after the first frame delimiter.
 * `state` is `[data bytes left in the current block, 1 if a zero is due
 * before the next block, output position, status]`; status becomes 0 (input
 * used up inside a frame), 1 (a frame ended; its delimiter was consumed) or
 * 2 (malformed: a delimiter inside a block; consumed through it and the
 * state reset). Returns the bytes consumed. `dst` must have room for
 * `end - start` bytes past the output position. The native addon provides
 * the same function (`decodeStream`).
 */
export type CobsStreamKernel = (src: Uint8Array, start: number, end: number, dst: Uint8Array, state: Int32Array) => number;

/** The pure-JS CobsStreamKernel. */
export function cobsDecodeStep(src: Uint8Array, start: number, end: number, dst: Uint8Array, state: Int32Array): number {
  let left = state[0]!;
  let zeroDue = state[1]!;
  let out = state[2]!;
  let status = 0;
  let i = start;
  // Next zero at or after i (found once, reused by every block before it).
  let zero = -1;
  // mutation: equivalent — any change of this condition: it only decides whether long runs
  // are scanned with indexOf or copied byte by byte; both stop at the same zero.
  const scan = end - start >= 64 ? scanView(src, 0, end) : null;
  while (i < end) {
    if (left === 0) {
      const code = src[i++]!;
      if (code === 0) {
        status = 1;
        zeroDue = 0;
        break;
      }
      if (zeroDue) dst[out++] = 0;
      left = code - 1;
      zeroDue = code === 0xff ? 0 : 1;
      continue;
    }
    const n = Math.min(left, end - i);
    let run: number;
    // mutation: equivalent — `n < SHORT_BLOCK`, `n > SHORT_BLOCK`, `true`, `false` for the
    // second test: with a scan view either way copies the same run (without one,
    // `scan === null` picks the loop).
    if (scan === null || n <= SHORT_BLOCK) {
      run = 0;
      while (run < n && src[i + run] !== 0) {
        dst[out + run] = src[i + run]!;
        run++;
      }
    } else {
      // mutation: equivalent — `zero <= i`, `true`: searching again from i finds the same zero.
      if (zero < i) {
        zero = scan.indexOf(0, i);
        if (zero === -1) zero = end;
      }
      run = Math.min(n, zero - i);
      dst.set(src.subarray(i, i + run), out);
    }
    out += run;
    i += run;
    left -= run;
    if (run < n) {
      // A delimiter where block data was expected: the frame was cut short.
      i++;
      status = 2;
      left = 0;
      zeroDue = 0;
      break;
    }
  }
  state[0] = left;
  state[1] = zeroDue;
  state[2] = out;
  state[3] = status;
  return i - start;
}

const EMPTY = new Uint8Array(0);
/** Below this much room a slab is replaced rather than filled in tiny steps. */
const MIN_STEP = 4096;

/** Fresh, uninitialised memory as a plain Uint8Array (no zero fill where Node's Buffer exists). */
function allocBytes(n: number): Uint8Array {
  const B = (globalThis as { Buffer?: { allocUnsafeSlow(n: number): Uint8Array } }).Buffer;
  // mutation: equivalent — `true` (or `B`) under Node: zero-filled memory instead; the
  // decoder writes every byte it hands out.
  if (!B) return new Uint8Array(n);
  const b = B.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, n);
}

/**
 * Incremental frame splitter + decoder for a byte stream.
 *
 * Feed it chunks as they arrive; it hands out every complete decoded frame.
 * Frames may be split across chunks or many may share one chunk. A peer
 * that sends more than `maxFrameBytes` encoded bytes without a delimiter
 * gets a FramingError instead of unbounded buffering.
 *
 * Each byte is decoded straight from the chunk into a slab (one pass, no
 * intermediate buffer), so `push` never keeps the chunk: a transport can read
 * into one reused buffer. Frames are views into the slab and stay valid
 * forever; a new slab is started when the current one runs out.
 */
export class CobsFrameDecoder {
  private slab: Uint8Array = EMPTY;
  /** Where the current frame's decoded bytes start in the slab. */
  private frameStart = 0;
  /** [left in block, zero due, output position, status] (see CobsStreamKernel). */
  private readonly state = new Int32Array(4);
  /** Encoded bytes consumed for the current frame (delimiter included once seen). */
  private frameBytes = 0;
  private readonly kernel: CobsStreamKernel;

  /**
   * @param kernel an alternative decode step (the native addon's `decodeStream`).
   * @param slabBytes size of each output slab (frames larger than it get their own).
   *   The default stays below the C allocator's mmap threshold (128 KiB): a slab
   *   under it reuses heap memory, one above it is fresh pages that fault on
   *   first write (measured at 16x the cost per byte, docs/benchmarks.md).
   */
  constructor(
    readonly maxFrameBytes: number,
    kernel?: CobsStreamKernel,
    // mutation: equivalent — `112 / 1024`: any slab size decodes the same frames (push
    // limits each step to the room left); this is a memory/speed setting.
    private readonly slabBytes = 112 * 1024,
  ) {
    this.kernel = kernel ?? cobsDecodeStep;
  }

  /** Encoded bytes received for an unterminated frame. */
  get buffered(): number {
    return this.frameBytes;
  }

  /**
   * Decodes every frame completed by `chunk`; `onFrame` gets each one (a view
   * it may keep). The chunk is not kept: the caller may reuse it at once.
   * Throws FramingError on a bad or oversized frame.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    const n = chunk.length;
    const st = this.state;
    let i = 0;
    while (i < n) {
      // Never consume more than one byte past the frame limit (the delimiter).
      let lim = Math.min(n - i, this.maxFrameBytes + 1 - this.frameBytes);
      const room = this.slab.length - st[2]!;
      // mutation: equivalent — `room <= lim`: then lim = room, unchanged.
      if (room < lim) {
        // Fill what is left of the slab (a frame that ends inside costs no
        // copy); only a slab that is (nearly) full moves the partial frame.
        // mutation: equivalent — `<=`, `Math.max`, `true`: a new slab sooner; lim is then
        // limited to that slab's room, and frames are correct in any slab.
        if (room < Math.min(lim, MIN_STEP)) this.newSlab(lim);
        // Decoded bytes never outnumber encoded ones: limiting the input to the room left keeps the output inside the slab.
        lim = Math.min(lim, this.slab.length - st[2]!);
      }
      const used = this.kernel(chunk, i, i + lim, this.slab, st);
      i += used;
      this.frameBytes += used;
      const status = st[3]!;
      if (status === 1) {
        const slab = this.slab;
        const start = this.frameStart;
        const end = st[2]!;
        const empty = this.frameBytes === 1; // a bare delimiter carries nothing
        this.frameStart = end;
        this.frameBytes = 0;
        // Less room left than this frame took: start the next frame in a new slab.
        // mutation: equivalent — any change to this condition, or to retireSlab's body: when
        // to retire is a memory heuristic; a frame continues in whatever slab it starts in,
        // and newSlab moves a partial frame once a slab is full.
        if (slab.length - end < end - start) this.retireSlab();
        if (!empty) onFrame(slab.subarray(start, end));
      } else if (status === 2) {
        this.resetFrame();
        throw new FramingError("COBS: a block runs past the end of the frame");
      } else if (this.frameBytes > this.maxFrameBytes) {
        this.resetFrame();
        throw new FramingError(`COBS: frame exceeds ${this.maxFrameBytes} bytes without a delimiter`);
      }
    }
  }

  private resetFrame(): void {
    this.state.fill(0);
    this.state[2] = this.frameStart;
    this.frameBytes = 0;
  }

  /** Starts a new slab at a frame boundary (frames already handed out keep the old one alive). */
  // mutation: equivalent — an empty body: the next frame continues in the current slab (see the
  // call site: when to retire is a memory heuristic).
  private retireSlab(): void {
    this.slab = EMPTY;
    this.frameStart = 0;
    this.state[2] = 0;
  }

  /** Moves the partial frame into a new slab with room for `need` more bytes. */
  private newSlab(need: number): void {
    const partial = this.state[2]! - this.frameStart;
    // A slab holds the partial frame with room to grow; the chunk being read may
    // be larger than that, and is decoded into as many slabs as it takes.
    // mutation: equivalent — `Math.max(need, MIN_STEP)`: a larger slab only (push limits lim
    // to the room). `partial >= 0` / `true` in the `if` below: with partial = 0 the copy is empty.
    const size = Math.max(this.slabBytes, 2 * partial + Math.min(need, MIN_STEP));
    const next = allocBytes(size);
    if (partial > 0) next.set(this.slab.subarray(this.frameStart, this.state[2]!), 0);
    this.slab = next;
    this.frameStart = 0;
    this.state[2] = partial;
  }
}
