/**
 * Enums: `t.enum` (unit, newtype, tuple and struct variants, values tagged
 * `{ tag, value }`) and `t.literals` (unit-only, values are the names).
 */
import { EncodeError } from "../codec/errors.js";
import type { Reader } from "../codec/reader.js";
import type { Writer } from "../codec/writer.js";
import { StructSchema, TupleSchema, writeFieldsSig, type Fields, type InferFields } from "./containers.js";
import { describe, Schema, wrapDecode, wrapEncode, type InferTuple } from "./core.js";
import type { SigWriter } from "./signature.js";

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

export class EnumSchema<V extends Variants> extends Schema<InferEnum<V>> {
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
export class LiteralEnumSchema<N extends string> extends Schema<N> {
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
