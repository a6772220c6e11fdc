/**
 * A cell of the plugin-host demo: a guest of the SHM hub, either a child
 * process (spawned with a ticket: --hub-path= --peer-id= --doorbell-fd=) or a
 * worker thread. Serves CellApi and CellTracing (roam-tracing: the host
 * pushes filters; the cell's logs and spans go to the host), calls back into
 * the host, exits on detach.
 */
import { isMainThread, workerData } from "node:worker_threads";
import { client, type Link, RoutedDispatcher, serve } from "roam-ts";
import { CellTracer } from "roam-ts/tracing";
import { establishGuest, ShmGuest } from "roam-ts/shm";
import { CellApi, HostApi } from "./plugin-api.js";

const worker = ShmGuest.isWorkerGuest();
const name = worker
  ? String((workerData as { cell?: string }).cell ?? "worker")
  : (process.argv.find((a) => a.startsWith("--cell="))?.slice("--cell=".length) ?? "cell");
const guest = worker ? ShmGuest.fromWorkerData() : ShmGuest.fromArgs();
const kind = worker ? "worker thread" : "process";
const tracing = new CellTracer();
const log = tracing.logger(`cell::${name}`);

let link: Link;
const api = serve(
  CellApi,
  {
    describe: () => `${name} (${kind}, pid ${process.pid}, peer ${guest.peerId})`,
    greetHost: () =>
      log.inSpan("greet-host", { cell: name }, async () => {
        log.info("calling the host", { method: "PluginHost.hello" });
        const answer = await client(HostApi, link.root).hello(name, process.pid);
        log.info("the host answered", { answer });
        return answer;
      }),
    produce: async (count, size, out) => {
      const block = new Uint8Array(size).fill(guest.peerId);
      for (let i = 0; i < count; i++) await out.send(block);
      log.info("produced", { blocks: count, bytes: count * size });
      return BigInt(count) * BigInt(size);
    },
    consume: async (input) => {
      let n = 0n;
      for await (const b of input) n += BigInt(b.length);
      log.info("consumed", { bytes: n });
      return n;
    },
  },
  { interceptors: [tracing.serverInterceptor()] },
);
link = establishGuest(guest, new RoutedDispatcher([tracing.dispatcher(), api]));
log.info("cell started", { kind, pid: process.pid });
void tracing.start(link.root);
guest.onDetach(() => {
  if (isMainThread) setTimeout(() => process.exit(0), 10).unref();
});
