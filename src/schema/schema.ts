import { DecodeError, EncodeError } from "../codec/errors.js";
import type { Reader } from "../codec/reader.js";
import { checkI128, checkI64, checkU128, checkU64, type Writer } from "../codec/writer.js";
import { SigWriter } from "./signature.js";
import type { Rx } from "../session/channel/rx.js";
import type { Tx } from "../session/channel/tx.js";

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

  /** Encodes a single value into a fresh byte array. */
  toBytes(v: T, w?: Writer): Uint8Array {
    const writer = w ?? scratchWriter();
    writer.reset();
    this.encode(writer, v);
    return writer.finish();
  }

  /** Decodes a whole byte array; trailing bytes are an error. */
  fromBytes(bytes: Uint8Array, r?: Reader): T {
    const reader = r ?? newReader(bytes);
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

// Injected by ./index.ts to avoid an import cycle with the codec classes.
let scratchWriter: () => Writer;
let newReader: (b: Uint8Array) => Reader;
export function installCodecFactories(w: () => Writer, r: (b: Uint8Array) => Reader): void {
  scratchWriter = w;
  newReader = r;
}

function wrapDecode(e: unknown, segment: string): never {
  if (e instanceof DecodeError) throw e.withOuterPath(segment);
  throw e;
}
function wrapEncode(e: unknown, segment: string): never {
  if (e instanceof EncodeError) throw e.withOuterPath(segment);
  if (e instanceof TypeError || e instanceof RangeError) {
    throw new EncodeError(e.message, [segment]);
  }
  throw e;
}

// ---------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------

class PrimSchema<T> extends Schema<T> {
  constructor(
    readonly kind: SchemaKind,
    readonly sigTag: number,
    readonly encode: (w: Writer, v: T) => void,
    readonly decode: (r: Reader) => T,
  ) {
    super();
  }
  writeSig(out: SigWriter): void {
    out.byte(this.sigTag);
  }
}

function bad(kind: string, v: unknown): never {
  throw new EncodeError(`expected ${kind}, got ${describe(v)}`);
}
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "bigint") return `bigint ${v}`;
  if (typeof v === "number") return `number ${v}`;
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (Array.isArray(v)) return `array of length ${v.length}`;
  if (v instanceof Uint8Array) return `Uint8Array of length ${v.length}`;
  return typeof v;
}

