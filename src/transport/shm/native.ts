/**
 * The native addon (native/shm, built by `npm ci` through scripts/build-native.mjs):
 * maps segment files and hands them to JavaScript as SharedArrayBuffers.
 * See native/shm/roam_shm.cc for why it is a SharedArrayBuffer.
 */
import { createRequire } from "node:module";

export interface NativeShm {
  createFile(path: string, size: number, mode: number): number;
  openFile(path: string): [fd: number, size: number];
  resizeFile(fd: number, size: number): void;
  fileSize(fd: number): number;
  closeFd(fd: number): void;
  map(fd: number, mapSize: number, reserveSize: number): SharedArrayBuffer;
  remap(sab: SharedArrayBuffer, mapSize: number): number;
  mappedSize(sab: SharedArrayBuffer): number;
  unmap(sab: SharedArrayBuffer): void;
  pageSize(): number;
  /** Writes one byte to a doorbell socket; false when its buffer is full. */
  signal(fd: number): boolean;
}

let cached: NativeShm | null | undefined;
let loadError: unknown;

/** The addon, or null when it was not built (file-backed segments are then unavailable). */
export function nativeShm(): NativeShm | null {
  if (cached !== undefined) return cached;
  const require = createRequire(import.meta.url);
  cached = null;
  // dist/src/transport/shm/native.js → ../../../../native; src/... → ../../../native
  for (const p of ["../../../../native/shm/build/Release/roam_shm.node", "../../../native/shm/build/Release/roam_shm.node"]) {
    try {
      cached = require(p) as NativeShm;
      break;
    } catch (e) {
      loadError = e;
    }
  }
  return cached;
}

/** The addon, or an explanation of how to build it. */
export function requireNativeShm(): NativeShm {
  const n = nativeShm();
  if (n) return n;
  throw new Error(
    `file-backed SHM segments need the native addon native/shm (build it with \`npm run build:native\`; load error: ${(loadError as Error)?.message ?? loadError})`,
  );
}
