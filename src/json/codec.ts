/**
 * The JSON form of roam values, compiled from the same `t.*` schemas as the
 * binary codec (bridge.json.facet). Each schema is compiled once into a pair
 * of closures; values are never walked by reflection.
 *
 * The mapping is the one the Rust reference's JSON (facet-json, serde-style)
 * produces for the same Rust types:
 *
 * | roam type                    | JSON                                           |
 * |------------------------------|------------------------------------------------|
 * | bool                         | `true` / `false`                               |
 * | u8…u32, i8…i32               | number                                         |
 * | u64, i64, u128, i128         | number, every digit kept (decimal strings are also accepted) |
 * | f32, f64                     | number; NaN/±Infinity as `"NaN"`, `"Infinity"`, `"-Infinity"` |
 * | char, String                 | string                                         |
 * | ()                           | `null`                                         |
 * | bytes (`Vec<u8>`)            | array of numbers 0..255                        |
 * | Option<T>                    | `null` or T                                    |
 * | Vec, array, set, tuple       | array                                          |
 * | Map<K, V>                    | object when K is a string/char/integer/bool (keys as strings), else array of `[k, v]` pairs |
 * | struct                       | object by field name (missing Option fields are None; unknown fields are ignored) |
 * | enum (externally tagged)     | `"Unit"`, `{"Newtype": v}`, `{"Tuple": [..]}`, `{"Struct": {..}}` |
 * | Result<T, E>                 | `{"Ok": v}` / `{"Err": e}`                     |
 * | Tx<T> / Rx<T>                | channel id (number; WebSocket calls only)      |
 *
 * One value has no distinct JSON form (as with serde): `Some(None)` of a
 * nested `Option<Option<T>>` is written like `None`.
 *
 * Limits match the binary codec: strings must be well-formed UTF-16 (a Rust
 * String cannot hold a lone surrogate), integers are range-checked, and
 * recursive types nest at most MAX_RECURSION_DEPTH levels. The size of the
 * whole document is limited by the caller (the bridge's body limit).
 */
import { checkI128, checkI64, checkU128, checkU64 } from "../codec/writer.js";
import {
  ArraySchemaClass,
  ChannelSchema,
  EnumSchemaClass,
  LazySchemaClass,
  ListSchemaClass,
  MapSchemaClass,
  MAX_RECURSION_DEPTH,
  OptionSchemaClass,
  ResultSchema,
  SetSchemaClass,
  StructSchemaClass,
  TupleSchemaClass,
  describe,
  type Schema,
  type LiteralEnumSchema,
} from "../schema/index.js";
import { JsonDecodeError, JsonEncodeError } from "./errors.js";
import { BigIntText } from "./parse.js";

/** Channel binding while a call's arguments are decoded/encoded (bridge WebSocket only). */
export interface JsonChannelBinder {
  /** Decoding (bridge): the handle to put in the argument for the client's channel id. */
  incoming?(id: number, schema: ChannelSchema<any>): unknown;
  /** Encoding (client): the id to write for a Tx/Rx handle. */
  outgoing?(handle: unknown, schema: ChannelSchema<any>): number;
}

interface Ctx {
  binder: JsonChannelBinder | undefined;
  depth: number;
}

type Enc = (v: any, ctx: Ctx) => string;
type Dec = (j: unknown, ctx: Ctx) => any;
interface Node {
  enc: Enc;
  dec: Dec;
}

/** The compiled JSON codec of one schema. */
export class JsonCodec<T> {
  /** @internal */
  constructor(private readonly node: Node) {}
  /** JSON text of `v`; throws JsonEncodeError when `v` does not fit the schema. */
  encode(v: T, binder?: JsonChannelBinder): string {
    try {
      return this.node.enc(v, { binder, depth: 0 });
    } catch (e) {
      throw asEncodeError(e);
    }
  }
  /** The value for an already-parsed JSON value; throws JsonDecodeError with the path. */
  decode(j: unknown, binder?: JsonChannelBinder): T {
    return this.node.dec(j, { binder, depth: 0 });
  }
}

const cache = new WeakMap<Schema<any>, Node>();

/** The JSON codec of `schema` (compiled once per schema object). */
export function jsonCodec<T>(schema: Schema<T>): JsonCodec<T> {
  return new JsonCodec<T>(compile(schema));
}

