/**
 * Two MessageTransports joined in memory (each message is encoded and
 * decoded, so nothing is shared between the sides). `drop(cause)` makes both
 * sides see the transport vanish at once, like a cut cable.
 */
import type { MessageTransport, TransportSink } from "../../src/session/transport.js";
import { decodeMessage, messageToBytes, type Message } from "../../src/wire/message.js";

class MemoryEnd implements MessageTransport {
  sink: TransportSink | null = null;
  peer: MemoryEnd | null = null;
  private early: Message[] = [];
  closed = false;
  constructor(readonly description: string) {}
  start(sink: TransportSink): void {
    this.sink = sink;
    const e = this.early;
    this.early = [];
    for (const m of e) sink.message(m);
    if (this.closed) sink.closed();
  }
  deliver(m: Message): void {
    if (this.closed) return;
    if (this.sink) this.sink.message(m);
    else this.early.push(m);
  }
  send(m: Message): void {
    if (this.closed) return;
    const bytes = messageToBytes(m).slice();
    const peer = this.peer!;
    queueMicrotask(() => peer.deliver(decodeMessage(bytes)));
  }
  flush(): void {}
  writable(): Promise<void> | undefined {
    return undefined;
  }
  close(): void {
    this.end(undefined);
    const p = this.peer!;
    queueMicrotask(() => p.end(undefined));
  }
  end(cause: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.sink?.closed(cause);
  }
}

export function memoryTransportPair(): { a: MessageTransport; b: MessageTransport; drop(cause?: Error): void } {
  const a = new MemoryEnd("memory a");
  const b = new MemoryEnd("memory b");
  a.peer = b;
  b.peer = a;
  return {
    a,
    b,
    drop: (cause = new Error("memory transport dropped")) => {
      a.end(cause);
      b.end(cause);
    },
  };
}
