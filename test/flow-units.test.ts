/**
 * Flow-control units with a mocked clock (issue 19): when the Credit-message
 * receiver tops the sender up (at once once a quarter of the window is free;
 * else one idle top-up per quiet turn, later when little was used), the
 * pressure gauge's listeners, and the Hello handshake's checks.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { CounterReceiveCredit, CounterSendCredit, SMALL_USE_IDLE_MS, abortReason } from "../src/session/flow.js";
import { HelloHandshake, ImplicitHandshake } from "../src/session/handshake.js";
import { ProtocolViolation } from "../src/session/errors.js";
import { PressureGauge, type LevelChange } from "../src/session/pressure.js";
import type { MessageTransport } from "../src/session/transport.js";
import type { Message } from "../src/wire/message.js";

/** A Credit-message receiver with a consumer buffer the test controls. */
function receiver(window: number) {
  const grants: number[] = [];
  let buffered = 0;
  const credit = new CounterReceiveCredit(window, () => buffered, (n) => grants.push(n));
  return {
    credit,
    grants,
    setBuffered: (n: number) => (buffered = n),
    /** Data of n bytes arrives and is buffered. */
    data(n: number) {
      assert.equal(credit.onData(n), true, `${n} B within credit ${credit.outstanding}`);
      buffered += n;
    },
    /** The consumer takes n bytes. */
    consume(n: number) {
      buffered -= n;
      credit.onConsumed(n);
    },
  };
}

function clock(t: TestContext) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  return (ms: number) => t.mock.timers.tick(ms);
}

describe("CounterReceiveCredit: when Credit goes out", () => {
  test("at once when exactly a quarter of the window is free", (t) => {
    clock(t);
    const r = receiver(64);
    r.data(16);
    r.consume(16); // 48 left to the sender + 0 buffered = 3/4 of 64
    assert.deepEqual(r.grants, [16]);
    assert.equal(r.credit.outstanding, 64);
  });

  test("with less free, one idle top-up 1 ms after the consumer drained", (t) => {
    const tick = clock(t);
    const r = receiver(64);
    r.data(10);
    r.consume(10); // 54 + 0 > 48
    assert.deepEqual(r.grants, []);
    tick(0);
    assert.deepEqual(r.grants, []);
    tick(1);
    assert.deepEqual(r.grants, [10]);
    assert.equal(r.credit.outstanding, 64);
    tick(SMALL_USE_IDLE_MS);
    assert.deepEqual(r.grants, [10], "one top-up");
  });

  test("no idle top-up while the consumer still holds data", (t) => {
    const tick = clock(t);
    const r = receiver(64);
    r.data(10);
    r.data(5);
    r.consume(10); // 49 + 5 buffered
    tick(SMALL_USE_IDLE_MS * 2);
    assert.deepEqual(r.grants, []);
    r.consume(5);
    tick(1);
    assert.deepEqual(r.grants, [15]);
  });

  test("under a sixteenth of the window used, and no larger element seen, the idle top-up waits SMALL_USE_IDLE_MS", (t) => {
    const tick = clock(t);
    const r = receiver(1024);
    r.data(63); // under 1024 / 16
    r.consume(63);
    tick(SMALL_USE_IDLE_MS - 1);
    assert.deepEqual(r.grants, []);
    tick(1);
    assert.deepEqual(r.grants, [63]);
  });

  test("exactly a sixteenth used is not 'small': 1 ms", (t) => {
    const tick = clock(t);
    const r = receiver(1024);
    r.data(64);
    r.consume(64);
    tick(1);
    assert.deepEqual(r.grants, [64]);
  });

  test("a channel that carried an element larger than the credit left keeps the 1 ms top-up", (t) => {
    const tick = clock(t);
    const r = receiver(1024);
    r.data(962);
    r.consume(962); // 62 + 0 <= 768: granted at once
    assert.deepEqual(r.grants, [962]);
    r.data(63); // 961 left, the largest element seen (962) is larger
    r.consume(63);
    tick(1);
    assert.deepEqual(r.grants, [962, 63]);
  });

  test("an element exactly as large as the credit left still counts as small", (t) => {
    const tick = clock(t);
    const r = receiver(1024);
    r.data(961);
    r.consume(961);
    assert.deepEqual(r.grants, [961]);
    r.data(63); // 961 left == the largest element seen
    r.consume(63);
    tick(1);
    assert.deepEqual(r.grants, [961]);
    tick(SMALL_USE_IDLE_MS - 1);
    assert.deepEqual(r.grants, [961, 63]);
  });

  test("data that arrived after the top-up was armed defers it by one more delay", (t) => {
    const tick = clock(t);
    const r = receiver(64);
    r.data(10);
    r.consume(10); // armed
    r.data(2);
    r.consume(2); // already armed: not armed again
    tick(1); // data came meanwhile: the sender is not stuck; re-armed
    assert.deepEqual(r.grants, []);
    tick(1);
    assert.deepEqual(r.grants, [12]);
    tick(SMALL_USE_IDLE_MS * 2);
    assert.deepEqual(r.grants, [12]);
  });

  test("data that arrived after the top-up was armed and is still buffered: no top-up until consumed", (t) => {
    const tick = clock(t);
    const r = receiver(64);
    r.data(10);
    r.consume(10);
    r.data(3);
    tick(SMALL_USE_IDLE_MS * 2);
    assert.deepEqual(r.grants, []);
    r.consume(3);
    tick(1);
    assert.deepEqual(r.grants, [13]);
  });

  test("the top-up checks the buffer when it fires", (t) => {
    const tick = clock(t);
    const r = receiver(64);
    r.data(10);
    r.consume(10);
    r.setBuffered(1); // the consumer's buffer is not empty any more
    tick(1);
    assert.deepEqual(r.grants, []);
  });

  test("a disposed receiver grants nothing from a pending top-up", (t) => {
    const tick = clock(t);
    const r = receiver(64);
    r.data(10);
    r.consume(10);
    r.credit.dispose();
    tick(SMALL_USE_IDLE_MS);
    assert.deepEqual(r.grants, []);
  });
});

