/**
 * worker_threads postMessage peer for the SHM bench: echoes strings and byte
 * arrays (structured clone, i.e. a copy each way) and acknowledges stream
 * chunks one by one.
 */
import { parentPort } from "node:worker_threads";

parentPort!.on("message", (m: unknown) => {
  if (typeof m === "string") parentPort!.postMessage(m);
  else if (m instanceof Uint8Array) parentPort!.postMessage(m);
  else if (m && typeof m === "object" && "chunk" in m) parentPort!.postMessage((m as { chunk: Uint8Array }).chunk.length);
});
