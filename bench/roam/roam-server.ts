/**
 * roam Testbed server in its own process, for benchmarks.
 *   node dist/bench/roam/roam-server.js --transport tcp|unix|ws [--socket /path]
 * Prints {"ready":true,"addr":...} when listening.
 */
import { announceReady, exitWithParent, parseArgs, removeSocketAndDir } from "../lib/harness.js";
import { listenTcp, listenUnix, listenWebSocket, type RoamServer, serve, ServiceDispatcher } from "roam-ts/node";
import { Testbed } from "../../apps/testbed/testbed.js";
import { testbedImpl } from "../../apps/testbed/impl.js";
import { benchImpl, Bench } from "./bench-service.js";

const args = parseArgs(process.argv.slice(2));
const transport = args["transport"] ?? "tcp";
const credit = args["credit"] ? Number(args["credit"]) : undefined;
const dispatcher = new ServiceDispatcher().add(Testbed, testbedImpl).add(Bench, benchImpl);
void serve;

let server: RoamServer;
if (transport === "unix") {
  const p = args["socket"];
  if (!p) throw new Error("--socket is required for unix");
  server = await listenUnix({ path: p, dispatcher, initialChannelCredit: credit, maxPayloadSize: 4 * 1024 * 1024 });
  exitWithParent(async () => {
    await server.close();
    removeSocketAndDir(p);
  });
  announceReady({ addr: p });
} else if (transport === "ws") {
  server = await listenWebSocket({ port: 0, dispatcher, initialChannelCredit: credit, maxPayloadSize: 4 * 1024 * 1024 });
  exitWithParent(() => server.close());
  announceReady({ addr: server.address });
} else {
  server = await listenTcp({ port: 0, dispatcher, initialChannelCredit: credit, maxPayloadSize: 4 * 1024 * 1024 });
  exitWithParent(() => server.close());
  announceReady({ addr: `127.0.0.1:${server.port}` }); // host:port, as bench/roam/clients.ts parses it
}
