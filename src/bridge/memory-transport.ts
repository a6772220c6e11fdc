/**
 * An in-process transport pair: the bridge's way to reach a local dispatcher
 * through a real roam link, so a local backend behaves exactly like a remote
 * one (metadata, cancellation, channels with credit, limits).
 *
 * Messages are encoded to bytes on send and decoded on delivery: the session
 * core reuses its writers, so a message must not be shared by reference.
 * Delivery is batched per event-loop turn; `writable()` applies backpressure
 * once more than `highWaterMark` bytes wait for the peer.
 */
import { DecodeError } from "../codec/errors.js";
import type { MessageTransport, TransportSink } from "../session/transport.js";
import { decodeMessage, messageToBytes, type Message } from "../wire/message.js";

const DEFAULT_HIGH_WATER_MARK = 4 * 1024 * 1024;

class MemoryTransport implements MessageTransport {
  peer!: MemoryTransport;
  private sink: TransportSink | null = null;
  private inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private scheduled = false;
  private closed = false;
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly description: string,
    private readonly highWaterMark: number,
  ) {}

  start(sink: TransportSink): void {
    this.sink = sink;
    if (this.inbox.length > 0) this.schedule();
  }

  send(m: Message): void {
    if (this.closed || this.peer.closed) return;
    this.peer.enqueue(messageToBytes(m));
  }

  private enqueue(bytes: Uint8Array): void {
    this.inbox.push(bytes);
    this.inboxBytes += bytes.length;
    if (this.sink) this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.deliver());
  }

  private deliver(): void {
    this.scheduled = false;
    const batch = this.inbox;
    this.inbox = [];
    for (let i = 0; i < batch.length; i++) {
      if (this.closed) break;
      const bytes = batch[i]!;
      this.inboxBytes -= bytes.length;
      let m: Message;
      try {
        m = decodeMessage(bytes);
      } catch (e) {
        this.sink!.malformed("message.decode-error", e instanceof DecodeError ? e.message : String(e));
        return;
      }
      this.sink!.message(m);
    }
    this.peer.drained();
  }

  /** The peer took our messages out of its inbox. */
  private drained(): void {
    if (this.peer.inboxBytes >= this.highWaterMark) return;
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  flush(): void {
    // Delivery is already scheduled; nothing is held back.
  }

  writable(): Promise<void> | undefined {
    if (this.closed || this.peer.inboxBytes < this.highWaterMark) return undefined;
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox = [];
    this.inboxBytes = 0;
    this.releaseWaiters();
    setImmediate(() => this.sink?.closed());
    this.peer.peerClosed();
  }

  private peerClosed(): void {
    if (this.closed) return;
    // Messages already delivered to us still arrive, then the close.
    setImmediate(() => {
      if (this.closed) return;
      if (this.inbox.length > 0) this.deliver();
      this.closed = true;
      this.releaseWaiters();
      this.sink?.closed();
    });
  }

  private releaseWaiters(): void {
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }
}

/** Two connected in-process transports. */
export function memoryTransportPair(highWaterMark = DEFAULT_HIGH_WATER_MARK): [MessageTransport, MessageTransport] {
  const a = new MemoryTransport("memory (bridge side)", highWaterMark);
  const b = new MemoryTransport("memory (service side)", highWaterMark);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