const bool = new PrimSchema<boolean>(
  "bool", 0x01,
  (w, v) => { if (typeof v !== "boolean") bad("boolean", v); w.u8(v ? 1 : 0); },
  (r) => r.bool(),
);
const u8 = new PrimSchema<number>(
  "u8", 0x02,
  (w, v) => { if ((v & 0xff) !== v) bad("u8 (0..255)", v); w.u8(v); },
  (r) => r.u8(),
);
const u16 = new PrimSchema<number>(
  "u16", 0x03,
  (w, v) => { if ((v & 0xffff) !== v) bad("u16 (0..65535)", v); w.varint(v); },
  (r) => r.varint32(16),
);
const u32 = new PrimSchema<number>(
  "u32", 0x04,
  (w, v) => { if (v >>> 0 !== v) bad("u32 (0..2^32-1)", v); w.varint(v); },
  (r) => r.varint32(32),
);
const u64 = new PrimSchema<bigint>(
  "u64", 0x05,
  (w, v) => { checkU64(v); w.varintBig(v); },
  (r) => r.varint64(64),
);
const u128 = new PrimSchema<bigint>(
  "u128", 0x06,
  (w, v) => { checkU128(v); w.varintBig(v); },
  (r) => r.varint64(128),
);
const i8 = new PrimSchema<number>(
  "i8", 0x07,
  (w, v) => { if ((v << 24) >> 24 !== v) bad("i8 (-128..127)", v); w.u8(v & 0xff); },
  (r) => (r.u8() << 24) >> 24,
);
const i16 = new PrimSchema<number>(
  "i16", 0x08,
  (w, v) => { if ((v << 16) >> 16 !== v) bad("i16", v); w.zigzag(v); },
  (r) => r.zigzag32(16),
);
const i32 = new PrimSchema<number>(
  "i32", 0x09,
  (w, v) => { if ((v | 0) !== v) bad("i32", v); w.zigzag(v); },
  (r) => r.zigzag32(32),
);
const i64 = new PrimSchema<bigint>(
  "i64", 0x0a,
  (w, v) => { checkI64(v); w.zigzagBig64(v); },
  (r) => r.zigzag64(64),
);
const i128 = new PrimSchema<bigint>(
  "i128", 0x0b,
  (w, v) => { checkI128(v); w.zigzagBig64(v); },
  (r) => r.zigzag64(128),
);
const f32 = new PrimSchema<number>(
  "f32", 0x0c,
  (w, v) => { if (typeof v !== "number") bad("number", v); w.f32(v); },
  (r) => r.f32(),
);
const f64 = new PrimSchema<number>(
  "f64", 0x0d,
  (w, v) => { if (typeof v !== "number") bad("number", v); w.f64(v); },
  (r) => r.f64(),
);
const char = new PrimSchema<string>(
  "char", 0x0e,
  (w, v) => {
    if (typeof v !== "string" || v.length === 0 || v.length > 2 || [...v].length !== 1) bad("a single Unicode scalar (char)", v);
    const cp = v.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) bad("a Unicode scalar (lone surrogate)", v);
    w.string(v);
  },
  (r) => {
    const at = r.pos;
    const s = r.string();
    if (s.length === 0 || s.length > 2 || s.codePointAt(0)! > 0xffff !== (s.length === 2)) {
      r.fail("char must be exactly one Unicode scalar", at);
    }
    return s;
  },
);
const string = new PrimSchema<string>(
  "string", 0x0f,
  (w, v) => {
    if (typeof v !== "string") bad("string", v);
    // A Rust String is UTF-8: a lone surrogate cannot be encoded (TextEncoder
    // would silently replace it with U+FFFD, changing the value).
    if (!(v as unknown as { isWellFormed(): boolean }).isWellFormed()) bad("a well-formed string (no lone surrogates)", v);
    w.string(v);
  },
  (r) => r.string(),
);
const unit = new PrimSchema<void>(
  "unit", 0x10,
  () => {},
  () => undefined,
);
const bytes = new PrimSchema<Uint8Array>(
  "bytes", 0x11,
  (w, v) => { if (!(v instanceof Uint8Array)) bad("Uint8Array", v); w.bytes(v); },
  (r) => r.bytes(),
);

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

/** `Option<T>` value: `T | null`, or `{ some: T } | null` when T itself admits null. */
export type OptionValue<T> = null extends T ? { some: T } | null : T | null;

class OptionSchema<T> extends Schema<OptionValue<T>> {
  readonly kind = "option";
  override readonly nullable = true;
  override readonly hasChannels: boolean;
  private readonly wrapped: boolean;
  /** `undefined` means None, except for `Option<()>` where it is the Some value. */
  private readonly undefinedIsNone: boolean;
  constructor(readonly inner: Schema<T>) {
    super();
    this.wrapped = inner.nullable;
    this.undefinedIsNone = inner.kind !== "unit";
    this.hasChannels = inner.hasChannels;
  }
  encode(w: Writer, v: OptionValue<T>): void {
    if (v === null || (v === undefined && this.undefinedIsNone)) {
      w.u8(0);
      return;
    }
    w.u8(1);
    try {
      this.inner.encode(w, this.wrapped ? (v as unknown as { some: T }).some : (v as T));
    } catch (e) {
      wrapEncode(e, "some");
    }
  }
  decode(r: Reader): OptionValue<T> {
    const at = r.pos;
    const tag = r.u8();
    if (tag === 0) return null as OptionValue<T>;
    if (tag !== 1) r.fail(`invalid Option tag ${tag}`, at);
    let v: T;
    try {
      v = this.inner.decode(r);
    } catch (e) {
      wrapDecode(e, "some");
    }
    return (this.wrapped ? { some: v } : v) as OptionValue<T>;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x21);
    out.type(this.inner);
  }
}

