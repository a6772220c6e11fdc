/**
 * Lifecycle edges of channels (issue 19): the per-turn byte budget at its
 * exact bound, the first error of a Tx winning over later ones, ends used
 * before they are bound, and ids the registry only knows from a raw claim.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import type { RawChannelSink } from "../src/session/channel/raw.js";
import { ChannelRegistry } from "../src/session/channel/registry.js";
import { Rx } from "../src/session/channel/rx.js";
import { Tx } from "../src/session/channel/tx.js";
import { ChannelResetError, ConnectionClosedError, ProtocolViolation } from "../src/session/errors.js";
import { t as t_ } from "../src/schema/index.js";
import { boundTx, recorder, sendsBeforeYield } from "./helpers/channel-recorder.js";

describe("Tx", () => {
  test("exactly 4 MiB in one turn does not yet yield; the send past it does", async () => {
    const h = recorder({ window: 1 << 30, max: 1 << 30 });
    const tx = boundTx(h);
    const chunk = new Uint8Array((1 << 20) - 3); // + a 3-byte length prefix = 1 MiB exactly
    const atImmediate = await sendsBeforeYield(tx, chunk, 6);
    assert.equal(h.data[0]!.element.length, 1 << 20);
    assert.equal(atImmediate, 4);
  });

  test("two senders share one budget per turn: after both yielded, the next turn again allows 1024 sends in all", async (t: TestContext) => {
    // setTimeout is mocked (never fires): the budget must be reset by setImmediate alone.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const h = recorder({ window: 1 << 30 });
    const x = boundTx<number>(h, 3, t_.u8);
    const y = boundTx<number>(h, 5, t_.u8);
    await new Promise<void>((r) => setImmediate(r)); // a fresh turn: the budget was reset
    const done = { x: 0, y: 0 };
    const seen: number[] = [];
    // Probes: the first runs before anything the senders schedule in this turn, the
    // second (scheduled from the first) first thing in the next turn.
    setImmediate(() => {
      seen.push(done.x + done.y);
      setImmediate(() => seen.push(done.x + done.y));
    });
    const loop = async (tx: Tx<number>, k: "x" | "y") => {
      for (let i = 0; i < 2500; i++) {
        await tx.send(1);
        done[k]++;
      }
    };
    await Promise.all([loop(x, "x"), loop(y, "y")]);
    assert.equal(seen.length, 2);
    assert.equal(seen[0], 1024, "first turn: 1024 sends in all");
    assert.ok(seen[1]! - seen[0]! <= 1026, `second turn: one budget for both senders, got ${seen[1]! - seen[0]!} sends`);
    assert.ok(seen[1]! - seen[0]! >= 1024, `second turn: the budget was reset, got ${seen[1]! - seen[0]!} sends`);
  });

  test("the first way a Tx ends wins: a failure after a reset keeps the reset", async () => {
    const tx = boundTx(recorder());
    tx.reset();
    tx.fail(new ConnectionClosedError("gone", "local"));
    const e = await tx.send(Uint8Array.of(1)).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof ChannelResetError && e.by === "local", String(e));
  });

  test("an unbound Tx has no id; failed before its bind, it can still be bound and stays failed", async () => {
    const tx = new Tx<Uint8Array>();
    assert.equal(tx.id, undefined);
    const error = new ConnectionClosedError("gone", "local");
    tx.fail(error);
    tx.bind(recorder(), 3, t_.bytes);
    assert.equal(tx.id, 3);
    await assert.rejects(tx.send(Uint8Array.of(1)), (x) => x === error);
  });
});

describe("Rx", () => {
  test("an unbound Rx can be ended: it reports done", async () => {
    const rx = new Rx<number>();
    rx.end();
    assert.deepEqual(await rx.next(), { value: undefined, done: true });
  });
});

describe("ChannelRegistry", () => {
  const sink: RawChannelSink = { data: () => {}, close: () => {}, reset: () => {}, credit: () => {}, fail: () => {} };
  function rule(f: () => void): string {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof ProtocolViolation, String(e));
      return e.rule;
    }
    return "ok";
  }

  test("an id known only from a raw claim is remembered as closed or reset once released", () => {
    const r = new ChannelRegistry({ connId: 0, maxPayloadSize: 64 }, true);
    r.claim(9, sink); // claimed without notePeerId/allocate: not in the opened set
    r.release(9, "closed");
    assert.equal(rule(() => r.onData(9, Uint8Array.of(1))), "channeling.data-after-close");
    assert.equal(rule(() => r.onClose(9)), "channeling.data-after-close");
    assert.equal(rule(() => r.onReset(9)), "ok");
    assert.equal(rule(() => r.onCredit(9, 1)), "ok");
    r.claim(11, sink);
    r.release(11, "reset");
    assert.equal(rule(() => r.onReset(11)), "ok");
    assert.equal(rule(() => r.onCredit(11, 1)), "ok");
    assert.equal(rule(() => r.onData(13, Uint8Array.of(1))), "channeling.unknown", "never claimed: unknown");
  });
});
