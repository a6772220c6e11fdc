/**
 * StreamTransport over an in-memory duplex: what it writes decodes back to
 * exactly the messages sent, in order, for every size and both Data paths
 * (encoded whole; header + payload encoded in place; a payload head);
 * batching (one write per turn, a flush once half a large batch is queued);
 * the write high-water mark holding senders back until the bytes drained;
 * and the receive side's errors and end-of-stream handling.
 */
import assert from "node:assert/strict";
import { Duplex, PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { CobsFrameDecoder, cobsEncode } from "../src/codec/cobs.js";
import type { TransportSink } from "../src/session/transport.js";
import { StreamTransport } from "../src/transport/stream.js";
import { decodeMessage, messageToBytes, type Message } from "../src/wire/message.js";

/** A duplex whose written chunks are kept (and can be held back to simulate a slow socket). */
class Capture extends Duplex {
  chunks: Buffer[] = [];
  held: (() => void)[] = [];
  hold = false;
  constructor(highWaterMark = 16 * 1024) {
    super({ writableHighWaterMark: highWaterMark });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    if (this.hold) this.held.push(() => cb());
    else cb();
  }
  release(): void {
    this.hold = false;
    for (const h of this.held.splice(0)) h();
  }
  messages(): Message[] {
    const out: Message[] = [];
    const d = new CobsFrameDecoder(64 * 1024 * 1024);
    for (const c of this.chunks) d.push(c, (f) => out.push(decodeMessage(f.slice())));
    return out;
  }
}

function sink(): TransportSink & { got: Message[]; bad: [string, string][]; closed: () => void; closedCount: number } {
  const s = {
    got: [] as Message[],
    bad: [] as [string, string][],
    closedCount: 0,
    message: (m: Message) => s.got.push(m),
    malformed: (rule: string, detail: string) => s.bad.push([rule, detail]),
    closed: () => {
      s.closedCount++;
    },
  };
  return s;
}

const turn = () => new Promise<void>((r) => setImmediate(r));
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
import { createHash } from "node:crypto";
/** A comparable form: byte fields replaced by their length and digest. */
const norm = (m: Message) =>
  JSON.stringify(m, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `${v.length}:${createHash("sha1").update(v).digest("hex")}` : v));

describe("StreamTransport (sending)", () => {
  test("every message decodes back, in order: Data below and above 512 B, with a payload head, and large", async () => {
    const cap = new Capture();
    const t = new StreamTransport(cap);
    t.start(sink());
    const sent: Message[] = [];
    for (const [i, n] of [0, 1, 254, 511, 512, 513, 4096, 70_000, 600_000].entries()) {
      const m: Message = { type: "Data", connId: i, channelId: 2 * i + 1, payload: bytes(n, i) };
      t.send(m);
      sent.push(m);
    }
    // A payload head is sent in front of the payload, as one element.
    t.send({ type: "Data", connId: 0, channelId: 9, payload: bytes(700, 1), payloadHead: Uint8Array.of(7, 7) } as Message);
    sent.push({ type: "Data", connId: 0, channelId: 9, payload: Uint8Array.of(7, 7, ...bytes(700, 1)) });
    t.send({ type: "Data", connId: 0, channelId: 11, payload: bytes(3, 2), payloadHead: Uint8Array.of(1) } as Message);
    sent.push({ type: "Data", connId: 0, channelId: 11, payload: Uint8Array.of(1, ...bytes(3, 2)) });
    const big: Message = { type: "Request", connId: 0, requestId: 1, methodId: 5n, metadata: [["k", "v"]], channels: [1], payload: bytes(100_000, 3) };
    t.send(big);
    sent.push(big);
    t.send({ type: "Credit", connId: 1, channelId: 3, bytes: 77 });
    sent.push({ type: "Credit", connId: 1, channelId: 3, bytes: 77 });
    await turn();
    t.flush();
    assert.deepEqual(cap.messages().map(norm), sent.map(norm));
    t.close();
  });

  test("messages sent in one turn leave in one write; a large batch is written at once", async () => {
    const cap = new Capture();
    const t = new StreamTransport(cap);
    t.start(sink());
    for (let i = 0; i < 50; i++) t.send({ type: "Credit", connId: 0, channelId: 1, bytes: i });
    assert.equal(cap.chunks.length, 0, "nothing is written before the end of the turn");
    await turn();
    assert.equal(cap.chunks.length, 1, "one write for the whole turn");
    assert.equal(cap.messages().length, 50);
    // 300 KiB queued in one turn: written without waiting for the end of the turn.
    for (let i = 0; i < 3; i++) t.send({ type: "Data", connId: 0, channelId: 1, payload: bytes(100 * 1024, i) });
    assert.ok(cap.chunks.length >= 2, "a batch past half the large size is flushed at once");
    await turn();
    assert.equal(cap.messages().length, 53);
    // Explicit flush with nothing queued writes nothing.
    const before = cap.chunks.length;
    t.flush();
    assert.equal(cap.chunks.length, before);
    t.close();
    t.send({ type: "Credit", connId: 0, channelId: 1, bytes: 1 });
    await turn();
    assert.equal(cap.messages().length, 53, "nothing is written after close");
  });

  test("writable(): senders wait once the high-water mark is unwritten, and resume when it drained", async () => {
    const cap = new Capture(1024);
    const t = new StreamTransport(cap, { highWaterMark: 8 * 1024 });
    t.start(sink());
    assert.equal(t.writable(), undefined, "nothing queued: writable at once");
    cap.hold = true;
    for (let i = 0; i < 4; i++) t.send({ type: "Data", connId: 0, channelId: 1, payload: bytes(4000, i) });
    t.flush();
    const w = t.writable();
    assert.ok(w instanceof Promise, "16 KB unwritten > 8 KiB: senders must wait");
    let woke = false;
    void w.then(() => (woke = true));
    await turn();
    assert.equal(woke, false, "still waiting while nothing was written");
    cap.release();
    await w;
    assert.equal(woke, true);
    assert.equal(t.writable(), undefined);
    t.close();
  });

  test("the transport's own default description and a custom one", () => {
    assert.equal(new StreamTransport(new PassThrough()).description, "stream");
    assert.equal(new StreamTransport(new PassThrough(), { description: "tcp 1.2.3.4" }).description, "tcp 1.2.3.4");
  });
});

