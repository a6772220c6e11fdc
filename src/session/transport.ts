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
