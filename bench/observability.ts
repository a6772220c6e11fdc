/**
 * Cost of the observability hooks on the unary echo (Testbed.echo, 16 bytes,
 * one call at a time, client and server in this process over a Unix socket),
 * every variant in the SAME run, interleaved; ratios against the plain call:
 *
 *   plain                      no interceptors (the path every call takes)
 *   no-op interceptors         one client + one server interceptor that only call next
 *   OTel, API only             OpenTelemetry interceptors, no SDK registered (no-op tracer)
 *   OTel, SDK recording        interceptors with an SDK tracer that samples every span (not exported)
 *   roam-tracing cell          the cell tracer's server interceptor (a span + records per call; drained)
 *
 *   npx tsc -p . && node dist/bench/observability.js [--quick]
 * Env: BENCH_ROUNDS (5), BENCH_WARMUP_MS (300), BENCH_DURATION_MS (1500); BENCH_QUICK=1 or --quick: 2 rounds of 400 ms.
 */
import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { reportRatios, type RatioRow } from "./lib/report.js";
import { fmtOps, fmtRatio, fmtUs, measureSequential, median, printTable, ratio, runRounds, type Row, type SequentialResult } from "./lib/harness.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import {
  client,
  type ClientInterceptor,
  type Connection,
  type Dispatcher,
  connectUnix,
  listenUnix,
  RoutedDispatcher,
  serve,
  type ServerInterceptor,
} from "roam-ts/node";
import { otelClientInterceptor, otelServerInterceptor } from "roam-ts/otel";
import { CellTracer, TracingHub } from "roam-ts/tracing";

const quick = process.argv.includes("--quick") || process.env["BENCH_QUICK"] === "1";
const rounds = Number(process.env["BENCH_ROUNDS"] ?? (quick ? 2 : 5));
const m = {
  warmupMs: Number(process.env["BENCH_WARMUP_MS"] ?? (quick ? 150 : 300)),
  durationMs: Number(process.env["BENCH_DURATION_MS"] ?? (quick ? 400 : 1500)),
};

interface Variant {
  client?: ClientInterceptor[];
  server?: ServerInterceptor[];
  /** Set up once (e.g. a tracing drain) on the client link's root connection. */
  setup?: () => { clientDispatcher?: Dispatcher; dispatcher?: (d: ReturnType<typeof serve>) => Dispatcher; start?: (conn: Connection) => Promise<void>; stop?: () => Promise<void> };
}

type Result = SequentialResult & { cpuUsPerCall: number };

/**
 * Wall-clock rates on a shared machine are dominated by scheduling stalls;
 * the process's CPU time per call (client and server are both in this
 * process) is the steadier measure of what the hooks cost.
 */
async function measure(v: Variant): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "roam-obs-bench-"));
  const sock = path.join(dir, "s.sock");
  const extra = v.setup?.();
  const base = serve(Testbed, testbedImpl, { interceptors: v.server ?? [] });
  const server = await listenUnix({
    path: sock,
    dispatcher: extra?.dispatcher ? extra.dispatcher(base) : base,
    onLink: (l) => void extra?.start?.(l.root),
  });
  const link = await connectUnix({ path: sock, dispatcher: extra?.clientDispatcher ?? null });
  try {
    const tb = client(Testbed, link.root, { interceptors: v.client ?? [] });
    const msg = "0123456789abcdef";
    let calls = 0;
    const cpu0 = process.cpuUsage();
    const res = await measureSequential(async () => {
      const r = await tb.echo(msg);
      calls++;
      if (r.length !== 16) throw new Error("bad echo");
    }, m);
    const cpu = process.cpuUsage(cpu0);
    return { ...res, cpuUsPerCall: (cpu.user + cpu.system) / calls };
  } finally {
    await extra?.stop?.();
    link.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const noopClient: ClientInterceptor = (next) => (req) => next(req);
const noopServer: ServerInterceptor = (next) => (req) => next(req);

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const apiOnly = trace.getTracer("bench-noop"); // no provider registered: the API's no-op tracer
const sdk = new BasicTracerProvider().getTracer("bench-sdk"); // samples and records every span, exports nothing

const variants: Record<string, Variant> = {
  plain: {},
  "no-op interceptors": { client: [noopClient], server: [noopServer] },
  "OTel, API only": { client: [otelClientInterceptor({ tracer: apiOnly })], server: [otelServerInterceptor({ tracer: apiOnly })] },
  "OTel, SDK recording": { client: [otelClientInterceptor({ tracer: sdk })], server: [otelServerInterceptor({ tracer: sdk })] },
  "roam-tracing cell": {
    setup: () => {
      // The server plays a cell: its calls are recorded and drained to a hub on the client side of the same link.
      const tracer = new CellTracer({ bufferSize: 4096 });
      const hub = new TracingHub({ config: { filter_directives: "info", include_span_events: true } });

      let n = 0;
      hub.onRecord(() => n++);
      return {
        dispatcher: (d) => new RoutedDispatcher([tracer.dispatcher(), d.use(tracer.serverInterceptor())]),
        start: (conn) => tracer.start(conn),
        clientDispatcher: hub.serviceFor(1, "bench-cell"),
        stop: async () => {
          await tracer.stop();
          if (process.env["BENCH_VERBOSE"]) process.stderr.write(`[observability] hub got ${n} records\n`);
        },
      };
    },
  },
};

let ratioRows: RatioRow[] = [];

export async function runObservabilityBench(): Promise<Row[]> {
  process.stderr.write(`[observability] ${rounds} interleaved rounds of ${m.durationMs} ms per variant\n`);
  const tasks: Record<string, () => Promise<Result>> = {};
  for (const [name, v] of Object.entries(variants)) tasks[name] = () => measure(v);
  const r = await runRounds(rounds, tasks);
  const plain = median(r["plain"]!.map((x) => x.opsPerSec));
  const plainP50 = median(r["plain"]!.map((x) => x.p50us));
  const plainCpu = median(r["plain"]!.map((x) => x.cpuUsPerCall));
  // For `npm run bench`: each set of hooks against the plain call, by CPU time per call (lower is better).
  ratioRows = Object.keys(variants)
    .filter((n) => n !== "plain")
    .map((name) => {
      const cpu = median(r[name]!.map((x) => x.cpuUsPerCall));
      return {
        bench: "observability",
        work: `unary echo with ${name} (client+server in one process)`,
        roam: `${cpu.toFixed(1)} CPU-µs/call`,
        peer: `no hooks ${plainCpu.toFixed(1)} CPU-µs/call`,
        ratio: cpu / plainCpu,
        ratioOf: "of the CPU per call without hooks",
      };
    });
  return Object.keys(variants).map((name) => {
    const ops = median(r[name]!.map((x) => x.opsPerSec));
    const p50 = median(r[name]!.map((x) => x.p50us));
    const cpu = median(r[name]!.map((x) => x.cpuUsPerCall));
    return {
      case: name,
      "calls/s (median)": fmtOps(ops),
      p50: fmtUs(p50),
      p99: fmtUs(median(r[name]!.map((x) => x.p99us))),
      "calls/s × plain": fmtRatio(ratio(ops, plain)),
      "p50 latency × plain": fmtRatio(ratio(p50, plainP50)),
      "CPU µs/call": cpu.toFixed(1),
      "CPU × plain": fmtRatio(ratio(cpu, plainCpu)),
    };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await runObservabilityBench();
  printTable(rows, "Unary echo with observability hooks (same run; × plain is the result)");
  reportRatios(ratioRows, "Observability hooks: CPU per call against the plain call (same run)");
}
