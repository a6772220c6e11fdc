/**
 * A tracing test guest (child process of the SHM hub): serves CellTracing and
 * TraceTest through a RoutedDispatcher, records through a CellTracer, and
 * ships OpenTelemetry spans through RoamTracingSpanProcessor.
 * Env: TRACE_BUFFER (buffer size), TRACE_FLUSH_MS (drain period).
 */
import { isMainThread } from "node:worker_threads";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { RoutedDispatcher } from "../../src/routing/routed.js";
import { serve } from "../../src/session/serve.js";
import { establishGuest, ShmGuest } from "../../src/transport/shm/index.js";
import { CellTracer } from "../../src/tracing/cell.js";
import { otelServerInterceptor, RoamTracingSpanProcessor } from "../../src/otel/index.js";
import { TraceTest } from "./tracing-api.js";

const launched = ShmGuest.isWorkerGuest() || process.argv.some((a) => a.startsWith("--hub-path="));
if (launched) void start();

async function start(): Promise<void> {
  const tracer = new CellTracer({
    bufferSize: Number(process.env["TRACE_BUFFER"] ?? 1024),
    flushIntervalMs: Number(process.env["TRACE_FLUSH_MS"] ?? 20),
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const provider = new BasicTracerProvider({ spanProcessors: [new RoamTracingSpanProcessor(tracer)] });
  trace.setGlobalTracerProvider(provider);
  const log = tracer.logger("guest::test");
  const api = serve(
    TraceTest,
    {
      log: (count, level) => {
        for (let i = 0; i < count; i++) {
          const f = { i };
          if (level === "Trace") log.trace("line", f);
          else if (level === "Debug") log.debug("line", f);
          else if (level === "Info") log.info("line", f);
          else if (level === "Warn") log.warn("line", f);
          else log.error("line", f);
        }
      },
      burst: (count) => {
        for (let i = 0; i < count; i++) log.info("burst", { i });
      },
      work: (label) =>
        log.inSpan("work", { label }, async () => {
          log.info("working", { label });
          await new Promise((r) => setTimeout(r, 5));
          return `done ${label}`;
        }),
      otelWork: (label) =>
        trace.getTracer("guest-otel").startActiveSpan("otel-work", async (span) => {
          span.setAttribute("label", label);
          span.addEvent("otel-event", { label });
          await new Promise((r) => setTimeout(r, 5));
          span.end();
          return `otel ${label}`;
        }),
      stats: () => {
        const s = tracer.stats();
        return { dropped: BigInt(s.dropped), sent: BigInt(s.sent), filter: s.filter };
      },
    },
    { interceptors: [tracer.serverInterceptor(), otelServerInterceptor()] },
  );
  const guest = ShmGuest.isWorkerGuest() ? ShmGuest.fromWorkerData() : ShmGuest.fromArgs();
  const link = establishGuest(guest, new RoutedDispatcher([tracer.dispatcher(), api]));
  // A worker guest ends with its thread; a process guest exits.
  if (isMainThread) link.onClose(() => setTimeout(() => process.exit(0), 10));
  log.info("guest started", { pid: process.pid });
  await tracer.start(link.root);
}
