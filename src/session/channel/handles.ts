/**
 * Types channel schemas with the session's handles: `t.tx(t.u32)` is a
 * `Schema<Tx<number>>` and `t.rx(t.u32)` a `Schema<Rx<number>>`, so handler
 * and client signatures read `Tx<number>` / `Rx<number>`. The schema layer
 * only declares the (empty) `ChannelHandles` slot; the session, which owns
 * Tx and Rx, fills it here. Types only: nothing runs.
 */
import type { Rx } from "./rx.js";
import type { Tx } from "./tx.js";

declare module "../../schema/channels.js" {
  interface ChannelHandles<T> {
    readonly tx: Tx<T>;
    readonly rx: Rx<T>;
  }
}
