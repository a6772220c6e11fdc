import type { Message } from "../wire/message.js";

/**
 * What the session core needs from a transport: move whole messages.
 * Byte-stream (COBS), WebSocket and SHM transports implement it; the core
 * never sees sockets or shared memory.
 */
export interface MessageTransport {
  /** Starts delivering; called once by the link. */
  start(sink: TransportSink): void;
  /**
   * Queues one message. Implementations batch: many small messages queued
   * in one turn of the event loop leave in one write.
   */
  send(message: Message): void;
  /** Writes everything queued now (e.g. before closing). */
  flush(): void;
  /**
   * Resolves when the transport's outgoing buffer is below its high-water
   * mark; `undefined` when it already is (no allocation on the fast path).
   */
  writable(): Promise<void> | undefined;
  /** Flushes and closes; idempotent. */
  close(): void;
  /**
   * Bytes of replies (see `isReply`) handed to `send` and not yet written
   * out. The link stops reading while this is above its reply high-water
   * mark. A transport without it is never paused.
   */
  replyBacklog?(): number;
  /** Calls `cb` once, when the reply backlog fell to `bytes` or less, or the transport closed. */
  onReplyDrain?(bytes: number, cb: () => void): void;
  /** Stops taking bytes from the peer (the peer's sends then block on its side). */
  pauseReading?(): void;
  /** Takes bytes from the peer again. */
  resumeReading?(): void;
  /** Short human description ("tcp 127.0.0.1:4000", "ws", "shm peer 3"). */
  readonly description: string;
}

export interface TransportSink {
  /** A decoded message arrived. */
  message(m: Message): void;
  /** Bytes arrived that are not a valid message; `rule` is the spec rule to cite. */
  malformed(rule: string, detail: string): void;
  /** The transport is gone (peer hang-up, error, or our close). */
  closed(cause?: Error): void;
}

/**
 * Messages a peer makes us send by sending something: Response (to a
 * Request, or a Cancel), Accept/Reject (to a Connect), Goodbye, Credit (to
 * Data). They are what a peer that does not read could make pile up; our own
 * Requests and channel Data are bounded elsewhere (by the application, and by
 * credit and `writable()`), and pausing on them could deadlock two peers that
 * both stream (each waiting for the other to read).
 */
export function isReply(m: Message): boolean {
  switch (m.type) {
    case "Response":
    case "Accept":
    case "Reject":
    case "Goodbye":
    case "Credit":
      return true;
    default:
      return false;
  }
}

/**
 * Reply accounting shared by the transports: how many reply bytes are not
 * yet written, and who waits for them to drain.
 */
export class ReplyBacklog {
  bytes = 0;
  private waiter: { bytes: number; cb: () => void } | null = null;

  add(n: number): void {
    this.bytes += n;
  }
  /** `n` reply bytes were written out. */
  written(n: number): void {
    this.bytes -= n;
    if (this.bytes < 0) this.bytes = 0;
    const w = this.waiter;
    if (w !== null && this.bytes <= w.bytes) {
      this.waiter = null;
      w.cb();
    }
  }
  onDrain(bytes: number, cb: () => void): void {
    if (this.bytes <= bytes) {
      queueMicrotask(cb);
      return;
    }
    this.waiter = { bytes, cb };
  }
  /** The transport closed: whoever waits goes on (and finds it closed). */
  release(): void {
    this.bytes = 0;
    const w = this.waiter;
    this.waiter = null;
    w?.cb();
  }
}
