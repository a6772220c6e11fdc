/**
 * OpenTelemetry for roam (`roam-ts/otel`; needs the optional peer dependency
 * `@opentelemetry/api`, and an SDK of your choice to export spans):
 *
 * - `otelClientInterceptor()` — one CLIENT span per outgoing call, its W3C
 *   `traceparent`/`tracestate` injected into the call's metadata;
 * - `otelServerInterceptor()` — extracts them, runs the handler inside one
 *   SERVER span (so the handler's own spans and calls join the trace);
 * - `cellRecordsToSpans(hub)` — on the host: turns the span records cells
 *   send through roam-tracing into spans of the same trace;
 * - `RoamTracingSpanProcessor` — in a cell that uses the OpenTelemetry API:
 *   ships its spans to the host through roam-tracing.
 *
 * Span attributes: `rpc.system` = "roam", `rpc.service`, `rpc.method`,
 * `roam.connection_id`, `roam.request_id`, `roam.method_id`, `roam.outcome`
 * (ok, user-error, unknown-method, invalid-payload, cancelled, timeout,
 * connection-closed, handler-error, rejected, …).
 */
import {
  context,
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type HrTime,
  type Span,
  type SpanContext,
  type Tracer,
} from "@opentelemetry/api";
import type { ClientInterceptor, ServerInterceptor } from "../session/interceptor.js";
import { RoamError, UserError } from "../session/errors.js";
import type { MetadataEntry, Metadata } from "../wire/message.js";
import type { CellTracer } from "../tracing/cell.js";
import type { TracingHub } from "../tracing/host.js";
import type { FieldValue, Level, TaggedRecord } from "../tracing/schema.js";

export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";
const TRACER_NAME = "roam-ts";

// --- W3C trace context (https://www.w3.org/TR/trace-context/) ---------------------

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** `00-<trace id>-<span id>-<flags>` for a valid span context. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
}

