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
  type LiteralEnumSchema,
  type Schema,
} from "../schema/index.js";
import { arrayNode, keyCodec, mapNode, setNode, tupleNode } from "./collections.js";
import { asEncodeError, decFail, encFail, kindOf, type JsonChannelBinder, type Node } from "./node.js";
import { enumNode, literalsNode, optionNode, resultNode, structNode } from "./records.js";
import { bigInt, boolNode, bytesNode, charNode, float, smallInt, stringNode, unitNode } from "./scalars.js";

export type { JsonChannelBinder } from "./node.js";

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
    case "option": {
      const o = s as InstanceType<typeof OptionSchemaClass>;
      return optionNode(compile(o.inner), o.inner.nullable, o.inner.kind === "unit");
    }
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
    case "map": {
      const m = s as InstanceType<typeof MapSchemaClass>;
      return mapNode(compile(m.key), compile(m.value), keyCodec(m.key));
    }
    case "tuple":
      return tupleNode((s as InstanceType<typeof TupleSchemaClass>).elements.map(compile));
    case "struct": {
      const st = s as InstanceType<typeof StructSchemaClass>;
      return structNode(st.names, st.types.map(compile), st.types.map((ft) => ft.kind === "option"), st.name ? `struct ${st.name}` : "struct");
    }
    case "enum": {
      if (s instanceof EnumSchemaClass) {
        return enumNode(s.name ? `enum ${s.name}` : "enum", s.variants.map((v) => ({ name: v.name, node: v.payload ? compile(v.payload) : null })));
      }
      const lit = s as unknown as LiteralEnumSchema<string>;
      return literalsNode(lit.names, lit.name ? `enum ${lit.name}` : "enum");
    }
    case "result": {
      const r = s as ResultSchema<any, any>;
      return resultNode(compile(r.ok), compile(r.err));
    }
    case "tx":
    case "rx":
      return channelNode(s as ChannelSchema<any>);
    case "lazy":
      return lazyNode(s as InstanceType<typeof LazySchemaClass>);
  }
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
