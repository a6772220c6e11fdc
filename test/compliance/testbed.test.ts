/**
 * Port of roam's spec/spec-tests/tests/testbed.rs (13c25df0): unary calls,
 * a user error, UnknownMethod, InvalidPayload and pipelining.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { arg, method, defineService } from "../../src/service/define.js";
import { t } from "../../src/schema/index.js";
import { bytes, decodeResult, helloExchange, methodId, ms, show, str, withSubject, zigzag, type Cursor } from "./harness.js";

const asString = (c: Cursor): string => c.string();

describe("compliance: testbed.rs", { timeout: 120_000 }, () => {
  // ensure_expected_ids: echo/reverse computed from (message: String) -> String
  // equal the ids of the fixtures (the harness checks its hard-coded ids the same way).
  test("ensure_expected_ids", () => {
    const S = defineService("Testbed", {
      echo: method([arg("message", t.string)], t.string),
      reverse: method([arg("message", t.string)], t.string),
      divide: method([arg("dividend", t.i64), arg("divisor", t.i64)], t.result(t.i64, t.literals(["DivisionByZero", "Overflow"]))),
    });
    assert.equal(S.methods.echo.id, methodId("echo"));
    assert.equal(S.methods.reverse.id, methodId("reverse"));
    // compute_divide_method_id: Result<i64, MathError> hashes as the unit tag (see test/fixtures/testbed/README.md).
    assert.equal(S.methods.divide.id, methodId("divide"));
  });

  // call.initiate, call.complete, call.request.payload-encoding, call.response.encoding
  test("rpc_echo_roundtrip", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Request", connId: 0, requestId: 1, methodId: methodId("echo"), metadata: [], channels: [], payload: bytes(str("hello")) });
      const resp = await io.expectMessage(ms(500), "expected Response from subject");
      if (resp.type === "Goodbye") throw new Error(`unexpected Goodbye: ${resp.reason}`);
      if (resp.type !== "Response") throw new Error(`expected Response, got ${show(resp)}`);
      if (resp.requestId !== 1) throw new Error(`response request_id mismatch: ${resp.requestId}`);
      const r = decodeResult(resp.payload, asString);
      if (!r.ok) throw new Error(`expected Ok response, got Err(${r.error})`);
      if (r.value !== "hello") throw new Error(`expected echo payload "hello", got ${JSON.stringify(r.value)}`);
    }));

  // call.error.user
  test("rpc_user_error_roundtrip", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Request", connId: 0, requestId: 100, methodId: methodId("divide"), metadata: [], channels: [], payload: bytes(zigzag(10), zigzag(0)) });
      const resp = await io.expectMessage(ms(500), "expected Response from subject");
      if (resp.type === "Goodbye") throw new Error(`unexpected Goodbye: ${resp.reason}`);
      if (resp.type !== "Response") throw new Error(`expected Response, got ${show(resp)}`);
      if (resp.requestId !== 100) throw new Error(`response request_id mismatch: ${resp.requestId}`);
      const mathErrors = ["DivisionByZero", "Overflow"];
      const r = decodeResult(
        resp.payload,
        (c) => c.zigzag(),
        (c) => mathErrors[Number(c.varint())] ?? "?",
      );
      if (r.ok) throw new Error(`expected Err(User(DivisionByZero)), got Ok(${r.value})`);
      if (r.error !== "User" || r.user !== "DivisionByZero") throw new Error(`expected Err(User(DivisionByZero)), got Err(${JSON.stringify(r)})`);
    }));

  // call.error.unknown-method, call.error.roam-error, call.error.protocol
  test("rpc_unknown_method_returns_unknownmethod_error", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Request", connId: 0, requestId: 2, methodId: 0xdeadbeefn, metadata: [], channels: [], payload: bytes(str("hello")) });
      const resp = await io.expectMessage(ms(500), "expected Response from subject");
      if (resp.type === "Goodbye") throw new Error(`unexpected Goodbye: ${resp.reason}`);
      if (resp.type !== "Response") throw new Error(`expected Response, got ${show(resp)}`);
      if (resp.requestId !== 2) throw new Error(`response request_id mismatch: ${resp.requestId}`);
      const r = decodeResult(resp.payload, asString);
      if (r.ok) throw new Error(`expected Err(UnknownMethod), got Ok(${r.value})`);
      if (r.error !== "UnknownMethod") throw new Error(`expected UnknownMethod, got ${r.error}`);
    }));

  // call.error.invalid-payload
  test("rpc_invalid_payload_returns_invalidpayload_error", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Request", connId: 0, requestId: 3, methodId: methodId("echo"), metadata: [], channels: [], payload: bytes([0xff, 0xff, 0xff, 0xff]) });
      const resp = await io.expectMessage(ms(500), "expected Response from subject");
      if (resp.type === "Goodbye") throw new Error(`unexpected Goodbye: ${resp.reason}`);
      if (resp.type !== "Response") throw new Error(`expected Response, got ${show(resp)}`);
      if (resp.requestId !== 3) throw new Error(`response request_id mismatch: ${resp.requestId}`);
      const r = decodeResult(resp.payload, asString);
      if (r.ok) throw new Error(`expected Err(InvalidPayload), got Ok(${r.value})`);
      if (r.error !== "InvalidPayload") throw new Error(`expected InvalidPayload, got ${r.error}`);
    }));

  // call.pipelining.allowed, call.pipelining.independence, core.call.request-id
  test("rpc_pipelining_multiple_requests", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      const messages = ["first", "second", "third"];
      messages.forEach((m, i) =>
        io.send({ type: "Request", connId: 0, requestId: i + 10, methodId: methodId("echo"), metadata: [], channels: [], payload: bytes(str(m)) }),
      );
      const responses = new Map<number, string>();
      for (let i = 0; i < 3; i++) {
        const resp = await io.expectMessage(ms(500), "expected Response from subject");
        if (resp.type !== "Response") throw new Error(`expected Response, got ${show(resp)}`);
        const r = decodeResult(resp.payload, asString);
        if (!r.ok) throw new Error(`expected Ok, got Err(${r.error})`);
        responses.set(resp.requestId, r.value);
      }
      messages.forEach((m, i) => {
        const got = responses.get(i + 10);
        if (got === undefined) throw new Error(`missing response for request_id ${i + 10}`);
        if (got !== m) throw new Error(`request_id ${i + 10}: expected ${JSON.stringify(m)}, got ${JSON.stringify(got)}`);
      });
    }));
});
