/**
 * Deterministic byte pattern shared by bench servers and clients so that a
 * receiver can verify every byte of a stream (count, order, content) without
 * the sender having to compute anything per byte.
 *
 * Stream byte i  ==  POOL[i mod POOL_PERIOD].
 * POOL_PERIOD is odd (not a multiple of any chunk or message size), so a lost,
 * duplicated or reordered chunk/message changes the bytes at that position
 * and is detected. `DOUBLED` is the pool stored twice, so any window of up to
 * POOL_PERIOD bytes starting at any offset is one contiguous zero-copy slice.
 *
 * Verification is a memcmp (Buffer.equals) against the expected window:
 * strictly stronger than a checksum, and cheaper than hashing.
 */

/** 4 MiB + 4093 bytes: odd, larger than any single message/chunk we use. */
export const POOL_PERIOD = (1 << 22) + 4093;

function buildDoubled(seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(POOL_PERIOD / 4));
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  const pool = Buffer.from(words.buffer, 0, POOL_PERIOD);
  const doubled = Buffer.allocUnsafe(POOL_PERIOD * 2);
  pool.copy(doubled, 0);
  pool.copy(doubled, POOL_PERIOD);
  return doubled;
}

let doubledCache: Buffer | undefined;

/** The pool twice over (length 2 * POOL_PERIOD). Built once per process. */
export function doubledPool(): Buffer {
  return (doubledCache ??= buildDoubled(0x5eed1234));
}

/**
 * Zero-copy view of stream bytes [offset, offset + len). Requires
 * len <= POOL_PERIOD. The returned buffer must not be mutated.
 */
export function patternSlice(offset: number, len: number): Buffer {
  if (len > POOL_PERIOD) throw new RangeError(`pattern slice ${len} > ${POOL_PERIOD}`);
  const start = offset % POOL_PERIOD;
  return doubledPool().subarray(start, start + len);
}

/** Does `data` equal stream bytes [offset, offset + data.length)? */
export function matchesPattern(data: Uint8Array, offset: number): boolean {
  let pos = 0;
  while (pos < data.length) {
    const n = Math.min(POOL_PERIOD, data.length - pos);
    const expected = patternSlice(offset + pos, n);
    if (Buffer.compare(data.subarray(pos, pos + n), expected) !== 0) return false;
    pos += n;
  }
  return true;
}
