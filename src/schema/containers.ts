/**
 * Composite schemas: Option, list, fixed-size array, map, set, tuple and
 * struct. Each encodes its parts in order and, on failure, prefixes the
 * error's value path with where it was (`some`, `[3]`, a field name).
 */
import type { Reader } from "../codec/reader.js";
import type { Writer } from "../codec/writer.js";
import { bad, Schema, wrapDecode, wrapEncode, type Infer, type InferTuple } from "./core.js";
import type { SigWriter } from "./signature.js";
import { minEncodedSize, readLength, sumMinSizes } from "./size.js";

/** `Option<T>` value: `T | null`, or `{ some: T } | null` when T itself admits null. */
export type OptionValue<T> = null extends T ? { some: T } | null : T | null;

export class OptionSchema<T> extends Schema<OptionValue<T>> {
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

export class ListSchema<T> extends Schema<T[]> {
  readonly kind = "list";
  override readonly hasChannels: boolean;
  /** minEncodedSize(element), computed on first decode (a lazy element may not resolve earlier). */
  private elemMin = -1;
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
    if (this.elemMin < 0) this.elemMin = minEncodedSize(this.element);
    const n = readLength(r, this.elemMin);
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

export class ArraySchema<T> extends Schema<T[]> {
  readonly kind = "array";
  override readonly hasChannels: boolean;
  private elemMin = -1;
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
    if (this.elemMin < 0) this.elemMin = minEncodedSize(this.element);
    if (this.length * this.elemMin > r.remaining) r.fail(`array of ${this.length} elements exceeds the input`);
    if (this.elemMin === 0) r.takeZeroSized(this.length, r.pos);
    const out: T[] = [];
    let i = 0;
    try {
      for (; i < this.length; i++) out.push(this.element.decode(r));
    } catch (e) {
      wrapDecode(e, `[${i}]`);
    }
    return out;
  }
  /** @internal */
  override minSize(visiting: Set<Schema<any>>): number {
    return this.length === 0 ? 0 : this.length * minEncodedSize(this.element, visiting);
  }
  writeSig(out: SigWriter): void {
    out.byte(0x22);
    out.varint(this.length);
    out.type(this.element);
  }
}

export class MapSchema<K, V> extends Schema<Map<K, V>> {
  readonly kind = "map";
  override readonly hasChannels: boolean;
  private elemMin = -1;
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
    if (this.elemMin < 0) this.elemMin = minEncodedSize(this.key) + minEncodedSize(this.value);
    const n = readLength(r, this.elemMin);
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

export class SetSchema<T> extends Schema<Set<T>> {
  readonly kind = "set";
  override readonly hasChannels: boolean;
  private elemMin = -1;
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
    if (this.elemMin < 0) this.elemMin = minEncodedSize(this.element);
    const n = readLength(r, this.elemMin);
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

export class TupleSchema<A extends readonly Schema<any>[]> extends Schema<InferTuple<A>> {
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
  /** @internal */
  override minSize(visiting: Set<Schema<any>>): number {
    return sumMinSizes(this.elements, visiting);
  }
  writeSig(out: SigWriter): void {
    out.byte(0x25);
    out.varint(this.elements.length);
    for (const e of this.elements) out.type(e);
  }
}

export type Fields = { readonly [name: string]: Schema<any> };
export type InferFields<F extends Fields> = { -readonly [K in keyof F]: Infer<F[K]> };

export class StructSchema<F extends Fields> extends Schema<InferFields<F>> {
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
  /** @internal */
  override minSize(visiting: Set<Schema<any>>): number {
    return sumMinSizes(this.types, visiting);
  }
  writeSig(out: SigWriter): void {
    out.byte(0x30);
    writeFieldsSig(out, this.names, this.types);
  }
}

export function writeFieldsSig(out: SigWriter, names: string[], types: Schema<any>[]): void {
  out.varint(names.length);
  for (let i = 0; i < names.length; i++) {
    out.name(names[i]!);
    out.type(types[i]!);
  }
}
