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
import { ConnectionClosedError } from "../src/session/errors.js";
import { channelKey, ShmFlowControl, ShmReceiveCredit, ShmSendCredit, type CreditHost } from "../src/transport/shm/flow.js";
import type { ChannelTable } from "../src/transport/shm/segment.js";

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
    // Goodbye: a postcard String (length, UTF-8), as the spec says.
    assert.deepEqual([...controlPayload({ type: "Goodbye", connId: 0, reason: "bye é" })], [6, ...new TextEncoder().encode("bye é")]);
    const long = "a reason of more than a few characters ".repeat(10);
    assert.deepEqual([...controlPayload({ type: "Goodbye", connId: 0, reason: long })], [(long.length & 0x7f) | 0x80, long.length >> 7, ...new TextEncoder().encode(long)]);
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
      [MsgType.Goodbye, 2, 0n, controlPayload({ type: "Goodbye", connId: 2, reason: "done" }), { type: "Goodbye", connId: 2, reason: "done" }],
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

describe("SHM credit objects (flow.ts) against a fake channel table", () => {
  function fakeHost(granted = 0) {
    const log: string[] = [];
    const state = { granted, grants: 0 };
    const host: CreditHost = {
      table: {
        granted: () => state.granted >>> 0,
        grant: (_t: number, n: number) => {
          state.grants += n;
          return 0;
        },
      } as unknown as ChannelTable,
      disposed: (key) => log.push(`disposed ${key}`),
      waiting: (_c, on) => log.push(`waiting ${on}`),
      granted: () => log.push("granted"),
    };
    return { host, log, state };
  }

  test("the backend hands out the credit objects its source (the channel map) creates, keyed connId * 2^32 + channelId", () => {
    assert.equal(channelKey(0, 5), 5);
    assert.equal(channelKey(2, 7), 2 * 0x100000000 + 7);
    const { host, log } = fakeHost(100);
    const fc = new ShmFlowControl({
      sender: (connId, channelId) => {
        log.push(`sender ${connId}/${channelId}`);
        const c = new ShmSendCredit(host, channelKey(connId, channelId));
        c.t = 3;
        return c;
      },
      receiver: (connId, channelId, window) => {
        log.push(`receiver ${connId}/${channelId} ${window}`);
        return new ShmReceiveCredit(host, channelKey(connId, channelId), window, () => 0);
      },
    });
    const s = fc.sender(1, 9, 0) as ShmSendCredit;
    const r = fc.receiver(1, 10, 100, () => 0) as ShmReceiveCredit;
    assert.deepEqual(log, ["sender 1/9", "receiver 1/10 100"]);
    assert.equal(s.key, channelKey(1, 9));
    assert.equal(r.key, channelKey(1, 10));
    assert.equal(s.available, 100);
  });

  test("send credit: nothing before the channel is mapped or once dead; a corrupt (negative) balance reads as none", () => {
    const { host, state } = fakeHost(50);
    const s = new ShmSendCredit(host, 1);
    assert.equal(s.available, 0, "not mapped yet");
    s.t = 3;
    assert.equal(s.available, 50);
    assert.equal(s.acquire(20), undefined);
    assert.equal(s.available, 30);
    state.granted = 10; // granted_total went backwards: corruption
    assert.equal(s.available, 0);
    state.granted = 50;
    s.fail(new Error("gone"));
    assert.equal(s.available, 0, "dead");
  });

  test("send credit: `ready` tells whether the first waiter fits; poll lets it through and reports the end of waiting", async () => {
    const { host, log, state } = fakeHost(10);
    const s = new ShmSendCredit(host, 1);
    s.t = 3;
    assert.equal(s.ready, false, "no waiter");
    const w1 = s.acquire(30)!;
    const w2 = s.acquire(5)!;
    assert.deepEqual(log, ["waiting true"]);
    assert.equal(s.ready, false, "30 B do not fit in 10");
    state.granted = 29;
    assert.equal(s.ready, false, "29 B do not fit 30");
    state.granted = 30;
    assert.equal(s.ready, true, "exactly enough");
    state.granted = 33; // w1 fits, then 3 B are left: w2 (5 B) keeps waiting
    assert.equal(s.ready, true);
    assert.equal(s.poll(), true);
    await w1;
    assert.deepEqual(log, ["waiting true"], "w2 still waits: no 'waiting false' yet");
    state.granted = 35;
    assert.equal(s.poll(), true);
    await w2;
    assert.deepEqual(log, ["waiting true", "waiting false"]);
    assert.equal(s.poll(), false, "nobody left");
  });

  test("send credit: dispose fails waiters and tells the host once; detach fails them with ConnectionClosedError", async () => {
    const { host, log } = fakeHost(0);
    const s = new ShmSendCredit(host, 8);
    s.t = 3;
    const w = s.acquire(1)!;
    s.dispose(new Error("reset"));
    await assert.rejects(w, /reset/);
    s.dispose(new Error("again"));
    assert.deepEqual(log, ["waiting true", "waiting false", "disposed 8"], "dispose reports once");
    const s2 = new ShmSendCredit(host, 9);
    s2.t = 3;
    const w2 = s2.acquire(1)!;
    s2.detach();
    assert.equal(s2.t, 0);
    await assert.rejects(w2, (e: unknown) => e instanceof ConnectionClosedError);
    const s3 = new ShmSendCredit(host, 10);
    s3.t = 3;
    s3.fail(new Error("first"));
    s3.fail(new Error("second"));
    await assert.rejects(s3.acquire(1)!, /first/);
    s3.detach();
    await assert.rejects(s3.acquire(1)!, /first/, "detach after a failure keeps the first reason");
    s3.dispose(new Error("late"));
    assert.equal(log.filter((l) => l === "disposed 10").length, 0, "a failed credit is not disposed again");
  });

  test("receive credit: grants go to the table and wake the sender; dispose reports once; detach stops granting", () => {
    const { host, log, state } = fakeHost(0);
    let buffered = 0;
    const r = new ShmReceiveCredit(host, 4, 100, () => buffered);
    r.t = 3;
    assert.equal(r.onData(100), true);
    buffered = 0;
    r.onConsumed(100);
    assert.equal(state.grants, 100);
    assert.deepEqual(log, ["granted"]);
    r.detach();
    assert.equal(r.onData(100), true);
    r.onConsumed(100);
    assert.equal(state.grants, 100, "no grant after detach");
    r.dispose();
    r.dispose();
    assert.deepEqual(log, ["granted", "disposed 4"]);
    const r2 = new ShmReceiveCredit(host, 5, 100, () => 0);
    r2.t = 3;
    r2.dispose();
    assert.equal(r2.t, 0, "a disposed receive credit is unmapped");
    assert.equal(r2.onData(100), true);
    r2.onConsumed(100);
    assert.equal(state.grants, 100, "no grant after dispose");
  });
});
