/**
 * A deterministic, non-repeating byte stream (xorshift32 words) for checking
 * that output through a PTY and the daemon arrives complete and in order.
 *
 *   node dist/packages/roam-pty/src/pattern.js BYTES [--wait] [--seed N]
 *
 * writes BYTES bytes of the pattern to stdout (blocking writes: when the PTY
 * is paused the generator blocks, like any program). With --wait it first
 * reads one byte from stdin, so a client can attach before output starts.
 * Run it on a raw PTY (`stty raw -echo`) so the line discipline passes every
 * byte through unchanged.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";

export class PatternStream {
  private state: number;
  constructor(seed = 0x9e3779b9) {
    this.state = seed >>> 0 || 1;
  }
  /** The next `n` bytes (n is rounded up to a multiple of 4 internally; the excess is discarded). */
  next(n: number): Uint8Array {
    const words = new Uint32Array(Math.ceil(n / 4));
    let x = this.state;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    this.state = x >>> 0;
    return new Uint8Array(words.buffer, 0, n);
  }
}

/** SHA-256 (hex) of the first `total` bytes of the pattern, generated in `block`-sized pieces. */
export function patternDigest(total: number, seed?: number, block = 1 << 20): string {
  if (block % 4 !== 0) throw new RangeError("block must be a multiple of 4");
  const h = createHash("sha256");
  const p = new PatternStream(seed);
  for (let done = 0; done < total; ) {
    const n = Math.min(block, total - done);
    h.update(p.next(n));
    done += n;
  }
  return h.digest("hex");
}

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

function readOneByte(fd: number): void {
  const b = Buffer.alloc(1);
  for (;;) {
    try {
      if (fs.readSync(fd, b, 0, 1, null) >= 0) return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

function main(argv: string[]): void {
  const total = Number(argv[0]);
  if (!Number.isSafeInteger(total) || total < 0) {
    process.stderr.write("usage: pattern.js BYTES [--wait] [--seed N]\n");
    process.exit(2);
  }
  const si = argv.indexOf("--seed");
  const seed = si >= 0 ? Number(argv[si + 1]) : undefined;
  if (argv.includes("--wait")) readOneByte(0);
  const p = new PatternStream(seed);
  const block = 64 * 1024;
  for (let done = 0; done < total; ) {
    const n = Math.min(block, total - done);
    writeAll(1, p.next(n));
    done += n;
  }
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(new URL(import.meta.url).pathname)) {
  main(process.argv.slice(2));
}
