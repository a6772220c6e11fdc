/**
 * Byte-stream transport (transport.bytestream.cobs): each message is
 * postcard-encoded, COBS-encoded and followed by 0x00. Works over any Node
 * Duplex: TCP and Unix sockets, a child's stdio, a TLS socket.
 *
 * Writes are batched: everything sent during one turn of the event loop
 * leaves in one `write()` (one syscall), however many messages it holds.
 */
import type { Duplex } from "node:stream";
import { CobsFrameDecoder, cobsEncodeInPlace, cobsEncodeInto, cobsMaxEncodedLength } from "../codec/cobs.js";
import { DecodeError, FramingError } from "../codec/errors.js";
import { Writer } from "../codec/writer.js";
import { nativeCobs } from "./native-cobs.js";
import { resolveLimits } from "./limits.js";
import { isReply, ReplyBacklog, type MessageTransport, type TransportSink } from "../session/transport.js";
import { decodeMessage, encodeMessage, UnknownMessageVariantError, type Message } from "../wire/message.js";

export interface StreamTransportOptions {
  /** Largest encoded frame accepted before the peer is cut off: `resolveLimits(...).maxFrameBytes` (default: that of the default limits). */
  maxFrameBytes?: number;
  /** Outgoing bytes buffered in the socket before `writable()` makes senders wait (default 4 MiB). */
  highWaterMark?: number;
  description?: string;
}

// mutation: equivalent — the batch sizes (and the scratch size below) only choose how bytes are
// grouped into writes and buffers, not which bytes are written.
const SMALL_BATCH = 16 * 1024;
/** Batch size once large messages flow: one write per this many bytes. */
const LARGE_BATCH = 512 * 1024;
/** Recycled batch buffers kept per transport (bounds the pool to a few MiB). */
const MAX_SPARE_BATCHES = 4;
/**
 * Encoding scratch, shared by every transport (encoding is synchronous): a
 * private 64 KiB buffer per link made each idle connection cost 64 KiB.
 */
const scratch = new Writer(64 * 1024);

export class StreamTransport implements MessageTransport {
  private sink: TransportSink | null = null;
  private readonly decoder: CobsFrameDecoder;
  private batch: Buffer;
  private batchPos = 0;
  private flushScheduled = false;
  private closed = false;
  private failed = false;
  private readonly highWaterMark: number;
  private drainWaiters: (() => void)[] = [];
  readonly description: string;

  constructor(
    private readonly stream: Duplex,
    options: StreamTransportOptions = {},
  ) {
    this.decoder = new CobsFrameDecoder(options.maxFrameBytes ?? resolveLimits().maxFrameBytes, nativeCobs?.decodeStream);
    this.highWaterMark = options.highWaterMark ?? 1024 * 1024;
    this.batch = Buffer.allocUnsafe(SMALL_BATCH);
    this.description = options.description ?? "stream";
  }

  start(sink: TransportSink): void {
    this.sink = sink;
    // mutation: equivalent — the `[]` is only reached by a second start(), which the contract rules out.
    const early = this.early ?? [];
    this.early = null;
    for (const c of early) this.feed(c);
    // A socket created with `onread` delivers through feed() and emits no 'data'.
    this.stream.on("data", (chunk: Buffer) => this.feed(chunk));
    // mutation: equivalent — a Node Writable emits 'drain' only once every write completed, and each
    // write's callback (flush) already woke the writers when the unwritten bytes fell to half the mark.
    this.stream.on("drain", () => this.wakeWriters());
    // An error (a reset, EPIPE) ends the link at once: 'close' may come much
    // later, and until then senders would keep encoding into a dead socket.
    this.stream.on("error", (e: Error) => this.lost(e));
    this.stream.on("close", () => this.lost());
    this.stream.on("end", () => {
      // Peer half-closed: we are done too.
      this.close();
    });
  }

  private lostReported = false;

  private lost(cause?: Error): void {
    this.closed = true;
    this.wakeWriters();
    this.replies.release();
    if (this.lostReported) return;
    this.lostReported = true;
    if (cause !== undefined) this.stream.destroy();
    // mutation: equivalent — `this.sink.closed`: lost() is only reached from listeners start() adds
    // after setting the sink.
    this.sink?.closed(cause);
  }