class ListSchema<T> extends Schema<T[]> {
  readonly kind = "list";
  override readonly hasChannels: boolean;
  /** minEncodedSize(element), computed on first decode (a lazy element may not resolve earlier). */
  private minSize = -1;
  constructor(readonly element: Schema<T>) {
    super();
    this.hasChannels = element.hasChannels;
  }
  encode(w: Writer, v: T[]): void {
    if (!Array.isArray(v)) bad("array", v);
    const n = v.length;
    w.varint(n);
    const el = this.element;
    let i = 0;
    try {
      for (; i < n; i++) el.encode(w, v[i]!);
    } catch (e) {
      wrapEncode(e, `[${i}]`);
    }
  }
  decode(r: Reader): T[] {
    // A lying length prefix cannot make us allocate: every element needs at
    // least `minSize` bytes, checked against what is actually present.
    if (this.minSize < 0) this.minSize = minEncodedSize(this.element);
    const n = readLength(r, this.minSize);
    const out: T[] = [];
    const el = this.element;
    let i = 0;
    try {
      for (; i < n; i++) out.push(el.decode(r));
    } catch (e) {
      wrapDecode(e, `[${i}]`);
    }
    return out;
  }
  writeSig(out: SigWriter): void {
    // r[signature.bytes.equivalence]: a list of u8 is `bytes`.
    if (this.element.kind === "u8") {
      out.byte(0x11);
      return;
    }
    out.byte(0x20);
    out.type(this.element);
  }
}

class ArraySchema<T> extends Schema<T[]> {
  readonly kind = "array";
  override readonly hasChannels: boolean;
  private minSize = -1;
  constructor(readonly element: Schema<T>, readonly length: number) {
    super();
    this.hasChannels = element.hasChannels;
  }
  encode(w: Writer, v: T[]): void {
    if (!Array.isArray(v) || v.length !== this.length) bad(`array of length ${this.length}`, v);
    let i = 0;
    try {
      for (; i < this.length; i++) this.element.encode(w, v[i]!);
    } catch (e) {
      wrapEncode(e, `[${i}]`);
    }
  }
  decode(r: Reader): T[] {
    if (this.minSize < 0) this.minSize = minEncodedSize(this.element);
    if (this.length * this.minSize > r.remaining) r.fail(`array of ${this.length} elements exceeds the input`);
    if (this.minSize === 0) r.takeZeroSized(this.length, r.pos);
    const out: T[] = [];
    let i = 0;
    try {
      for (; i < this.length; i++) out.push(this.element.decode(r));
    } catch (e) {
      wrapDecode(e, `[${i}]`);
    }
    return out;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x22);
    out.varint(this.length);
    out.type(this.element);
  }
}

class MapSchema<K, V> extends Schema<Map<K, V>> {
  readonly kind = "map";
  override readonly hasChannels: boolean;
  private minSize = -1;
  constructor(readonly key: Schema<K>, readonly value: Schema<V>) {
    super();
    this.hasChannels = key.hasChannels || value.hasChannels;
  }
  encode(w: Writer, v: Map<K, V>): void {
    if (!(v instanceof Map)) bad("Map", v);
    w.varint(v.size);
    let i = 0;
    for (const [k, val] of v) {
      try {
        this.key.encode(w, k);
        this.value.encode(w, val);
      } catch (e) {
        wrapEncode(e, `[${i}]`);
      }
      i++;
    }
  }
  decode(r: Reader): Map<K, V> {
    if (this.minSize < 0) this.minSize = minEncodedSize(this.key) + minEncodedSize(this.value);
    const n = readLength(r, this.minSize);
    const out = new Map<K, V>();
    for (let i = 0; i < n; i++) {
      try {
        const k = this.key.decode(r);
        out.set(k, this.value.decode(r));
      } catch (e) {
        wrapDecode(e, `[${i}]`);
      }
    }
    return out;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x23);
    out.type(this.key);
    out.type(this.value);
  }
}

class SetSchema<T> extends Schema<Set<T>> {
  readonly kind = "set";
  override readonly hasChannels: boolean;
  private minSize = -1;
  constructor(readonly element: Schema<T>) {
    super();
    this.hasChannels = element.hasChannels;
  }
  encode(w: Writer, v: Set<T>): void {
    if (!(v instanceof Set)) bad("Set", v);
    w.varint(v.size);
    let i = 0;
    for (const x of v) {
      try {
        this.element.encode(w, x);
      } catch (e) {
        wrapEncode(e, `[${i}]`);
      }
      i++;
    }
  }
  decode(r: Reader): Set<T> {
    if (this.minSize < 0) this.minSize = minEncodedSize(this.element);
    const n = readLength(r, this.minSize);
    const out = new Set<T>();
    for (let i = 0; i < n; i++) {
      try {
        out.add(this.element.decode(r));
      } catch (e) {
        wrapDecode(e, `[${i}]`);
      }
    }
    return out;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x24);
    out.type(this.element);
  }
}

