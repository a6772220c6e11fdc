/**
 * The byte-stream transport's receive path: bytes are decoded before feed()
 * returns and never kept, so a socket may read into one reused buffer; bytes
 * that arrive before the link starts are kept (copied) and delivered first.
 */
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { cobsEncode } from "../src/codec/cobs.js";
import { Writer } from "../src/codec/writer.js";
import type { TransportSink } from "../src/session/transport.js";
import { StreamTransport } from "../src/transport/stream.js";
import { encodeMessage, type Message } from "../src/wire/message.js";

function framed(ms: Message[]): Uint8Array {
  const parts: number[] = [];
  for (const m of ms) {
    const w = new Writer(64);
    encodeMessage(w, m);
    parts.push(...cobsEncode(w.finish()), 0);
  }
  return Uint8Array.from(parts);
}

function collectingSink(): TransportSink & { got: Message[]; bad: string[] } {
  const got: Message[] = [];
  const bad: string[] = [];
  return { got, bad, message: (m) => got.push(m), malformed: (rule) => bad.push(rule), closed: () => {} };
}

test("bytes fed through one reused buffer, before and after start(), arrive intact and in order", () => {
  const messages: Message[] = [];
  for (let i = 0; i < 200; i++) {
    messages.push(
      i % 3 === 0
        ? { type: "Data", connId: 0, channelId: 2 * i + 1, payload: Uint8Array.from({ length: 300 + i * 7 }, (_, k) => (k * 31 + i) & 0xff) }
        : { type: "Credit", connId: i, channelId: 3, bytes: 1000 + i },
    );
  }
  const stream = framed(messages);
  const t = new StreamTransport(new PassThrough());
  const sink = collectingSink();
  const reused = new Uint8Array(97); // odd size: frames straddle every read
  let at = 0;
  const feedSome = (n: number) => {
    for (let k = 0; k < n && at < stream.length; k++) {
      const len = Math.min(reused.length, stream.length - at);
      reused.set(stream.subarray(at, at + len));
      t.feed(reused.subarray(0, len));
      reused.fill(0xee); // the reader overwrites its buffer with the next read
      at += len;
    }
  };
  feedSome(40); // before start(): must be kept
  t.start(sink);
  feedSome(Number.MAX_SAFE_INTEGER);
  assert.equal(at, stream.length);
  assert.deepEqual(sink.bad, []);
  assert.equal(sink.got.length, messages.length);
  for (let i = 0; i < messages.length; i++) {
    const want = messages[i]!;
    const got = sink.got[i]!;
    assert.equal(got.type, want.type, `message ${i}`);
    if (want.type === "Data" && got.type === "Data") assert.deepEqual(new Uint8Array(got.payload), want.payload, `payload ${i}`);
    else assert.deepEqual(got, want, `message ${i}`);
  }
  t.close();
});
