/**
 * fast-check generators shared by test/codec-properties.test.ts and
 * bench/fuzz-codec.ts: random schemas over every schema kind together with
 * values that fit them, random wire Messages, byte mutations, and the
 * "only typed errors" oracle for decoders fed hostile bytes.
 *
 * (Kept out of test/ so the test runner does not load it as a test file.)
 */
import fc from "fast-check";

import { CobsFrameDecoder, DecodeError, FramingError, type Message, type MetadataEntry, type Schema, t } from "roam-ts";

// ---------------------------------------------------------------------------
// Random schemas with fitting values
// ---------------------------------------------------------------------------

/** A schema, an arbitrary of values that fit it, and a readable description. */
export interface GenSchema {
  readonly schema: Schema<unknown>;
  readonly values: fc.Arbitrary<unknown>;
  readonly desc: string;
}

/** One schema and one value of it. */
export interface Sample {
  readonly schema: Schema<unknown>;
  readonly value: unknown;
  readonly desc: string;
}

/** Makes fast-check print `text()` for `obj` in counterexamples (instead of dumping arbitraries). */
function printedAs<O extends object>(obj: O, text: () => string): O {
  Object.defineProperty(obj, fc.toStringMethod, { value: text, enumerable: false });
  return obj;
}

function gen<T>(schema: Schema<T>, values: fc.Arbitrary<T>, desc: string): GenSchema {
  return printedAs({ schema: schema as Schema<unknown>, values: values as fc.Arbitrary<unknown>, desc }, () => desc);
}

const U64_MAX = (1n << 64n) - 1n;
const U128_MAX = (1n << 128n) - 1n;

/** A Unicode scalar value (no surrogates), as a one-code-point string. */
const scalar = fc
  .oneof(fc.integer({ min: 0, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff }))
  .map((cp) => String.fromCodePoint(cp));

/** Well-formed strings: short and long, ASCII and not, and a few edge cases. */
const wellFormedString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme-ascii", maxLength: 80 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom("", "\ufeff", "\ufeffabc", "é".repeat(63), "🦀".repeat(33), "\u0000", "x".repeat(128)),
);

export const PRIMITIVES: readonly GenSchema[] = [
  gen(t.bool, fc.boolean(), "bool"),
  gen(t.u8, fc.integer({ min: 0, max: 0xff }), "u8"),
  gen(t.u16, fc.integer({ min: 0, max: 0xffff }), "u16"),
  gen(t.u32, fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0xffffffff })), "u32"),
  gen(t.u64, fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: U64_MAX })), "u64"),
  gen(t.u128, fc.bigInt({ min: 0n, max: U128_MAX }), "u128"),
  gen(t.i8, fc.integer({ min: -128, max: 127 }), "i8"),
  gen(t.i16, fc.integer({ min: -0x8000, max: 0x7fff }), "i16"),
  gen(t.i32, fc.integer({ min: -0x80000000, max: 0x7fffffff }), "i32"),
  gen(t.i64, fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }), "i64"),
  gen(t.i128, fc.bigInt({ min: -(1n << 127n), max: (1n << 127n) - 1n }), "i128"),
  gen(t.f32, fc.float(), "f32"),
  gen(t.f64, fc.double(), "f64"),
  gen(t.char, scalar, "char"),
  gen(t.string, wellFormedString, "string"),
  gen(t.unit, fc.constant(undefined), "unit"),
  gen(t.bytes, fc.uint8Array({ maxLength: 300 }), "bytes"),
];

/** Recursive Testbed-like types through t.lazy. */
type Tree = { label: number; kids: Tree[] };
const Tree: Schema<Tree> = t.struct({ label: t.u8, kids: t.list(t.lazy(() => Tree)) }, "Tree");
/** Trees at most `depth` levels deep (explicitly bounded: no reliance on depth bias). */
function treeValues(depth: number): fc.Arbitrary<Tree> {
  const kids = depth <= 0 ? fc.constant<Tree[]>([]) : fc.array(treeValues(depth - 1), { maxLength: 3 });
  return fc.record({ label: fc.integer({ min: 0, max: 255 }), kids }, { noNullPrototype: true });
}

type Expr = { tag: "Lit"; value: number } | { tag: "Neg"; value: Expr } | { tag: "Add"; value: [Expr, Expr] } | { tag: "Nil" };
const Expr: Schema<Expr> = t.enum(
  { Lit: t.i32, Neg: t.lazy(() => Expr), Add: [t.lazy(() => Expr), t.lazy(() => Expr)], Nil: null },
  "Expr",
);
function exprValues(depth: number): fc.Arbitrary<Expr> {
  const leaves = [fc.integer().map((value): Expr => ({ tag: "Lit", value })), fc.constant<Expr>({ tag: "Nil" })];
  if (depth <= 0) return fc.oneof(...leaves);
  const sub = exprValues(depth - 1);
  return fc.oneof(
    ...leaves,
    sub.map((value): Expr => ({ tag: "Neg", value })),
    fc.tuple(sub, sub).map((value): Expr => ({ tag: "Add", value })),
  );
}