class TupleSchema<A extends readonly Schema<any>[]> extends Schema<InferTuple<A>> {
  readonly kind = "tuple";
  override readonly hasChannels: boolean;
  constructor(readonly elements: A) {
    super();
    this.hasChannels = elements.some((e) => e.hasChannels);
  }
  encode(w: Writer, v: InferTuple<A>): void {
    const els = this.elements;
    if (!Array.isArray(v) || v.length !== els.length) bad(`tuple of ${els.length}`, v);
    let i = 0;
    try {
      for (; i < els.length; i++) els[i]!.encode(w, (v as unknown[])[i]);
    } catch (e) {
      wrapEncode(e, `[${i}]`);
    }
  }
  decode(r: Reader): InferTuple<A> {
    const els = this.elements;
    const out: unknown[] = new Array(els.length);
    let i = 0;
    try {
      for (; i < els.length; i++) out[i] = els[i]!.decode(r);
    } catch (e) {
      wrapDecode(e, `[${i}]`);
    }
    return out as InferTuple<A>;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x25);
    out.varint(this.elements.length);
    for (const e of this.elements) out.type(e);
  }
}

export type Fields = { readonly [name: string]: Schema<any> };
export type InferFields<F extends Fields> = { -readonly [K in keyof F]: Infer<F[K]> };

class StructSchema<F extends Fields> extends Schema<InferFields<F>> {
  readonly kind = "struct";
  override readonly hasChannels: boolean;
  readonly names: string[];
  readonly types: Schema<any>[];
  constructor(readonly fields: F, readonly name?: string) {
    super();
    this.names = Object.keys(fields);
    this.types = this.names.map((n) => fields[n]!);
    this.hasChannels = this.types.some((t) => t.hasChannels);
  }
  encode(w: Writer, v: InferFields<F>): void {
    if (typeof v !== "object" || v === null) bad(`struct ${this.name ?? ""}`.trim(), v);
    const names = this.names;
    const types = this.types;
    let i = 0;
    try {
      for (; i < names.length; i++) types[i]!.encode(w, (v as Record<string, unknown>)[names[i]!]);
    } catch (e) {
      wrapEncode(e, names[i]!);
    }
  }
  decode(r: Reader): InferFields<F> {
    const names = this.names;
    const types = this.types;
    const out: Record<string, unknown> = {};
    let i = 0;
    try {
      for (; i < names.length; i++) out[names[i]!] = types[i]!.decode(r);
    } catch (e) {
      wrapDecode(e, names[i]!);
    }
    return out as InferFields<F>;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x30);
    writeFieldsSig(out, this.names, this.types);
  }
}

function writeFieldsSig(out: SigWriter, names: string[], types: Schema<any>[]): void {
  out.varint(names.length);
  for (let i = 0; i < names.length; i++) {
    out.name(names[i]!);
    out.type(types[i]!);
  }
}

// --- enums -----------------------------------------------------------------

/**
 * How a variant is declared in `t.enum({...})`:
 * - `null`: unit variant, value `{ tag }`
 * - a schema: newtype variant, value `{ tag, value }`
 * - an array of schemas: tuple variant, value `{ tag, value: [...] }`
 * - an object of schemas: struct variant, value `{ tag, value: {...} }`
 */
export type VariantSpec = null | Schema<any> | readonly Schema<any>[] | Fields;
export type Variants = { readonly [name: string]: VariantSpec };

type VariantValue<K, V> = V extends null
  ? { tag: K }
  : V extends Schema<infer T>
    ? { tag: K; value: T }
    : V extends readonly Schema<any>[]
      ? { tag: K; value: InferTuple<V> }
      : V extends Fields
        ? { tag: K; value: InferFields<V> }
        : never;

export type InferEnum<V extends Variants> = { [K in keyof V & string]: VariantValue<K, V[K]> }[keyof V & string];

interface CompiledVariant {
  name: string;
  index: number;
  shape: "unit" | "newtype" | "tuple" | "struct";
  payload: Schema<any> | null; // newtype: inner, tuple: TupleSchema, struct: StructSchema
}

