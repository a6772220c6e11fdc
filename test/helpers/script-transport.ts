/**
 * A MessageTransport driven by the test itself: what the link sends is
 * recorded (with flushes and the close, in order), and the test delivers
 * messages, malformed frames or the transport's end through the sink. No
 * encoding, no sockets: a link over it runs entirely in-process.
 */
import type { MessageTransport, TransportSink } from "../../src/session/transport.js";
import type { Message } from "../../src/wire/message.js";

export class ScriptTransport implements MessageTransport {
  readonly description = "script";
  sink: TransportSink | null = null;
  /** Messages sent, in order. */
  readonly sent: Message[] = [];
  /** "send:<type>", "flush", "close", "pause", "resume" in the order they happened. */
  readonly log: string[] = [];
  closed = false;
  /** What `writable()` returns. */
  writableResult: Promise<void> | undefined = undefined;
  /** Called from inside start() (e.g. to deliver early messages or end the transport). */
  onStart: ((sink: TransportSink) => void) | null = null;
  replyBacklog?: () => number;
  onReplyDrain?: (bytes: number, cb: () => void) => void;

  start(sink: TransportSink): void {
    this.sink = sink;
    this.onStart?.(sink);
  }
  send(m: Message): void {
    if (this.closed) return;
    this.sent.push(m);
    this.log.push(`send:${m.type}`);
  }
  flush(): void {
    this.log.push("flush");
  }
  writable(): Promise<void> | undefined {
    return this.writableResult;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.log.push("close");
    this.sink?.closed();
  }
  pauseReading(): void {
    this.log.push("pause");
  }
  resumeReading(): void {
    this.log.push("resume");
  }

  /** Delivers `m` as if read from the peer. */
  deliver(m: Message): void {
    this.sink!.message(m);
  }
  /** The peer's Hello. */
  hello(maxPayloadSize = 1 << 20, initialChannelCredit = 1 << 16): void {
    this.deliver({ type: "Hello", version: 2, maxPayloadSize, initialChannelCredit });
  }
  /** Sent messages of one type. */
  sentOf<T extends Message["type"]>(type: T): Extract<Message, { type: T }>[] {
    return this.sent.filter((m) => m.type === type) as Extract<Message, { type: T }>[];
  }
  last(): Message | undefined {
    return this.sent.at(-1);
  }
}