const RECURSIVE: readonly GenSchema[] = [gen(Tree, treeValues(3), "Tree"), gen(Expr, exprValues(4), "Expr")];

function optionOf(inner: GenSchema): GenSchema {
  // Some(v) is v itself, or { some: v } when the inner type admits null (nested options).
  const some = inner.schema.nullable ? inner.values.map((v) => ({ some: v })) : inner.values;
  return gen(t.option(inner.schema), fc.option(some, { nil: null }), `Option<${inner.desc}>`);
}

function fieldsOf(items: readonly GenSchema[]): { schemas: Record<string, Schema<unknown>>; values: fc.Arbitrary<Record<string, unknown>>; desc: string } {
  const schemas: Record<string, Schema<unknown>> = {};
  const arbs: Record<string, fc.Arbitrary<unknown>> = {};
  items.forEach((g, i) => {
    schemas[`f${i}`] = g.schema;
    arbs[`f${i}`] = g.values;
  });
  return {
    schemas,
    // Decoded structs are plain objects, so generate those (not null-prototype ones).
    values: fc.record(arbs, { noNullPrototype: true }) as fc.Arbitrary<Record<string, unknown>>,
    desc: `{ ${items.map((g, i) => `f${i}: ${g.desc}`).join(", ")} }`,
  };
}

type VariantKind = "unit" | "newtype" | "tuple" | "struct";

function enumOf(variants: ReadonlyArray<{ kind: VariantKind; items: readonly GenSchema[] }>): GenSchema {
  const spec: Record<string, null | Schema<unknown> | Schema<unknown>[] | Record<string, Schema<unknown>>> = {};
  const arbs: fc.Arbitrary<unknown>[] = [];
  const descs: string[] = [];
  variants.forEach((v, i) => {
    const tag = `V${i}`;
    switch (v.kind) {
      case "unit":
        spec[tag] = null;
        arbs.push(fc.constant({ tag }));
        descs.push(tag);
        break;
      case "newtype": {
        const inner = v.items[0] ?? PRIMITIVES[0]!;
        spec[tag] = inner.schema;
        arbs.push(inner.values.map((value) => ({ tag, value })));
        descs.push(`${tag}(${inner.desc})`);
        break;
      }
      case "tuple":
        spec[tag] = v.items.map((g) => g.schema);
        arbs.push(fc.tuple(...v.items.map((g) => g.values)).map((value) => ({ tag, value })));
        descs.push(`${tag}(${v.items.map((g) => g.desc).join(", ")})`);
        break;
      case "struct": {
        const f = fieldsOf(v.items);
        spec[tag] = f.schemas;
        arbs.push(f.values.map((value) => ({ tag, value })));
        descs.push(`${tag} ${f.desc}`);
        break;
      }
    }
  });
  return gen(t.enum(spec) as Schema<unknown>, fc.oneof(...arbs), `enum { ${descs.join(", ")} }`);
}

/**
 * Random schemas up to `depth` levels of nesting, over every kind:
 * primitives, option (incl. nested), list, array, map, set, tuple, struct,
 * enum (unit/newtype/tuple/struct variants), literals, result, recursive.
 */