/** Parses a traceparent (and optional tracestate) into a remote span context; undefined if invalid. */
export function parseTraceparent(traceparent: string, tracestate?: string): SpanContext | undefined {
  const m = TRACEPARENT_RE.exec(traceparent.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  // Version ff is invalid; version 00 has nothing after the flags.
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  const sc: SpanContext = { traceId: traceId!, spanId: spanId!, traceFlags: parseInt(flags!, 16), isRemote: true };
  if (!isSpanContextValid(sc)) return undefined;
  if (tracestate) sc.traceState = createTraceState(tracestate);
  return sc;
}

/** Adds `traceparent`/`tracestate` of the span in `ctx` to `metadata` (replacing existing entries). */
export function injectTraceContext(ctx: Context, metadata: MetadataEntry[]): void {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return;
  for (let i = metadata.length - 1; i >= 0; i--) if (metadata[i]![0] === TRACEPARENT || metadata[i]![0] === TRACESTATE) metadata.splice(i, 1);
  metadata.push([TRACEPARENT, formatTraceparent(sc)]);
  const ts = sc.traceState?.serialize();
  if (ts) metadata.push([TRACESTATE, ts]);
}

/** The context `metadata` carries (the active context with the remote span), or `base` if none. */
export function extractTraceContext(metadata: Metadata, base: Context = context.active()): Context {
  const tp = metadata.find(([k]) => k === TRACEPARENT)?.[1];
  if (typeof tp !== "string") return base;
  const ts = metadata.find(([k]) => k === TRACESTATE)?.[1];
  const sc = parseTraceparent(tp, typeof ts === "string" ? ts : undefined);
  return sc ? trace.setSpanContext(base, sc) : base;
}

// --- interceptors ----------------------------------------------------------------

export interface OtelInterceptorOptions {
  /** Default: `trace.getTracer("roam-ts")` of the global provider. */
  tracer?: Tracer;
}

function outcomeOfError(e: unknown): string {
  if (e instanceof UserError) return "user-error";
  if (e instanceof RoamError) return e.code;
  return "error";
}

/** One CLIENT span per call; injects the trace context into the request metadata. */
export function otelClientInterceptor(options: OtelInterceptorOptions = {}): ClientInterceptor {
  return (next) => (req) => {
    const tracer = options.tracer ?? trace.getTracer(TRACER_NAME);
    const attributes: Attributes = {
      "rpc.system": "roam",
      "rpc.service": req.method.service,
      "rpc.method": req.method.name,
      "roam.connection_id": req.connection.connId,
      "roam.method_id": req.method.idHex,
    };
    return tracer.startActiveSpan(req.name, { kind: SpanKind.CLIENT, attributes }, async (span: Span) => {
      // From the span itself: works even without a context manager registered.
      injectTraceContext(trace.setSpan(context.active(), span), req.metadata);
      try {
        const r = await next(req);
        span.setAttribute("roam.outcome", "ok");
        return r;
      } catch (e) {
        const outcome = outcomeOfError(e);
        span.setAttribute("roam.outcome", outcome);
        // A user error is a result the method declared, not a failure of the call.
        if (outcome !== "user-error") {
          span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
        }
        throw e;
      } finally {
        span.end();
      }
    });
  };
}

/** Extracts the caller's trace context and runs the handler inside one SERVER span. */
export function otelServerInterceptor(options: OtelInterceptorOptions = {}): ServerInterceptor {
  return (next) => (req) => {
    const tracer = options.tracer ?? trace.getTracer(TRACER_NAME);
    const parent = extractTraceContext(req.metadata);
    const attributes: Attributes = {
      "rpc.system": "roam",
      "rpc.service": req.method?.service ?? "",
      "rpc.method": req.method?.name ?? req.name,
      "roam.connection_id": req.connection.connId,
      "roam.request_id": req.requestId,
      "roam.method_id": `0x${req.methodId.toString(16).padStart(16, "0")}`,
    };
    const span = tracer.startSpan(req.name, { kind: SpanKind.SERVER, attributes }, parent);
    return context.with(trace.setSpan(parent, span), async () => {
      try {
        const r = await next(req);
        span.setAttribute("roam.outcome", r.outcome);
        if (r.outcome !== "ok" && r.outcome !== "user-error") span.setStatus({ code: SpanStatusCode.ERROR, message: r.message ?? r.outcome });
        return r;
      } catch (e) {
        span.setAttribute("roam.outcome", e instanceof RoamError && e.code === "rejected" ? "rejected" : "error");
        span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
        throw e;
      } finally {
        span.end();
      }
    });
  };
}

// --- host: cell records → spans ----------------------------------------------------

export interface CellSpansOptions extends OtelInterceptorOptions {
  /** Open spans kept per cell before the oldest is ended (a cell that never closes them). Default 10 000. */
  maxOpenSpans?: number;
}

function fieldAttr(v: FieldValue): string | number | boolean {
  switch (v.tag) {
    case "Str":
      return v.value;
    case "Bool":
      return v.value;
    default:
      return Number.isSafeInteger(Number(v.value)) ? Number(v.value) : v.value.toString();
  }
}

function nowNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

function hr(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

/**
 * Turns the span records of every cell into spans of the host's tracer.
 * A cell span whose parent is another span of the same cell becomes its
 * child; a root span carrying a `traceparent` field (the call it served)
 * joins that trace; events become span events. Cell timestamps are
 * cell-monotonic: they are placed on the host's clock with a per-cell offset
 * (the smallest receive-time − timestamp seen, i.e. within one drain period).
 * Returns a function that stops the conversion and ends open spans.
 */
export function cellRecordsToSpans(hub: TracingHub, options: CellSpansOptions = {}): () => void {
  const max = options.maxOpenSpans ?? 10_000;
  const perPeer = new Map<number, { offset: bigint | null; open: Map<bigint, Span> }>();
  const off = hub.onRecord((r: TaggedRecord) => {
    const tracer = options.tracer ?? trace.getTracer(TRACER_NAME);
    let p = perPeer.get(r.peerId);
    if (!p) perPeer.set(r.peerId, (p = { offset: null, open: new Map() }));
    const rec = r.record;
    const ts = rec.value.timestamp_ns;
    const o = nowNs() - ts;
    if (p.offset === null || o < p.offset) p.offset = o;
    const at = hr(ts + p.offset);
    switch (rec.tag) {
      case "SpanEnter": {
        const v = rec.value;
        let parentCtx: Context = ROOT_CONTEXT;
        const local = v.parent !== null ? p.open.get(v.parent) : undefined;
        if (local) parentCtx = trace.setSpan(ROOT_CONTEXT, local);
        else {
          const tp = v.fields.find(([k]) => k === TRACEPARENT)?.[1];
          if (tp && tp.tag === "Str") parentCtx = extractTraceContext([[TRACEPARENT, tp.value]], ROOT_CONTEXT);
        }
        const attributes: Attributes = { "roam.peer_id": r.peerId, "roam.cell.target": v.target, "roam.cell.level": v.level, "roam.cell.span_id": v.id.toString() };
        if (r.peerName !== null) attributes["roam.peer_name"] = r.peerName;
        for (const [k, fv] of v.fields) if (k !== TRACEPARENT) attributes[k] = fieldAttr(fv);
        const span = tracer.startSpan(v.name, { startTime: at, attributes, kind: v.target === "rpc.server" ? SpanKind.SERVER : SpanKind.INTERNAL }, parentCtx);
        if (p.open.size >= max) {
          const [oldId, oldest] = p.open.entries().next().value as [bigint, Span];
          oldest.end(at);
          p.open.delete(oldId);
        }
        p.open.set(v.id, span);
        return;
      }
      case "SpanClose": {
        const span = p.open.get(rec.value.id);
        if (span) {
          span.end(at);
          p.open.delete(rec.value.id);
        }
        return;
      }
      case "SpanExit":
        return;
      case "Event": {
        const v = rec.value;
        const span = v.parent !== null ? p.open.get(v.parent) : undefined;
        if (!span) return; // a log line outside any span: not part of a trace
        const attributes: Attributes = { level: v.level, target: v.target };
        for (const [k, fv] of v.fields) attributes[k] = fieldAttr(fv);
        span.addEvent(v.message ?? v.target, attributes, at);
        if (v.level === "Error") span.setStatus({ code: SpanStatusCode.ERROR, message: v.message ?? "" });
        return;
      }
    }
  });
  return () => {
    off();
    for (const p of perPeer.values()) for (const s of p.open.values()) s.end();
    perPeer.clear();
  };
}

// --- cell: OpenTelemetry spans → roam-tracing records ----------------------------------

/** The parts of an SDK span this processor reads (SDK 1.x and 2.x). */
interface SdkSpanLike {
  readonly name: string;
  spanContext(): SpanContext;
  readonly parentSpanContext?: SpanContext;
  readonly parentSpanId?: string;
  readonly attributes: Attributes;
  readonly events: readonly { name: string; attributes?: Attributes }[];
  readonly status: { code: number; message?: string };
  readonly instrumentationScope?: { name: string };
  readonly instrumentationLibrary?: { name: string };
}

function attrsToFields(attrs: Attributes | undefined): [string, FieldValue][] {
  const out: [string, FieldValue][] = [];
  if (!attrs) return out;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined) continue;
    if (typeof v === "boolean") out.push([k, { tag: "Bool", value: v }]);
    else if (typeof v === "number" && Number.isSafeInteger(v)) out.push([k, v >= 0 ? { tag: "U64", value: BigInt(v) } : { tag: "I64", value: BigInt(v) }]);
    else out.push([k, { tag: "Str", value: Array.isArray(v) ? JSON.stringify(v) : String(v) }]);
  }
  return out;
}

