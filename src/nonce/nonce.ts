/**
 * The `roam-nonce` request metadata entry (core.nonce): 16 random bytes that
 * name one logical call, so a server can recognise a retry of it.
 *
 * Browser-safe: uses the Web Crypto `crypto.getRandomValues`, present in
 * browsers and in Node 20+ as `globalThis.crypto`.
 */
import type { Metadata, MetadataEntry } from "../wire/message.js";

/** The metadata key (core.nonce). */
export const NONCE_KEY = "roam-nonce";
/** A nonce is exactly 16 bytes (128 bits) (core.nonce). */
export const NONCE_BYTES = 16;

/**
 * A fresh nonce from the platform's cryptographically secure generator
 * (core.nonce.generation). One per logical call (core.nonce.new-request).
 */
export function generateNonce(): Uint8Array {
  const c = (globalThis as { crypto?: { getRandomValues<T extends ArrayBufferView>(a: T): T } }).crypto;
  if (!c || typeof c.getRandomValues !== "function") {
    // Never fall back to Math.random: a guessable nonce lets one caller
    // collide with another's cached response.
    throw new Error("core.nonce.generation: no crypto.getRandomValues in this environment; roam nonces need a secure random source");
  }
  return c.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/** What `readNonce` found in a request's metadata. */
export type NonceLookup =
  | { kind: "none" }
  | { kind: "ok"; nonce: Uint8Array }
  /** A `roam-nonce` entry that is not 16 bytes of type Bytes. */
  | { kind: "malformed"; detail: string };

/** Finds the `roam-nonce` entry (the first one, if a peer sent several). */
export function readNonce(metadata: Metadata): NonceLookup {
  for (const entry of metadata) {
    if (entry[0] !== NONCE_KEY) continue;
    const v = entry[1];
    if (!(v instanceof Uint8Array)) return { kind: "malformed", detail: `roam-nonce is a ${typeof v}, not Bytes` };
    if (v.length !== NONCE_BYTES) return { kind: "malformed", detail: `roam-nonce has ${v.length} bytes, not ${NONCE_BYTES}` };
    return { kind: "ok", nonce: v };
  }
  return { kind: "none" };
}

/** `metadata` plus a `roam-nonce` entry (a new array; the input is not changed). */
export function withNonce(metadata: Metadata, nonce: Uint8Array): Metadata {
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`a roam nonce is ${NONCE_BYTES} bytes, got ${nonce.length}`);
  const entry: MetadataEntry = [NONCE_KEY, nonce];
  return [...metadata, entry];
}

/** Lower-case hex of a nonce (store keys, logs). */
export function nonceHex(nonce: Uint8Array): string {
  let s = "";
  for (const b of nonce) s += b.toString(16).padStart(2, "0");
  return s;
}
