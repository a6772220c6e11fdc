/**
 * A Ledger server process for the multi-process tests:
 *   node dist/test/helpers/ledger-server.js '{"port":0,"journal":"/tmp/x","redisPort":6380,"scope":"ledger"}'
 * Prints `LISTENING <port>` when ready; stops on SIGTERM.
 *
 * pay(id) writes "start <id> <pid>" then "done <id> <pid>" to the journal
 * (appendFileSync: on disk before the handler returns). Ids steer it:
 *   slow…  sleeps 400 ms between start and done
 *   drop…  cuts every link before returning (the response is lost after the work is done)
 */
import * as fs from "node:fs";
import { serve, dedup, MemoryDedupStore, type DedupStore } from "../../src/index.js";
import { listenTcp, RedisDedupStore, type RoamServer } from "../../src/node.js";
import { Ledger } from "./ledger.js";

// `node --test dist/test/` also runs the files under helpers/: without a
// configuration there is nothing to serve.
if (process.argv[2] === undefined) process.exit(0);
const cfg = JSON.parse(process.argv[2]) as { port?: number; journal: string; redisPort?: number; scope?: string; leaseMs?: number };
let store: DedupStore = new MemoryDedupStore();
let redis: { quit(): Promise<unknown> } | null = null;
if (cfg.redisPort) {
  // Loaded only when used: the memory-store servers start faster without it.
  const { createClient } = await import("redis");
  const rc = createClient({ url: `redis://127.0.0.1:${cfg.redisPort}` });
  rc.on("error", (e) => console.error("redis:", e));
  await rc.connect();
  redis = rc;
  store = new RedisDedupStore(rc);
}
let server: RoamServer | null = null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dispatcher = dedup(
  serve(Ledger, {
    pay: async (id, cents) => {
      fs.appendFileSync(cfg.journal, `start ${id} ${process.pid}\n`);
      if (id.startsWith("drop")) for (const l of [...server!.links]) l.transport.close();
      if (id.startsWith("slow") || id.startsWith("drop-slow")) await sleep(400);
      fs.appendFileSync(cfg.journal, `done ${id} ${process.pid}\n`);
      return `paid ${id} ${cents} by ${process.pid}`;
    },
  }),
  cfg.redisPort ? { store, scope: cfg.scope ?? "ledger", leaseMs: cfg.leaseMs ?? 2_000 } : {},
);
server = await listenTcp({ port: cfg.port ?? 0, dispatcher, onHandlerError: (e) => console.error(e) });
process.stdout.write(`LISTENING ${server.port}\n`);
process.on("SIGTERM", () => {
  void (async () => {
    await server!.close();
    await redis?.quit().catch(() => undefined);
    process.exit(0);
  })();
});