describe("StreamTransport (receiving)", () => {
  const frame = (m: Message) => Uint8Array.of(...cobsEncode(messageToBytes(m)), 0);

  test("frames arriving through the stream are delivered; the peer's end closes the transport", async () => {
    const pt = new PassThrough();
    const t = new StreamTransport(pt);
    const s = sink();
    t.start(s);
    pt.write(frame({ type: "Credit", connId: 0, channelId: 1, bytes: 5 }));
    pt.write(frame({ type: "Close", connId: 0, channelId: 1 }));
    await turn();
    assert.deepEqual(s.got.map((m) => m.type), ["Credit", "Close"]);
    pt.end();
    await new Promise((r) => pt.once("close", r));
    await turn();
    assert.equal(s.closedCount, 1, "closed reported once");
    assert.equal(t.writable(), undefined, "a closed transport never makes senders wait");
  });

  test("a malformed frame is reported once as message.decode-error; later bytes are ignored", async () => {
    const pt = new PassThrough();
    const t = new StreamTransport(pt);
    const s = sink();
    t.start(s);
    t.feed(Uint8Array.of(5, 0, 1, 0)); // truncated Request
    t.feed(frame({ type: "Credit", connId: 0, channelId: 1, bytes: 5 }));
    t.feed(Uint8Array.of(9, 1, 0));
    assert.equal(s.bad.length, 1);
    assert.equal(s.bad[0]![0], "message.decode-error");
    assert.deepEqual(s.got, []);
    t.close();
  });

  test("an unknown message variant is message.unknown-variant; a frame over maxFrameBytes is cut off", () => {
    const a = sink();
    const t1 = new StreamTransport(new PassThrough());
    t1.start(a);
    t1.feed(Uint8Array.of(...cobsEncode(Uint8Array.of(12, 0, 0)), 0));
    assert.deepEqual(a.bad.map((b) => b[0]), ["message.unknown-variant"]);
    const b = sink();
    const t2 = new StreamTransport(new PassThrough(), { maxFrameBytes: 64 });
    t2.start(b);
    t2.feed(new Uint8Array(100).fill(7));
    assert.deepEqual(b.bad.map((x) => x[0]), ["message.decode-error"]);
    t1.close();
    t2.close();
  });
});
