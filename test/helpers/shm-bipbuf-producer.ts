/**
 * Worker for the BipBuffer stress test: writes `count` frames of pseudo-random
 * sizes (4-aligned, 8..max bytes) into a BipBuffer over a SharedArrayBuffer.
 * Each frame: u32 length, u32 sequence number, then bytes derived from both.
 * When the buffer is full it waits on the consumer's read index (bounded).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { BipBuffer } from "../../src/transport/shm/bipbuf.js";

// `node --test dist/test/` also runs this file on its own: then it does nothing.
if (!isMainThread) produce();

function produce(): void {

  const { sab, header, capacity, count, maxFrame, seed } = workerData as {
    sab: SharedArrayBuffer;
    header: number;
    capacity: number;
    count: number;
    maxFrame: number;
    seed: number;
  };
  const i32 = new Int32Array(sab);
  const u8 = new Uint8Array(sab);
  const dv = new DataView(sab);
  const bb = new BipBuffer(i32, header, capacity);
  let x = seed >>> 0;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
  let fullWaits = 0;
  const deadline = Date.now() + 60_000;
  for (let seq = 0; seq < count; seq++) {
    const len = 8 + 4 * Math.floor(rand() * ((maxFrame - 8) / 4 + 1));
    let off = bb.grant(len);
    while (off < 0) {
      fullWaits++;
      if (Date.now() > deadline) throw new Error("producer: timed out waiting for room");
      // Wait (bounded) for the consumer to move its read index.
      const readIdx = (header + 64) >> 2;
      Atomics.wait(i32, readIdx, Atomics.load(i32, readIdx), 5);
      off = bb.grant(len);
    }
    const base = bb.data + off;
    dv.setUint32(base, len, true);
    dv.setUint32(base + 4, seq, true);
    for (let p = 8; p < len; p++) u8[base + p] = (seq + p) & 0xff;
    bb.commit(len);
    Atomics.notify(i32, header >> 2); // wake a consumer waiting on `write`
  }
  parentPort!.postMessage({ fullWaits });
}
