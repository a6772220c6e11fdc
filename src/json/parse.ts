/**
 * Lossless JSON text → JSON value.
 *
 * Integers outside ±(2^53-1) do not survive `JSON.parse` (they round to the
 * nearest double), yet roam's u64/i64/u128/i128 must cross the bridge exactly
 * (bridge.json.facet: 64-bit integers are JSON numbers). The fast path is
 * `JSON.parse` when the text has no run of 16+ digits (every integer with at
 * most 15 digits is exact as a double); otherwise `lossless-json` parses it and
 * integer literals that are not safe doubles come back as `BigIntText`, which
 * the schema-driven decoder turns into a bigint (or a float where the schema
 * says so).
 */
import { parse as losslessParse } from "lossless-json";
import { JsonDecodeError } from "./errors.js";

/** An integer literal too large for a double, kept as its text. */
export class BigIntText {
  constructor(readonly text: string) {}
}

const LONG_DIGITS = /\d{16}/;
const INTEGER = /^-?\d+$/;

function parseNumber(text: string): number | BigIntText {
  if (INTEGER.test(text)) {
    const n = Number(text);
    if (!Number.isSafeInteger(n)) return new BigIntText(text);
    return n;
  }
  return Number(text);
}

/** Parses JSON text; throws JsonDecodeError (never SyntaxError/RangeError) on bad input. */
export function parseJson(text: string): unknown {
  try {
    if (!LONG_DIGITS.test(text)) return JSON.parse(text);
    return losslessParse(text, null, parseNumber);
  } catch (e) {
    if (e instanceof RangeError) throw new JsonDecodeError("JSON nested too deeply");
    throw new JsonDecodeError(`malformed JSON: ${(e as Error).message}`);
  }
}
