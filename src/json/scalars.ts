/**
 * JSON forms of the primitive types: range-checked integers (64/128-bit ones
 * as bigints, every digit kept), floats with NaN/±Infinity as strings,
 * well-formed strings and chars, bytes as arrays of numbers, unit as null.
 */
import { describe } from "../schema/index.js";
import { JsonDecodeError } from "./errors.js";
import { decFail, encFail, kindOf, str, type Node } from "./node.js";
import { BigIntText } from "./parse.js";

// --- integers ----------------------------------------------------------------

export function smallInt(kind: string, min: number, max: number): Node {
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

export function bigInt(kind: string, check: (v: bigint) => void): Node {
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

export function float(kind: "f32" | "f64"): Node {
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

export const stringNode: Node = {
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

export const charNode: Node = {
  enc: (v) => {
    if (!isChar(v)) encFail(`expected a single Unicode scalar (char), got ${describe(v)}`);
    return str(v);
  },
  dec: (j) => {
    if (!isChar(j)) decFail(`expected a single Unicode scalar (char), got ${kindOf(j)}`);
    return j;
  },
};

export const bytesNode: Node = {
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

export const unitNode: Node = {
  enc: () => "null",
  dec: (j) => {
    if (j !== null) decFail(`expected null (unit), got ${kindOf(j)}`);
    return undefined;
  },
};

export const boolNode: Node = {
  enc: (v) => {
    if (typeof v !== "boolean") encFail(`expected boolean, got ${describe(v)}`);
    return v ? "true" : "false";
  },
  dec: (j) => {
    if (typeof j !== "boolean") decFail(`expected boolean, got ${kindOf(j)}`);
    return j;
  },
};