class EnumSchema<V extends Variants> extends Schema<InferEnum<V>> {
  readonly kind = "enum";
  override readonly hasChannels: boolean;
  readonly variants: CompiledVariant[];
  private readonly byName = new Map<string, CompiledVariant>();
  constructor(spec: V, readonly name?: string) {
    super();
    this.variants = Object.keys(spec).map((vname, index) => {
      const s = spec[vname]!;
      let cv: CompiledVariant;
      if (s === null) cv = { name: vname, index, shape: "unit", payload: null };
      else if (s instanceof Schema) cv = { name: vname, index, shape: "newtype", payload: s };
      else if (Array.isArray(s)) cv = { name: vname, index, shape: "tuple", payload: new TupleSchema(s as readonly Schema<any>[]) };
      else cv = { name: vname, index, shape: "struct", payload: new StructSchema(s as Fields) };
      this.byName.set(vname, cv);
      return cv;
    });
    this.hasChannels = this.variants.some((v) => v.payload?.hasChannels ?? false);
  }
  encode(w: Writer, v: InferEnum<V>): void {
    const tag = (v as { tag?: unknown } | null)?.tag;
    const cv = typeof tag === "string" ? this.byName.get(tag) : undefined;
    if (cv === undefined) {
      throw new EncodeError(`unknown variant ${describe(tag)} for enum ${this.name ?? ""}; expected one of ${[...this.byName.keys()].join(", ")}`);
    }
    w.varint(cv.index);
    if (cv.payload !== null) {
      try {
        cv.payload.encode(w, (v as { value: unknown }).value);
      } catch (e) {
        wrapEncode(e, cv.name);
      }
    }
  }
  decode(r: Reader): InferEnum<V> {
    const at = r.pos;
    const idx = r.varint32(32);
    const cv = this.variants[idx];
    if (cv === undefined) r.fail(`unknown enum discriminant ${idx}${this.name ? ` for ${this.name}` : ""}`, at);
    if (cv.payload === null) return { tag: cv.name } as InferEnum<V>;
    let value: unknown;
    try {
      value = cv.payload.decode(r);
    } catch (e) {
      wrapDecode(e, cv.name);
    }
    return { tag: cv.name, value } as InferEnum<V>;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x31);
    out.varint(this.variants.length);
    for (const v of this.variants) {
      out.name(v.name);
      switch (v.shape) {
        case "unit":
          out.byte(0x00);
          break;
        case "newtype":
          out.byte(0x01);
          out.type(v.payload!);
          break;
        case "tuple": {
          // The reference writes a one-field tuple variant as a newtype and a
          // wider one as a struct variant whose field names are "0", "1", ...
          const els = (v.payload as TupleSchema<readonly Schema<any>[]>).elements;
          if (els.length === 1) {
            out.byte(0x01);
            out.type(els[0]!);
          } else {
            out.byte(0x02);
            writeFieldsSig(out, els.map((_, i) => String(i)), [...els]);
          }
          break;
        }
        case "struct": {
          const st = v.payload as StructSchema<Fields>;
          out.byte(0x02);
          writeFieldsSig(out, st.names, st.types);
          break;
        }
      }
    }
  }
}

/** An enum of unit variants whose values are the variant names themselves. */
class LiteralEnumSchema<N extends string> extends Schema<N> {
  readonly kind = "enum";
  private readonly index = new Map<string, number>();
  constructor(readonly names: readonly N[], readonly name?: string) {
    super();
    names.forEach((n, i) => this.index.set(n, i));
  }
  encode(w: Writer, v: N): void {
    const i = this.index.get(v);
    if (i === undefined) throw new EncodeError(`unknown variant ${describe(v)}; expected one of ${this.names.join(", ")}`);
    w.varint(i);
  }
  decode(r: Reader): N {
    const at = r.pos;
    const i = r.varint32(32);
    const n = this.names[i];
    if (n === undefined) r.fail(`unknown enum discriminant ${i}${this.name ? ` for ${this.name}` : ""}`, at);
    return n;
  }
  writeSig(out: SigWriter): void {
    out.byte(0x31);
    out.varint(this.names.length);
    for (const n of this.names) {
      out.name(n);
      out.byte(0x00);
    }
  }
}

// --- Result ------------------------------------------------------------------

export type ResultValue<T, E> = { ok: true; value: T } | { ok: false; error: E };