describe("CounterSendCredit", () => {
  test("takes credit at once when it fits, else waits in order; grants wake waiters", async () => {
    const c = new CounterSendCredit(10);
    assert.equal(c.acquire(10), undefined);
    assert.equal(c.available, 0);
    const order: string[] = [];
    const a = c.acquire(4)!.then(() => order.push("a"));
    const b = c.acquire(2)!.then(() => order.push("b"));
    c.grant(5); // a fits, b does not yet (1 left)
    await a;
    assert.deepEqual(order, ["a"]);
    assert.equal(c.available, 1);
    c.grant(1);
    await b;
    assert.deepEqual(order, ["a", "b"]);
    assert.equal(c.available, 0);
    const dead = new Error("closed");
    c.dispose(dead);
    await assert.rejects(c.acquire(0)!, (e) => e === dead);
  });

  test("abortReason: the signal's Error, else one made from its reason", () => {
    const e = new Error("x");
    const a = new AbortController();
    a.abort(e);
    assert.equal(abortReason(a.signal), e);
    const b = new AbortController();
    b.abort("why");
    assert.equal(abortReason(b.signal).message, "why");
  });
});

describe("PressureGauge listeners", () => {
  test("a throwing listener does not stop the others; an unsubscribed one hears nothing", () => {
    const g = new PressureGauge();
    const heard: string[] = [];
    g.on(() => {
      throw new Error("listener bug");
    });
    const offA = g.on((c: LevelChange) => heard.push(`a:${c.to}`));
    g.on((c: LevelChange) => heard.push(`b:${c.to}`));
    g.update(0.95, 1, "send");
    assert.deepEqual(heard, ["a:red", "b:red"]);
    offA();
    g.update(0, 1, "send");
    assert.deepEqual(heard, ["a:red", "b:red", "b:green"]);
  });

  test("no event when the level does not change", () => {
    const g = new PressureGauge();
    const heard: LevelChange[] = [];
    g.on((c) => heard.push(c));
    g.update(0.1, 1, "receive");
    g.update(0.6, 2, "receive");
    g.update(0.7, 2, "receive");
    assert.deepEqual(heard, [{ channelId: 2, side: "receive", from: "green", to: "yellow", fill: 0.6 }]);
  });

  test("custom thresholds: red to yellow and yellow to green each keep their hysteresis", () => {
    const g = new PressureGauge();
    g.configure({ yellow: 0.3, red: 0.6, hysteresis: 0.05 });
    const steps: [number, string][] = [
      [0.3, "yellow"],
      [0.6, "red"],
      [0.56, "red"],
      [0.54, "yellow"],
      [0.26, "yellow"],
      [0.24, "green"],
      [0.7, "red"],
      [0.1, "green"],
    ];
    for (const [fill, level] of steps) {
      g.update(fill, 1, "receive");
      assert.equal(g.level, level, `fill ${fill}`);
    }
  });
});

describe("HelloHandshake", () => {
  function transport(): MessageTransport & { sent: Message[]; flushed: number } {
    const tr = {
      sent: [] as Message[],
      flushed: 0,
      send: (m: Message) => void tr.sent.push(m),
      flush: () => void tr.flushed++,
    };
    return tr as unknown as MessageTransport & { sent: Message[]; flushed: number };
  }
  const local = { maxPayloadSize: 1000, initialChannelCredit: 500 };

  test("sends our Hello V2 and flushes it", () => {
    const tr = transport();
    assert.equal(new HelloHandshake(local).start(tr), undefined);
    assert.deepEqual(tr.sent, [{ type: "Hello", version: 2, maxPayloadSize: 1000, initialChannelCredit: 500 }]);
    assert.equal(tr.flushed, 1);
  });

  test("the limits are the minimum of both sides, each on its own", () => {
    const h = new HelloHandshake(local);
    assert.deepEqual(h.receive({ type: "Hello", version: 2, maxPayloadSize: 2000, initialChannelCredit: 100 }), { maxPayloadSize: 1000, initialChannelCredit: 100 });
    assert.deepEqual(h.receive({ type: "Hello", version: 2, maxPayloadSize: 10, initialChannelCredit: 5000 }), { maxPayloadSize: 10, initialChannelCredit: 500 });
  });

  test("anything but a Hello first, or another version, is a violation", () => {
    const h = new HelloHandshake(local);
    const rule = (m: unknown) => {
      try {
        h.receive(m as Message);
      } catch (e) {
        assert.ok(e instanceof ProtocolViolation);
        return e.rule;
      }
      return "ok";
    };
    assert.equal(rule({ type: "Goodbye", connId: 0, reason: "" }), "message.hello.ordering");
    assert.equal(rule({ type: "Hello", version: 1, maxPayloadSize: 1, initialChannelCredit: 1 }), "message.hello.unknown-version");
    assert.equal(rule({ type: "Hello", version: 3, maxPayloadSize: 1, initialChannelCredit: 1 }), "message.hello.unknown-version");
  });

  test("implicit: the limits at once, and any message is out of order", () => {
    const n = { maxPayloadSize: 7, initialChannelCredit: 9 };
    const h = new ImplicitHandshake(n);
    assert.equal(h.start(), n);
    assert.throws(() => h.receive({ type: "Goodbye", connId: 0, reason: "" } as unknown as Message), (e) => e instanceof ProtocolViolation && e.rule === "message.hello.ordering");
  });
});
