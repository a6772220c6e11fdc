/**
 * `channel<T>()`: a connected Tx/Rx pair. Users never handle channel ids:
 * one end is passed as a call argument (the session binds it to a fresh id
 * when the arguments are encoded), the other end stays with the caller.
 */
import { Rx } from "./rx.js";
import { Tx } from "./tx.js";

/** Creates a connected pair. Pass one end to a call, keep the other. */
export function channel<T>(): [Tx<T>, Rx<T>] {
  const tx = new Tx<T>();
  const rx = new Rx<T>();
  tx.partner = rx;
  rx.partner = tx;
  return [tx, rx];
}

