/**
 * JSON forms of the collections: lists, fixed arrays, tuples and sets as
 * arrays; maps as objects (string-like keys) or arrays of pairs. Each takes
 * the compiled nodes of its parts.
 */
import { describe, type Schema } from "../schema/index.js";
import { decFail, encFail, isPlainObject, kindOf, str, withDecPath, withEncPath, type Node } from "./node.js";
import { BigIntText } from "./parse.js";

/** How a map key is written as a JSON object key, and read back. */
export interface KeyCodec {
  toKey: (v: any) => string;
  fromKey: (s: string) => unknown;
}

export function arrayNode(el: Node, fixed: number | undefined, what: string): Node {
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

export function tupleNode(els: Node[]): Node {
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

export function setNode(el: Node): Node {
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
export function keyCodec(k: Schema<any>): KeyCodec | null {
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

/** A map: a JSON object when its keys have a string form (`kc`), else an array of `[key, value]` pairs. */
export function mapNode(kn: Node, vn: Node, kc: KeyCodec | null): Node {
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