/**
 * A SpanProcessor for a cell's OpenTelemetry SDK: every span becomes a
 * SpanEnter at start and its events + a SpanClose at end, recorded into the
 * cell's `CellTracer` (so it reaches the host, lossy and batched, under the
 * host's filter). A span whose parent is not a local span carries the
 * parent's `traceparent`, so the host can attach it to the right trace.
 *
 *   provider = new BasicTracerProvider({ spanProcessors: [new RoamTracingSpanProcessor(cellTracer)] })
 */
export class RoamTracingSpanProcessor {
  private readonly ids = new Map<string, bigint>();
  constructor(
    private readonly tracer: CellTracer,
    private readonly level: Level = "Info",
  ) {}

  onStart(span: SdkSpanLike, _parentContext?: Context): void {
    const sc = span.spanContext();
    const parentSc = span.parentSpanContext;
    const parentId = parentSc?.spanId ?? span.parentSpanId;
    const localParent = parentId !== undefined ? this.ids.get(parentId) : undefined;
    const fields = attrsToFields(span.attributes);
    fields.push(["otel.trace_id", { tag: "Str", value: sc.traceId }], ["otel.span_id", { tag: "Str", value: sc.spanId }]);
    if (localParent === undefined && parentId !== undefined) {
      fields.push([TRACEPARENT, { tag: "Str", value: formatTraceparent(parentSc ?? { traceId: sc.traceId, spanId: parentId, traceFlags: sc.traceFlags }) }]);
    }
    const target = span.instrumentationScope?.name ?? span.instrumentationLibrary?.name ?? "otel";
    const id = this.tracer.recordSpanEnter(this.level, target, span.name, localParent ?? null, fields);
    if (id !== 0n) this.ids.set(sc.spanId, id);
  }

  onEnd(span: SdkSpanLike): void {
    const key = span.spanContext().spanId;
    const id = this.ids.get(key);
    if (id === undefined) return;
    this.ids.delete(key);
    const target = span.instrumentationScope?.name ?? span.instrumentationLibrary?.name ?? "otel";
    for (const e of span.events) this.tracer.recordEvent(this.level, target, id, e.name, attrsToFields(e.attributes));
    if (span.status.code === SpanStatusCode.ERROR) this.tracer.recordEvent("Error", target, id, span.status.message ?? "error", []);
    this.tracer.spanEnded(id);
  }

  forceFlush(): Promise<void> {
    return this.tracer.flush();
  }

  shutdown(): Promise<void> {
    return this.tracer.flush();
  }
}

export { TraceFlags };
