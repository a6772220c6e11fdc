/**
 * Channel schemas: `t.tx(T)` / `t.rx(T)` describe a channel by its direction
 * and element schema, nothing more. The values are the session's channel
 * handles, which this layer does not know: a call's arguments are encoded
 * and decoded with a `ChannelBinder` the session installs on the Writer or
 * Reader, and the handle *types* come from `ChannelHandles` below, which the
 * session fills in (src/session/channel/handles.ts).
 */
import { EncodeError } from "../codec/errors.js";
import type { Reader } from "../codec/reader.js";
import type { Writer } from "../codec/writer.js";
import { Schema } from "./core.js";
import type { SigWriter } from "./signature.js";

/** `tx`: the handler sends / the caller receives; `rx`: the handler receives / the caller sends. */
export type ChannelDirection = "tx" | "rx";

/**
 * The value type of a channel schema per direction, for element type `T`.
 * Empty here; the layer that owns the channel handles adds its types by
 * declaration merging:
 *
 * ```ts
 * declare module "../schema/channels.js" {
 *   interface ChannelHandles<T> { tx: Tx<T>; rx: Rx<T> }
 * }
 * ```
 *
 * so `Infer<typeof t.tx(t.u32)>` is `Tx<number>` wherever the session is
 * part of the program, and `unknown` where it is not.
 */
export interface ChannelHandles<T> {}

/** The value type of a `t.tx(T)` schema (the session's `Tx<T>`). */
export type TxHandle<T> = ChannelHandles<T> extends { readonly tx: infer H } ? H : unknown;
/** The value type of a `t.rx(T)` schema (the session's `Rx<T>`). */
export type RxHandle<T> = ChannelHandles<T> extends { readonly rx: infer H } ? H : unknown;

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

/** `T` is the element type, `H` the value (handle) type. */
export class ChannelSchema<T, H = unknown> extends Schema<H> {
  override readonly hasChannels = true;
  constructor(readonly kind: ChannelDirection, readonly element: Schema<T>) {
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
