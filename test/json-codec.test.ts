/**
 * The JSON codec (bridge.json.facet): random schemas round-trip through JSON
 * text exactly; 64-bit and 128-bit integers keep every digit; decode errors
 * name the path; the mapping matches the serde/facet-json shapes the Rust
 * bridge speaks; limits match the binary codec.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { sampleArb } from "../bench/codec-arbitraries.js";
import { jsonCodec, JsonDecodeError, JsonEncodeError, parseJson, BigIntText } from "../src/json/index.js";
import { t, type Schema } from "../src/schema/index.js";
import { Testbed, Shape, Canvas, Message } from "../apps/testbed/testbed.js";

const seedEnv = process.env["FC_SEED"];
const params = { numRuns: 400, ...(seedEnv !== undefined ? { seed: Number(seedEnv) } : {}) };

/** Schemas with a value that has no distinct JSON form (as in serde): Some(None), Some(()) of an Option. */
function hasAmbiguousOption(s: Schema<any>, seen = new Set<Schema<any>>()): boolean {
  if (seen.has(s)) return false;
  seen.add(s);
  const x = s as any;
  if (s.kind === "option" && (x.inner.nullable || x.inner.kind === "unit")) return true;
  const kids: Schema<any>[] = [];
  if (x.inner) kids.push(x.inner);
  if (x.element) kids.push(x.element);
  if (s.kind === "map") kids.push(x.key, x.value);
  if (x.elements) kids.push(...x.elements);
  if (x.types) kids.push(...x.types);
  if (x.variants) for (const v of x.variants) if (v.payload) kids.push(v.payload);
  if (s.kind === "result") kids.push(x.ok, x.err);
  if (s.kind === "lazy") kids.push(x.target);
  return kids.some((k) => hasAmbiguousOption(k, seen));
}

test("random schema + value: JSON text round-trips to a deep-equal value (bridge.json.facet)", () => {
  let checked = 0;
  fc.assert(
    fc.property(sampleArb(3), ({ schema, value }) => {
      if (hasAmbiguousOption(schema)) return;
      const codec = jsonCodec(schema);
      const text = codec.encode(value);
      const back = codec.decode(parseJson(text));
      assert.deepStrictEqual(back, value, text);
      checked++;
    }),
    params,
  );
  assert.ok(checked > 200, `only ${checked} samples were checked`);
});

test("64/128-bit integers keep every digit both ways", () => {
  const cases: [Schema<bigint>, bigint][] = [
    [t.u64, 18446744073709551615n],
    [t.u64, 9007199254740993n],
    [t.i64, -9223372036854775808n],
    [t.i64, 9223372036854775807n],
    [t.u128, (1n << 128n) - 1n],
    [t.i128, -(1n << 127n)],
  ];
  for (const [s, v] of cases) {
    const c = jsonCodec(s);
    assert.equal(c.encode(v), v.toString());
    assert.equal(c.decode(parseJson(c.encode(v))), v);
    assert.equal(c.decode(parseJson(`[${v}]`) instanceof Array ? (parseJson(`[${v}]`) as unknown[])[0] : undefined), v);
  }
  // Inside structures too (the lossless parser is used when the text has long digit runs).
  const s = jsonCodec(t.struct({ id: t.u64, tags: t.list(t.i64) }));
  const v = s.decode(parseJson('{"id": 18446744073709551615, "tags": [-9223372036854775808, 1]}'));
  assert.deepEqual(v, { id: 18446744073709551615n, tags: [-9223372036854775808n, 1n] });
  // Decimal strings are accepted for clients whose JSON.stringify cannot write a bigint.
  assert.equal(jsonCodec(t.u64).decode("18446744073709551615"), 18446744073709551615n);
  assert.throws(() => jsonCodec(t.u64).decode(parseJson("18446744073709551616")), /out of range for u64/);
  assert.throws(() => jsonCodec(t.i64).decode(parseJson("1e20")), /integer literal/);
  assert.throws(() => jsonCodec(t.u64).decode(parseJson("-1")), /out of range/);
  assert.ok(parseJson("123456789012345678") instanceof BigIntText);
});

