/**
 * StreamTransport's edges over an in-memory duplex whose writes can be held
 * and released one at a time (a slow socket):
 *   - the write high-water mark, exactly at the mark and with the default;
 *     waiting senders wake once half the mark is written, not before;
 *   - reply accounting (replyBacklog / onReplyDrain): reply bytes counted as
 *     framed, other messages not; a drain wait flushes the batch at once;
 *     a closed transport never makes a drain wait;
 *   - the stream failing: reported once with its cause, the stream destroyed,
 *     waiting senders and reply waiters released, nothing sent or read after;
 *   - receive errors: each reported once with the error's own message, no
 *     frame delivered after one, even in the same chunk; bytes fed after
 *     close are dropped;
 *   - pause/resume reading, and a closed transport not resuming;
 *   - close(): flushes first, and destroys a stream the peer never closes
 *     after 2 s (mock timers), but not one that closed by itself.
 */
import assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import { describe, mock, test } from "node:test";
import { CobsFrameDecoder, cobsEncode } from "../src/codec/cobs.js";
import type { TransportSink } from "../src/session/transport.js";
import { StreamTransport } from "../src/transport/stream.js";
import { decodeMessage, messageToBytes, type Message } from "../src/wire/message.js";

/** Keeps every written chunk; while `hold` is set, write callbacks wait for release(). */
class SlowSocket extends Duplex {
  chunks: Buffer[] = [];
  /** The buffers handed to write() themselves (not copies). */
  raw: Buffer[] = [];
  held: (() => void)[] = [];
  hold = false;
  constructor() {
    super({ writableHighWaterMark: 1 << 30 });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    this.raw.push(chunk);
    if (this.hold) this.held.push(() => cb());
    else cb();
  }
  /** Completes the oldest held write. */
  releaseOne(): void {
    const h = this.held.shift();
    assert.ok(h, "a held write to release");
    h();
  }
  messages(): Message[] {
    const out: Message[] = [];
    const d = new CobsFrameDecoder(64 * 1024 * 1024);
    for (const c of this.chunks) d.push(c, (f) => out.push(decodeMessage(f.slice())));
    return out;
  }
}

type Sink = TransportSink & { got: Message[]; bad: [string, string][]; causes: (Error | undefined)[] };
function sink(): Sink {
  const s: Sink = {
    got: [],
    bad: [],
    causes: [],
    message: (m) => s.got.push(m),
    malformed: (rule, detail) => s.bad.push([rule, detail]),
    closed: (cause) => s.causes.push(cause),
  };
  return s;
}

const turn = () => new Promise<void>((r) => setImmediate(r));
/** Waits (bounded) until `cond` holds, one event-loop turn at a time. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await turn();
  assert.ok(cond(), `timed out waiting for ${what}`);
}
/** The bytes a message takes on the stream: COBS-encoded plus the 0x00 delimiter. */
const framedSize = (m: Message) => cobsEncode(messageToBytes(m)).length + 1;
const frame = (m: Message) => Uint8Array.of(...cobsEncode(messageToBytes(m)), 0);
const data = (n: number, channelId = 1, fill = 0x5a): Message => ({ type: "Data", connId: 0, channelId, payload: new Uint8Array(n).fill(fill) });
/**
 * Batch room a zero-free message of `r` raw bytes reserves (cobsMaxEncodedLength + delimiter);
 * its frame takes exactly that when r is not a multiple of 254.
 */
const room = (m: Message) => {
  const r = messageToBytes(m).length;
  return r + Math.floor(r / 254) + 2;
};
/** Data (conn 1, zero-free) whose frame reserves and takes exactly `n` bytes of batch, if one exists. */
function dataOfRoom(n: number, fill: number): Message | undefined {
  const varintLen = (v: number) => (v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x20_0000 ? 3 : 4);
  for (let p = Math.max(0, Math.floor(n - n / 200 - 16)); p < n; p++) {
    const r = 3 + varintLen(p) + p; // tag, conn id 1, channel id 1, length, payload
    if (r + Math.floor(r / 254) + 2 !== n) continue;
    const m: Message = { type: "Data", connId: 1, channelId: 1, payload: new Uint8Array(p).fill(fill) };
    return room(m) === n && framedSize(m) === n ? m : undefined;
  }
  return undefined;
}
/** Two such Data messages taking exactly `n` bytes together. */
function twoOfRoom(n: number, small: number): [Message, Message] {
  for (let s2 = small; s2 < small + 8; s2++) {
    const a = dataOfRoom(n - s2, 0x11);
    const b = dataOfRoom(s2, 0x22);
    if (a && b) return [a, b];
  }
  throw new Error(`no pair of frames fills ${n} bytes`);
}
const credit = (bytes: number): Message => ({ type: "Credit", connId: 0, channelId: 1, bytes });
/** Records whether a promise has settled. */
function watch(p: Promise<void>): { done: boolean } {
  const w = { done: false };
  void p.then(() => (w.done = true));
  return w;
}