function asEncodeError(e: unknown): JsonEncodeError {
  if (e instanceof JsonEncodeError) return e;
  return new JsonEncodeError((e as Error)?.message ?? String(e));
}

function decFail(detail: string): never {
  throw new JsonDecodeError(detail);
}
function encFail(detail: string): never {
  throw new JsonEncodeError(detail);
}
function withDecPath(e: unknown, seg: string): never {
  if (e instanceof JsonDecodeError) throw e.withOuterPath(seg);
  throw e;
}
function withEncPath(e: unknown, seg: string): never {
  if (e instanceof JsonEncodeError) throw e.withOuterPath(seg);
  if (e instanceof Error) throw new JsonEncodeError(e.message, [seg]);
  throw e;
}

function kindOf(j: unknown): string {
  if (j instanceof BigIntText) return `number ${j.text}`;
  return describe(j);
}

const str = JSON.stringify as (s: string) => string;

function compile(s: Schema<any>): Node {
  const hit = cache.get(s);
  if (hit) return hit;
  // Recursive types reach themselves through a lazy schema: register a
  // forwarding node first so the cycle resolves to the finished one.
  const fwd: Node = { enc: () => "", dec: () => undefined };
  cache.set(s, fwd);
  const built = build(s);
  fwd.enc = built.enc;
  fwd.dec = built.dec;
  return fwd;
}

// --- integers ----------------------------------------------------------------

function smallInt(kind: string, min: number, max: number): Node {
  return {
    enc: (v) => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) encFail(`expected ${kind}, got ${describe(v)}`);
      return String(v);
    },
    dec: (j) => {
      if (typeof j !== "number" || !Number.isInteger(j) || j < min || j > max) decFail(`expected ${kind} (${min}..${max}), got ${kindOf(j)}`);
      return j;
    },
  };
}

function bigInt(kind: string, check: (v: bigint) => void): Node {
  return {
    enc: (v) => {
      if (typeof v !== "bigint") encFail(`expected bigint (${kind}), got ${describe(v)}`);
      check(v);
      return v.toString();
    },
    dec: (j) => {
      let v: bigint;
      if (typeof j === "number") {
        if (!Number.isSafeInteger(j)) decFail(`expected ${kind} as an integer literal, got number ${j} (write large integers with every digit, not in exponent form)`);
        v = BigInt(j);
      } else if (j instanceof BigIntText) {
        v = BigInt(j.text);
      } else if (typeof j === "string" && /^-?\d{1,40}$/.test(j)) {
        // Accepted for JavaScript clients whose JSON.stringify cannot write a bigint.
        v = BigInt(j);
      } else {
        decFail(`expected ${kind}, got ${kindOf(j)}`);
      }
      try {
        check(v);
      } catch {
        decFail(`${v} is out of range for ${kind}`);
      }
      return v;
    },
  };
}

// --- floats ------------------------------------------------------------------

function float(kind: "f32" | "f64"): Node {
  return {
    enc: (v) => {
      if (typeof v !== "number") encFail(`expected number (${kind}), got ${describe(v)}`);
      if (Number.isFinite(v)) return Object.is(v, -0) ? "-0.0" : String(v);
      return Number.isNaN(v) ? '"NaN"' : v > 0 ? '"Infinity"' : '"-Infinity"';
    },
    dec: (j) => {
      if (typeof j === "number") return kind === "f32" ? Math.fround(j) : j;
      if (j instanceof BigIntText) return Number(j.text);
      if (j === "NaN") return NaN;
      if (j === "Infinity") return Infinity;
      if (j === "-Infinity") return -Infinity;
      return decFail(`expected ${kind}, got ${kindOf(j)}`);
    },
  };
}

// --- strings -----------------------------------------------------------------

const stringNode: Node = {
  enc: (v) => {
    if (typeof v !== "string") encFail(`expected string, got ${describe(v)}`);
    if (!(v as unknown as { isWellFormed(): boolean }).isWellFormed()) encFail("a string with a lone surrogate cannot be a Rust String");
    return str(v);
  },
  dec: (j) => {
    if (typeof j !== "string") decFail(`expected string, got ${kindOf(j)}`);
    if (!(j as unknown as { isWellFormed(): boolean }).isWellFormed()) decFail("string holds a lone surrogate (not valid UTF-8)");
    return j;
  },
};

