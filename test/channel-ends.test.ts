/**
 * Rx and Tx as units (issue 19): one end bound to a recording host, driven
 * message by message. Rx: decoding, the credit it returns as values are
 * taken, end/fail/reset and their order against buffered values, aborted
 * waits, levels and stats. Tx: the copy and zero-copy paths, the size and
 * window checks, waiting for credit (and for its call to bind it), close and
 * reset ordering, and the per-turn budget shared by all senders.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Rx } from "../src/session/channel/rx.js";
import { Tx } from "../src/session/channel/tx.js";
import { ChannelClosedError, ChannelResetError, ConnectionClosedError, EncodeFailedError, ProtocolViolation } from "../src/session/errors.js";
import type { LevelChange } from "../src/session/pressure.js";
import { t } from "../src/schema/index.js";
import { boundRx, boundTx, element, recorder, sendsBeforeYield, settled, state } from "./helpers/channel-recorder.js";

function violation(f: () => void): ProtocolViolation {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProtocolViolation, `expected a ProtocolViolation, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a protocol violation");
}

describe("Rx", () => {
  test("buffers values, counts them, and grants credit back once a quarter of the window is free", async () => {
    const h = recorder({ window: 64 });
    const rx = boundRx(h);
    const levels: LevelChange[] = [];
    rx.onLevel((c) => levels.push(c));
    for (let i = 1; i <= 3; i++) rx.deliver(element(9, i)); // 10 bytes each
    assert.deepEqual(rx.stats(), {
      channelId: 3,
      side: "receive",
      window: 64,
      bufferedBytes: 30,
      creditOutstanding: 34,
      inFlightBytes: 30,
      level: "green",
      totalBytes: 30,
      totalValues: 3,
    });
    rx.deliver(element(9, 4));
    assert.equal(rx.stats().level, "yellow", "40 of 64 bytes buffered");
    assert.deepEqual(levels, [{ channelId: 3, side: "receive", from: "green", to: "yellow", fill: 40 / 64 }]);
    assert.deepEqual((await rx.next()).value, new Uint8Array(9).fill(1));
    // 24 left to the sender + 30 buffered = 54 in use: more than 3/4 of 64, no grant yet.
    assert.deepEqual(h.log, []);
    assert.equal(rx.stats().bufferedBytes, 30);
    assert.deepEqual((await rx.next()).value, new Uint8Array(9).fill(2));
    // 24 + 20 = 44 <= 48: grant up to the full window.
    assert.deepEqual(h.log, ["credit:3:20"]);
    assert.equal(rx.stats().creditOutstanding, 44);
    assert.equal(rx.stats().level, "green", "20 of 64 is below yellow - hysteresis");
    assert.deepEqual((await rx.next()).value, new Uint8Array(9).fill(3));
    assert.deepEqual((await rx.next()).value, new Uint8Array(9).fill(4));
    assert.equal(rx.stats().bufferedBytes, 0);
    assert.equal(rx.stats().totalValues, 4);
  });

  test("a waiting next() takes the value at once, and its credit is returned", async () => {
    const h = recorder({ window: 64 });
    const rx = boundRx(h);
    const p = rx.next();
    rx.deliver(element(19, 7));
    assert.deepEqual(await settled(p), { value: new Uint8Array(19).fill(7), done: false });
    assert.deepEqual(h.log, ["credit:3:20"]);
    assert.equal(rx.stats().bufferedBytes, 0);
    assert.equal(rx.stats().totalBytes, 20);
  });

  test("values are views into the received payload (no copy)", async () => {
    const rx = boundRx(recorder());
    const payload = element(5, 1);
    rx.deliver(payload);
    const v = (await rx.next()).value as Uint8Array;
    assert.equal(v.buffer, payload.buffer);
  });

  test("the observer sees each value as it arrives", () => {
    const rx = boundRx(recorder());
    const seen: number[] = [];
    rx.observe((v) => seen.push(v.length));
    rx.deliver(element(2));
    rx.deliver(element(4));
    assert.deepEqual(seen, [2, 4]);
  });

  test("credit overrun and undecodable data are violations naming the connection", () => {
    const h = recorder({ window: 16, connId: 9 });
    const rx = boundRx(h);
    rx.deliver(element(9)); // 10 of 16
    const over = violation(() => rx.deliver(element(6))); // 7 > 6 left
    assert.equal(over.rule, "flow.channel.credit-overrun");
    assert.equal(over.connId, 9);
    rx.deliver(element(5)); // exactly the 6 left is fine
    const rx2 = boundRx(h, 5);
    const bad = violation(() => rx2.deliver(Uint8Array.of(5, 1)));
    assert.equal(bad.rule, "channeling.data.invalid");
    assert.equal(bad.connId, 9);
  });

  test("after end or fail, late data is ignored, even beyond the credit", async () => {
    const h = recorder({ window: 16 });
    const ended = boundRx(h);
    ended.end();
    ended.deliver(element(40));
    assert.deepEqual(await ended.next(), { value: undefined, done: true });
    assert.equal(ended.stats().totalValues, 0);
    const failed = boundRx(h, 5);
    failed.fail(new ChannelResetError("remote"));
    failed.deliver(element(40));
    await assert.rejects(failed.next(), ChannelResetError);
    assert.equal(failed.stats().totalValues, 0);
  });

  test("end: buffered values first, then done; a waiter is told done; end is idempotent", async () => {
    const rx = boundRx(recorder());
    rx.deliver(element(1, 1));
    rx.end();
    rx.end();
    assert.deepEqual(await rx.next(), { value: Uint8Array.of(1), done: false });
    assert.deepEqual(await rx.next(), { value: undefined, done: true });
    const rx2 = boundRx(recorder());
    const p = rx2.next();
    rx2.end();
    assert.deepEqual(await settled(p), { value: undefined, done: true });
    assert.equal(await rx2.recv(), undefined);
  });

  test("fail discards buffered values, rejects the waiter, and the first error stays", async () => {
    const h = recorder();
    const rx = boundRx(h);
    rx.deliver(element(3));
    const first = new ConnectionClosedError("gone", "local");
    rx.fail(first);
    rx.fail(new ChannelResetError("remote"));
    assert.equal(rx.stats().bufferedBytes, 0);
    await assert.rejects(rx.next(), (e) => e === first);
    const rx2 = boundRx(h, 5);
    const p = rx2.next();
    rx2.fail(first);
    await assert.rejects(settled(p), (e) => e === first);
  });

  test("only one next() may wait at a time", async () => {
    const rx = boundRx(recorder());
    const p = rx.next();
    await assert.rejects(rx.next(), ChannelClosedError);
    rx.deliver(element(1, 9));
    assert.deepEqual(await settled(p), { value: Uint8Array.of(9), done: false });
  });

  test("an aborted next() leaves no waiter behind; the value that comes later is kept", async () => {
    const rx = boundRx(recorder());
    const ac = new AbortController();
    const p = rx.next({ signal: ac.signal });
    assert.equal(await state(p), "pending");
    ac.abort(new Error("stop"));
    await assert.rejects(settled(p), /stop/);
    rx.deliver(element(1, 5));
    assert.equal(rx.stats().bufferedBytes, 2, "buffered, not handed to the abandoned waiter");
    assert.deepEqual(await rx.next(), { value: Uint8Array.of(5), done: false });
    const pre = new AbortController();
    pre.abort(new Error("already"));
    await assert.rejects(rx.next({ signal: pre.signal }), /already/);
    // Not left waiting: a plain next() is allowed (no "another next() pending").
    const q = rx.next();
    rx.deliver(element(1, 6));
    assert.deepEqual(await settled(q), { value: Uint8Array.of(6), done: false });
  });

  test("a next() with a signal resolves and rejects normally; a later abort changes nothing", async () => {
    const rx = boundRx(recorder());
    const ac = new AbortController();
    const p = rx.next({ signal: ac.signal });
    rx.deliver(element(1, 2));
    assert.deepEqual(await settled(p), { value: Uint8Array.of(2), done: false });
    ac.abort(new Error("late"));
    rx.deliver(element(1, 3));
    assert.deepEqual(await rx.next(), { value: Uint8Array.of(3), done: false });
    const ac2 = new AbortController();
    const q = rx.next({ signal: ac2.signal });
    const error = new ChannelResetError("remote");
    rx.fail(error);
    await assert.rejects(settled(q), (e) => e === error);
    ac2.abort(new Error("late"));
  });

  test("reset sends Reset, releases the id and fails the end locally; not after the end was fully read", async () => {
    const h = recorder();
    const rx = boundRx(h, 7);
    rx.deliver(element(2));
    rx.reset();
    assert.deepEqual(h.log, ["reset:7", "release:7:reset"]);
    const e = await rx.next().then(() => null, (x: unknown) => x);
    assert.ok(e instanceof ChannelResetError);
    assert.equal(e.by, "local");
    rx.reset();
    assert.equal(h.log.length, 2, "a second reset sends nothing");

    const h2 = recorder();
    const done = boundRx(h2, 9);
    done.end();
    done.reset();
    assert.deepEqual(h2.log, [], "nothing to reset once ended and read");
    const unread = boundRx(h2, 11);
    unread.deliver(element(1));
    unread.end();
    unread.reset();
    assert.deepEqual(h2.log, ["reset:11", "release:11:reset"], "ended with values left: still resettable");
    const failed = boundRx(h2, 13);
    failed.fail(new ChannelResetError("remote"));
    failed.reset();
    assert.equal(h2.log.length, 2, "a failed end sends no Reset");
    const unbound = new Rx<number>();
    unbound.reset();
    await assert.rejects(unbound.next(), ChannelResetError);
  });

  test("leaving a for-await early resets an open channel, but not one that has ended", async () => {
    const h = recorder();
    const rx = boundRx(h, 7);
    rx.deliver(element(1));
    rx.deliver(element(1));
    for await (const _ of rx) break;
    assert.deepEqual(h.log, ["reset:7", "release:7:reset"]);
    const h2 = recorder();
    const ended = boundRx(h2, 9);
    ended.deliver(element(1));
    ended.deliver(element(1));
    ended.end();
    for await (const _ of ended) break;
    assert.deepEqual(h2.log, []);
    assert.deepEqual(await ended.next(), { value: Uint8Array.of(0), done: false }, "the value left is still there");
  });

  test("collect drains until the end; thousands of buffered values of different sizes come out in order", async () => {
    const h = recorder({ window: 1 << 16 });
    const rx = boundRx(h);
    const size = (i: number) => i % 7; // element i: varint + i % 7 bytes of (i & 0xff)
    let expectBuffered = 0;
    for (let i = 0; i < 3000; i++) {
      rx.deliver(element(size(i), i & 0xff));
      expectBuffered += size(i) + 1;
    }
    for (let i = 0; i < 1500; i++) {
      const v = (await rx.next()).value as Uint8Array;
      assert.deepEqual(v, new Uint8Array(size(i)).fill(i & 0xff), `value ${i}`);
      expectBuffered -= size(i) + 1;
    }
    assert.equal(rx.stats().bufferedBytes, expectBuffered);
    for (let i = 3000; i < 3500; i++) {
      rx.deliver(element(size(i), i & 0xff));
      expectBuffered += size(i) + 1;
    }
    assert.equal(rx.stats().bufferedBytes, expectBuffered);
    rx.end();
    const rest = await rx.collect();
    assert.equal(rest.length, 2000);
    rest.forEach((v, k) => assert.deepEqual(v, new Uint8Array(size(1500 + k)).fill((1500 + k) & 0xff), `value ${1500 + k}`));
    assert.equal(rx.stats().bufferedBytes, 0);
    assert.equal(rx.stats().totalValues, 3500);
  });

  test("binding twice is refused; the thresholds come from the host", () => {
    const h = recorder({ window: 10, thresholds: { yellow: 0.2, red: 0.3, hysteresis: 0.1 } });
    const rx = boundRx(h);
    assert.throws(() => rx.bind(h, 5, t.bytes), EncodeFailedError);
    rx.deliver(element(1)); // 2 of 10
    assert.equal(rx.stats().level, "yellow");
    rx.deliver(element(0)); // 3 of 10
    assert.equal(rx.stats().level, "red");
  });

  test("an unbound Rx reports empty stats", () => {
    const s = new Rx<number>().stats();
    assert.deepEqual(s, { channelId: 0, side: "receive", window: 0, bufferedBytes: 0, creditOutstanding: 0, inFlightBytes: 0, level: "green", totalBytes: 0, totalValues: 0 });
    assert.equal(new Rx<number>().id, undefined);
  });
});

describe("Tx", () => {
  test("a small value is encoded (copied) and counted; stats follow the credit", async () => {
    const h = recorder({ window: 64 });
    const tx = boundTx(h);
    const v = new Uint8Array(9).fill(1);
    await tx.send(v);
    assert.deepEqual(h.log, ["data:3:10"]);
    assert.deepEqual(h.data[0]!.element, element(9, 1));
    assert.equal(h.data[0]!.head, undefined);
    assert.deepEqual(tx.stats(), {
      channelId: 3,
      side: "send",
      window: 64,
      bufferedBytes: 0,
      creditOutstanding: 54,
      inFlightBytes: 10,
      level: "green",
      totalBytes: 10,
      totalValues: 1,
    });
  });

  test("a bytes value of 4096 bytes or more goes out as-is after its length prefix", async () => {
    const h = recorder({ window: 16384 });
    const tx = boundTx(h);
    const big = new Uint8Array(4096).fill(2);
    await tx.send(big);
    const d = h.data[0]!;
    assert.equal(d.payload, big, "the caller's array, not a copy");
    assert.deepEqual(d.head, Uint8Array.of(0x80, 0x20));
    assert.equal(tx.stats().totalBytes, 4098);
    assert.equal(tx.stats().creditOutstanding, 16384 - 4098);
    const smaller = new Uint8Array(4095).fill(3);
    await tx.send(smaller);
    assert.notEqual(h.data[1]!.payload, smaller, "below the threshold: encoded into the scratch buffer");
    assert.equal(h.data[1]!.head, undefined);
    assert.deepEqual(h.data[1]!.element.subarray(0, 2), Uint8Array.of(0xff, 0x1f));
    assert.equal(h.data[1]!.element.length, 4097);
    const u32s = boundTx<number[]>(h, 5, t.list(t.u8));
    await u32s.send(new Array(5000).fill(1));
    assert.equal(h.data[2]!.head, undefined, "only bytes elements take the zero-copy path");
  });

  test("size checks: max_payload_size and the credit window, both inclusive", async () => {
    const h = recorder({ window: 21, max: 11 });
    const tx = boundTx(h);
    await tx.send(new Uint8Array(10)); // 11 bytes: exactly the max
    await assert.rejects(tx.send(new Uint8Array(11)), (e) => e instanceof EncodeFailedError && /max_payload_size/.test(e.message));
    const h2 = recorder({ window: 11, max: 100 });
    const tx2 = boundTx(h2);
    await tx2.send(new Uint8Array(10)); // exactly the window
    await assert.rejects(tx2.send(new Uint8Array(11)), (e) => e instanceof EncodeFailedError && /credit window/.test(e.message));
    const bad = boundTx<number>(h2, 5, t.u8);
    await assert.rejects(bad.send(300), (e) => e instanceof EncodeFailedError && e.cause instanceof Error);
    assert.equal(h.log.length + h2.log.length, 2);
  });

  test("a send waiting for credit keeps its own copy of the value, is counted as buffered, and goes once granted", async () => {
    const h = recorder({ window: 20 });
    const a = boundTx(h, 3);
    const b = boundTx(h, 5);
    const levels: LevelChange[] = [];
    a.onLevel((c) => levels.push(c));
    await a.send(new Uint8Array(14).fill(1)); // 15 of 20
    const waiting = a.send(new Uint8Array(9).fill(2)); // 10 > 5 left
    assert.equal(await state(waiting), "pending");
    assert.equal(a.stats().bufferedBytes, 10);
    assert.equal(a.stats().level, "red", "(15 in flight + 10 waiting) / 20");
    await b.send(new Uint8Array(9).fill(3)); // reuses the shared scratch buffer
    a.grant(15);
    await settled(waiting);
    assert.deepEqual(h.data.map((d) => d.element[1]), [1, 3, 2]);
    assert.deepEqual(h.data[2]!.element, element(9, 2));
    assert.equal(a.stats().bufferedBytes, 0);
    assert.equal(a.stats().creditOutstanding, 10);
    assert.deepEqual(
      levels.map((c) => `${c.side}:${c.to}`),
      ["send:yellow", "send:red", "send:yellow"],
    );
  });

  test("a Credit updates the level even with no send", async () => {
    const h = recorder({ window: 20 });
    const tx = boundTx(h);
    await tx.send(new Uint8Array(18)); // 19 of 20: red
    assert.equal(tx.stats().level, "red");
    tx.grant(19);
    assert.equal(tx.stats().level, "green");
    assert.equal(tx.stats().creditOutstanding, 20);
  });

  test("a reset while a send waits for credit rejects it and sends no Data", async () => {
    const h = recorder({ window: 20 });
    const tx = boundTx(h, 3);
    await tx.send(new Uint8Array(14));
    const waiting = tx.send(new Uint8Array(9));
    assert.equal(await state(waiting), "pending");
    tx.reset();
    const e = await settled(waiting).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof ChannelResetError);
    assert.equal(e.by, "local");
    assert.deepEqual(h.log, ["data:3:15", "reset:3", "release:3:reset"]);
    assert.equal(tx.isClosed, true);
    await assert.rejects(tx.send(new Uint8Array(1)), (x) => x instanceof ChannelResetError);
    tx.reset();
    await tx.close();
    assert.equal(h.log.length, 3, "reset and close after a reset send nothing");
  });

  test("close goes after the sends already started, once; send after close is refused", async () => {
    const h = recorder({ window: 20 });
    const tx = boundTx(h, 3);
    await tx.send(new Uint8Array(14));
    const waiting = tx.send(new Uint8Array(9));
    assert.equal(tx.isClosed, false);
    const closed = tx.close();
    assert.equal(tx.isClosed, true);
    const closedAgain = tx.close();
    assert.equal(await state(closed), "pending", "Close waits for the pending send");
    assert.deepEqual(h.log, ["data:3:15"]);
    await assert.rejects(tx.send(new Uint8Array(1)), ChannelClosedError);
    tx.grant(15);
    await settled(Promise.all([waiting, closed, closedAgain]));
    assert.deepEqual(h.log, ["data:3:15", "data:3:10", "close:3", "release:3:closed"]);
    await tx.close();
    tx.reset();
    assert.equal(h.log.length, 4);
  });

  test("close with nothing pending is immediate; a reset resolves a pending close", async () => {
    const h = recorder({ window: 20 });
    const tx = boundTx(h, 3);
    await settled(tx.close());
    assert.deepEqual(h.log, ["close:3", "release:3:closed"]);
    const tx2 = boundTx(h, 5);
    await tx2.send(new Uint8Array(14));
    const waiting = tx2.send(new Uint8Array(9));
    const closing = tx2.close();
    tx2.reset();
    await settled(closing);
    await assert.rejects(settled(waiting), ChannelResetError);
    assert.deepEqual(h.log.slice(2), ["data:5:15", "reset:5", "release:5:reset"]);
  });

  test("before its call binds it, a Tx queues sends and close, in order, after the bind", async () => {
    const h = recorder();
    const tx = new Tx<Uint8Array>();
    const sent = tx.send(Uint8Array.of(1));
    const closed = tx.close();
    assert.equal(await state(sent), "pending");
    assert.equal(await state(closed), "pending");
    tx.bind(h, 7, t.bytes);
    await settled(Promise.all([sent, closed]));
    assert.deepEqual(h.log, ["data:7:2", "close:7", "release:7:closed"]);

    const h2 = recorder();
    const early = new Tx<Uint8Array>();
    const closing = early.close();
    early.bind(h2, 9, t.bytes);
    assert.deepEqual(h2.log, [], "not in the same turn as the bind (the Request goes first)");
    await settled(closing);
    assert.deepEqual(h2.log, ["close:9", "release:9:closed"]);
  });

  test("a send waiting for its bind rejects on abort or when the channel fails", async () => {
    const ac = new AbortController();
    const tx = new Tx<Uint8Array>();
    const p = tx.send(Uint8Array.of(1), { signal: ac.signal });
    ac.abort(new Error("no call"));
    await assert.rejects(settled(p), /no call/);
    const tx2 = new Tx<Uint8Array>();
    const q = tx2.send(Uint8Array.of(1));
    const error = new ConnectionClosedError("gone", "local");
    tx2.fail(error);
    await assert.rejects(settled(q), (e) => e === error);
    await assert.rejects(tx2.send(Uint8Array.of(1)), (e) => e === error);
    assert.equal(tx2.isClosed, true);
  });

  test("fail rejects a send waiting for credit and resolves a pending close; not after close", async () => {
    const h = recorder({ window: 20 });
    const tx = boundTx(h, 3);
    await tx.send(new Uint8Array(14));
    const waiting = tx.send(new Uint8Array(9));
    const closing = tx.close();
    const error = new ConnectionClosedError("gone", "local");
    tx.fail(error);
    await assert.rejects(settled(waiting), (e) => e === error);
    await settled(closing);
    assert.deepEqual(h.log, ["data:3:15"], "a failed channel sends nothing more");
    const closed = boundTx(h, 5);
    await closed.close();
    closed.fail(error);
    await assert.rejects(closed.send(new Uint8Array(1)), ChannelClosedError, "closed, not failed");
  });

  test("send waits for the transport to drain when it is over its high-water mark", async () => {
    const h = recorder();
    const tx = boundTx(h);
    let drained!: () => void;
    h.drain = new Promise<void>((r) => (drained = r));
    const p = tx.send(Uint8Array.of(1));
    assert.equal(await state(p), "pending");
    assert.deepEqual(h.log, ["data:3:2"], "handed over, then waits");
    h.drain = undefined;
    drained();
    await settled(p);
  });

  test("the observer sees each value passed to send", async () => {
    const tx = boundTx(recorder());
    const seen: number[] = [];
    tx.observe((v) => seen.push(v.length));
    await tx.send(new Uint8Array(2));
    tx.observe(null);
    await tx.send(new Uint8Array(3));
    assert.deepEqual(seen, [2]);
  });

  test("binding twice is refused; an unbound Tx reports empty stats", () => {
    const h = recorder();
    const tx = boundTx(h);
    assert.throws(() => tx.bind(h, 5, t.bytes), EncodeFailedError);
    assert.deepEqual(new Tx<number>().stats(), {
      channelId: 0,
      side: "send",
      window: 0,
      bufferedBytes: 0,
      creditOutstanding: 0,
      inFlightBytes: 0,
      level: "green",
      totalBytes: 0,
      totalValues: 0,
    });
  });

  test("all senders share a per-turn budget of 1024 sends: the next one yields to the event loop", async () => {
    const h = recorder({ window: 1 << 30 });
    const tx = boundTx<number>(h, 3, t.u8);
    assert.equal(await sendsBeforeYield(tx, 1, 1500), 1024);
  });

  test("... and of 4 MiB: the send that goes over it yields", async () => {
    const h = recorder({ window: 1 << 30, max: 1 << 30 });
    const tx = boundTx(h);
    const chunk = new Uint8Array(1 << 20); // 1 MiB + a 3-byte prefix each
    assert.equal(await sendsBeforeYield(tx, chunk, 6), 3, "the 4th send passes 4 MiB and yields");
  });
});