describe("StreamTransport: the write high-water mark", () => {
  test("senders wait once exactly the mark is unwritten, not one byte before", () => {
    const m = data(1000);
    const size = framedSize(m);
    for (const [mark, waits] of [
      [size, true],
      [size + 1, false],
    ] as const) {
      const sock = new SlowSocket();
      sock.hold = true;
      const t = new StreamTransport(sock, { highWaterMark: mark });
      t.start(sink());
      t.send(m);
      t.flush();
      assert.equal(sock.chunks.length, 1);
      assert.equal(t.writable() instanceof Promise, waits, `mark ${mark}, ${size} bytes unwritten`);
      t.close();
    }
  });

  test("the default mark (1 MiB) does not hold senders back for a few hundred KiB", () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    assert.equal(t.writable(), undefined, "nothing unwritten");
    sock.hold = true;
    t.send(data(100 * 1024));
    t.flush();
    t.send(data(600 * 1024));
    assert.equal(t.writable(), undefined, "~700 KiB unwritten is below the default mark");
    t.send(data(400 * 1024));
    assert.ok(t.writable() instanceof Promise, "past 1 MiB unwritten: senders wait");
    t.close();
  });

  test("waiting senders wake when half the mark is left unwritten, not earlier", async () => {
    const m = data(2000);
    const size = framedSize(m);
    const sock = new SlowSocket();
    sock.hold = true;
    const t = new StreamTransport(sock, { highWaterMark: 2 * size });
    t.start(sink());
    for (let i = 0; i < 4; i++) {
      t.send(m);
      t.flush();
    }
    const w = t.writable();
    assert.ok(w instanceof Promise, "4 frames unwritten, mark is 2");
    const woke = watch(w);
    // Writes complete one at a time: 3, then 2 frames still unwritten (above half the mark).
    for (const left of [3, 2]) {
      await until(() => sock.held.length === 1, "the next write to reach the socket");
      sock.releaseOne();
      await turn();
      assert.equal(woke.done, false, `${left} frames unwritten: still waiting`);
    }
    await until(() => sock.held.length === 1, "the third write");
    sock.releaseOne();
    await until(() => woke.done, "the sender to wake at 1 frame unwritten (half the mark)");
    assert.equal(t.writable(), undefined);
    sock.releaseOne();
    t.close();
  });
});

