/**
 * StreamTransport's sending side on the pure-JS COBS path, in this process:
 * the addon is chosen once at module load, so ROAM_NO_NATIVE=1 is set before
 * the transport is imported. (pure-js-path.test runs the stream tests in a
 * child process instead, where a mutation run's per-test coverage cannot see
 * them.) Every Data size around the in-place switch (512 B), with and without
 * a payload head, and messages encoded whole above and below 512 B must
 * decode back exactly, whatever the batch held before them.
 */
import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import { test } from "node:test";
import { CobsFrameDecoder } from "../src/codec/cobs.js";
import type { TransportSink } from "../src/session/transport.js";
import { decodeMessage, type Message } from "../src/wire/message.js";

process.env["ROAM_NO_NATIVE"] = "1";
const { nativeCobs } = await import("../src/transport/native-cobs.js");
const { StreamTransport } = await import("../src/transport/stream.js");

class Capture extends Duplex {
  chunks: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    cb();
  }
  messages(): Message[] {
    const out: Message[] = [];
    const d = new CobsFrameDecoder(64 * 1024 * 1024);
    for (const c of this.chunks) d.push(c, (f) => out.push(decodeMessage(f.slice())));
    return out;
  }
}

const noSink: TransportSink = { message: () => {}, malformed: () => {}, closed: () => {} };
/** Bytes with zeros in them (COBS must code them) and long zero-free runs. */
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i % 300 < 260 ? (i * 7 + seed) % 255 + 1 : 0));
const turn = () => new Promise<void>((r) => setImmediate(r));
/** Message equality with byte fields compared by content. */
const same = (a: Message[], b: Message[]) => assert.deepEqual(a.map(plain), b.map(plain));
const plain = (m: Message) => JSON.parse(JSON.stringify(m, (_k, v) => (v instanceof Uint8Array ? [...v] : typeof v === "bigint" ? `${v}n` : v)));

test("the native addon is not loaded here", () => {
  assert.equal(nativeCobs, null);
});

test("pure-JS path: Data around 512 B, with a payload head, and large; whole messages above 512 B", async () => {
  const cap = new Capture();
  const t = new StreamTransport(cap);
  t.start(noSink);
  const sent: Message[] = [];
  const send = (m: Message, want: Message = m) => {
    t.send(m);
    sent.push(want);
  };
  // A small message first, so every in-place encoding starts mid-batch.
  send({ type: "Credit", connId: 1, channelId: 3, bytes: 9 });
  for (const [i, n] of [0, 5, 511, 512, 513, 1000, 20_000, 300_000].entries()) {
    send({ type: "Data", connId: i, channelId: 2 * i + 1, payload: bytes(n, i) });
  }
  const head = Uint8Array.of(1, 0, 2);
  const payload = bytes(2000, 7);
  send({ type: "Data", connId: 300, channelId: 5, payload, payloadHead: head }, { type: "Data", connId: 300, channelId: 5, payload: Uint8Array.of(...head, ...payload) });
  send({ type: "Request", connId: 1, requestId: 2, methodId: 77n, metadata: [["k", bytes(700, 3)]], channels: [1], payload: bytes(900, 4) });
  send({ type: "Response", connId: 1, requestId: 2, metadata: [], channels: [], payload: bytes(100, 5) });
  await turn();
  t.flush();
  same(cap.messages(), sent);
  t.close();
});
