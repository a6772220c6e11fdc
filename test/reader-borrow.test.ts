/**
 * Received Requests/Responses decode bulk `bytes` values as views into the
 * received payload (no second copy) and small ones as copies (a kept small
 * value must not pin the transport's receive buffer).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Reader } from "../src/codec/reader.js";
import { Writer } from "../src/codec/writer.js";
import { BORROW_RECEIVED_BYTES_AT_LEAST } from "../src/session/call-common.js";

function encoded(...values: Uint8Array[]): Uint8Array {
  const w = new Writer(64);
  for (const v of values) w.bytes(v);
  return w.finish();
}

test("Reader.borrowAtLeast: values at the threshold and above are views, smaller ones copies", () => {
  const big = new Uint8Array(BORROW_RECEIVED_BYTES_AT_LEAST).fill(7);
  const small = new Uint8Array(BORROW_RECEIVED_BYTES_AT_LEAST - 1).fill(9);
  const payload = encoded(small, big);
  const r = new Reader(payload);
  r.borrowAtLeast = BORROW_RECEIVED_BYTES_AT_LEAST;
  const s = r.bytes();
  const b = r.bytes();
  r.expectEnd();
  assert.deepEqual(s, small);
  assert.deepEqual(b, big);
  assert.equal(b.buffer, payload.buffer, "the bulk value is a view into the payload");
  assert.notEqual(s.buffer, payload.buffer, "the small value is a copy");
  // The default copies everything.
  const d = new Reader(payload);
  d.bytes();
  assert.notEqual(d.bytes().buffer, payload.buffer);
});

test("over a Unix socket: bulk bytes arguments and results arrive as views, small ones as exact copies", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const path = await import("node:path");
  const { defineService, method, arg } = await import("../src/service/define.js");
  const { t } = await import("../src/schema/index.js");
  const { serve, client } = await import("../src/session/serve.js");
  const { listenUnix, connectUnix } = await import("../src/transport/node.js");
  const Svc = defineService("BorrowTest", { echo: method([arg("data", t.bytes)], t.bytes) });
  const seen: { length: number; bufferBytes: number }[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), "roam-borrow-"));
  const server = await listenUnix({
    path: path.join(dir, "s.sock"),
    dispatcher: serve(Svc, {
      echo: (data) => {
        seen.push({ length: data.length, bufferBytes: data.buffer.byteLength });
        return data;
      },
    }),
  });
  const link = await connectUnix({ path: path.join(dir, "s.sock") });
  try {
    const c = client(Svc, link.root);
    const big = Uint8Array.from({ length: 100_000 }, (_, i) => i & 0xff);
    const small = Uint8Array.from({ length: 100 }, (_, i) => 255 - i);
    const rb = await c.echo(big);
    const rs = await c.echo(small);
    assert.deepEqual(rb, big);
    assert.deepEqual(rs, small);
    // A view shares a larger buffer (the frame with its header, or a slab); a copy owns exactly its bytes.
    assert.ok(rb.buffer.byteLength > rb.length, "the bulk result is a view into the received payload");
    assert.equal(rs.buffer.byteLength, rs.length, "the small result is a copy");
    assert.ok(seen[0]!.bufferBytes > seen[0]!.length, "the bulk argument is a view");
    assert.equal(seen[1]!.bufferBytes, seen[1]!.length, "the small argument is a copy");
  } finally {
    link.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