export class ResultSchema<T, E> extends Schema<ResultValue<T, E>> {
  readonly kind = "result";
  override readonly hasChannels: boolean;
  constructor(readonly ok: Schema<T>, readonly err: Schema<E>) {
    super();
    this.hasChannels = ok.hasChannels || err.hasChannels;
  }
  encode(w: Writer, v: ResultValue<T, E>): void {
    if (typeof v !== "object" || v === null || typeof v.ok !== "boolean") bad("{ ok: true, value } | { ok: false, error }", v);
    if (v.ok) {
      w.u8(0);
      try {
        this.ok.encode(w, v.value);
      } catch (e) {
        wrapEncode(e, "Ok");
      }
    } else {
      w.u8(1);
      try {
        this.err.encode(w, v.error);
      } catch (e) {
        wrapEncode(e, "Err");
      }
    }
  }
  decode(r: Reader): ResultValue<T, E> {
    const at = r.pos;
    const tag = r.varint32(32);
    if (tag === 0) {
      try {
        return { ok: true, value: this.ok.decode(r) };
      } catch (e) {
        wrapDecode(e, "Ok");
      }
    }
    if (tag === 1) {
      try {
        return { ok: false, error: this.err.decode(r) };
      } catch (e) {
        wrapDecode(e, "Err");
      }
    }
    return r.fail(`invalid Result discriminant ${tag}`, at);
  }
  writeSig(out: SigWriter): void {
    // Interop quirk (see ../shared/testbed/README.md): the reference's
    // signature encoder has no Result case and falls back to unit.
    out.byte(0x10);
  }
}

// --- channels ----------------------------------------------------------------

/**
 * Binds channel handles to ids while a call's arguments are encoded or
 * decoded. The session installs one on the Writer/Reader for calls whose
 * method has channels; the codec itself never sees channel state.
 */
export interface ChannelBinder {
  /** Encoding: returns the id to write for `handle` (allocating one). */
  bindOutgoing(handle: unknown, schema: ChannelSchema<any>): number;
  /** Decoding: returns the handle for the channel id read at this position. */
  bindIncoming(idFromPayload: number, schema: ChannelSchema<any>): unknown;
}

export interface WithBinder {
  channelBinder?: ChannelBinder | undefined;
}

/** Values of `Tx<T>` / `Rx<T>` are the session's channel handles (type-only import: no runtime dependency). */
export type TxHandle<T> = Tx<T>;
export type RxHandle<T> = Rx<T>;

export class ChannelSchema<T, H = unknown> extends Schema<H> {
  override readonly hasChannels = true;
  constructor(readonly kind: "tx" | "rx", readonly element: Schema<T>) {
    super();
  }
  encode(w: Writer, v: H): void {
    const binder = (w as WithBinder).channelBinder;
    if (!binder) throw new EncodeError(`${this.kind === "tx" ? "Tx" : "Rx"} can only be encoded as a call argument`);
    w.varint(binder.bindOutgoing(v, this));
  }
  decode(r: Reader): H {
    const id = r.varintSafe();
    const binder = (r as WithBinder).channelBinder;
    if (!binder) r.fail(`${this.kind === "tx" ? "Tx" : "Rx"} can only be decoded as a call argument`);
    return binder.bindIncoming(id, this) as H;
  }
  writeSig(out: SigWriter): void {
    out.byte(this.kind === "tx" ? 0x26 : 0x27);
    out.type(this.element);
  }
}

// --- recursion ----------------------------------------------------------------

class LazySchema<T> extends Schema<T> {
  readonly kind = "lazy";
  private resolved: Schema<T> | undefined;
  constructor(private readonly thunk: () => Schema<T>) {
    super();
  }
  get target(): Schema<T> {
    return (this.resolved ??= this.thunk());
  }
  encode(w: Writer, v: T): void {
    this.target.encode(w, v);
  }
  decode(r: Reader): T {
    // Recursion depth is bounded by the input: each level consumes >= 1 byte,
    // and the reader depth guard stops pathological nesting.
    const depthHolder = r as unknown as { depth?: number };
    const d = (depthHolder.depth ?? 0) + 1;
    if (d > MAX_RECURSION_DEPTH) r.fail(`nesting deeper than ${MAX_RECURSION_DEPTH}`);
    depthHolder.depth = d;
    try {
      return this.target.decode(r);
    } finally {
      depthHolder.depth = d - 1;
    }
  }
  writeSig(out: SigWriter): void {
    out.type(this.target);
  }
}

export const MAX_RECURSION_DEPTH = 256;

/**
 * Smallest number of bytes any value of `s` encodes to (for length checks).
 * 0 means a zero-sized type: `()`, or structs/tuples/arrays made only of those.
 * Resolves lazy schemas, so call it at decode time, not while schemas are built.
 */