function isChar(v: unknown): v is string {
  if (typeof v !== "string" || v.length === 0 || v.length > 2) return false;
  const cp = v.codePointAt(0)!;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return (cp > 0xffff) === (v.length === 2);
}

const charNode: Node = {
  enc: (v) => {
    if (!isChar(v)) encFail(`expected a single Unicode scalar (char), got ${describe(v)}`);
    return str(v);
  },
  dec: (j) => {
    if (!isChar(j)) decFail(`expected a single Unicode scalar (char), got ${kindOf(j)}`);
    return j;
  },
};

const bytesNode: Node = {
  enc: (v) => {
    if (!(v instanceof Uint8Array)) encFail(`expected Uint8Array, got ${describe(v)}`);
    let out = "[";
    for (let i = 0; i < v.length; i++) out += i === 0 ? String(v[i]) : "," + v[i];
    return out + "]";
  },
  dec: (j) => {
    if (!Array.isArray(j)) decFail(`expected bytes as an array of numbers 0..255, got ${kindOf(j)}`);
    const out = new Uint8Array(j.length);
    for (let i = 0; i < j.length; i++) {
      const b = j[i];
      if (typeof b !== "number" || (b & 0xff) !== b) throw new JsonDecodeError(`expected a byte 0..255, got ${kindOf(b)}`, [`[${i}]`]);
      out[i] = b;
    }
    return out;
  },
};

// --- containers ------------------------------------------------------------------

function isPlainObject(j: unknown): j is Record<string, unknown> {
  return typeof j === "object" && j !== null && !Array.isArray(j) && !(j instanceof BigIntText);
}

function arrayNode(el: Node, fixed: number | undefined, what: string): Node {
  return {
    enc: (v, ctx) => {
      if (!Array.isArray(v) || (fixed !== undefined && v.length !== fixed)) encFail(`expected ${what}, got ${describe(v)}`);
      let out = "[";
      let i = 0;
      try {
        for (; i < v.length; i++) out += (i === 0 ? "" : ",") + el.enc(v[i], ctx);
      } catch (e) {
        withEncPath(e, `[${i}]`);
      }
      return out + "]";
    },
    dec: (j, ctx) => {
      if (!Array.isArray(j) || (fixed !== undefined && j.length !== fixed)) decFail(`expected ${what}, got ${kindOf(j)}`);
      const out = new Array(j.length);
      let i = 0;
      try {
        for (; i < j.length; i++) out[i] = el.dec(j[i], ctx);
      } catch (e) {
        withDecPath(e, `[${i}]`);
      }
      return out;
    },
  };
}

function tupleNode(els: Node[]): Node {
  const n = els.length;
  return {
    enc: (v, ctx) => {
      if (!Array.isArray(v) || v.length !== n) encFail(`expected a tuple of ${n}, got ${describe(v)}`);
      let out = "[";
      let i = 0;
      try {
        for (; i < n; i++) out += (i === 0 ? "" : ",") + els[i]!.enc(v[i], ctx);
      } catch (e) {
        withEncPath(e, `[${i}]`);
      }
      return out + "]";
    },
    dec: (j, ctx) => {
      if (!Array.isArray(j) || j.length !== n) decFail(`expected an array of ${n} element${n === 1 ? "" : "s"}, got ${kindOf(j)}`);
      const out = new Array(n);
      let i = 0;
      try {
        for (; i < n; i++) out[i] = els[i]!.dec(j[i], ctx);
      } catch (e) {
        withDecPath(e, `[${i}]`);
      }
      return out;
    },
  };
}

function setNode(el: Node): Node {
  const inner = arrayNode(el, undefined, "array (set)");
  return {
    enc: (v, ctx) => {
      if (!(v instanceof Set)) encFail(`expected Set, got ${describe(v)}`);
      return inner.enc([...v], ctx);
    },
    dec: (j, ctx) => new Set(inner.dec(j, ctx)),
  };
}

