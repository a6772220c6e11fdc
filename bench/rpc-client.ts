/**
 * One unary-echo measurement in a process of its own (spawned by rpc.ts), so
 * no library's leftover heap or JIT state taxes the next one.
 *   node dist/bench/rpc-client.js --peer roam|raw|grpc|wsjson --transport tcp|unix|ws --addr A
 *        --inflight N [--server-pid P] [--warmup-ms 300] [--duration-ms 2000]
 * Prints one JSON line {"ready":true,"addr":A,"result":ConcurrentResult,"cpuSeconds":S}:
 * S is the CPU time of this process plus the server's during the timed phase.
 */
import { announceReady, parseArgs, type ConcurrentResult } from "./lib/harness.js";
import { cpuMeter } from "./lib/report.js";
import { runGrpcUnary } from "./peers/grpc.js";
import type { PeerServer, RpcTransport, Transport } from "./peers/peer-server.js";
import { runRawPingPong } from "./peers/raw-socket.js";
import { runWsJsonRpcUnary } from "./peers/ws-jsonrpc.js";
import { runRoamUnary } from "./roam/clients.js";

const args = parseArgs(process.argv.slice(2));
const transport = (args["transport"] ?? "tcp") as RpcTransport;
const addr = args["addr"];
if (!addr) throw new Error("--addr is required");
const serverPid = args["server-pid"] ? Number(args["server-pid"]) : undefined;
const inflight = Number(args["inflight"] ?? 1);
const server: PeerServer = { transport, addr, pid: serverPid, stop: async () => {} };
const cpu = cpuMeter(serverPid === undefined ? [] : [serverPid]);
// Enough calls in the warm-up for every library's hot path to be compiled.
const m = { warmupMs: Number(args["warmup-ms"] ?? 300), warmupOps: inflight === 1 ? 3000 : 20_000, durationMs: Number(args["duration-ms"] ?? 2000), onTimed: cpu.onTimed };

let result: ConcurrentResult;
switch (args["peer"]) {
  case "raw":
    result = await runRawPingPong({ transport: transport as Transport, server, inflight, ...m });
    break;
  case "roam":
    result = await runRoamUnary(server, inflight, m);
    break;
  case "grpc":
    result = await runGrpcUnary({ transport: transport as Transport, server, inflight, ...m });
    break;
  case "wsjson":
    result = await runWsJsonRpcUnary(server, inflight, m);
    break;
  default:
    throw new Error(`--peer must be raw, roam, grpc or wsjson (got ${args["peer"]})`);
}
announceReady({ addr, result, cpuSeconds: cpu.seconds() });
process.exit(0);