describe("StreamTransport: batching at the batch's edges", () => {
  test("frames that fill the 16 KiB batch exactly leave in one write; one byte more is written first, intact", async () => {
    for (const [total, writes] of [
      [16 * 1024, 1],
      [16 * 1024 + 1, 2],
      [16 * 1024 + 2, 2],
    ] as const) {
      const last = dataOfRoom(308, 0x33)!;
      assert.ok(last && (last as { payload: Uint8Array }).payload.length < 512, "the last frame is encoded whole");
      const [a, b] = twoOfRoom(total - 308, 300);
      const sock = new SlowSocket();
      const t = new StreamTransport(sock);
      t.start(sink());
      t.send(a);
      t.send(b);
      t.send(last);
      await turn();
      assert.equal(sock.chunks.length, writes, `${total} bytes of frames`);
      assert.deepEqual(sock.messages(), [a, b, last].map((m) => ({ ...m, payload: new Uint8Array((m as { payload: Uint8Array }).payload) })));
      t.close();
    }
  });

  test("a batch reaching exactly half the large batch size is written at once", () => {
    const [a, b] = twoOfRoom(256 * 1024, 1000);
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    t.send(a);
    assert.equal(sock.chunks.length, 0, "below half: waits for the end of the turn");
    t.send(b);
    assert.equal(sock.chunks.length, 1, "exactly half: written at once");
    assert.equal(sock.messages().length, 2);
    t.close();
  });

  test("large batch buffers: reused once written, at most 4 kept, never taken for a larger batch; a 16 KiB one is not kept", async () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    const sent: Message[] = [];
    const send = (m: Message) => {
      t.send(m);
      sent.push(m);
    };
    // A small batch (copied out) and a >= 8 KiB batch in the 16 KiB buffer (handed over): neither is kept.
    send(credit(1));
    await turn();
    send(data(9000, 1, 0x44));
    await turn();
    assert.equal(sock.raw.length, 2);
    // Four small batches (copied out: nothing to keep), then six large batches, written while the
    // socket holds them: six buffers. The small writes complete first and must not take the places.
    sock.hold = true;
    for (let i = 0; i < 4; i++) {
      send(credit(10 + i));
      await turn();
    }
    for (let i = 0; i < 6; i++) send(data(300_000, 1, 0x10 + i));
    for (let i = 0; i < 4; i++) {
      await until(() => sock.held.length === 1, `small write ${i}`);
      sock.releaseOne();
    }
    const round1 = new Set<ArrayBufferLike>();
    for (let i = 0; i < 6; i++) {
      await until(() => sock.held.length === 1, `write ${i}`);
      round1.add(sock.raw.at(-1)!.buffer);
      sock.releaseOne();
    }
    assert.equal(round1.size, 6);
    await turn();
    sock.hold = false;
    // Six more: the first four reuse the four buffers kept, the rest are new.
    const before = sock.raw.length;
    for (let i = 0; i < 6; i++) send(data(300_000, 1, 0x20 + i));
    const round2 = sock.raw.slice(before).map((c) => c.buffer);
    assert.equal(round2.length, 6);
    assert.deepEqual(
      round2.map((b) => round1.has(b)),
      [true, true, true, true, false, false],
    );
    await turn();
    // A batch larger than a kept buffer gets its own, and everything arrived intact.
    send(data(700_000, 1, 0x30));
    await turn();
    send(data(300_000, 1, 0x31));
    await turn();
    assert.deepEqual(sock.messages(), sent.map((m) => (m.type === "Data" ? { ...m, payload: new Uint8Array(m.payload) } : m)));
    t.close();
  });
});

describe("StreamTransport: reply accounting", () => {
  test("replies count their framed size until written; other messages do not count", async () => {
    const sock = new SlowSocket();
    sock.hold = true;
    const t = new StreamTransport(sock);
    t.start(sink());
    const c = credit(300);
    t.send(c);
    assert.equal(t.replyBacklog(), framedSize(c), "a Credit in the batch");
    t.send(data(100));
    t.send(data(2000));
    t.send({ type: "Close", connId: 0, channelId: 1 });
    assert.equal(t.replyBacklog(), framedSize(c), "Data and Close are not replies");
    const r: Message = { type: "Response", connId: 0, requestId: 1, metadata: [], channels: [], payload: new Uint8Array(10) };
    t.send(r);
    const both = framedSize(c) + framedSize(r);
    assert.equal(t.replyBacklog(), both);
    t.flush();
    assert.equal(t.replyBacklog(), both, "handed to the socket, not yet written");
    let drained = false;
    t.onReplyDrain(0, () => (drained = true));
    await turn();
    assert.equal(drained, false, "the socket still holds the replies");
    sock.releaseOne();
    await until(() => drained, "the reply drain callback");
    assert.equal(t.replyBacklog(), 0);
    t.close();
  });

  test("waiting for replies to drain sends the batch at once", async () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    t.send(credit(1));
    let drained = false;
    t.onReplyDrain(0, () => (drained = true));
    assert.equal(sock.chunks.length, 1, "flushed without waiting for the end of the turn");
    await until(() => drained, "the reply drain callback");
    t.close();
  });

  test("waiting for replies when the batch holds none does not send the batch early", async () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    t.send(data(100));
    let drained = false;
    t.onReplyDrain(0, () => (drained = true));
    assert.equal(sock.chunks.length, 0, "the Data leaves at the end of the turn, with the rest");
    await until(() => drained && sock.chunks.length === 1, "the drain callback and the turn's write");
    t.close();
  });

  test("a closed transport answers a drain wait at once, whatever it still holds", async () => {
    const sock = new SlowSocket();
    sock.hold = true;
    const t = new StreamTransport(sock);
    t.start(sink());
    t.send(credit(7));
    t.flush();
    t.close();
    let drained = false;
    t.onReplyDrain(0, () => (drained = true));
    await turn();
    assert.equal(drained, true);
    assert.equal(sock.held.length, 1, "the write is still held");
  });

  test("nothing sent after close counts as backlog", () => {
    const t = new StreamTransport(new SlowSocket());
    t.start(sink());
    t.close();
    t.send(credit(1));
    assert.equal(t.replyBacklog(), 0);
  });
});

