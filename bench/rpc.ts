/**
 * Unary RPC benchmark: roam over TCP, a Unix socket and WebSocket next to its
 * peers — a raw socket ping-pong (the floor), JSON-RPC 2.0 over WebSocket
 * (`ws`, text frames) and @grpc/grpc-js — every server in its own process,
 * every measurement's client in a fresh process, all in the SAME run with
 * interleaved rounds (the machine is noisy: compare ratios, not absolutes).
 * Besides calls/s and latency it reports CPU-µs per call: client plus server
 * CPU time during the timed phase divided by the calls made.
 *
 *   npx tsc -p . && node dist/bench/rpc.js [--quick]
 * Env: BENCH_ROUNDS (3; quick 2), BENCH_WARMUP_MS (300; 150), BENCH_DURATION_MS (2000; 500).
 */
import { fmtOps, fmtRatio, fmtUs, median, printTable, runRounds, spawnNode, type ConcurrentResult, type Row } from "./lib/harness.js";
import { reportRatios, settings, type RatioRow } from "./lib/report.js";
import { startGrpcServer } from "./peers/grpc.js";
import type { PeerServer, RpcTransport } from "./peers/peer-server.js";
import { startRawServer } from "./peers/raw-socket.js";
import { startWsJsonRpcServer } from "./peers/ws-jsonrpc.js";
import { startRoamServer } from "./roam/clients.js";

const s = settings({ rounds: 3, warmupMs: 300, durationMs: 2000 }, { rounds: 2, warmupMs: 150, durationMs: 500 });

interface Measured {
  result: ConcurrentResult;
  cpuSeconds: number;
}

async function measureInChild(peer: string, server: PeerServer, inflight: number): Promise<Measured> {
  const args = ["--peer", peer, "--transport", server.transport, "--addr", server.addr, "--inflight", String(inflight)];
  if (server.pid !== undefined) args.push("--server-pid", String(server.pid));
  args.push("--warmup-ms", String(s.warmupMs), "--duration-ms", String(s.durationMs));
  const child = await spawnNode("bench/rpc-client.js", args, {}, { startupTimeoutMs: s.warmupMs + s.durationMs + 30_000 });
  try {
    return child.ready as unknown as Measured;
  } finally {
    await child.stop();
  }
}

const TRANSPORT_NAME: Record<RpcTransport, string> = { tcp: "TCP", unix: "Unix socket", ws: "WebSocket" };

export async function runRpcBench(): Promise<{ rows: Row[]; ratios: RatioRow[] }> {
  const servers: PeerServer[] = [];
  const start = async (p: Promise<PeerServer>): Promise<PeerServer> => {
    const x = await p;
    servers.push(x);
    return x;
  };
  try {
    const roam = { tcp: await start(startRoamServer("tcp")), unix: await start(startRoamServer("unix")), ws: await start(startRoamServer("ws")) };
    const raw = { tcp: await start(startRawServer("tcp")), unix: await start(startRawServer("unix")) };
    const grpc = { tcp: await start(startGrpcServer("tcp")), unix: await start(startGrpcServer("unix")) };
    const wsjson = await start(startWsJsonRpcServer());

    const tasks: Record<string, () => Promise<Measured>> = {
      "raw tcp 1": () => measureInChild("raw", raw.tcp, 1),
      "raw unix 1": () => measureInChild("raw", raw.unix, 1),
      "wsjson 1": () => measureInChild("wsjson", wsjson, 1),
      "wsjson 64": () => measureInChild("wsjson", wsjson, 64),
    };
    for (const t of ["tcp", "unix", "ws"] as const) {
      tasks[`roam ${t} 1`] = () => measureInChild("roam", roam[t], 1);
      tasks[`roam ${t} 64`] = () => measureInChild("roam", roam[t], 64);
    }
    for (const t of ["tcp", "unix"] as const) {
      tasks[`grpc ${t} 1`] = () => measureInChild("grpc", grpc[t], 1);
      tasks[`grpc ${t} 64`] = () => measureInChild("grpc", grpc[t], 64);
    }
    process.stderr.write(`[rpc] ${s.rounds} interleaved rounds × ${Object.keys(tasks).length} measurements\n`);
    const r = await runRounds(s.rounds, tasks);

    const ops = (k: string) => median(r[k]!.map((x) => x.result.opsPerSec));
    const cpuUs = (k: string) => median(r[k]!.map((x) => (x.cpuSeconds * 1e6) / x.result.ops));
    const lat = (k: string, q: "p50us" | "p99us") => median(r[k]!.map((x) => x.result[q]));
    const fig = (k: string) => `${fmtOps(ops(k))}, ${cpuUs(k).toFixed(1)} CPU-µs/call`;

    const rows: Row[] = Object.keys(tasks).map((k) => ({
      measurement: k,
      "calls/s (median)": fmtOps(ops(k)),
      p50: fmtUs(lat(k, "p50us")),
      p99: fmtUs(lat(k, "p99us")),
      "CPU-µs/call (client+server)": cpuUs(k).toFixed(1),
    }));

    const ratios: RatioRow[] = [];
    for (const t of ["tcp", "unix", "ws"] as const) {
      const name = TRANSPORT_NAME[t];
      const rawKey = t === "ws" ? "raw tcp 1" : `raw ${t} 1`;
      ratios.push({ bench: "rpc", work: `unary echo, 1 in flight, ${name}`, roam: fig(`roam ${t} 1`), peer: `raw ${t === "unix" ? "Unix" : "TCP"} ping-pong ${fmtOps(ops(rawKey))}`, ratio: ops(`roam ${t} 1`) / ops(rawKey) });
      ratios.push({ bench: "rpc", work: `unary echo, 1 in flight, ${name}`, roam: fmtOps(ops(`roam ${t} 1`)), peer: `ws JSON-RPC ${fig("wsjson 1")}`, ratio: ops(`roam ${t} 1`) / ops("wsjson 1"), target: t === "ws" ? ">= 1.3" : undefined });
      ratios.push({ bench: "rpc", work: `unary echo, 64 in flight, ${name}`, roam: fig(`roam ${t} 64`), peer: `ws JSON-RPC ${fig("wsjson 64")}`, ratio: ops(`roam ${t} 64`) / ops("wsjson 64"), target: t === "ws" ? ">= 2" : undefined });
      if (t !== "ws") {
        ratios.push({ bench: "rpc", work: `unary echo, 64 in flight, ${name}`, roam: fmtOps(ops(`roam ${t} 64`)), peer: `grpc-js ${fig(`grpc ${t} 64`)}`, ratio: ops(`roam ${t} 64`) / ops(`grpc ${t} 64`) });
      }
    }
    return { rows, ratios };
  } finally {
    await Promise.all(servers.map((x) => x.stop()));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { rows, ratios } = await runRpcBench();
  printTable(rows, `Unary echo of 16 bytes, every measurement (medians of ${s.rounds} rounds)`);
  reportRatios(ratios, "Unary RPC: roam vs raw sockets, ws JSON-RPC and grpc-js (same run; ratios are the result)");
  void fmtRatio;
}
