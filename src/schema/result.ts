/**
 * `Result<T, E>` as a value type: `{ ok: true, value } | { ok: false, error }`.
 * A method returning one is fallible with user error type E.
 */
import type { Reader } from "../codec/reader.js";
import type { Writer } from "../codec/writer.js";
import { bad, Schema, wrapDecode, wrapEncode } from "./core.js";
import type { SigWriter } from "./signature.js";

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
