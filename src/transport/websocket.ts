/**
 * WebSocket transport (transport.message.*): one binary frame per message.
 *
 * Browser-safe: it only needs the standard WebSocket interface, which both
 * the browser's WebSocket and the `ws` package's WebSocket implement.
 */
import { DecodeError } from "../codec/errors.js";
import { Writer } from "../codec/writer.js";
import type { MessageTransport, TransportSink } from "../session/transport.js";
import { decodeMessage, encodeMessage, UnknownMessageVariantError, type Message } from "../wire/message.js";

/** The subset of the WebSocket API this transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface WebSocketTransportOptions {
  /** Largest message accepted (default 1 MiB payload + 128 KiB). */
  maxMessageBytes?: number;
  /** bufferedAmount above which `writable()` makes senders wait (default 4 MiB). */
  highWaterMark?: number;
  description?: string;
}

const OPEN = 1;

export class WebSocketTransport implements MessageTransport {
  private sink: TransportSink | null = null;
  private readonly writer = new Writer(4096);
  private closed = false;
  private failed = false;
  private readonly maxMessageBytes: number;
  private readonly highWaterMark: number;
  readonly description: string;

  constructor(
    private readonly ws: WebSocketLike,
    options: WebSocketTransportOptions = {},
  ) {
    ws.binaryType = "arraybuffer";
    this.maxMessageBytes = options.maxMessageBytes ?? 1024 * 1024 + 128 * 1024;
    this.highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    this.description = options.description ?? "websocket";
    // Listen from construction: the peer's Hello may arrive in the same
    // chunk as the upgrade response, before anyone called start().
    ws.onmessage = (ev) => this.onData(ev.data);
    ws.onclose = () => {
      this.closed = true;
      if (this.sink) this.sink.closed();
      else this.closedEarly = true;
    };
    ws.onerror = () => {
      // onclose follows.
    };
  }

  private early: unknown[] = [];
  private closedEarly = false;

  start(sink: TransportSink): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const d of early) this.onData(d);
    if (this.closedEarly) sink.closed();
  }

  private onData(data: unknown): void {
    if (this.sink === null) {
      if (this.early.length < 1024) this.early.push(data);
      return;
    }
    if (this.failed || this.closed) return;
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (data instanceof Uint8Array) bytes = data;
    else {
      // r[transport.message.binary]: text frames are not roam messages.
      this.fail("message.decode-error", "received a text frame; roam messages are binary");
      return;
    }
    if (bytes.length > this.maxMessageBytes) {
      this.fail("message.decode-error", `message of ${bytes.length} bytes exceeds the ${this.maxMessageBytes} byte limit`);
      return;
    }
    let m: Message;
    try {
      m = decodeMessage(bytes);
    } catch (e) {
      if (e instanceof UnknownMessageVariantError) this.fail("message.unknown-variant", e.message);
      else if (e instanceof DecodeError) this.fail("message.decode-error", e.message);
      else this.fail("message.decode-error", String(e));
      return;
    }
    this.sink!.message(m);
  }

  private fail(rule: string, detail: string): void {
    if (this.failed) return;
    this.failed = true;
    this.sink!.malformed(rule, detail);
  }

  send(m: Message): void {
    if (this.closed || this.ws.readyState !== OPEN) return;
    const w = this.writer;
    w.reset();
    encodeMessage(w, m);
    // The WebSocket keeps the buffer until it is written: send a copy.
    this.ws.send(w.finish());
  }

  flush(): void {
    // Every message is its own frame; nothing is held back.
  }

  writable(): Promise<void> | undefined {
    if (this.closed || this.ws.bufferedAmount < this.highWaterMark) return undefined;
    // The WebSocket API has no drain event: poll gently until below the mark.
    return new Promise((resolve) => {
      const check = () => {
        if (this.closed || this.ws.bufferedAmount < this.highWaterMark) resolve();
        else setTimeout(check, 5);
      };
      setTimeout(check, 5);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.ws.close(1000, "");
    } catch {
      // already closing
    }
  }
}
