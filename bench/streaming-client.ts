/**
 * One streaming measurement in a process of its own (spawned by
 * streaming.ts): each library's client runs in a fresh process, so the
 * garbage and JIT state one library leaves behind do not tax the next one
 * (grpc-js leaves a heap that made a later roam run in the same process up
 * to 2x slower through extra full GCs).
 *   node dist/bench/streaming-client.js --peer raw|roam|grpc --transport tcp|unix --addr A
 *        [--warmup-ms 300] [--duration-ms 2000] [--grpc-window BYTES]
 * Prints one JSON line {"ready":true,"addr":A,"result":ThroughputResult}.
 */
import { announceReady, parseArgs, type ThroughputResult } from "./lib/harness.js";
import { runGrpcStreaming } from "./peers/grpc.js";
import type { PeerServer, Transport } from "./peers/peer-server.js";
import { runRawBulk } from "./peers/raw-socket.js";
import { runRoamStreaming } from "./roam/clients.js";

const args = parseArgs(process.argv.slice(2));
const transport = (args["transport"] ?? "tcp") as Transport;
const addr = args["addr"];
if (!addr) throw new Error("--addr is required");
const server: PeerServer = { transport, addr, pid: undefined, stop: async () => {} };
const m = { warmupMs: Number(args["warmup-ms"] ?? 300), durationMs: Number(args["duration-ms"] ?? 2000) };

let result: ThroughputResult;
switch (args["peer"]) {
  case "raw":
    result = await runRawBulk({ transport, server, ...m });
    break;
  case "roam":
    result = await runRoamStreaming(server, { count: 1024, size: 64 * 1024, ...m });
    break;
  case "grpc":
    result = await runGrpcStreaming({
      transport,
      server,
      messageBytes: 64 * 1024,
      messagesPerCall: 1024,
      flowControlWindow: args["grpc-window"] ? Number(args["grpc-window"]) : undefined,
      ...m,
    });
    break;
  default:
    throw new Error(`--peer must be raw, roam or grpc (got ${args["peer"]})`);
}
announceReady({ addr, result });
process.exit(0);
