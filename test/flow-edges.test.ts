/**
 * Flow-control and handshake edges (issue 19) left by flow-units.test.ts:
 * the idle top-up is armed only once the consumer drained, the red level
 * steps down to yellow exactly at yellow - hysteresis, and what a Hello of
 * another version is reported as.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolViolation } from "../src/session/errors.js";
import { CounterReceiveCredit, SMALL_USE_IDLE_MS } from "../src/session/flow.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { PressureGauge } from "../src/session/pressure.js";
import type { Message } from "../src/wire/message.js";

describe("HelloHandshake", () => {
  const h = new HelloHandshake({ maxPayloadSize: 1000, initialChannelCredit: 500 });
  const detail = (version: number): string => {
    try {
      h.receive({ type: "Hello", version, maxPayloadSize: 1, initialChannelCredit: 1 } as Message);
    } catch (e) {
      assert.ok(e instanceof ProtocolViolation && e.rule === "message.hello.unknown-version", String(e));
      return e.detail;
    }
    assert.fail(`Hello version ${version} was accepted`);
  };

  test("a V1 peer is told apart from an unknown variant, which is named by its variant index", () => {
    assert.match(detail(1), /V1/);
    assert.match(detail(3), /variant 2\b/);
    assert.match(detail(7), /variant 6\b/);
  });
});

describe("CounterReceiveCredit", () => {
  test("the idle top-up is armed when the consumer drains, not at an earlier consumption", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const grants: number[] = [];
    let buffered = 0;
    const c = new CounterReceiveCredit(1024, () => buffered, (n) => grants.push(n));
    const data = (n: number) => {
      assert.equal(c.onData(n), true);
      buffered += n;
    };
    const consume = (n: number) => {
      buffered -= n;
      c.onConsumed(n);
    };
    data(10);
    data(5);
    consume(10); // 5 still buffered: nothing armed
    t.mock.timers.tick(100);
    consume(5); // drained: armed now, SMALL_USE_IDLE_MS (15 B of 1024 used)
    t.mock.timers.tick(SMALL_USE_IDLE_MS - 100);
    assert.deepEqual(grants, [], "not SMALL_USE_IDLE_MS after the first consumption");
    t.mock.timers.tick(100);
    assert.deepEqual(grants, [15], "SMALL_USE_IDLE_MS after the drain");
  });
});

describe("PressureGauge", () => {
  test("from red straight down to exactly yellow - hysteresis: yellow; just below: green", () => {
    for (const [fill, level] of [
      [0.4, "yellow"],
      [0.39, "green"],
    ] as const) {
      const g = new PressureGauge();
      g.update(0.95, 1, "send");
      assert.equal(g.level, "red");
      g.update(fill, 1, "send");
      assert.equal(g.level, level, `red -> ${fill}`);
    }
  });
});