test("the mapping is serde/facet-json's: enums externally tagged, Option as null, bytes as numbers, Result as Ok/Err", () => {
  const shape = jsonCodec(Shape);
  assert.equal(shape.encode({ tag: "Circle", value: { radius: 1.5 } }), '{"Circle":{"radius":1.5}}');
  assert.equal(shape.encode({ tag: "Point" }), '"Point"');
  assert.deepEqual(shape.decode({ Point: null }), { tag: "Point" });
  assert.equal(jsonCodec(Message).encode({ tag: "Data", value: Uint8Array.of(0, 255) }), '{"Data":[0,255]}');
  assert.equal(jsonCodec(Message).encode({ tag: "Number", value: -5n }), '{"Number":-5}');
  const tup = jsonCodec(t.enum({ Pair: [t.i32, t.string] }));
  assert.equal(tup.encode({ tag: "Pair", value: [1, "a"] }), '{"Pair":[1,"a"]}');
  assert.equal(jsonCodec(t.option(t.string)).encode(null), "null");
  assert.equal(jsonCodec(t.result(t.u32, t.string)).encode({ ok: false, error: "x" }), '{"Err":"x"}');
  assert.equal(jsonCodec(t.unit).encode(undefined), "null");
  assert.equal(jsonCodec(t.tuple(t.i32, t.string)).encode([1, "a"]), '[1,"a"]');
  const m = new Map<number, string>([[2, "b"], [1, "a"]]);
  assert.equal(jsonCodec(t.map(t.u32, t.string)).encode(m), '{"2":"b","1":"a"}');
  assert.deepEqual(jsonCodec(t.map(t.u32, t.string)).decode({ "7": "x" }), new Map([[7, "x"]]));
  // Keys without a string form: [key, value] pairs.
  assert.equal(jsonCodec(t.map(t.tuple(t.i32, t.i32), t.bool)).encode(new Map([[[1, 2], true]])), "[[[1,2],true]]");
  // Non-finite floats survive as strings.
  for (const f of [NaN, Infinity, -Infinity, -0]) assert.ok(Object.is(jsonCodec(t.f64).decode(parseJson(jsonCodec(t.f64).encode(f))), f));
  // Missing Option fields are None; unknown fields are ignored (serde's defaults).
  const person = jsonCodec(Testbed.methods.createPerson.okSchema);
  assert.deepEqual(person.decode({ name: "a", age: 3, extra: 1 }), { name: "a", age: 3, email: null });
});

test("decode errors name the path inside the value", () => {
  const canvas = jsonCodec(Canvas);
  const bad = { name: "c", shapes: [{ Circle: { radius: 1 } }, { Rectangle: { width: 1, height: "x" } }], background: "Red" };
  assert.throws(
    () => canvas.decode(bad),
    (e: unknown) => e instanceof JsonDecodeError && e.where === "shapes[1].Rectangle.height" && /expected f64, got string/.test(e.message),
  );
  const args = jsonCodec(t.tuple(...Testbed.methods.createPerson.argSchemas));
  assert.throws(() => args.decode(["a", 300, null]), (e: unknown) => e instanceof JsonDecodeError && e.where === "[1]" && /u8/.test(e.detail));
  assert.throws(() => args.decode(["a", 3]), /expected an array of 3 elements/);
  assert.throws(() => jsonCodec(Shape).decode({ Triangle: {} }), /unknown variant "Triangle"/);
  assert.throws(() => jsonCodec(Shape).decode({ Circle: {} }), (e: unknown) => e instanceof JsonDecodeError && e.where === "Circle" && /missing field "radius"/.test(e.detail));
  assert.throws(() => jsonCodec(t.bytes).decode([1, 256]), (e: unknown) => e instanceof JsonDecodeError && e.where === "[1]");
});

test("limits match the binary codec: well-formed strings, one-scalar chars, bounded recursion, typed parse errors", () => {
  assert.throws(() => jsonCodec(t.string).decode(parseJson('"\\ud800"')), /lone surrogate/);
  assert.throws(() => jsonCodec(t.string).encode("\ud800"), JsonEncodeError);
  assert.throws(() => jsonCodec(t.char).decode("ab"), /single Unicode scalar/);
  assert.equal(jsonCodec(t.char).decode("😀"), "😀");
  const Tree: Schema<any> = t.struct({ kids: t.list(t.lazy(() => Tree)) });
  let deep: any = { kids: [] };
  for (let i = 0; i < 300; i++) deep = { kids: [deep] };
  assert.throws(() => jsonCodec(Tree).decode(deep), /nesting deeper than 256/);
  assert.throws(() => parseJson("[1,"), JsonDecodeError);
  assert.throws(() => parseJson("[" + "1".repeat(20) + ",]"), JsonDecodeError);
  assert.throws(() => parseJson("[".repeat(100000) + "1" + "]".repeat(100000) + " 12345678901234567"), JsonDecodeError);
  assert.throws(() => jsonCodec(t.u8).decode(1.5), /expected u8/);
  assert.throws(() => jsonCodec(t.i32).decode(2 ** 31), /expected i32/);
});
