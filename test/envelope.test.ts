/**
 * The Response envelope (src/wire/envelope.ts), pinned to fixed bytes so a
 * change that stays self-consistent still fails: a Response payload is
 * postcard `Result<T, RoamError<E>>` with Ok = 0 / Err = 1 and RoamError
 * User = 0, UnknownMethod = 1, InvalidPayload = 2, Cancelled = 3.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Reader } from "../src/codec/reader.js";
import { Writer } from "../src/codec/writer.js";
import { t } from "../src/schema/index.js";
import { defineService, method } from "../src/service/define.js";
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED, RESPONSE_INVALID_PAYLOAD, RESPONSE_UNKNOWN_METHOD } from "../src/wire/envelope.js";

test("protocol-error payloads and the handler-error key are the fixed wire values", () => {
  assert.deepEqual([...RESPONSE_UNKNOWN_METHOD], [1, 1]);
  assert.deepEqual([...RESPONSE_INVALID_PAYLOAD], [1, 2]);
  assert.deepEqual([...RESPONSE_CANCELLED], [1, 3]);
  assert.equal(HANDLER_ERROR_KEY, "roam-error");
});

test("a method descriptor writes and reads the same envelope", () => {
  const S = defineService("Env", { m: method([t.u8], t.result(t.u8, t.string)) });
  const m = S.methods.m;
  const w = new Writer(64);
  m.encodeOk(w, 7);
  assert.deepEqual([...w.finish()], [0, 7]);
  w.reset();
  m.encodeUserError(w, "no");
  assert.deepEqual([...w.finish()], [1, 0, 2, 0x6e, 0x6f]);
  assert.deepEqual(m.decodeResponse(new Reader(RESPONSE_UNKNOWN_METHOD)), { ok: false, error: { tag: "UnknownMethod" } });
  assert.deepEqual(m.decodeResponse(new Reader(RESPONSE_INVALID_PAYLOAD)), { ok: false, error: { tag: "InvalidPayload" } });
  assert.deepEqual(m.decodeResponse(new Reader(RESPONSE_CANCELLED)), { ok: false, error: { tag: "Cancelled" } });
});
