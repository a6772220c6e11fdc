/**
 * SHM frame payload mapping (frame.ts) without a segment: the msg_type
 * values the spec assigns (r[shm.desc.msg-type]), the byte layout of each
 * control payload, round trips of every message kind, and the rejection of
 * every malformed payload a guest could write (a DecodeError, never a crash
 * or a silently wrong message).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DecodeError } from "../src/codec/errors.js";
import { Writer } from "../src/codec/writer.js";
import { connIdBytes, controlPayload, decodeFrame, FLAG_SLOT_REF, MSG_TYPE_NAMES, MsgType, writeCallPrefix } from "../src/transport/shm/frame.js";
import type { Message } from "../src/wire/message.js";

describe("SHM frame payloads", () => {
  test("msg_type values and the slot-reference flag are the spec's", () => {
    assert.deepEqual(MsgType, { Request: 1, Response: 2, Cancel: 3, Data: 4, Close: 5, Reset: 6, Goodbye: 7, Connect: 8, Accept: 9, Reject: 10 });
    assert.equal(FLAG_SLOT_REF, 1);
    for (const [name, v] of Object.entries(MsgType)) assert.equal(MSG_TYPE_NAMES[v], name);
  });

  test("conn_id is 8 bytes little-endian", () => {
    assert.deepEqual([...connIdBytes(0)], [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...connIdBytes(0x0102_0304)], [4, 3, 2, 1, 0, 0, 0, 0]);
    assert.deepEqual([...connIdBytes(2 ** 40 + 5)], [5, 0, 0, 0, 0, 1, 0, 0]);
  });

  test("control payloads, byte for byte", () => {
    assert.deepEqual([...controlPayload({ type: "Cancel", connId: 3, requestId: 9 })], [3, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...controlPayload({ type: "Close", connId: 1, channelId: 9 })], [1, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...controlPayload({ type: "Reset", connId: 258, channelId: 9 })], [2, 1, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...controlPayload({ type: "Goodbye", connId: 0, reason: "bye é" })], [...new TextEncoder().encode("bye é")]);
    assert.deepEqual([...controlPayload({ type: "Connect", requestId: 1, metadata: [["k", "v"]] })], [1, 1, 107, 0, 1, 118]);
    assert.deepEqual([...controlPayload({ type: "Accept", requestId: 1, connId: 5, metadata: [] })], [5, 0]);
    assert.deepEqual([...controlPayload({ type: "Reject", requestId: 1, reason: "no", metadata: [["n", 7n]] })], [2, 110, 111, 1, 1, 110, 2, 7]);
    assert.throws(() => controlPayload({ type: "Credit", connId: 0, channelId: 1, bytes: 5 }), /no control payload/);
  });

  test("Request/Response prefix: conn_id, metadata, channels, payload length", () => {
    const w = new Writer();
    writeCallPrefix(w, 2, [["a", "b"]], [1, 300], 5);
    assert.deepEqual([...w.finish()], [2, 1, 1, 97, 0, 1, 98, 2, 1, 0xac, 0x02, 5]);
  });

  const call = (connId: number, payload: number[], md: [string, string][] = [], channels: number[] = []) => {
    const w = new Writer();
    writeCallPrefix(w, connId, md, channels, payload.length);
    w.raw(Uint8Array.from(payload));
    return w.finish();
  };

  test("every message kind round-trips through its frame payload", () => {
    const cases: [number, number, bigint, Uint8Array, Message][] = [
      [MsgType.Request, 7, 42n, call(1, [9, 8], [["x", "y"]], [3]), { type: "Request", connId: 1, requestId: 7, methodId: 42n, metadata: [["x", "y"]], channels: [3], payload: Uint8Array.of(9, 8) }],
      [MsgType.Response, 7, 0n, call(0, [1]), { type: "Response", connId: 0, requestId: 7, metadata: [], channels: [], payload: Uint8Array.of(1) }],
      [MsgType.Cancel, 4, 0n, connIdBytes(2), { type: "Cancel", connId: 2, requestId: 4 }],
      [MsgType.Data, 5, 0n, Uint8Array.of(...connIdBytes(1), 0xaa, 0xbb), { type: "Data", connId: 1, channelId: 5, payload: Uint8Array.of(0xaa, 0xbb) }],
      [MsgType.Close, 5, 0n, connIdBytes(0), { type: "Close", connId: 0, channelId: 5 }],
      [MsgType.Reset, 6, 0n, connIdBytes(3), { type: "Reset", connId: 3, channelId: 6 }],
      [MsgType.Goodbye, 2, 0n, new TextEncoder().encode("done"), { type: "Goodbye", connId: 2, reason: "done" }],
      [MsgType.Connect, 1, 0n, controlPayload({ type: "Connect", requestId: 1, metadata: [["t", "a"]] }), { type: "Connect", requestId: 1, metadata: [["t", "a"]] }],
      [MsgType.Accept, 1, 0n, controlPayload({ type: "Accept", requestId: 1, connId: 4, metadata: [] }), { type: "Accept", requestId: 1, connId: 4, metadata: [] }],
      [MsgType.Reject, 1, 0n, controlPayload({ type: "Reject", requestId: 1, reason: "full", metadata: [] }), { type: "Reject", requestId: 1, reason: "full", metadata: [] }],
    ];
    for (const [type, id, methodId, payload, want] of cases) {
      const got = decodeFrame(type, id, methodId, payload);
      if (want.type === "Data" && got.type === "Data") {
        assert.deepEqual([got.connId, got.channelId, [...got.payload]], [want.connId, want.channelId, [...want.payload]]);
      } else {
        assert.deepEqual(got, want, MSG_TYPE_NAMES[type]);
      }
    }
  });

  test("malformed payloads are DecodeErrors", () => {
    const bad: [number, Uint8Array, RegExp][] = [
      [MsgType.Cancel, new Uint8Array(7), /too short/],
      [MsgType.Data, new Uint8Array(3), /too short/],
      [MsgType.Close, new Uint8Array(0), /too short/],
      [MsgType.Reset, new Uint8Array(7), /too short/],
      [MsgType.Cancel, Uint8Array.of(0, 0, 0, 0, 0, 0, 0x20, 0), /too large/],
      [MsgType.Goodbye, Uint8Array.of(0xff, 0xfe), /UTF-8/],
      [MsgType.Request, Uint8Array.of(...call(0, [1]), 0), /./], // a trailing byte
      [MsgType.Request, Uint8Array.of(0, 0, 1), /./], // a channel id missing
      [MsgType.Connect, Uint8Array.of(0, 9), /./],
      [MsgType.Accept, Uint8Array.of(1, 0, 0), /./],
      [MsgType.Reject, Uint8Array.of(1, 0x61, 0, 5), /./],
      [0, new Uint8Array(8), /unknown SHM msg_type 0/],
      [11, new Uint8Array(8), /unknown SHM msg_type 11/],
    ];
    for (const [type, payload, msg] of bad) {
      assert.throws(() => decodeFrame(type, 1, 0n, payload), (e: unknown) => e instanceof DecodeError && msg.test(e.message), `${MSG_TYPE_NAMES[type] ?? type} ${[...payload]}`);
    }
    // The largest safe conn_id is accepted.
    assert.equal((decodeFrame(MsgType.Close, 1, 0n, connIdBytes(Number.MAX_SAFE_INTEGER)) as { connId: number }).connId, Number.MAX_SAFE_INTEGER);
  });
});
