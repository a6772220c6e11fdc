/**
 * A cell of the plugin-host demo: a guest of the SHM hub, either a child
 * process (spawned with a ticket: --hub-path= --peer-id= --doorbell-fd=) or a
 * worker thread. Serves CellApi, calls back into the host, exits on detach.
 */
import { isMainThread, workerData } from "node:worker_threads";
import { client, serve } from "../../src/session/serve.js";
import type { Link } from "../../src/session/link.js";
import { establishGuest, ShmGuest } from "../../src/transport/shm/index.js";
import { CellApi, HostApi } from "./plugin-api.js";

const worker = ShmGuest.isWorkerGuest();
const name = worker
  ? String((workerData as { cell?: string }).cell ?? "worker")
  : (process.argv.find((a) => a.startsWith("--cell="))?.slice("--cell=".length) ?? "cell");
const guest = worker ? ShmGuest.fromWorkerData() : ShmGuest.fromArgs();
const kind = worker ? "worker thread" : "process";

let link: Link;
link = establishGuest(
  guest,
  serve(CellApi, {
    describe: () => `${name} (${kind}, pid ${process.pid}, peer ${guest.peerId})`,
    greetHost: () => client(HostApi, link.root).hello(name, process.pid),
    produce: async (count, size, out) => {
      const block = new Uint8Array(size).fill(guest.peerId);
      for (let i = 0; i < count; i++) await out.send(block);
      return BigInt(count) * BigInt(size);
    },
    consume: async (input) => {
      let n = 0n;
      for await (const b of input) n += BigInt(b.length);
      return n;
    },
  }),
);
guest.onDetach(() => {
  if (isMainThread) setTimeout(() => process.exit(0), 10).unref();
});