/** Map keys that have a string form in a JSON object. */
function keyCodec(k: Schema<any>): { toKey: (v: any) => string; fromKey: (s: string) => unknown } | null {
  switch (k.kind) {
    case "string":
    case "char":
      return { toKey: (v) => v, fromKey: (s) => s };
    case "u8":
    case "u16":
    case "u32":
    case "i8":
    case "i16":
    case "i32":
      return { toKey: (v) => String(v), fromKey: (s) => (/^-?\d+$/.test(s) ? Number(s) : s) };
    case "u64":
    case "i64":
    case "u128":
    case "i128":
      return { toKey: (v) => String(v), fromKey: (s) => (/^-?\d+$/.test(s) ? new BigIntText(s) : s) };
    case "bool":
      return { toKey: (v) => String(v), fromKey: (s) => (s === "true" ? true : s === "false" ? false : s) };
    default:
      return null;
  }
}

function mapNode(s: InstanceType<typeof MapSchemaClass>): Node {
  const kn = compile(s.key);
  const vn = compile(s.value);
  const kc = keyCodec(s.key);
  if (kc === null) {
    // Keys with no string form: an array of [key, value] pairs.
    const pair = tupleNode([kn, vn]);
    const list = arrayNode(pair, undefined, "array of [key, value] pairs");
    return {
      enc: (v, ctx) => {
        if (!(v instanceof Map)) encFail(`expected Map, got ${describe(v)}`);
        return list.enc([...v], ctx);
      },
      dec: (j, ctx) => new Map(list.dec(j, ctx) as [unknown, unknown][]),
    };
  }
  return {
    enc: (v, ctx) => {
      if (!(v instanceof Map)) encFail(`expected Map, got ${describe(v)}`);
      let out = "{";
      let first = true;
      for (const [k, val] of v) {
        const key = kc.toKey(k);
        try {
          kn.enc(k, ctx);
          out += (first ? "" : ",") + str(key) + ":" + vn.enc(val, ctx);
        } catch (e) {
          withEncPath(e, `[${str(key)}]`);
        }
        first = false;
      }
      return out + "}";
    },
    dec: (j, ctx) => {
      if (!isPlainObject(j)) decFail(`expected an object (map), got ${kindOf(j)}`);
      const out = new Map();
      for (const key of Object.keys(j)) {
        try {
          out.set(kn.dec(kc.fromKey(key), ctx), vn.dec(j[key], ctx));
        } catch (e) {
          withDecPath(e, `[${str(key)}]`);
        }
      }
      return out;
    },
  };
}

function structNode(names: readonly string[], types: readonly Schema<any>[], label: string): Node {
  const nodes = types.map(compile);
  const optional = types.map((t) => t.kind === "option");
  const keys = names.map((n) => str(n) + ":");
  return {
    enc: (v, ctx) => {
      if (typeof v !== "object" || v === null) encFail(`expected ${label}, got ${describe(v)}`);
      let out = "{";
      let i = 0;
      try {
        for (; i < names.length; i++) out += (i === 0 ? "" : ",") + keys[i] + nodes[i]!.enc(v[names[i]!], ctx);
      } catch (e) {
        withEncPath(e, names[i]!);
      }
      return out + "}";
    },
    dec: (j, ctx) => {
      if (!isPlainObject(j)) decFail(`expected ${label} as an object, got ${kindOf(j)}`);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        const raw = Object.prototype.hasOwnProperty.call(j, name) ? j[name] : undefined;
        if (raw === undefined) {
          if (optional[i]) {
            out[name] = null;
            continue;
          }
          decFail(`missing field "${name}"`);
        }
        try {
          out[name] = nodes[i]!.dec(raw, ctx);
        } catch (e) {
          withDecPath(e, name);
        }
      }
      return out;
    },
  };
}

