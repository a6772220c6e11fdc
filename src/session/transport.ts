import type { Message } from "../wire/message.js";

/**
 * What the session core needs from a transport: move whole messages.
 * Byte-stream (COBS), WebSocket and SHM transports implement it; the core
 * never sees sockets or shared memory. Links are opened over one with
 * `openLink` (transport/open-link.ts).
 *
 * The contract (enforced on the real transports by
 * test/helpers/contract-transport.ts, test/transport-contract.test.ts):
 *
 * - **Bytes are lent to `send`, not given.** The byte arrays of a message
 *   handed to `send` (`payload`, `payloadHead`, metadata byte values) are
 *   often views of the session's shared scratch writers, overwritten by the
 *   next message encoded anywhere in the process. `send` must consume them
 *   before it returns: encode or copy them into memory of its own. Keeping
 *   the message object, or a view of its bytes, to encode later (on a
 *   microtask, at flush, when the socket drains) sends garbage.
 * - **Bytes delivered are given.** A message passed to `sink.message` and
 *   its byte arrays belong to the session from then on (handlers keep bulk
 *   values as views): the transport never writes to that memory again
 *   (no reused receive buffer behind a delivered payload).
 * - **Order and integrity.** Messages arrive at the peer's sink in the
 *   order they were sent, each exactly as sent, none dropped or duplicated,
 *   until the transport closes. (A transport batches writes; it does not
 *   reorder them.)
 * - **`close`** writes out what was queued before it (the Goodbye the
 *   session sends right before closing must reach the peer), then closes;
 *   it is idempotent. After `close` returns, `send` is a no-op and no more
 *   messages are delivered. `sink.closed` still follows, at once or later.
 * - **The sink's callbacks** fire only after `start(sink)` (from inside
 *   `start` for what arrived before it), from the transport's own events, or
 *   from inside `close`; never from inside `send`, `flush` or `writable`
 *   (the session sends while handling a message and must not be re-entered).
 *   `message`/`malformed` never fire after `closed`; `closed` fires exactly
 *   once, whoever closed (the peer, an error, or our `close`). After
 *   `malformed` the session closes the transport; nothing more from that
 *   stream is trusted.
 */
export interface MessageTransport {
  /** Starts delivering to `sink`; called once by the link, before any `send`. */
  start(sink: TransportSink): void;
  /**
   * Queues one message, consuming its bytes before returning (see above).
   * Implementations batch: many small messages queued in one turn of the
   * event loop leave in one write. A no-op once closed.
   */
  send(message: Message): void;
  /** Writes everything queued now (e.g. before closing, or a Credit a sender waits for). */
  flush(): void;
  /**
   * Resolves when the transport's outgoing buffer is below its high-water
   * mark; `undefined` when it already is (no allocation on the fast path).
   * Resolves (does not reject) when the transport closes meanwhile.
   */
  writable(): Promise<void> | undefined;
  /** Flushes what was queued, then closes; idempotent (see above). */
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

/** Where a transport delivers; see the contract on MessageTransport for when each may fire. */
export interface TransportSink {
  /** A decoded message arrived; it and its bytes are the session's now. */
  message(m: Message): void;
  /** Bytes arrived that are not a valid message; `rule` is the spec rule to cite. */
  malformed(rule: string, detail: string): void;
  /** The transport is gone (peer hang-up, error, or our close); fires exactly once. */
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
    // mutation: equivalent — `<= 0`: also sets 0 to 0.
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
