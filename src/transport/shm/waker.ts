/**
 * Wake-ups between the two ends of a guest/host pair.
 *
 * The protocol lives in shared memory (layout.B.sleeping of the buffer each
 * side consumes): before a side sleeps it sets its flag to what it waits for
 * (frames; room in its outgoing buffer or free slots; credit) and re-checks;
 * whoever then gives it that (commits a frame, releases ring space or slots,
 * grants credit) adds the "rung" bit and rings once. A busy side never has
 * its flag set, so a stream of messages costs no syscall.
 *
 * How the ring reaches a sleeper depends on where it lives:
 * - DoorbellWaker: a Unix socketpair (r[shm.doorbell.*]) between processes;
 *   the byte wakes libuv's poll, a hang-up tells the peer died.
 * - AtomicsWaker: Atomics.waitAsync / Atomics.notify on the flag itself, for
 *   worker threads sharing the memory.
 * - PollWaker: no doorbell (a guest that attached by path): the sleeper polls
 *   with a bounded backoff.
 */
import type { Socket } from "node:net";
import { nativeShm } from "./native.js";

export interface Waker {
  readonly kind: "doorbell" | "atomics" | "poll";
  /** `wake` runs whenever the peer may have done something; `hangup` once if the peer is gone. */
  start(wake: () => void, hangup: (cause: Error) => void): void;
  /** Our flag was set to `flag`: arrange to be woken (by the peer, or after `timeoutMs` at the latest). */
  sleep(timeoutMs: number | undefined, flag: number): void;
  /** The peer's flag went 1 → 2: wake it. */
  ring(): void;
  close(): void;
}

class SafetyTimer {
  private timer: ReturnType<typeof setTimeout> | null = null;
  constructor(private readonly ref: boolean) {}
  arm(ms: number | undefined, fn: () => void): void {
    if (ms === undefined || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
    if (!this.ref) this.timer.unref?.();
  }
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

const ONE = Buffer.from([1]);

/** ES2024 Atomics.waitAsync (in Node 20; the project's TS lib is ES2022). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number, timeout?: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

export class DoorbellWaker implements Waker {
  readonly kind = "doorbell";
  private wakeFn: () => void = () => {};
  private readonly safety = new SafetyTimer(false);
  private closed = false;
  private readonly fd: number;
  /** Doorbell writes performed (stats). */
  rings = 0;

  constructor(private readonly socket: Socket) {
    const h = (socket as unknown as { _handle?: { fd?: number } })._handle;
    this.fd = typeof h?.fd === "number" && h.fd >= 0 ? h.fd : -1;
  }

  start(wake: () => void, hangup: (cause: Error) => void): void {
    this.wakeFn = wake;
    let gone = false;
    const down = (why: string) => {
      if (gone || this.closed) return;
      gone = true;
      hangup(new Error(`doorbell hang-up (${why}): the peer process is gone (shm.doorbell.death)`));
    };
    this.socket.on("data", () => {
      this.safety.clear();
      wake();
    });
    this.socket.on("end", () => down("end of stream"));
    this.socket.on("error", (e) => down((e as Error).message));
    this.socket.on("close", () => down("closed"));
  }

  sleep(timeoutMs: number | undefined): void {
    this.safety.arm(timeoutMs, () => this.wakeFn());
  }

  ring(): void {
    if (this.closed) return;
    this.rings++;
    const n = nativeShm();
    if (n && this.fd >= 0) {
      try {
        n.signal(this.fd);
        return;
      } catch {
        // fall back to the stream
      }
    }
    if (!this.socket.destroyed && this.socket.writable && this.socket.writableLength < 64) this.socket.write(ONE);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.safety.clear();
    this.socket.destroy();
  }
}

export class AtomicsWaker implements Waker {
  readonly kind = "atomics";
  private wakeFn: () => void = () => {};
  private pending = false;
  private closed = false;
  private readonly safety = new SafetyTimer(false);
  rings = 0;

  constructor(
    private readonly i32: Int32Array,
    /** Our flag (we wait on it). */
    private readonly mine: number,
    /** The peer's flag (we notify it). */
    private readonly peers: number,
  ) {}

  start(wake: () => void): void {
    this.wakeFn = wake;
  }

  sleep(timeoutMs: number | undefined, flag: number): void {
    if (this.closed) return;
    this.safety.arm(timeoutMs, () => this.wakeFn());
    if (this.pending) return;
    const r = waitAsync(this.i32, this.mine, flag);
    if (!r.async) {
      queueMicrotask(() => this.wakeFn());
      return;
    }
    this.pending = true;
    r.value.then(() => {
      this.pending = false;
      if (this.closed) return;
      this.safety.clear();
      this.wakeFn();
    });
  }

  ring(): void {
    this.rings++;
    Atomics.notify(this.i32, this.peers);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.safety.clear();
    // Release our own pending wait.
    if (this.pending) Atomics.notify(this.i32, this.mine);
  }
}

export class PollWaker implements Waker {
  readonly kind = "poll";
  private wakeFn: () => void = () => {};
  private timer: ReturnType<typeof setTimeout> | null = null;
  private backoff: number;
  private closed = false;
  rings = 0;

  constructor(
    private readonly minMs = 1,
    private readonly maxMs = 10,
  ) {
    this.backoff = minMs;
  }

  start(wake: () => void): void {
    this.wakeFn = wake;
  }

  sleep(timeoutMs: number | undefined): void {
    if (this.closed || this.timer) return;
    const ms = Math.min(this.backoff, timeoutMs ?? this.maxMs);
    this.backoff = Math.min(this.maxMs, this.backoff * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.wakeFn();
    }, ms);
  }

  /** Work was found: poll fast again. */
  active(): void {
    this.backoff = this.minMs;
  }

  ring(): void {}

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