  private readonly onFrameBound = (frame: Uint8Array) => this.onFrame(frame);
  /** Bytes fed before start() (a socket reading through `onread` starts at once). */
  private early: Uint8Array[] | null = [];

  /**
   * Feeds received bytes. The transport decodes them before returning and
   * keeps no reference, so a socket's `onread` can reuse one read buffer.
   */
  feed(chunk: Uint8Array): void {
    if (this.early !== null) {
      // Before start(): keep a copy (the caller may reuse its buffer).
      this.early.push(chunk.slice());
      return;
    }
    if (this.failed || this.closed) return;
    try {
      this.decoder.push(chunk, this.onFrameBound);
    } catch (e) {
      this.fail(e);
    }
  }

  private onFrame(frame: Uint8Array): void {
    if (this.failed) return;
    let m: Message;
    try {
      m = decodeMessage(frame);
    } catch (e) {
      this.fail(e);
      return;
    }
    this.sink!.message(m);
  }

  private fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    const sink = this.sink!;
    if (e instanceof UnknownMessageVariantError) sink.malformed("message.unknown-variant", e.message);
    else if (e instanceof FramingError || e instanceof DecodeError) sink.malformed("message.decode-error", e.message);
    else sink.malformed("message.decode-error", String(e));
  }

  send(m: Message): void {
    if (this.closed) return;
    // mutation: equivalent — this only picks the faster of two encoders that write the same bytes
    // (encodeMessage joins a payload head too); Data is not a reply, so the accounting is the same.
    if (m.type === "Data" && (m.payload.length >= 512 || m.payloadHead)) {
      this.sendData(m.connId, m.channelId, m.payload, m.payloadHead);
      return;
    }
    const n = this.encodeFrame(m);
    if (isReply(m)) this.batchReplyBytes += n;
    this.afterAppend();
  }

  /** Appends one framed message to the batch; returns its encoded size. */
  private encodeFrame(m: Message): number {
    const w = scratch;
    w.reset();
    encodeMessage(w, m);
    const raw = w.view();
    this.reserve(cobsMaxEncodedLength(raw.length) + 1);
    const start = this.batchPos;
    // mutation: equivalent — the addon and the JS encoder write the same bytes (codec tests compare them).
    const end = nativeCobs && raw.length >= 512 ? nativeCobs.encode(this.batch, this.batchPos, raw) : cobsEncodeInto(raw, this.batch, this.batchPos);
    this.batch[end] = 0;
    this.batchPos = end + 1;
    return this.batchPos - start;
  }

  /**
   * Data with a large payload: the header and payload are copied straight
   * into the batch and COBS-encoded there in place (no intermediate copy).
   */
  private sendData(connId: number, channelId: number, payload: Uint8Array, payloadHead?: Uint8Array): void {
    const h = this.header;
    h.reset();
    h.u8(8);
    h.varint(connId);
    h.varint(channelId);
    if (payloadHead) {
      h.varint(payloadHead.length + payload.length);
      h.raw(payloadHead);
    } else {
      h.varint(payload.length);
    }
    const n = h.pos + payload.length;
    const need = cobsMaxEncodedLength(n) + 1;
    this.reserve(need);
    const at = this.batchPos;
    let end: number;
    // mutation: equivalent — `false`: the JS path writes the same bytes as the addon (stream-purejs test).
    if (nativeCobs) {
      end = nativeCobs.encode(this.batch, at, h.view(), payload);
    } else {
      this.batch.set(h.view(), at + 1);
      this.batch.set(payload, at + 1 + h.pos);
      end = cobsEncodeInPlace(this.batch, at, n);
    }
    this.batch[end] = 0;
    this.batchPos = end + 1;
    this.afterAppend();
  }

  private readonly header = new Writer(32);

  private reserve(need: number): void {
    if (this.batchPos + need > this.batch.length) {
      // mutation: equivalent — `batchPos >= 0`: flush() of an empty batch does nothing.
      if (this.batchPos > 0) this.flush();
      // Large messages: make room for several, so bulk streams still batch.
      // mutation: equivalent — `>=` or `true`: a fresh (or spare) buffer of at least `need` bytes
      // instead of the current one, after the flush above emptied it: the same bytes are written.
      if (need > this.batch.length) {
        // The batch is never smaller than SMALL_BATCH, so `need` here is above it: a large batch.
        // (This was `need >= SMALL_BATCH / 2 ? LARGE_BATCH : SMALL_BATCH`, always LARGE_BATCH here.)
        const size = Math.max(need, LARGE_BATCH);
        this.batch = (size === LARGE_BATCH ? this.spareBatches.pop() : undefined) ?? Buffer.allocUnsafe(size);
      }
    }
  }

  private afterAppend(): void {
    if (this.batchPos >= LARGE_BATCH / 2) {
      this.flush();
    // mutation: equivalent — `true` (or never setting the flag): extra setImmediate flushes run in the
    // same check phase and find the batch already written (or hold later bytes, written the same).
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.scheduledFlush);
    }
  }

  private readonly scheduledFlush = () => {
    this.flushScheduled = false;
    this.flush();
  };

  flush(): void {
    if (this.batchPos === 0 || this.closed) {
      this.batchPos = 0;
      this.batchReplyBytes = 0;
      return;
    }
    const n = this.batchPos;
    let out: Buffer;
    let recycle: Buffer | null = null;
    // mutation: equivalent — which batches are handed over rather than copied changes buffers, not bytes;
    // `false` (always copy) is caught by the buffer-reuse test, which needs large batches handed over.
    if (n >= SMALL_BATCH / 2) {
      // Large batch: hand the buffer itself to the socket and continue in a
      // recycled one (fresh allocations would page-fault on every batch).
      out = this.batch.subarray(0, n);
      if (this.batch.length === LARGE_BATCH) recycle = this.batch;
      this.batch = this.spareBatches.pop() ?? Buffer.allocUnsafe(SMALL_BATCH);
    } else {
      // Small batch: copy into a pooled buffer and reuse ours.
      out = Buffer.allocUnsafe(n);
      this.batch.copy(out, 0, 0, n);
    }
    this.batchPos = 0;
    this.unwritten += n;
    const replyBytes = this.batchReplyBytes;
    this.batchReplyBytes = 0;
    this.replies.add(replyBytes);
    this.stream.write(out, () => {
      // The socket no longer needs the bytes: the buffer can be reused.
      if (recycle !== null && this.spareBatches.length < MAX_SPARE_BATCHES) this.spareBatches.push(recycle);
      this.unwritten -= n;
      // mutation: equivalent — `written(0)` wakes nobody: a drain waiter exists only while more than its
      // bytes are unwritten, and only a written(n > 0) brings the count down to it.
      if (replyBytes > 0) this.replies.written(replyBytes);
      // Wake senders at half the mark, before the socket runs dry ('drain'
      // only fires once everything was written, which leaves a gap).
      // mutation: equivalent — the `drainWaiters.length > 0` test: waking an empty list does nothing.
      if (this.unwritten <= this.highWaterMark / 2 && this.drainWaiters.length > 0) this.wakeWriters();
    });
  }

  /** Bytes handed to the stream and not yet written to the OS. */
  private unwritten = 0;
  /** Reply bytes in the batch being filled, and handed to the stream but unwritten. */
  private batchReplyBytes = 0;
  private readonly replies = new ReplyBacklog();

  replyBacklog(): number {
    return this.replies.bytes + this.batchReplyBytes;
  }

  onReplyDrain(bytes: number, cb: () => void): void {
    if (this.closed) {
      queueMicrotask(cb);
      return;
    }
    // Bytes still in the batch are not yet with the socket: get them there.
    if (this.batchReplyBytes > 0) this.flush();
    this.replies.onDrain(bytes, cb);
  }

  pauseReading(): void {
    this.stream.pause();
  }

  resumeReading(): void {
    if (!this.closed) this.stream.resume();
  }
  /** LARGE_BATCH buffers whose writes completed, ready for reuse. */
  private readonly spareBatches: Buffer[] = [];

  writable(): Promise<void> | undefined {
    if (this.closed || this.unwritten < this.highWaterMark) return undefined;
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private wakeWriters(): void {
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.stream.end();
    // Make sure no handle outlives the link even if the peer never closes.
    const t = setTimeout(() => this.stream.destroy(), 2000);
    // mutation: equivalent — `t.unref()`: Node's timers always have unref (the `?.` is for other runtimes).
    t.unref?.();
    this.stream.once("close", () => clearTimeout(t));
  }
}
