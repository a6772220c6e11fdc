/**
 * The batched WebSocket frame writer (src/transport/ws-frames.ts): frames it
 * writes are exactly what the `ws` library's own receiver accepts (lengths in
 * all three encodings, masked client frames, unmasked server frames), the
 * frames of one turn leave in one socket write, and over a real WebSocket 64
 * concurrent calls cost a handful of writes instead of one per message.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import type { Socket } from "node:net";
import { test } from "node:test";
import fc from "fast-check";
import { createRequire } from "node:module";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { serve, client } from "../src/session/serve.js";
import { connectWebSocket, listenWebSocket } from "../src/transport/node.js";
import { applyMask, WsFrameWriter } from "../src/transport/ws-frames.js";

/** ws's frame parser (exported at runtime, not in @types/ws). */
interface WsReceiver {
  on(event: "message", l: (data: Buffer, isBinary: boolean) => void): void;
  on(event: "error", l: (e: Error) => void): void;
  write(chunk: Buffer, cb: (e?: Error | null) => void): void;
}
const { Receiver } = createRequire(import.meta.url)("ws") as {
  Receiver: new (o: { isServer: boolean; binaryType: string; maxPayload: number }) => WsReceiver;
};

function naiveMask(bytes: Uint8Array, key: number): Uint8Array {
  const k = [(key >>> 24) & 0xff, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff];
  return bytes.map((b, i) => b ^ k[i & 3]!);
}

test("applyMask equals a byte-by-byte XOR at every length and alignment", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300, size: "max" }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 0xffffffff }), (data, offset, key) => {
      const buf = new Uint8Array(offset + data.length + 5);
      buf.set(data, offset);
      applyMask(buf, offset, data.length, key);
      assert.deepEqual(buf.subarray(offset, offset + data.length), naiveMask(data, key));
      // Bytes around the range are untouched.
      assert.ok(buf.subarray(0, offset).every((b) => b === 0));
      assert.ok(buf.subarray(offset + data.length).every((b) => b === 0));
    }),
    { numRuns: 300 },
  );
});

/** Frames written by a WsFrameWriter, parsed back by ws's own Receiver. */
async function roundTrip(mask: boolean, payloads: Uint8Array[]): Promise<{ writes: number; got: Uint8Array[] }> {
  const chunks: Uint8Array[] = [];
  const writer = new WsFrameWriter({ write: (c, cb) => (chunks.push(Buffer.from(c)), cb?.(), true) }, mask);
  for (const p of payloads) writer.frame(p.subarray(0, 3), p.subarray(3));
  writer.flush();
  // A client's frames are read by a server receiver (which insists on masks), and vice versa.
  const receiver = new Receiver({ isServer: mask, binaryType: "nodebuffer", maxPayload: 0 });
  const got: Uint8Array[] = [];
  const errors: Error[] = [];
  receiver.on("message", (data: Buffer, isBinary: boolean) => {
    assert.equal(isBinary, true);
    got.push(new Uint8Array(data));
  });
  receiver.on("error", (e: Error) => errors.push(e));
  await new Promise<void>((resolve, reject) => receiver.write(Buffer.concat(chunks), (e?: Error | null) => (e ? reject(e) : resolve())));
  assert.deepEqual(errors, []);
  return { writes: chunks.length, got };
}

const SIZES = [3, 4, 125, 126, 127, 65535, 65536, 70_000];

for (const mask of [true, false]) {
  test(`frames of every length encoding pass ws's receiver (${mask ? "client, masked" : "server, unmasked"})`, async () => {
    const payloads = SIZES.map((n, i) => Uint8Array.from({ length: n }, (_, j) => (j * 31 + i) & 0xff));
    const { got } = await roundTrip(mask, payloads);
    assert.equal(got.length, payloads.length);
    for (let i = 0; i < payloads.length; i++) assert.deepEqual(got[i], payloads[i], `frame ${i} (${SIZES[i]} bytes)`);
  });
}

test("small frames queued in one turn leave in one socket write", async () => {
  const payloads = Array.from({ length: 100 }, (_, i) => Uint8Array.from({ length: 20 }, (_, j) => i + j));
  const { writes, got } = await roundTrip(true, payloads);
  assert.equal(writes, 1);
  assert.equal(got.length, 100);
});

test("64 concurrent calls over a real WebSocket: a handful of server socket writes, not one per response", async () => {
  const httpServer = http.createServer();
  let serverWrites = 0;
  // Registered before the WebSocket server's own 'upgrade' listener: counts every write on the connection.
  httpServer.on("upgrade", (_req, socket: Socket) => {
    const write = socket.write.bind(socket) as (...a: unknown[]) => boolean;
    (socket as unknown as { write: (...a: unknown[]) => boolean }).write = (...a: unknown[]) => {
      serverWrites++;
      return write(...a);
    };
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const server = await listenWebSocket({ server: httpServer, dispatcher: serve(Testbed, testbedImpl) });
  const port = (httpServer.address() as { port: number }).port;
  const link = await connectWebSocket(`ws://127.0.0.1:${port}/`);
  try {
    const tb = client(Testbed, link.root);
    assert.equal(await tb.echo("warm"), "warm");
    const before = serverWrites;
    const msgs = Array.from({ length: 64 }, (_, i) => `message ${i}`);
    const replies = await Promise.all(msgs.map((m) => tb.echo(m)));
    assert.deepEqual(replies, msgs);
    const writes = serverWrites - before;
    assert.ok(writes >= 1 && writes <= 8, `64 responses took ${writes} socket writes`);
  } finally {
    link.close();
    await server.close();
    await new Promise<void>((resolve) => httpServer.close(() => resolve()));
  }
});
