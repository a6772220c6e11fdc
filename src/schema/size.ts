/**
 * Size analysis for decoding untrusted input: the smallest encoding of a
 * type bounds how many elements a length prefix can honestly announce.
 */
import type { Reader } from "../codec/reader.js";
import type { Schema } from "./core.js";

/**
 * Smallest number of bytes any value of `s` encodes to (for length checks).
 * 0 means a zero-sized type: `()`, or structs/tuples/arrays made only of those.
 * Resolves lazy schemas, so call it at decode time, not while schemas are built.
 */
export function minEncodedSize(s: Schema<any>, visiting: Set<Schema<any>> = new Set()): number {
  return s.minSize(visiting);
}

/** Sum of the minimum sizes of a struct's or tuple's parts. */
export function sumMinSizes(types: readonly Schema<any>[], visiting: Set<Schema<any>>): number {
  let sum = 0;
  for (const t of types) sum += minEncodedSize(t, visiting);
  return sum;
}

/**
 * A collection's length prefix, checked against the input; elements of a
 * zero-sized type are also charged to the Reader's zero-sized budget.
 */
export function readLength(r: Reader, minElemSize: number): number {
  const at = r.pos;
  const n = r.length(minElemSize);
  if (minElemSize === 0) r.takeZeroSized(n, at);
  return n;
}
