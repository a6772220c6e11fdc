/**
 * Peer baselines, standalone:
 *   npx tsc -p . && node dist/bench/peers/run-peers.js
 * Env: BENCH_WARMUP_MS (default 300), BENCH_DURATION_MS (default 2000).
 *
 * Starts one gRPC server and one raw-socket server per transport (separate
 * processes), measures every peer baseline, prints markdown tables. A later
 * bench script can import the same run* functions and measure roam in the
 * same run (see runPeerBaselines).
 */
import { fileURLToPath } from 'node:url';
import {
  calibrateNsPerIter,
  fmtBytesPerSec,
  fmtOps,
  fmtRatio,
  fmtUs,
  printTable,
  ratio,
  type Row,
} from '../lib/harness.js';
import { runGrpcStreaming, runGrpcUnary, startGrpcServer, type GrpcStreamingResult, type GrpcUnaryResult } from './grpc.js';
import type { PeerServer, Transport } from './peer-server.js';
import { runRawBulk, runRawPingPong, startRawServer, type RawBulkResult, type RawPingPongResult } from './raw-socket.js';

export interface PeerBaselineOpts {
  warmupMs?: number;
  durationMs?: number;
  transports?: Transport[];
  /** Progress lines on stderr. Default true. */
  log?: boolean;
}

export interface PeerBaselines {
  grpcSequential: GrpcUnaryResult[];
  grpcConcurrent: GrpcUnaryResult[];
  grpcStreaming: GrpcStreamingResult[];
  rawPingPong: RawPingPongResult[];
  rawBulk: RawBulkResult[];
}

/** Run every peer baseline once (servers started and stopped here). */
export async function runPeerBaselines(opts: PeerBaselineOpts = {}): Promise<PeerBaselines> {
  const m = { warmupMs: opts.warmupMs ?? 300, durationMs: opts.durationMs ?? 2000 };
  const transports = opts.transports ?? ['tcp', 'unix'];
  const log = opts.log ?? true;
  const say = (s: string): void => {
    if (log) process.stderr.write(`[peers] ${s}\n`);
  };
  const out: PeerBaselines = { grpcSequential: [], grpcConcurrent: [], grpcStreaming: [], rawPingPong: [], rawBulk: [] };
  const servers: PeerServer[] = [];
  try {
    for (const t of transports) {
      const grpcServer = await startGrpcServer(t);
      servers.push(grpcServer);
      const rawServer = await startRawServer(t);
      servers.push(rawServer);
      say(`${t}: grpc server ${grpcServer.addr} (pid ${grpcServer.pid}), raw server ${rawServer.addr} (pid ${rawServer.pid})`);

      say(`${t}: raw ping-pong`);
      out.rawPingPong.push(await runRawPingPong({ transport: t, server: rawServer, ...m }));
      say(`${t}: grpc unary sequential`);
      out.grpcSequential.push(await runGrpcUnary({ transport: t, server: grpcServer, ...m }));
      say(`${t}: grpc unary 64 in flight`);
      out.grpcConcurrent.push(await runGrpcUnary({ transport: t, server: grpcServer, inflight: 64, ...m }));
      say(`${t}: grpc server-streaming 64 KiB messages`);
      out.grpcStreaming.push(await runGrpcStreaming({ transport: t, server: grpcServer, ...m }));
      say(`${t}: raw bulk copy`);
      out.rawBulk.push(await runRawBulk({ transport: t, server: rawServer, ...m }));
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
  return out;
}

/** Print the tables for a PeerBaselines result. */
export function printPeerBaselines(b: PeerBaselines): void {
  const rawBy = (t: Transport): RawPingPongResult | undefined => b.rawPingPong.find((r) => r.transport === t);
  const rt: Row[] = [];
  for (const r of [...b.rawPingPong, ...b.grpcSequential, ...b.grpcConcurrent]) {
    const floor = rawBy(r.transport);
    rt.push({
      peer: r.peer,
      transport: r.transport,
      payload: `${r.payloadBytes} B`,
      inflight: r.inflight,
      'ops/s': fmtOps(r.opsPerSec),
      p50: fmtUs(r.p50us),
      p99: fmtUs(r.p99us),
      mean: fmtUs(r.meanus),
      ops: r.ops,
      'ops/s ÷ raw': floor ? fmtRatio(ratio(r.opsPerSec, floor.opsPerSec)) : '',
    });
  }
  printTable(rt, 'Round trips (unary echo / ping-pong)');

  const rawBulkBy = (t: Transport): RawBulkResult | undefined => b.rawBulk.find((r) => r.transport === t);
  const st: Row[] = [];
  for (const r of b.rawBulk) {
    st.push({
      peer: r.peer,
      kind: `bulk copy, ${r.writeChunkBytes / 1024} KiB writes`,
      transport: r.transport,
      throughput: fmtBytesPerSec(r.bytesPerSec),
      'per transfer': `${r.bytesPerTransfer / 2 ** 20} MiB`,
      runs: r.runs,
      'p50 transfer': `${r.p50RunMs.toFixed(1)} ms`,
      verified: r.verified ? 'every byte' : 'count only',
      '÷ raw bulk': fmtRatio(1),
    });
  }
  for (const r of b.grpcStreaming) {
    const floor = rawBulkBy(r.transport);
    st.push({
      peer: r.peer,
      kind: `server-stream, ${r.messageBytes / 1024} KiB msgs`,
      transport: r.transport,
      throughput: fmtBytesPerSec(r.bytesPerSec),
      'per transfer': `${r.messagesPerCall} msgs`,
      runs: r.runs,
      'p50 transfer': `${r.p50RunMs.toFixed(1)} ms`,
      verified: r.verified ? `every byte, ${r.messages} msgs` : 'count only',
      '÷ raw bulk': floor ? fmtRatio(ratio(r.bytesPerSec, floor.bytesPerSec)) : '',
    });
  }
  printTable(st, 'Streaming throughput (1 MB = 1e6 bytes)');
}

async function main(): Promise<void> {
  const envNum = (k: string, d: number): number => {
    const v = Number(process.env[k]);
    return Number.isFinite(v) && v > 0 ? v : d;
  };
  const watchdog = setTimeout(() => {
    console.error('run-peers: overall time limit (120 s) exceeded');
    process.exit(1); // 'exit' hook in harness kills the server processes
  }, 120_000);
  watchdog.unref();
  const t0 = Date.now();
  const calBefore = calibrateNsPerIter();
  const b = await runPeerBaselines({
    warmupMs: envNum('BENCH_WARMUP_MS', 300),
    durationMs: envNum('BENCH_DURATION_MS', 2000),
  });
  const calAfter = calibrateNsPerIter();
  console.log(`\n## Peer baselines (node ${process.version}, ${new Date().toISOString()})`);
  console.log(
    `\nmachine probe: ${calBefore.toFixed(2)} ns/iter before, ${calAfter.toFixed(2)} ns/iter after ` +
      `(integer loop; higher = slower machine right now). Absolute numbers are machine-state dependent; compare ratios within one run.`,
  );
  printPeerBaselines(b);
  console.log(`\n(total ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

// Run only when executed directly, so the exports above can be imported.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => {
      // Exit even if some library handle lingers (bounded shutdown).
      setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
    },
    (e: unknown) => {
      console.error('run-peers failed:', e instanceof Error ? e.stack ?? e.message : e);
      process.exit(1);
    },
  );
}
