/**
 * Edge cases of the channel ends (issue 19), next to channel-ends.test.ts:
 * Rx's idle top-up stopped by end/fail and recv; Tx's zero-copy path
 * limited to bytes values, credit arriving just before a reset, a close
 * made before the bind, an unbound end, and the pending-sends bound.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import type { Rx } from "../src/session/channel/rx.js";
import { Tx } from "../src/session/channel/tx.js";
import { ChannelClosedError, ChannelResetError, ConnectionClosedError, EncodeFailedError } from "../src/session/errors.js";
import { t } from "../src/schema/index.js";
import { boundRx, boundTx, element, recorder, settled, state } from "./helpers/channel-recorder.js";

describe("Rx edges", () => {
  test("recv gives the value, then undefined once ended", async () => {
    const rx = boundRx(recorder());
    rx.deliver(element(1, 4));
    rx.end();
    assert.deepEqual(await rx.recv(), Uint8Array.of(4));
    assert.equal(await rx.recv(), undefined);
  });

  test("end and fail stop the idle top-up that was armed (no Credit for a finished channel)", (t: TestContext) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    for (const finish of [(rx: Rx<Uint8Array>) => rx.end(), (rx: Rx<Uint8Array>) => rx.fail(new ChannelResetError("remote"))]) {
      const h = recorder({ window: 64 });
      const rx = boundRx(h);
      rx.deliver(element(9));
      void rx.next(); // 54 + 0 in use: more than 3/4, an idle top-up is armed
      finish(rx);
      t.mock.timers.tick(1000);
      assert.deepEqual(h.log, []);
    }
    const h = recorder({ window: 64 });
    const rx = boundRx(h);
    rx.deliver(element(9));
    void rx.next();
    t.mock.timers.tick(1000);
    assert.deepEqual(h.log, ["credit:3:10"], "left open, it does grant");
  });

  test("the iterator's return() (a for-await left early) resets an open channel and reports done", async () => {
    const h = recorder();
    const rx = boundRx(h);
    const it = rx[Symbol.asyncIterator]();
    assert.deepEqual(await it.return!(), { value: undefined, done: true });
    assert.deepEqual(h.log, ["reset:3", "release:3:reset"]);
    await assert.rejects(rx.next(), ChannelResetError);
    // On a channel the sender already closed there is nothing to reset, even with values left unread.
    const h2 = recorder();
    const ended = boundRx(h2);
    ended.deliver(element(1, 4));
    ended.end();
    assert.deepEqual(await ended[Symbol.asyncIterator]().return!(), { value: undefined, done: true });
    assert.deepEqual(h2.log, []);
  });
});

describe("Tx edges", () => {
  test("the zero-copy path is for Uint8Array values of bytes channels only; others are checked by their schema", async () => {
    const h = recorder({ window: 1 << 16 });
    const list = boundTx<unknown>(h, 3, t.list(t.u8));
    await assert.rejects(list.send(new Uint8Array(5000)), EncodeFailedError, "a list channel takes arrays");
    const bytes = boundTx<unknown>(h, 5, t.bytes);
    await assert.rejects(bytes.send(new Array(5000).fill(1)), EncodeFailedError, "a bytes channel takes a Uint8Array");
    assert.deepEqual(h.log, []);
  });

  test("a large bytes value waiting for credit is still sent as-is", async () => {
    const h = recorder({ window: 8192 });
    const tx = boundTx(h);
    await tx.send(new Uint8Array(5000));
    const big = new Uint8Array(5000).fill(9);
    const p = tx.send(big);
    assert.equal(await state(p), "pending");
    tx.grant(5002);
    await settled(p);
    assert.equal(h.data[1]!.payload, big);
  });

  test("credit that arrives just before a reset or failure: the send still fails and sends nothing", async () => {
    for (const end of ["reset", "fail"] as const) {
      const h = recorder({ window: 20 });
      const tx = boundTx(h, 3);
      await tx.send(new Uint8Array(14));
      const waiting = tx.send(new Uint8Array(9));
      assert.equal(await state(waiting), "pending");
      tx.grant(15); // the waiter is let through; it resumes after this turn's synchronous code
      const error = new ConnectionClosedError("gone", "local");
      if (end === "reset") tx.reset();
      else tx.fail(error);
      const e = await settled(waiting).then(() => null, (x: unknown) => x);
      if (end === "reset") assert.ok(e instanceof ChannelResetError && e.by === "local", String(e));
      else assert.equal(e, error);
      assert.equal(h.data.length, 1, `${end}: no Data after it`);
    }
  });

  test("a close made before the bind waits for sends that then wait for credit", async () => {
    const h = recorder({ window: 20 });
    const tx = new Tx<Uint8Array>();
    const s1 = tx.send(new Uint8Array(14));
    const s2 = tx.send(new Uint8Array(9)); // will not fit after s1
    const closed = tx.close();
    tx.bind(h, 3, t.bytes);
    await settled(s1);
    assert.equal(await state(s2), "pending");
    assert.equal(await state(closed), "pending");
    assert.deepEqual(h.log, ["data:3:15"]);
    tx.grant(15);
    await settled(Promise.all([s2, closed]));
    assert.deepEqual(h.log, ["data:3:15", "data:3:10", "close:3", "release:3:closed"]);
  });

  test("an unbound Tx: reset and a close whose only send was aborted finish without a host", async () => {
    const tx = new Tx<Uint8Array>();
    tx.reset();
    await assert.rejects(tx.send(Uint8Array.of(1)), ChannelResetError);
    await settled(tx.close());
    const tx2 = new Tx<Uint8Array>();
    const ac = new AbortController();
    const p = tx2.send(Uint8Array.of(1), { signal: ac.signal });
    const closing = tx2.close();
    ac.abort(new Error("no call"));
    await assert.rejects(settled(p), /no call/);
    await settled(closing);
    tx2.grant(5); // an unbound end ignores Credit
    assert.equal(tx2.stats().creditOutstanding, 0);
  });

  test("at most 65536 sends may be pending on one Tx", async () => {
    const tx = new Tx<number>();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 65536; i++) pending.push(tx.send(i).catch(() => {}));
    await assert.rejects(tx.send(0), (e) => e instanceof ChannelClosedError && /65536 sends pending/.test(e.message));
    tx.fail(new ConnectionClosedError("gone", "local"));
    await settled(Promise.all(pending), 10_000);
  });
});
