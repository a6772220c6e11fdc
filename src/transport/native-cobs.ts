/**
 * The optional native COBS addon (native/cobs, built by `npm ci`). Node only.
 * When it is not built, the stream transport uses the pure-JS codec.
 */
import { createRequire } from "node:module";

export interface NativeCobs {
  /** COBS-encodes a ++ b into dst at `at`; returns the end offset. */
  encode(dst: Uint8Array, at: number, a: Uint8Array, b?: Uint8Array): number;
  /** One resumable stream-decoding step (see CobsStreamKernel in codec/cobs.ts). */
  decodeStream(src: Uint8Array, start: number, end: number, dst: Uint8Array, state: Int32Array): number;
}

function load(): NativeCobs | null {
  if (process.env.ROAM_NO_NATIVE === "1") return null;
  const require = createRequire(import.meta.url);
  for (const p of ["../../../native/cobs/build/Release/roam_cobs.node", "../../native/cobs/build/Release/roam_cobs.node"]) {
    try {
      return require(p) as NativeCobs;
    } catch {
      // try the next location (dist/src/transport vs src/transport)
    }
  }
  return null;
}

export const nativeCobs: NativeCobs | null = load();
