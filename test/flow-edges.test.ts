/**
 * Flow-control and handshake edges (issue 19) left by flow-units.test.ts:
 * what a Hello of another version is reported as.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ProtocolViolation } from "../src/session/errors.js";
import { HelloHandshake } from "../src/session/handshake.js";
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
