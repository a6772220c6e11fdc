/**
 * JSON forms of records and sums: structs as objects, externally tagged
 * enums, literal enums as strings, Option as null-or-value and Result as
 * `{"Ok"}`/`{"Err"}`. Each takes the compiled nodes of its parts.
 */
import { describe } from "../schema/index.js";
import { JsonDecodeError } from "./errors.js";
import { decFail, encFail, isPlainObject, kindOf, str, withDecPath, withEncPath, type Node } from "./node.js";

/** A struct as an object by field name; a missing field whose `optional[i]` (an Option) is None. */
export function structNode(names: readonly string[], nodes: readonly Node[], optional: readonly boolean[], label: string): Node {
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

/** An externally tagged enum: `"Unit"` or `{"Variant": payload}`; `node` is null for a unit variant. */
export function enumNode(label: string, variantList: readonly { name: string; node: Node | null }[]): Node {
  const variants = new Map<string, { node: Node | null }>();
  for (const v of variantList) variants.set(v.name, { node: v.node });
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

/** A unit-only enum whose values are the variant names. */
export function literalsNode(variantNames: readonly string[], label: string): Node {
  const set = new Set(variantNames);
  const names = variantNames.join(", ");
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

/**
 * `null` or the inner value. `wrapped`: the inner type admits null, so Some
 * values are `{ some }` in JS; `unitInner`: `Option<()>`, where undefined is Some.
 */
export function optionNode(inner: Node, wrapped: boolean, unitInner: boolean): Node {
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

/** `{"Ok": v}` / `{"Err": e}`. */
export function resultNode(ok: Node, err: Node): Node {
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