function enumNode(s: InstanceType<typeof EnumSchemaClass>): Node {
  const label = s.name ? `enum ${s.name}` : "enum";
  const variants = new Map<string, { node: Node | null }>();
  for (const v of s.variants) variants.set(v.name, { node: v.payload ? compile(v.payload) : null });
  const names = [...variants.keys()].join(", ");
  return {
    enc: (v, ctx) => {
      const tag = v?.tag;
      const cv = typeof tag === "string" ? variants.get(tag) : undefined;
      if (cv === undefined) encFail(`unknown variant ${describe(tag)} for ${label}; expected one of ${names}`);
      if (cv.node === null) return str(tag);
      try {
        return "{" + str(tag) + ":" + cv.node.enc(v.value, ctx) + "}";
      } catch (e) {
        withEncPath(e, tag);
      }
    },
    dec: (j, ctx) => {
      if (typeof j === "string") {
        const cv = variants.get(j);
        if (cv === undefined) decFail(`unknown variant "${j}" for ${label}; expected one of ${names}`);
        if (cv.node !== null) decFail(`variant "${j}" of ${label} carries data: write {"${j}": …}`);
        return { tag: j };
      }
      if (!isPlainObject(j)) decFail(`expected ${label} ("Variant" or {"Variant": …}), got ${kindOf(j)}`);
      const ks = Object.keys(j);
      if (ks.length !== 1) decFail(`expected ${label} as an object with exactly one key (the variant), got ${ks.length} keys`);
      const tag = ks[0]!;
      const cv = variants.get(tag);
      if (cv === undefined) decFail(`unknown variant "${tag}" for ${label}; expected one of ${names}`);
      if (cv.node === null) {
        // serde accepts {"Unit": null} for a unit variant too.
        if (j[tag] !== null) throw new JsonDecodeError(`unit variant takes no data`, [tag]);
        return { tag };
      }
      try {
        return { tag, value: cv.node.dec(j[tag], ctx) };
      } catch (e) {
        withDecPath(e, tag);
      }
    },
  };
}

function literalsNode(s: LiteralEnumSchema<string>): Node {
  const set = new Set(s.names);
  const label = s.name ? `enum ${s.name}` : "enum";
  const names = s.names.join(", ");
  return {
    enc: (v) => {
      if (typeof v !== "string" || !set.has(v)) encFail(`unknown variant ${describe(v)} for ${label}; expected one of ${names}`);
      return str(v);
    },
    dec: (j) => {
      let tag = j;
      if (isPlainObject(j)) {
        const ks = Object.keys(j);
        if (ks.length === 1 && j[ks[0]!] === null) tag = ks[0];
      }
      if (typeof tag !== "string" || !set.has(tag)) decFail(`expected one of ${names} (${label}), got ${kindOf(j)}`);
      return tag;
    },
  };
}

function optionNode(s: InstanceType<typeof OptionSchemaClass>): Node {
  const inner = compile(s.inner);
  const wrapped = s.inner.nullable;
  const unitInner = s.inner.kind === "unit";
  return {
    enc: (v, ctx) => {
      if (v === null || (v === undefined && !unitInner)) return "null";
      try {
        return inner.enc(wrapped ? v.some : v, ctx);
      } catch (e) {
        withEncPath(e, "some");
      }
    },
    dec: (j, ctx) => {
      if (j === null) return null;
      try {
        const v = inner.dec(j, ctx);
        return wrapped ? { some: v } : v;
      } catch (e) {
        withDecPath(e, "some");
      }
    },
  };
}

function resultNode(s: ResultSchema<any, any>): Node {
  const ok = compile(s.ok);
  const err = compile(s.err);
  return {
    enc: (v, ctx) => {
      if (typeof v !== "object" || v === null || typeof v.ok !== "boolean") encFail(`expected { ok: true, value } | { ok: false, error }, got ${describe(v)}`);
      try {
        return v.ok ? '{"Ok":' + ok.enc(v.value, ctx) + "}" : '{"Err":' + err.enc(v.error, ctx) + "}";
      } catch (e) {
        withEncPath(e, v.ok ? "Ok" : "Err");
      }
    },
    dec: (j, ctx) => {
      if (!isPlainObject(j)) decFail(`expected {"Ok": …} or {"Err": …}, got ${kindOf(j)}`);
      const ks = Object.keys(j);
      if (ks.length !== 1 || (ks[0] !== "Ok" && ks[0] !== "Err")) decFail(`expected {"Ok": …} or {"Err": …}, got keys ${ks.join(", ")}`);
      const isOk = ks[0] === "Ok";
      try {
        return isOk ? { ok: true, value: ok.dec(j["Ok"], ctx) } : { ok: false, error: err.dec(j["Err"], ctx) };
      } catch (e) {
        withDecPath(e, ks[0]!);
      }
    },
  };
}

