/**
 * The schema modules work when imported directly, not only through
 * src/schema/index.ts: nothing has to be installed first (the old
 * codec-factory injection made `t.u32.toBytes(7)` throw
 * "scratchWriter is not a function" unless the index had run). This file
 * imports no index, so it is its own proof.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { t } from "../src/schema/t.js";
import { u32 } from "../src/schema/primitives.js";

test("t.u32.toBytes / fromBytes work without the schema index", () => {
  assert.deepEqual([...t.u32.toBytes(7)], [7]);
  assert.equal(t.u32.fromBytes(Uint8Array.of(0xac, 0x02)), 300);
  assert.deepEqual([...u32.toBytes(300)], [0xac, 0x02]);
  const s = t.struct({ a: t.u8, b: t.list(t.string) });
  assert.deepEqual(s.fromBytes(s.toBytes({ a: 1, b: ["x"] })), { a: 1, b: ["x"] });
});