export function schemaArb(depth: number): fc.Arbitrary<GenSchema> {
  const leaf = fc.oneof(fc.constantFrom(...PRIMITIVES), fc.constantFrom(...RECURSIVE));
  if (depth <= 0) return leaf;
  const sub = schemaArb(depth - 1);
  const subs = (max: number): fc.Arbitrary<GenSchema[]> => fc.array(sub, { maxLength: max });
  const literals = fc.integer({ min: 1, max: 5 }).map((n) => {
    const names = Array.from({ length: n }, (_, i) => `L${i}`);
    return gen(t.literals(names), fc.constantFrom(...names), `literals(${n})`);
  });
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: literals },
    { weight: 2, arbitrary: sub.map(optionOf) },
    { weight: 1, arbitrary: sub.map((g) => optionOf(optionOf(g))) },
    { weight: 2, arbitrary: sub.map((g) => gen(t.list(g.schema), fc.array(g.values, { maxLength: 4 }), `Vec<${g.desc}>`)) },
    {
      weight: 1,
      arbitrary: fc.tuple(sub, fc.integer({ min: 0, max: 3 })).map(([g, n]) =>
        gen(t.array(g.schema, n), fc.array(g.values, { minLength: n, maxLength: n }), `[${g.desc}; ${n}]`),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(sub, sub).map(([k, v]) =>
        gen(
          t.map(k.schema, v.schema),
          fc.array(fc.tuple(k.values, v.values), { maxLength: 3 }).map((entries) => new Map(entries)),
          `Map<${k.desc}, ${v.desc}>`,
        ),
      ),
    },
    {
      weight: 1,
      arbitrary: sub.map((g) => gen(t.set(g.schema), fc.array(g.values, { maxLength: 3 }).map((xs) => new Set(xs)), `Set<${g.desc}>`)),
    },
    {
      weight: 2,
      arbitrary: subs(3).map((items) =>
        gen(t.tuple(...items.map((g) => g.schema)) as Schema<unknown>, fc.tuple(...items.map((g) => g.values)), `(${items.map((g) => g.desc).join(", ")})`),
      ),
    },
    {
      weight: 2,
      arbitrary: subs(4).map((items) => {
        const f = fieldsOf(items);
        return gen(t.struct(f.schemas) as Schema<unknown>, f.values, `struct ${f.desc}`);
      }),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.record({ kind: fc.constantFrom<VariantKind>("unit", "newtype", "tuple", "struct"), items: fc.array(sub, { minLength: 1, maxLength: 3 }) }), {
          minLength: 1,
          maxLength: 4,
        })
        .map(enumOf),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(sub, sub).map(([ok, err]) =>
        gen(
          t.result(ok.schema, err.schema) as Schema<unknown>,
          fc.oneof(ok.values.map((value) => ({ ok: true, value })), err.values.map((error) => ({ ok: false, error }))),
          `Result<${ok.desc}, ${err.desc}>`,
        ),
      ),
    },
  );
}

/** A random schema with one value of it. */
export function sampleArb(depth = 3): fc.Arbitrary<Sample> {
  return schemaArb(depth).chain((g) =>
    g.values.map((value): Sample => printedAs({ schema: g.schema, value, desc: g.desc }, () => `${g.desc} = ${fc.stringify(value)}`)),
  );
}

// ---------------------------------------------------------------------------
// Random wire messages
// ---------------------------------------------------------------------------

const id = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.maxSafeNat());
const u32 = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 0xffffffff }));
const metadataEntry: fc.Arbitrary<MetadataEntry> = fc.tuple(
  wellFormedString,
  fc.oneof(wellFormedString, fc.uint8Array({ maxLength: 40 }), fc.bigInt({ min: 0n, max: U64_MAX })),
);
const metadata = fc.array(metadataEntry, { maxLength: 3 });
const payload = fc.uint8Array({ maxLength: 200 });
/** Decoded messages are plain objects; fast-check's records default to null-prototype ones. */
const plain = { noNullPrototype: true } as const;

export const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant("Hello" as const), version: fc.constantFrom(1, 2), maxPayloadSize: u32, initialChannelCredit: u32 }, plain),
  fc.record({ type: fc.constant("Connect" as const), requestId: id, metadata }, plain),
  fc.record({ type: fc.constant("Accept" as const), requestId: id, connId: id, metadata }, plain),
  fc.record({ type: fc.constant("Reject" as const), requestId: id, reason: wellFormedString, metadata }, plain),
  fc.record({ type: fc.constant("Goodbye" as const), connId: id, reason: wellFormedString }, plain),
  fc.record({
    type: fc.constant("Request" as const),
    connId: id,
    requestId: id,
    methodId: fc.bigInt({ min: 0n, max: U64_MAX }),
    metadata,
    channels: fc.array(id, { maxLength: 4 }),
    payload,
  }, plain),
  fc.record({ type: fc.constant("Response" as const), connId: id, requestId: id, metadata, channels: fc.array(id, { maxLength: 4 }), payload }, plain),
  fc.record({ type: fc.constant("Cancel" as const), connId: id, requestId: id }, plain),
  fc.record({ type: fc.constant("Data" as const), connId: id, channelId: id, payload }, plain),
  fc.record({ type: fc.constant("Close" as const), connId: id, channelId: id }, plain),
  fc.record({ type: fc.constant("Reset" as const), connId: id, channelId: id }, plain),
  fc.record({ type: fc.constant("Credit" as const), connId: id, channelId: id, bytes: u32 }, plain),
);

// ---------------------------------------------------------------------------
// COBS inputs
// ---------------------------------------------------------------------------

/** A run of `n` non-zero bytes. */
const nonZeroRun = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((a) => a.map((x) => x || 1));

/**
 * Raw frames built from zeros and non-zero runs, biased to the COBS block
 * boundaries (253..255 and 507..509 bytes between zeros).
 */
