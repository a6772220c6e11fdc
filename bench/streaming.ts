/**
 * Channel streaming benchmark: one channel of 64 KiB `bytes` elements with
 * the default credit, over TCP and Unix sockets, next to a raw Node socket
 * bulk copy and @grpc/grpc-js server streaming of the same messages — all in
 * the same run, interleaved, every element checked (none lost/reordered).
 * grpc-js runs twice: with its default HTTP/2 window (64 KiB, what a user
 * gets out of the box) and with a window equal to roam's default credit
 * (1 MiB), the like-for-like comparison; ratios are given against both.
 * Every measurement's client runs in a fresh process (streaming-client.ts).
 * Then the slow-consumer memory check: a receiving process reads 1 GiB
 * slowly; its peak RSS over baseline is reported next to the window.
 *
 *   npx tsc -p . && node dist/bench/streaming.js
 * Env: BENCH_ROUNDS (3), BENCH_WARMUP_MS (300), BENCH_DURATION_MS (2000), BENCH_SLOW_MIB (1024).
 */
import { fmtBytesPerSec, fmtRatio, median, printTable, ratio, runRounds, spawnNode, type Row, type ThroughputResult } from "./lib/harness.js";
import type { PeerServer, Transport } from "./peers/peer-server.js";
import { withPeerSet } from "./lib/peer-set.js";
import { startRoamServer } from "./roam/clients.js";
// Internal, not an entry point: the bench reports whether the optional native COBS addon is loaded.
import { nativeCobs } from "../src/transport/native-cobs.js";
import { DEFAULT_LIMITS } from "roam-ts";
import { QUICK, reportRatios, settings, type RatioRow } from "./lib/report.js";

/** grpc-js with an HTTP/2 window as large as roam's default channel credit. */
const MATCHED_WINDOW = DEFAULT_LIMITS.initialChannelCredit;

const s = settings({ rounds: 3, warmupMs: 300, durationMs: 2000 }, { rounds: 2, warmupMs: 150, durationMs: 600 });
const rounds = s.rounds;
const m = { warmupMs: s.warmupMs, durationMs: s.durationMs };
/** Headline rows for run-all's table. */
const ratioRows: RatioRow[] = [];

/** Runs one measurement in a fresh client process against `server`. */
async function measureInChild(peer: "raw" | "roam" | "grpc", server: PeerServer, extra: string[] = []): Promise<ThroughputResult> {
  const args = ["--peer", peer, "--transport", server.transport, "--addr", server.addr, "--warmup-ms", String(m.warmupMs), "--duration-ms", String(m.durationMs), ...extra];
  const child = await spawnNode("bench/streaming-client.js", args, {}, { startupTimeoutMs: m.warmupMs + m.durationMs + 60_000 });
  try {
    return (child.ready as unknown as { result: ThroughputResult }).result;
  } finally {
    await child.stop();
  }
}

export async function runStreamingBench(transports: Transport[] = ["tcp", "unix"]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const t of transports) {
    await withPeerSet(t, async ({ roam, grpc, raw }) => {
      process.stderr.write(`[streaming] ${t}: ${rounds} interleaved rounds\n`);
      const r = await runRounds<ThroughputResult>(rounds, {
        raw: () => measureInChild("raw", raw),
        roam: () => measureInChild("roam", roam),
        grpc: () => measureInChild("grpc", grpc),
        grpcWide: () => measureInChild("grpc", grpc, ["--grpc-window", String(MATCHED_WINDOW)]),
      });
      const med = (k: string) => median(r[k]!.map((x) => x.bytesPerSec));
      const rawBps = med("raw");
      const grpcBps = med("grpc");
      const grpcWideBps = med("grpcWide");
      const mib = MATCHED_WINDOW / (1024 * 1024);
      const tn = t === "unix" ? "Unix socket" : "TCP";
      ratioRows.push(
        { bench: "streaming", work: `channel of 64 KiB bytes, ${tn}`, roam: fmtBytesPerSec(med("roam")), peer: `raw ${tn} bulk copy ${fmtBytesPerSec(rawBps)}`, ratio: med("roam") / rawBps, target: t === "unix" ? ">= 0.47" : undefined },
        { bench: "streaming", work: `channel of 64 KiB bytes, ${tn}`, roam: fmtBytesPerSec(med("roam")), peer: `grpc-js default window ${fmtBytesPerSec(grpcBps)}`, ratio: med("roam") / grpcBps },
        { bench: "streaming", work: `channel of 64 KiB bytes, ${tn}`, roam: fmtBytesPerSec(med("roam")), peer: `grpc-js ${mib} MiB window ${fmtBytesPerSec(grpcWideBps)}`, ratio: med("roam") / grpcWideBps },
      );
      for (const [name, key] of [
        ["raw socket bulk copy (floor)", "raw"],
        ["roam channel, 64 KiB bytes elements", "roam"],
        ["grpc-js server streaming, default 64 KiB window", "grpc"],
        [`grpc-js server streaming, ${mib} MiB window (= roam credit)`, "grpcWide"],
      ] as const) {
        rows.push({
          transport: t,
          case: name,
          "throughput (median)": fmtBytesPerSec(med(key)),
          "× raw socket": fmtRatio(ratio(med(key), rawBps)),
          "× grpc-js default": fmtRatio(ratio(med(key), grpcBps)),
          [`× grpc-js ${mib} MiB window`]: fmtRatio(ratio(med(key), grpcWideBps)),
        });
      }
    });
  }
  return rows;
}

export async function runSlowConsumer(mib = Number(process.env.BENCH_SLOW_MIB ?? (QUICK ? 128 : 1024))): Promise<Row> {
  const roam = await startRoamServer("unix");
  try {
    const child = await spawnNode("bench/roam/slow-consumer.js", ["--addr", roam.addr, "--mib", String(mib)], {}, { startupTimeoutMs: 600_000 });
    const info = child.ready as unknown as { baselineRss: number; peakRss: number; bytes: number; seconds: number; window: number; peakBuffered: number };
    await child.stop();
    const mb = (x: number) => `${(x / (1024 * 1024)).toFixed(1)} MiB`;
    return {
      received: mb(info.bytes),
      seconds: info.seconds.toFixed(1),
      window: mb(info.window),
      "peak Rx buffer": mb(info.peakBuffered),
      "RSS baseline": mb(info.baselineRss),
      "RSS peak": mb(info.peakRss),
      "peak − baseline": mb(info.peakRss - info.baselineRss),
    };
  } finally {
    await roam.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stderr.write(`[streaming] native COBS addon: ${nativeCobs ? "loaded" : "NOT loaded (pure-JS COBS)"}\n`);
  const rows = await runStreamingBench();
  printTable(rows, "One channel, 64 KiB elements: roam vs raw socket vs grpc-js (same run; ratios are the result)");
  const slow = await runSlowConsumer();
  printTable([slow], `Slow consumer: receiving process reads ${slow["received"]} at ~150 MB/s`);
  reportRatios(ratioRows, "Streaming: roam vs raw sockets and grpc-js (same run)");
}
