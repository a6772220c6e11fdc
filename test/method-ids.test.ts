/**
 * Method identity: the Testbed ids must equal the ones the Rust reference
 * computed (test/fixtures/testbed/method-ids.json), and the pieces they are
 * made of (kebab-case names, signature bytes) follow the spec.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

import { Testbed } from "../apps/testbed/testbed.js";
import { kebab } from "../src/service/kebab.js";
import { arg, computeMethodId, defineService, method } from "../src/service/define.js";
import { methodSignature, t, typeSignature, type Schema } from "../src/schema/index.js";
import { CellTracing, HostTracing } from "../src/tracing/schema.js";

// The Rust reference's facts, copied into the repository (test/fixtures/README.md):
// dist/test/<file>.js -> <repo>/test/fixtures/. ROAM_FIXTURES_DIR points elsewhere (e.g. ../shared).
const SHARED_DIR = process.env["ROAM_FIXTURES_DIR"] ?? fileURLToPath(new URL("../../test/fixtures/", import.meta.url));

function loadExpectedIds(): Record<string, string> {
  const raw: unknown = JSON.parse(readFileSync(join(SHARED_DIR, "testbed", "method-ids.json"), "utf8"));
  assert.ok(typeof raw === "object" && raw !== null && !Array.isArray(raw), "method-ids.json is an object");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    assert.equal(typeof v, "string", `id of ${k}`);
    out[k] = v as string;
  }
  return out;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** "a" -> [len, ...utf8] as a hex string, for readable expected signatures. */
function nameHex(s: string): string {
  const b = Buffer.from(s, "utf8");
  return b.length.toString(16).padStart(2, "0") + b.toString("hex");
}

test("all 16 Testbed method ids equal method-ids.json", () => {
  const expected = loadExpectedIds();
  const names = Object.keys(Testbed.methods);
  assert.equal(names.length, 16);
  assert.deepEqual([...names].sort(), Object.keys(expected).sort(), "same method set");
  for (const name of names) {
    const m = Testbed.methods[name as keyof typeof Testbed.methods];
    assert.equal(m.idHex, expected[name], `id of Testbed.${name}`);
    assert.equal(m.id, BigInt(expected[name]!), `bigint id of Testbed.${name}`);
    assert.equal(Testbed.byId.get(m.id), m, `byId lookup of ${name}`);
  }
  assert.equal(Testbed.byId.size, 16, "ids are distinct");
});

test("Testbed methods are kebab-cased as the reference does", () => {
  assert.equal(Testbed.methods.echoPoint.kebabName, "echo-point");
  assert.equal(Testbed.methods.createPerson.kebabName, "create-person");
  assert.equal(Testbed.methods.echo.kebabName, "echo");
});

test("kebab(): PascalCase, snake_case, camelCase and acronyms", () => {
  const cases: Array<[string, string]> = [
    ["TemplateHost", "template-host"],
    ["echo_point", "echo-point"],
    ["echoPoint", "echo-point"],
    ["HTTPServer", "http-server"],
    ["Testbed", "testbed"],
    ["echo", "echo"],
    ["get_points", "get-points"],
    ["getHTTPResponse", "get-http-response"],
    ["ParseJSON", "parse-json"],
    ["create_person", "create-person"],
  ];
  for (const [input, want] of cases) assert.equal(kebab(input), want, `kebab(${input})`);
  // snake_case and camelCase spellings of one Rust method get one id.
  const sig = methodSignature([t.string], t.string);
  assert.equal(computeMethodId("Testbed", "echo_point", sig), computeMethodId("Testbed", "echoPoint", sig));
});

test("signature of the rust-spec example add(i32, i32) -> i64 is 25 02 09 09 0A", () => {
  assert.equal(hex(methodSignature([t.i32, t.i32], t.i64)), "250209090a");
  const Calc = defineService("Calc", { add: method([arg("a", t.i32), arg("b", t.i32)], t.i64) });
  assert.equal(hex(Calc.methods.add.signature), "250209090a");
});

test("primitive type tags", () => {
  const tags: Array<[Schema<unknown>, number]> = [
    [t.bool, 0x01], [t.u8, 0x02], [t.u16, 0x03], [t.u32, 0x04], [t.u64, 0x05], [t.u128, 0x06],
    [t.i8, 0x07], [t.i16, 0x08], [t.i32, 0x09], [t.i64, 0x0a], [t.i128, 0x0b], [t.f32, 0x0c],
    [t.f64, 0x0d], [t.char, 0x0e], [t.string, 0x0f], [t.unit, 0x10], [t.bytes, 0x11],
  ];
  for (const [s, tag] of tags) assert.deepEqual([...typeSignature(s)], [tag], s.kind);
});

