/**
 * Unary RPC benchmark: roam vs @grpc/grpc-js vs a raw socket ping-pong (the
 * floor), all servers in separate processes, measured in the SAME run with
 * interleaved rounds (the machine is noisy: compare ratios, not absolutes).
 *
 *   npx tsc -p . && node dist/bench/rpc.js
 * Env: BENCH_ROUNDS (3), BENCH_WARMUP_MS (300), BENCH_DURATION_MS (2000).
 */
import { fmtOps, fmtRatio, fmtUs, median, printTable, ratio, runRounds, type ConcurrentResult, type Row } from "./lib/harness.js";
import { runGrpcUnary } from "./peers/grpc.js";
import type { Transport } from "./peers/peer-server.js";
import { withPeerSet } from "./lib/peer-set.js";
import { runRawPingPong } from "./peers/raw-socket.js";
import { runRoamUnary } from "./roam/clients.js";

const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const m = { warmupMs: Number(process.env.BENCH_WARMUP_MS ?? 300), durationMs: Number(process.env.BENCH_DURATION_MS ?? 2000) };

function med(rs: ConcurrentResult[], k: "opsPerSec" | "p50us" | "p99us"): number {
  return median(rs.map((r) => r[k]));
}

export async function runRpcBench(transports: Transport[] = ["tcp", "unix"]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const t of transports) {
    await withPeerSet(t, async ({ roam, grpc, raw }) => {
      process.stderr.write(`[rpc] ${t}: ${rounds} interleaved rounds\n`);
      const r = await runRounds<ConcurrentResult>(rounds, {
        "raw ping-pong seq": () => runRawPingPong({ transport: t, server: raw, ...m }),
        "roam seq": () => runRoamUnary(roam, 1, m),
        "grpc seq": () => runGrpcUnary({ transport: t, server: grpc, ...m }),
        "roam 64": () => runRoamUnary(roam, 64, m),
        "grpc 64": () => runGrpcUnary({ transport: t, server: grpc, inflight: 64, ...m }),
      });
      const rawSeq = med(r["raw ping-pong seq"]!, "opsPerSec");
      const grpcSeq = med(r["grpc seq"]!, "opsPerSec");
      const grpc64 = med(r["grpc 64"]!, "opsPerSec");
      const add = (name: string, key: string, vsGrpc: number | null, vsRaw: number | null) => {
        const rs = r[key]!;
        rows.push({
          transport: t,
          case: name,
          "calls/s (median)": fmtOps(med(rs, "opsPerSec")),
          p50: fmtUs(med(rs, "p50us")),
          p99: fmtUs(med(rs, "p99us")),
          "× grpc-js": vsGrpc === null ? "" : fmtRatio(ratio(med(rs, "opsPerSec"), vsGrpc)),
          "× raw ping-pong": vsRaw === null ? "" : fmtRatio(ratio(med(rs, "opsPerSec"), vsRaw)),
        });
      };
      add("raw socket ping-pong 16 B (floor)", "raw ping-pong seq", null, rawSeq);
      add("roam echo, sequential", "roam seq", grpcSeq, rawSeq);
      add("grpc-js echo, sequential", "grpc seq", grpcSeq, rawSeq);
      add("roam echo, 64 in flight", "roam 64", grpc64, null);
      add("grpc-js echo, 64 in flight", "grpc 64", grpc64, null);
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runRpcBench();
  printTable(rows, "Unary RPC: roam vs grpc-js vs raw socket (same run; ratios are the result)");
}
