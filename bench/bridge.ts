/**
 * HTTP bridge benchmark: a unary echo through the roam HTTP/JSON bridge vs
 * the same echo over a plain roam WebSocket vs a minimal node:http JSON
 * handler (the floor for anything JSON-over-HTTP in Node). Servers run in one
 * child process, the client in this one; interleaved rounds in the SAME run
 * (the machine is noisy: compare the ratios, not the absolute numbers).
 *
 *   npx tsc -p . && node dist/bench/bridge.js            (--quick or BENCH_QUICK=1 for a short run)
 * Env: BENCH_ROUNDS (3), BENCH_WARMUP_MS (300), BENCH_DURATION_MS (2000), BENCH_INFLIGHT (16).
 */
import * as http from "node:http";
import { fmtOps, fmtRatio, fmtUs, median, printTable, ratio, runRounds, measureConcurrent, spawnNode, type ConcurrentResult, type Row } from "./lib/harness.js";
import { client, connectWebSocket } from "roam-ts/node";
import { Testbed } from "../apps/testbed/testbed.js";

const quick = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";
const rounds = Number(process.env.BENCH_ROUNDS ?? (quick ? 1 : 3));
const m = {
  warmupMs: Number(process.env.BENCH_WARMUP_MS ?? (quick ? 100 : 300)),
  durationMs: Number(process.env.BENCH_DURATION_MS ?? (quick ? 400 : 2000)),
};
const inflight = Number(process.env.BENCH_INFLIGHT ?? 16);
const BODY = JSON.stringify(["hello, bridge"]);

/** One keep-alive agent per target, `inflight` sockets: every HTTP contender gets the same client. */
function httpEcho(url: string): () => Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  const u = new URL(url);
  return () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(
        { host: u.hostname, port: u.port, path: u.pathname, method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(BODY) } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => (res.statusCode === 200 && text === '"hello, bridge"' ? resolve() : reject(new Error(`unexpected ${res.statusCode} ${text}`))));
        },
      );
      req.on("error", reject);
      req.end(BODY);
    });
}

export async function runBridgeBench(): Promise<Row[]> {
  const servers = await spawnNode("bench/bridge/servers.js");
  try {
    const info = servers.ready as unknown as { bridge: string; roam: string; plain: string };
    const link = await connectWebSocket(info.roam);
    const tb = client(Testbed, link.root);
    const bridgeCall = httpEcho(`${info.bridge}Testbed/echo`);
    const plainCall = httpEcho(info.plain);
    const roamCall = async () => {
      if ((await tb.echo("hello, bridge")) !== "hello, bridge") throw new Error("bad echo");
    };
    process.stderr.write(`[bridge] ${rounds} interleaved round(s), ${inflight} in flight\n`);
    const r = await runRounds<ConcurrentResult>(rounds, {
      bridge: () => measureConcurrent(bridgeCall, inflight, m),
      roam: () => measureConcurrent(roamCall, inflight, m),
      plain: () => measureConcurrent(plainCall, inflight, m),
    });
    link.close();
    const med = (k: string, f: "opsPerSec" | "p50us" | "p99us") => median(r[k]!.map((x) => x[f]));
    const plainOps = med("plain", "opsPerSec");
    const roamOps = med("roam", "opsPerSec");
    const row = (name: string, k: string): Row => ({
      case: name,
      "calls/s (median)": fmtOps(med(k, "opsPerSec")),
      p50: fmtUs(med(k, "p50us")),
      p99: fmtUs(med(k, "p99us")),
      "× node:http JSON": fmtRatio(ratio(med(k, "opsPerSec"), plainOps)),
      "× roam WebSocket": fmtRatio(ratio(med(k, "opsPerSec"), roamOps)),
    });
    return [
      row("roam HTTP bridge: POST /Testbed/echo (JSON → roam → JSON)", "bridge"),
      row("plain roam over WebSocket: Testbed.echo", "roam"),
      row("minimal node:http JSON handler (floor)", "plain"),
    ];
  } finally {
    await servers.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runBridgeBench();
  printTable(rows, `Unary echo: HTTP bridge vs plain roam WebSocket vs minimal node:http JSON (${inflight} in flight; same run, ratios are the result)`);
}