describe("StreamTransport: the stream failing", () => {
  test("an error: reported once with its cause, the stream destroyed, everyone waiting released", async () => {
    const sock = new SlowSocket();
    sock.hold = true;
    const t = new StreamTransport(sock, { highWaterMark: 1024 });
    const s = sink();
    t.start(s);
    t.send(credit(9));
    t.send(data(2000));
    t.flush();
    const w = t.writable();
    assert.ok(w instanceof Promise);
    const woke = watch(w);
    let drained = false;
    t.onReplyDrain(0, () => (drained = true));
    t.pauseReading();
    let closeSeen = false;
    sock.once("close", () => (closeSeen = true));
    const boom = new Error("boom");
    // Emitted, not destroy(err): the transport itself must destroy the stream.
    sock.emit("error", boom);
    assert.deepEqual(s.causes, [boom]);
    assert.equal(sock.destroyed, true, "the transport destroyed the stream");
    assert.equal(drained, true, "the reply waiter was released");
    await until(() => woke.done, "the waiting sender to wake");
    assert.equal(t.writable(), undefined, "a dead transport never makes senders wait");
    await until(() => closeSeen, "the stream's 'close' event");
    await turn();
    assert.equal(s.causes.length, 1, "closed is reported once, not again on 'close'");
    // Nothing is sent or read any more.
    const written = sock.chunks.length;
    t.send(credit(1));
    assert.equal(t.replyBacklog(), 0, "a reply sent after the loss is not counted");
    t.send(data(5000));
    await turn();
    assert.equal(sock.chunks.length, written);
    t.resumeReading();
    assert.equal(sock.isPaused(), true, "a dead transport does not resume reading");
    t.feed(frame(credit(3)));
    assert.deepEqual(s.got, []);
  });

  test("the stream closing by itself: reported once, without a cause", async () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    const s = sink();
    t.start(s);
    sock.destroy();
    await until(() => s.causes.length > 0, "closed");
    await turn();
    assert.deepEqual(s.causes, [undefined]);
    t.close();
    t.flush();
    await turn();
    assert.deepEqual(s.causes, [undefined]);
  });
});

