/**
 * Benchmark guest of the SHM hub: a child process (spawn ticket) or a worker
 * thread (spawnWorker); serves Testbed and Bench, exits when it detaches.
 */
import { isMainThread } from "node:worker_threads";
import { testbedImpl } from "../../apps/testbed/impl.js";
import { Testbed } from "../../apps/testbed/testbed.js";
import { ServiceDispatcher } from "roam-ts";
import { establishGuest, ShmGuest } from "roam-ts/shm";
import { Bench, benchImpl } from "../roam/bench-service.js";

const guest = ShmGuest.isWorkerGuest() ? ShmGuest.fromWorkerData() : ShmGuest.fromArgs();
establishGuest(guest, new ServiceDispatcher().add(Testbed, testbedImpl).add(Bench, benchImpl));
guest.onDetach(() => {
  if (isMainThread) setTimeout(() => process.exit(0), 10).unref();
});
if (isMainThread) {
  // Never outlive the bench: our stdin is the parent's pipe.
  process.stdin.on("close", () => guest.detach("the bench went away"));
  process.stdin.resume();
}