test("container and user type signatures", () => {
  assert.equal(hex(typeSignature(t.list(t.string))), "200f");
  assert.equal(hex(typeSignature(t.list(t.u8))), "11", "Vec<u8> is bytes");
  assert.equal(hex(typeSignature(t.option(t.u32))), "2104");
  assert.equal(hex(typeSignature(t.array(t.u8, 4))), "220402");
  assert.equal(hex(typeSignature(t.map(t.string, t.u64))), "230f05");
  assert.equal(hex(typeSignature(t.set(t.i32))), "2409");
  assert.equal(hex(typeSignature(t.tuple(t.i32, t.string))), "2502090f");
  assert.equal(hex(typeSignature(t.tx(t.i32))), "2609");
  assert.equal(hex(typeSignature(t.rx(t.string))), "270f");
  const Point = t.struct({ x: t.i32, y: t.i32 }, "Point");
  assert.equal(hex(typeSignature(Point)), `3002${nameHex("x")}09${nameHex("y")}09`);
  const Shape = t.enum({ Circle: { radius: t.f64 }, Text: t.string, Point: null }, "Shape");
  assert.equal(
    hex(typeSignature(Shape)),
    `3103${nameHex("Circle")}0201${nameHex("radius")}0d${nameHex("Text")}010f${nameHex("Point")}00`,
  );
  // Side-by-side repetition is written in full, not as a back-reference.
  const Rect = t.struct({ a: Point, b: Point });
  const pointSig = hex(typeSignature(Point));
  assert.equal(hex(typeSignature(Rect)), `3002${nameHex("a")}${pointSig}${nameHex("b")}${pointSig}`);
});

test("a recursive type (via t.lazy) writes its back-reference as 0x32", () => {
  type Tree = { value: number; children: Tree[] };
  const Tree: Schema<Tree> = t.struct({ value: t.i32, children: t.list(t.lazy(() => Tree)) }, "Tree");
  assert.equal(hex(typeSignature(Tree)), `3002${nameHex("value")}09${nameHex("children")}2032`);

  type Expr = { tag: "Lit"; value: bigint } | { tag: "Neg"; value: Expr };
  const Expr: Schema<Expr> = t.enum({ Lit: t.i64, Neg: t.lazy(() => Expr) }, "Expr");
  assert.equal(hex(typeSignature(Expr)), `3102${nameHex("Lit")}010a${nameHex("Neg")}0132`);
  // Round trip through the lazy reference works too.
  const tree: Tree = { value: 1, children: [{ value: 2, children: [] }, { value: 3, children: [{ value: 4, children: [] }] }] };
  assert.deepEqual(Tree.fromBytes(Tree.toBytes(tree)), tree);
});

test("a Result return type is encoded as 0x10 (the reference's unit fallback)", () => {
  assert.equal(hex(typeSignature(t.result(t.i64, t.string))), "10");
  assert.equal(hex(methodSignature([t.i64, t.i64], t.result(t.i64, t.literals(["DivisionByZero", "Overflow"])))), "25020a0a10");
  assert.equal(hex(Testbed.methods.divide.signature), "25020a0a10");
  assert.equal(Testbed.methods.divide.fallible, true);
  assert.equal(Testbed.methods.lookup.signature.at(-1), 0x10);
  assert.equal(Testbed.methods.echo.fallible, false);
});

// --- roam-tracing services (rust/roam-tracing at 13c25df0) -----------------------
// No Rust-computed ids for these services exist in the pinned repository, so
// the expected signature bytes below are written out by hand from the Rust
// type definitions (record.rs, service.rs) with the tag table of
// ../shared/testbed/README.md, and the ids are the hash of those bytes — the
// same derivation that reproduces all 16 Testbed ids above.

test("HostTracing/CellTracing signatures follow the Rust types, and their ids are pinned", () => {
  const level = `3105${nameHex("Trace")}00${nameHex("Debug")}00${nameHex("Info")}00${nameHex("Warn")}00${nameHex("Error")}00`;
  const fieldValue = `3104${nameHex("I64")}010a${nameHex("U64")}0105${nameHex("Bool")}0101${nameHex("Str")}010f`;
  const fields = `20${"2502"}0f${fieldValue}`; // Vec<(String, FieldValue)>
  const optU64 = "2105";
  const spanEnter =
    `${nameHex("SpanEnter")}0207${nameHex("id")}05${nameHex("parent")}${optU64}${nameHex("target")}0f${nameHex("name")}0f` +
    `${nameHex("level")}${level}${nameHex("fields")}${fields}${nameHex("timestamp_ns")}05`;
  const idTs = `0202${nameHex("id")}05${nameHex("timestamp_ns")}05`;
  const event =
    `${nameHex("Event")}0206${nameHex("parent")}${optU64}${nameHex("target")}0f${nameHex("level")}${level}` +
    `${nameHex("message")}210f${nameHex("fields")}${fields}${nameHex("timestamp_ns")}05`;
  const record = `3104${spanEnter}${nameHex("SpanExit")}${idTs}${nameHex("SpanClose")}${idTs}${event}`;
  const config = `3002${nameHex("filter_directives")}0f${nameHex("include_span_events")}01`;
  const configResult = `3102${nameHex("Ok")}00${nameHex("InvalidFilter")}010f`;

  assert.equal(hex(HostTracing.methods.get_tracing_config.signature), `2500${config}`);
  assert.equal(hex(HostTracing.methods.emit_tracing.signature), `250120${record}10`);
  assert.equal(hex(CellTracing.methods.configure.signature), `2501${config}${configResult}`);

  assert.equal(HostTracing.methods.get_tracing_config.kebabName, "get-tracing-config");
  assert.equal(HostTracing.methods.emit_tracing.kebabName, "emit-tracing");
  assert.equal(HostTracing.methods.get_tracing_config.idHex, "0xe8dd77aa0e2fcd1c");
  assert.equal(HostTracing.methods.emit_tracing.idHex, "0xa75fae16ceb7dfab");
  assert.equal(CellTracing.methods.configure.idHex, "0x3c68df4673d7f2dd");
  assert.equal(HostTracing.methods.emit_tracing.id, computeMethodId("HostTracing", "emit_tracing", HostTracing.methods.emit_tracing.signature));
});
