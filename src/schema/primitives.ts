/**
 * The primitive schemas (rust-spec `signature.primitive.*`): each is one
 * `PrimSchema` with its signature tag, a range-checking encoder and a decoder.
 */
import type { Reader } from "../codec/reader.js";
import { checkI128, checkI64, checkU128, checkU64, type Writer } from "../codec/writer.js";
import { bad, Schema, type SchemaKind } from "./core.js";
import type { SigWriter } from "./signature.js";

export class PrimSchema<T> extends Schema<T> {
  constructor(
    readonly kind: SchemaKind,
    readonly sigTag: number,
    readonly encode: (w: Writer, v: T) => void,
    readonly decode: (r: Reader) => T,
    /** @internal Smallest encoded size: 0 for `()`, 4/8 for floats, 1 for the varint and byte types. */
    readonly min = 1,
  ) {
    super();
  }
  writeSig(out: SigWriter): void {
    out.byte(this.sigTag);
  }
  /** @internal */
  override minSize(): number {
    return this.min;
  }
}

export const bool = new PrimSchema<boolean>(
  "bool", 0x01,
  (w, v) => { if (typeof v !== "boolean") bad("boolean", v); w.u8(v ? 1 : 0); },
  (r) => r.bool(),
);
export const u8 = new PrimSchema<number>(
  "u8", 0x02,
  (w, v) => { if ((v & 0xff) !== v) bad("u8 (0..255)", v); w.u8(v); },
  (r) => r.u8(),
);
export const u16 = new PrimSchema<number>(
  "u16", 0x03,
  (w, v) => { if ((v & 0xffff) !== v) bad("u16 (0..65535)", v); w.varint(v); },
  (r) => r.varint32(16),
);
export const u32 = new PrimSchema<number>(
  "u32", 0x04,
  (w, v) => { if (v >>> 0 !== v) bad("u32 (0..2^32-1)", v); w.varint(v); },
  (r) => r.varint32(32),
);
export const u64 = new PrimSchema<bigint>(
  "u64", 0x05,
  (w, v) => { checkU64(v); w.varintBig(v); },
  (r) => r.varint64(64),
);
export const u128 = new PrimSchema<bigint>(
  "u128", 0x06,
  (w, v) => { checkU128(v); w.varintBig(v); },
  (r) => r.varint64(128),
);
export const i8 = new PrimSchema<number>(
  "i8", 0x07,
  (w, v) => { if ((v << 24) >> 24 !== v) bad("i8 (-128..127)", v); w.u8(v & 0xff); },
  (r) => (r.u8() << 24) >> 24,
);
export const i16 = new PrimSchema<number>(
  "i16", 0x08,
  (w, v) => { if ((v << 16) >> 16 !== v) bad("i16", v); w.zigzag(v); },
  (r) => r.zigzag32(16),
);
export const i32 = new PrimSchema<number>(
  "i32", 0x09,
  (w, v) => { if ((v | 0) !== v) bad("i32", v); w.zigzag(v); },
  (r) => r.zigzag32(32),
);
export const i64 = new PrimSchema<bigint>(
  "i64", 0x0a,
  (w, v) => { checkI64(v); w.zigzagBig64(v); },
  (r) => r.zigzag64(64),
);
export const i128 = new PrimSchema<bigint>(
  "i128", 0x0b,
  (w, v) => { checkI128(v); w.zigzagBig64(v); },
  (r) => r.zigzag64(128),
);
export const f32 = new PrimSchema<number>(
  "f32", 0x0c,
  (w, v) => { if (typeof v !== "number") bad("number", v); w.f32(v); },
  (r) => r.f32(),
  4,
);
export const f64 = new PrimSchema<number>(
  "f64", 0x0d,
  (w, v) => { if (typeof v !== "number") bad("number", v); w.f64(v); },
  (r) => r.f64(),
  8,
);
export const char = new PrimSchema<string>(
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
export const string = new PrimSchema<string>(
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
export const unit = new PrimSchema<void>(
  "unit", 0x10,
  () => {},
  () => undefined,
  0,
);
export const bytes = new PrimSchema<Uint8Array>(
  "bytes", 0x11,
  (w, v) => { if (!(v instanceof Uint8Array)) bad("Uint8Array", v); w.bytes(v); },
  (r) => r.bytes(),
);
