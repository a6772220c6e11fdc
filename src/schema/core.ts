/**
 * The base of every schema, the type-level helpers that read value types off
 * schemas, and the error-path helpers the composite schemas share.
 */
import { DecodeError, EncodeError } from "../codec/errors.js";
import { Reader } from "../codec/reader.js";
import { Writer } from "../codec/writer.js";
import type { SigWriter } from "./signature.js";

/** Scratch writer for `toBytes` without a writer of the caller's (its result is copied out). */
const scratch = new Writer(1024);

/**
 * A schema describes one roam type. It is built once and carries its
 * compiled encoder/decoder and its signature encoding; values are never
 * walked by reflection.
 *
 * `T` is the TypeScript type of values of this schema (use `Infer<S>`).
 */
export abstract class Schema<T> {
  /** Phantom field carrying the value type; never set at runtime. */
  declare readonly __type: T;
  abstract readonly kind: SchemaKind;
  /** True when `null` is a valid value (so Option<this> needs a wrapper). */
  readonly nullable: boolean = false;
  /** True if a Tx/Rx occurs anywhere inside this type. */
  readonly hasChannels: boolean = false;

  abstract encode(w: Writer, v: T): void;
  abstract decode(r: Reader): T;
  /** Appends the signature encoding (rust-spec `signature.*`). */
  abstract writeSig(out: SigWriter): void;

  /**
   * Smallest number of bytes any value of this type encodes to; 1 unless a
   * schema knows better. Use `minEncodedSize(s)` (./size.ts) rather than
   * calling this: `visiting` guards recursive types.
   * @internal
   */
  minSize(_visiting: Set<Schema<any>>): number {
    return 1;
  }

  /** Encodes a single value into a fresh byte array. */
  toBytes(v: T, w?: Writer): Uint8Array {
    const writer = w ?? scratch;
    writer.reset();
    this.encode(writer, v);
    return writer.finish();
  }

  /** Decodes a whole byte array; trailing bytes are an error. */
  fromBytes(bytes: Uint8Array, r?: Reader): T {
    const reader = r ?? new Reader(bytes);
    const v = this.decode(reader);
    reader.expectEnd();
    return v;
  }
}

export type SchemaKind =
  | "bool" | "u8" | "u16" | "u32" | "u64" | "u128" | "i8" | "i16" | "i32" | "i64" | "i128"
  | "f32" | "f64" | "char" | "string" | "unit" | "bytes"
  | "option" | "list" | "array" | "map" | "set" | "tuple" | "struct" | "enum" | "result"
  | "tx" | "rx" | "lazy";

export type Infer<S> = S extends Schema<infer T> ? T : never;
export type InferTuple<A extends readonly Schema<any>[]> = { -readonly [K in keyof A]: Infer<A[K]> };

/** Re-throws a decode error from inside a composite with `segment` prepended to its value path. */
export function wrapDecode(e: unknown, segment: string): never {
  if (e instanceof DecodeError) throw e.withOuterPath(segment);
  throw e;
}

/** Re-throws an encode error (or a TypeError/RangeError of a bad value) with `segment` prepended to its path. */
export function wrapEncode(e: unknown, segment: string): never {
  if (e instanceof EncodeError) throw e.withOuterPath(segment);
  if (e instanceof TypeError || e instanceof RangeError) {
    throw new EncodeError(e.message, [segment]);
  }
  throw e;
}

/** Throws the EncodeError for a value that is not a `kind`. */
export function bad(kind: string, v: unknown): never {
  throw new EncodeError(`expected ${kind}, got ${describe(v)}`);
}

/** A short description of a JS value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "bigint") return `bigint ${v}`;
  if (typeof v === "number") return `number ${v}`;
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (Array.isArray(v)) return `array of length ${v.length}`;
  if (v instanceof Uint8Array) return `Uint8Array of length ${v.length}`;
  return typeof v;
}