export const cobsRawArb: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      fc.constant(Uint8Array.of(0)),
      fc.uint8Array({ maxLength: 8 }),
      nonZeroRun(253, 255),
      nonZeroRun(507, 509),
    ),
    { maxLength: 4 },
  )
  .map((parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  });

// ---------------------------------------------------------------------------
// Byte mutations
// ---------------------------------------------------------------------------

export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; byte: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; count: number }
  | { op: "truncate"; at: number };

const byte = fc.integer({ min: 0, max: 255 });
const position = fc.nat();
/** Bytes that stress varints and lengths: huge/overlong varints, 0xFF runs, zeros. */
const nastyBytes = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 4 }),
  fc.constantFrom(
    Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f),
    Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f),
    Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
    Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00),
    Uint8Array.of(0x80, 0x00),
    Uint8Array.of(0x00, 0x00, 0x00),
    Uint8Array.of(0x02),
  ),
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("set" as const), at: position, byte }),
  fc.record({ op: fc.constant("insert" as const), at: position, bytes: nastyBytes }),
  fc.record({ op: fc.constant("delete" as const), at: position, count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: position }),
);

export const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

/** Applies `mutations` to a copy of `input` (positions are taken modulo the length). */
export function mutate(input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = input.slice();
  for (const m of mutations) {
    const n = out.length;
    switch (m.op) {
      case "flip":
        if (n > 0) out[m.at % n]! ^= 1 << m.bit;
        break;
      case "set":
        if (n > 0) out[m.at % n] = m.byte;
        break;
      case "insert": {
        const at = m.at % (n + 1);
        const next = new Uint8Array(n + m.bytes.length);
        next.set(out.subarray(0, at));
        next.set(m.bytes, at);
        next.set(out.subarray(at), at + m.bytes.length);
        out = next;
        break;
      }
      case "delete": {
        if (n === 0) break;
        const at = m.at % n;
        const next = new Uint8Array(n - Math.min(m.count, n - at));
        next.set(out.subarray(0, at));
        next.set(out.subarray(at + m.count), at);
        out = next;
        break;
      }
      case "truncate":
        out = out.slice(0, m.at % (n + 1));
        break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The robustness oracle
// ---------------------------------------------------------------------------

export type Outcome = "value" | "typed-error";

/** A decoder threw something other than DecodeError/FramingError, or took too long. */
export class UntypedFailure extends Error {
  override readonly name = "UntypedFailure";
  constructor(
    readonly what: string,
    readonly input: Uint8Array,
    readonly thrown: unknown,
  ) {
    super(
      `${what} on ${Buffer.from(input.subarray(0, 64)).toString("hex")}${input.length > 64 ? "…" : ""} (${input.length} bytes): ` +
        (thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)),
    );
  }
}

/** Longest a single decode of a small input may take before it counts as a hang. */
export const SLOW_DECODE_MS = 1000;

/**
 * Runs one decode of hostile input: returns whether it produced a value or a
 * typed error (DecodeError/FramingError); throws UntypedFailure for anything
 * else, or if it took longer than SLOW_DECODE_MS.
 */
export function classify(what: string, input: Uint8Array, decode: () => unknown): Outcome {
  const started = performance.now();
  let outcome: Outcome;
  try {
    decode();
    outcome = "value";
  } catch (e) {
    if (!(e instanceof DecodeError || e instanceof FramingError)) throw new UntypedFailure(what, input, e);
    outcome = "typed-error";
  }
  const ms = performance.now() - started;
  if (ms > SLOW_DECODE_MS) throw new UntypedFailure(what, input, new Error(`took ${ms.toFixed(0)} ms`));
  return outcome;
}

/**
 * Feeds `stream` to a CobsFrameDecoder in the given chunk sizes; every frame
 * is also offered to `onFrame`. Checks the buffering bound after each push.
 * FramingErrors propagate (the caller classifies them).
 */
export function feedFrames(stream: Uint8Array, chunkSizes: readonly number[], maxFrameBytes: number, onFrame: (f: Uint8Array) => void): void {
  const dec = new CobsFrameDecoder(maxFrameBytes);
  let at = 0;
  for (let i = 0; at < stream.length; i++) {
    const size = Math.max(1, chunkSizes.length > 0 ? chunkSizes[i % chunkSizes.length]! : stream.length);
    dec.push(stream.slice(at, at + size), onFrame); // push takes ownership of each chunk
    at += size;
    if (dec.buffered > maxFrameBytes) {
      throw new Error(`CobsFrameDecoder buffered ${dec.buffered} bytes, above its limit ${maxFrameBytes}`);
    }
  }
}