function channelNode(s: ChannelSchema<any>): Node {
  const what = s.kind === "tx" ? "Tx" : "Rx";
  return {
    enc: (v, ctx) => {
      const b = ctx.binder?.outgoing;
      if (!b) encFail(`${what} can only be sent as an argument of a WebSocket call`);
      return String(b(v, s));
    },
    dec: (j, ctx) => {
      const b = ctx.binder?.incoming;
      if (!b) decFail(`${what} arguments need the WebSocket endpoint (bridge.json.channels-forbidden)`);
      if (typeof j !== "number" || !Number.isSafeInteger(j) || j < 1 || j > 0xffffffff) decFail(`expected a channel id (integer 1..2^32-1), got ${kindOf(j)}`);
      return b(j, s);
    },
  };
}

function lazyNode(s: InstanceType<typeof LazySchemaClass>): Node {
  let target: Node | undefined;
  const get = () => (target ??= compile(s.target));
  return {
    enc: (v, ctx) => {
      if (++ctx.depth > MAX_RECURSION_DEPTH) encFail(`nesting deeper than ${MAX_RECURSION_DEPTH}`);
      try {
        return get().enc(v, ctx);
      } finally {
        ctx.depth--;
      }
    },
    dec: (j, ctx) => {
      if (++ctx.depth > MAX_RECURSION_DEPTH) decFail(`nesting deeper than ${MAX_RECURSION_DEPTH}`);
      try {
        return get().dec(j, ctx);
      } finally {
        ctx.depth--;
      }
    },
  };
}

const unitNode: Node = {
  enc: () => "null",
  dec: (j) => {
    if (j !== null) decFail(`expected null (unit), got ${kindOf(j)}`);
    return undefined;
  },
};

const boolNode: Node = {
  enc: (v) => {
    if (typeof v !== "boolean") encFail(`expected boolean, got ${describe(v)}`);
    return v ? "true" : "false";
  },
  dec: (j) => {
    if (typeof j !== "boolean") decFail(`expected boolean, got ${kindOf(j)}`);
    return j;
  },
};

function build(s: Schema<any>): Node {
  switch (s.kind) {
    case "bool":
      return boolNode;
    case "u8":
      return smallInt("u8", 0, 255);
    case "u16":
      return smallInt("u16", 0, 65535);
    case "u32":
      return smallInt("u32", 0, 0xffffffff);
    case "i8":
      return smallInt("i8", -128, 127);
    case "i16":
      return smallInt("i16", -32768, 32767);
    case "i32":
      return smallInt("i32", -0x80000000, 0x7fffffff);
    case "u64":
      return bigInt("u64", checkU64);
    case "i64":
      return bigInt("i64", checkI64);
    case "u128":
      return bigInt("u128", checkU128);
    case "i128":
      return bigInt("i128", checkI128);
    case "f32":
      return float("f32");
    case "f64":
      return float("f64");
    case "char":
      return charNode;
    case "string":
      return stringNode;
    case "unit":
      return unitNode;
    case "bytes":
      return bytesNode;
    case "option":
      return optionNode(s as InstanceType<typeof OptionSchemaClass>);
    case "list": {
      const l = s as InstanceType<typeof ListSchemaClass>;
      // A list of u8 is `bytes` on the wire (signature.bytes.equivalence); in JSON both are arrays of numbers.
      return arrayNode(compile(l.element), undefined, "array");
    }
    case "array": {
      const a = s as InstanceType<typeof ArraySchemaClass>;
      return arrayNode(compile(a.element), a.length, `array of length ${a.length}`);
    }
    case "set":
      return setNode(compile((s as InstanceType<typeof SetSchemaClass>).element));
    case "map":
      return mapNode(s as InstanceType<typeof MapSchemaClass>);
    case "tuple":
      return tupleNode((s as InstanceType<typeof TupleSchemaClass>).elements.map(compile));
    case "struct": {
      const st = s as InstanceType<typeof StructSchemaClass>;
      return structNode(st.names, st.types, st.name ? `struct ${st.name}` : "struct");
    }
    case "enum":
      if (s instanceof EnumSchemaClass) return enumNode(s);
      return literalsNode(s as unknown as LiteralEnumSchema<string>);
    case "result":
      return resultNode(s as ResultSchema<any, any>);
    case "tx":
    case "rx":
      return channelNode(s as ChannelSchema<any>);
    case "lazy":
      return lazyNode(s as InstanceType<typeof LazySchemaClass>);
  }
}
