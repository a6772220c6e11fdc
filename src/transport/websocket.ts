/**
 * WebSocket transport (transport.message.*): one binary frame per message.
 *
 * Browser-safe: it only needs the standard WebSocket interface, which both
 * the browser's WebSocket and the `ws` package's WebSocket implement.
 *
 * Hot path: in a browser a message is encoded into a reused buffer and
 * handed to `send()` as a view (the browser copies it at the call), and
 * received ArrayBuffers are decoded where they are. In Node the `ws`
 * WebSocket gets a frame writer (ws-frames.ts) that puts the frames of one
 * event-loop turn in one socket write, and received Buffers come from the
 * `message` event directly (no MessageEvent object, no ArrayBuffer copy).
 */
import { DecodeError } from "../codec/errors.js";
import { Writer } from "../codec/writer.js";
import { isReply, type MessageTransport, type TransportSink } from "../session/transport.js";
import { resolveLimits } from "./limits.js";
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
  /** Stops reading from the socket (`ws` in Node; browsers have no such call). */
  pause?(): void;
  resume?(): void;
}

/**
 * Node's `ws` WebSocket, as far as the fast receive path needs it: its
 * `message` event hands over the payload itself (a Buffer with binaryType
 * "nodebuffer") and whether the frame was binary.
 */
interface NodeWsEvents {
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): unknown;
  on(event: "close", listener: () => void): unknown;
  on(event: "error", listener: (e: Error) => void): unknown;
}

function isNodeWs(ws: WebSocketLike): ws is WebSocketLike & NodeWsEvents {
  return typeof (ws as unknown as { on?: unknown }).on === "function";
}

/**
 * Writes whole binary frames for the transport (Node: ws-frames.ts's
 * WsFrameWriter on the WebSocket's own socket).
 */
export interface WebSocketFrameBatcher {
  /** Queues one complete binary frame whose payload is `head` followed by `body`. */
  frame(head: Uint8Array, body?: Uint8Array): void;
  /** Writes everything queued now. */
  flush(): void;
  /** Drops anything queued and writes nothing more. */
  stop(): void;
}

export interface WebSocketTransportOptions {
  /** Largest message accepted: `resolveLimits(...).maxMessageBytes` (default: that of the default limits). */
  maxMessageBytes?: number;
  /** bufferedAmount above which `writable()` makes senders wait (default 4 MiB). */
  highWaterMark?: number;
  description?: string;
  /** Node: frames go through this batcher instead of `ws.send()` (see ws-frames.ts). */
  frames?: WebSocketFrameBatcher;
}

const OPEN = 1;

export class WebSocketTransport implements MessageTransport {
  private sink: TransportSink | null = null;
  private readonly writer = new Writer(4096);
  private readonly header = new Writer(32);
  private readonly frames: WebSocketFrameBatcher | null;
  private readonly nodeWs: boolean;
  private closed = false;
  private failed = false;
  private readonly maxMessageBytes: number;
  private readonly highWaterMark: number;
  readonly description: string;

  constructor(
    private readonly ws: WebSocketLike,
    options: WebSocketTransportOptions = {},
  ) {
    this.maxMessageBytes = options.maxMessageBytes ?? resolveLimits().maxMessageBytes;
    this.highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    this.description = options.description ?? "websocket";
    this.frames = options.frames ?? null;
    this.nodeWs = isNodeWs(ws);
    // Listen from construction: the peer's Hello may arrive in the same
    // chunk as the upgrade response, before anyone called start().
    const onClose = () => {
      this.closed = true;
      this.frames?.stop();
      this.checkReplyDrain();
      if (this.sink) this.sink.closed();
      else this.closedEarly = true;
    };
    if (isNodeWs(ws)) {
      ws.binaryType = "nodebuffer";
      ws.on("message", (data, isBinary) => this.onData(isBinary ? data : String(data)));
      ws.on("close", onClose);
      ws.on("error", () => {
        // 'close' follows.
      });
    } else {
      ws.binaryType = "arraybuffer";
      ws.onmessage = (ev) => this.onData(ev.data);
      ws.onclose = onClose;
      ws.onerror = () => {
        // onclose follows.
      };
    }
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
    const frames = this.frames;
    if (frames !== null && m.type === "Data" && (m.payload.length >= 512 || m.payloadHead)) {
      // Large element: header and payload go into the frame as they are.
      const h = this.header;
      h.reset();
      h.u8(8);
      h.varint(m.connId);
      h.varint(m.channelId);
      const head = m.payloadHead;
      h.varint((head ? head.length : 0) + m.payload.length);
      if (head) h.raw(head);
      frames.frame(h.view(), m.payload);
      this.sentTotal += h.pos + m.payload.length;
      return;
    }
    const w = this.writer;
    w.reset();
    encodeMessage(w, m);
    // Both copy the bytes before returning: the batcher into its batch, a
    // browser's send() by the WebSocket API's definition.
    if (frames !== null) frames.frame(w.view());
    else if (this.nodeWs) this.ws.send(w.finish()); // `ws` keeps (and masks) the bytes until written: a copy
    else this.ws.send(w.view());
    const n = w.pos;
    this.sentTotal += n;
    if (isReply(m)) {
      this.replyBytes += n;
      this.replyEnds.push(this.sentTotal, n);
    }
  }

  // --- reply backlog: the WebSocket API reports only bufferedAmount, so reply
  // bytes are tracked by where they end in the stream of bytes sent.
  private sentTotal = 0;
  private replyBytes = 0;
  /** Pairs (end offset in sentTotal, length) of replies not yet known written. */
  private replyEnds: number[] = [];
  private replyEndsHead = 0;
  private replyWaiter: { bytes: number; cb: () => void } | null = null;

  replyBacklog(): number {
    const written = this.sentTotal - this.ws.bufferedAmount;
    const q = this.replyEnds;
    while (this.replyEndsHead < q.length && q[this.replyEndsHead]! <= written) {
      this.replyBytes -= q[this.replyEndsHead + 1]!;
      this.replyEndsHead += 2;
    }
    if (this.replyEndsHead >= q.length) {
      this.replyEnds = [];
      this.replyEndsHead = 0;
    }
    return this.closed ? 0 : this.replyBytes;
  }

  onReplyDrain(bytes: number, cb: () => void): void {
    this.replyWaiter = { bytes, cb };
    this.checkReplyDrain();
  }

  private readonly checkReplyDrain = (): void => {
    const w = this.replyWaiter;
    if (w === null) return;
    if (this.closed || this.replyBacklog() <= w.bytes) {
      this.replyWaiter = null;
      w.cb();
      return;
    }
    // No drain event in the WebSocket API: look again shortly.
    setTimeout(this.checkReplyDrain, 5);
  };

  pauseReading(): void {
    this.ws.pause?.();
  }

  resumeReading(): void {
    if (!this.closed) this.ws.resume?.();
  }

  flush(): void {
    // Browser: every message left in its own send(). Node: write the batch now.
    this.frames?.flush();
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
    this.frames?.flush();
    this.closed = true;
    this.frames?.stop();
    try {
      this.ws.close(1000, "");
    } catch {
      // already closing
    }
  }
}