export function minEncodedSize(s: Schema<any>, visiting: Set<Schema<any>> = new Set()): number {
  switch (s.kind) {
    case "unit":
      return 0;
    case "f32":
      return 4;
    case "f64":
      return 8;
    case "array": {
      const a = s as ArraySchema<unknown>;
      return a.length === 0 ? 0 : a.length * minEncodedSize(a.element, visiting);
    }
    case "tuple":
      return sumMinSizes((s as TupleSchema<readonly Schema<any>[]>).elements, visiting);
    case "struct":
      return sumMinSizes((s as StructSchema<Fields>).types, visiting);
    case "lazy": {
      // A type that contains itself without an Option/List/... in between has
      // no finite values; any lower bound will do for it.
      if (visiting.has(s)) return 0;
      visiting.add(s);
      try {
        return minEncodedSize((s as LazySchema<unknown>).target, visiting);
      } finally {
        visiting.delete(s);
      }
    }
    default:
      return 1;
  }
}

function sumMinSizes(types: readonly Schema<any>[], visiting: Set<Schema<any>>): number {
  let sum = 0;
  for (const t of types) sum += minEncodedSize(t, visiting);
  return sum;
}

/**
 * A collection's length prefix, checked against the input; elements of a
 * zero-sized type are also charged to the Reader's zero-sized budget.
 */
function readLength(r: Reader, minElemSize: number): number {
  const at = r.pos;
  const n = r.length(minElemSize);
  if (minElemSize === 0) r.takeZeroSized(n, at);
  return n;
}

// ---------------------------------------------------------------------------
// The public builder
// ---------------------------------------------------------------------------

export const t = {
  bool,
  u8,
  u16,
  u32,
  u64,
  u128,
  i8,
  i16,
  i32,
  i64,
  i128,
  f32,
  f64,
  char,
  string,
  unit,
  bytes,
  option<T>(inner: Schema<T>): Schema<OptionValue<T>> {
    return new OptionSchema(inner);
  },
  list<T>(element: Schema<T>): Schema<T[]> {
    return new ListSchema(element);
  },
  array<T>(element: Schema<T>, length: number): Schema<T[]> {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`array length must be a non-negative integer`);
    return new ArraySchema(element, length);
  },
  map<K, V>(key: Schema<K>, value: Schema<V>): Schema<Map<K, V>> {
    return new MapSchema(key, value);
  },
  set<T>(element: Schema<T>): Schema<Set<T>> {
    return new SetSchema(element);
  },
  tuple<const A extends readonly Schema<any>[]>(...elements: A): Schema<InferTuple<A>> {
    return new TupleSchema(elements);
  },
  struct<const F extends Fields>(fields: F, name?: string): Schema<InferFields<F>> & { readonly fields: F } {
    return new StructSchema(fields, name);
  },
  enum<const V extends Variants>(variants: V, name?: string): Schema<InferEnum<V>> {
    return new EnumSchema(variants, name);
  },
  /** Unit-only enum whose values are plain strings: `t.literals(["Red", "Green"])`. */
  literals<const N extends string>(names: readonly N[], name?: string): Schema<N> {
    return new LiteralEnumSchema(names, name);
  },
  result<T, E>(ok: Schema<T>, err: Schema<E>): ResultSchema<T, E> {
    return new ResultSchema(ok, err);
  },
  /** `Tx<T>`: the handler sends values of T (the caller receives). */
  tx<T>(element: Schema<T>): ChannelSchema<T, TxHandle<T>> {
    return new ChannelSchema<T, TxHandle<T>>("tx", element);
  },
  /** `Rx<T>`: the handler receives values of T (the caller sends). */
  rx<T>(element: Schema<T>): ChannelSchema<T, RxHandle<T>> {
    return new ChannelSchema<T, RxHandle<T>>("rx", element);
  },
  /** A forward/recursive reference: `const Tree = t.struct({ kids: t.list(t.lazy(() => Tree)) })`. */
  lazy<T>(thunk: () => Schema<T>): Schema<T> {
    return new LazySchema(thunk);
  },
};

export type { StructSchema, EnumSchema, OptionSchema, ListSchema, TupleSchema, LazySchema, LiteralEnumSchema };
export { StructSchema as StructSchemaClass, EnumSchema as EnumSchemaClass, TupleSchema as TupleSchemaClass, OptionSchema as OptionSchemaClass, ListSchema as ListSchemaClass, ArraySchema as ArraySchemaClass, MapSchema as MapSchemaClass, SetSchema as SetSchemaClass, LazySchema as LazySchemaClass };