describe("StreamTransport: receive errors", () => {
  test("a bad frame and a good one in the same chunk: the error only", () => {
    const t = new StreamTransport(new PassThrough());
    const s = sink();
    t.start(s);
    t.feed(Uint8Array.of(...cobsEncode(Uint8Array.of(7, 0)), 0, ...frame(credit(4))));
    assert.deepEqual(s.bad.map((b) => b[0]), ["message.decode-error"]);
    assert.deepEqual(s.got, []);
    t.close();
  });

  test("each error is reported once, with the error's own message", () => {
    // A decode error, then (same chunk) an oversized frame: one report.
    const t1 = new StreamTransport(new PassThrough(), { maxFrameBytes: 64 });
    const a = sink();
    t1.start(a);
    t1.feed(Uint8Array.of(...cobsEncode(Uint8Array.of(7, 0)), 0, ...new Uint8Array(100).fill(9)));
    assert.equal(a.bad.length, 1);
    assert.equal(a.bad[0]![0], "message.decode-error");
    assert.match(a.bad[0]![1], /^postcard decode failed/, "the DecodeError's message, not its name");
    // An oversized frame: the FramingError's message.
    const t2 = new StreamTransport(new PassThrough(), { maxFrameBytes: 64 });
    const b = sink();
    t2.start(b);
    t2.feed(new Uint8Array(100).fill(9));
    assert.deepEqual(b.bad, [["message.decode-error", "COBS: frame exceeds 64 bytes without a delimiter"]]);
    t2.feed(frame(credit(1)));
    assert.deepEqual(b.got, []);
    // A COBS block running past its frame.
    const t3 = new StreamTransport(new PassThrough());
    const c = sink();
    t3.start(c);
    t3.feed(Uint8Array.of(5, 1, 0));
    assert.deepEqual(c.bad, [["message.decode-error", "COBS: a block runs past the end of the frame"]]);
    t1.close();
    t2.close();
    t3.close();
  });

  test("the default frame limit is the default limits' (a run past it is cut off, one within it is not)", () => {
    const t = new StreamTransport(new PassThrough());
    const s = sink();
    t.start(s);
    // 1 MiB of frame without a delimiter: within the default limit.
    t.feed(new Uint8Array(1024 * 1024).fill(3));
    assert.deepEqual(s.bad, []);
    t.feed(new Uint8Array(1024 * 1024).fill(3));
    assert.equal(s.bad.length, 1);
    assert.match(s.bad[0]![1], /^COBS: frame exceeds \d+ bytes/);
    t.close();
  });

  test("an exception while delivering a message is reported, not thrown into the stream", () => {
    const t = new StreamTransport(new PassThrough());
    const s = sink();
    s.message = () => {
      throw new Error("handler broke");
    };
    t.start(s);
    t.feed(frame(credit(1)));
    assert.deepEqual(s.bad, [["message.decode-error", "Error: handler broke"]]);
    t.close();
  });

  test("bytes fed after close() are dropped", () => {
    const t = new StreamTransport(new PassThrough());
    const s = sink();
    t.start(s);
    t.feed(frame(credit(1)));
    t.close();
    t.feed(frame(credit(2)));
    assert.deepEqual(s.got, [credit(1)]);
  });
});

describe("StreamTransport: reading and closing", () => {
  test("pauseReading and resumeReading pause and resume the stream", () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    assert.equal(sock.isPaused(), false, "reading once started");
    t.pauseReading();
    assert.equal(sock.isPaused(), true);
    t.resumeReading();
    assert.equal(sock.isPaused(), false);
    t.pauseReading();
    t.close();
    t.resumeReading();
    assert.equal(sock.isPaused(), true, "a closed transport does not resume reading");
  });

  test("the peer ending its side closes the transport (our side is ended too)", async () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    sock.push(null);
    await until(() => sock.writableEnded, "our side to be ended");
    t.close();
  });

  test("close() twice ends the stream once", () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    let ends = 0;
    const end = sock.end.bind(sock);
    sock.end = ((...a: unknown[]) => {
      ends++;
      return (end as (...x: unknown[]) => SlowSocket)(...a);
    }) as typeof sock.end;
    t.close();
    t.close();
    assert.equal(ends, 1);
  });

  test("close() writes what the batch holds, then ends the stream", async () => {
    const sock = new SlowSocket();
    const t = new StreamTransport(sock);
    t.start(sink());
    t.send(credit(5));
    t.close();
    assert.equal(sock.writableEnded, true);
    assert.deepEqual(sock.messages(), [credit(5)]);
  });

  test("a stream the peer never closes is destroyed 2 s after close()", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const sock = new SlowSocket(); // its readable side never ends: it cannot close by itself
      const t = new StreamTransport(sock);
      t.start(sink());
      t.close();
      mock.timers.tick(1999);
      assert.equal(sock.destroyed, false);
      mock.timers.tick(1);
      assert.equal(sock.destroyed, true);
    } finally {
      mock.timers.reset();
    }
  });

  test("a stream that closed by itself after close() is not destroyed again later", async () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const sock = new SlowSocket();
      const t = new StreamTransport(sock);
      t.start(sink());
      t.close();
      let destroys = 0;
      const destroy = sock.destroy.bind(sock);
      sock.destroy = (e?: Error) => {
        destroys++;
        return destroy(e);
      };
      let closeSeen = false;
      sock.once("close", () => (closeSeen = true));
      sock.destroy();
      await until(() => closeSeen, "the stream's 'close' event");
      mock.timers.tick(2000);
      assert.equal(destroys, 1, "the timer was cleared when the stream closed");
    } finally {
      mock.timers.reset();
    }
  });
});
