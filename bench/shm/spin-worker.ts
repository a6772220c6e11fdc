/**
 * The SAB spin ping-pong floor's other thread (see bench/shm.ts). Words of the
 * shared Int32Array: [0] state (0 idle: sleep, 1 spin, 2 quit), [1] ping, [2] pong.
 * It spins only while the state is 1, so it burns no CPU between measurements.
 */
import { workerData } from "node:worker_threads";

const a = new Int32Array(workerData as SharedArrayBuffer);
for (;;) {
  Atomics.wait(a, 0, 0);
  const state = Atomics.load(a, 0);
  if (state === 2) break;
  // Answer every ping value that differs from the last pong (also one sent
  // before this thread woke up).
  let pong = Atomics.load(a, 2);
  while (Atomics.load(a, 0) === 1) {
    const v = Atomics.load(a, 1);
    if (v !== pong) {
      Atomics.store(a, 2, v);
      pong = v;
    }
  }
}
