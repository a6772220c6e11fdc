/**
 * The cell side of roam-tracing: a small logger/span API that records into
 * a bounded lossy buffer, and a drain that ships batches to the host's
 * `HostTracing.emit_tracing`.
 *
 *   const tracing = new CellTracer({ bufferSize: 1024 });
 *   const link = establishGuest(guest, new RoutedDispatcher([tracing.dispatcher(), serve(CellApi, impl, { interceptors: [tracing.serverInterceptor()] })]));
 *   await tracing.start(link.root);              // queries the host's config, then drains every 50 ms
 *   const log = tracing.logger("my_cell::images");
 *   log.info("resized", { width: 640, height: 480 });
 *   await log.inSpan("decode", { bytes: n }, async () => { ... });   // events inside get the span as parent
 *
 * r[tracing.design.lossy]: recording never blocks and never waits for the
 * host; when the buffer is full the OLDEST record is dropped and counted,
 * and the count reaches the host as a Warn event (target `roam_tracing`).
 * r[tracing.design.batched]: one batch in flight at a time, so records
 * arrive in the order they were recorded.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Connection } from "../session/connection.js";
import type { ServerInterceptor } from "../session/interceptor.js";
import { client, serve, type ClientOf, type ServiceDispatcher } from "../session/serve.js";
import { ConnectionClosedError } from "../session/errors.js";
import { TargetFilter } from "./filter.js";
import { CellTracing, HostTracing, type ConfigResult, type FieldValue, type Level, type TracingConfig, type TracingRecord } from "./schema.js";

/** Field values a logger accepts; converted to `FieldValue` (numbers: I64/U64 when integral, else Str). */
export type FieldInput = string | number | bigint | boolean | null | undefined;
export type FieldsInput = Readonly<Record<string, FieldInput>>;

export interface CellTracerOptions {
  /** Records kept before the oldest is dropped (r[tracing.impl.buffer-size]). Default 1024. */
  bufferSize?: number;
  /** Records per `emit_tracing` call. Default 64. */
  batchSize?: number;
  /** Drain period in ms. Default 50. */
  flushIntervalMs?: number;
  /** Filter before the host's config arrives. Default `trace` (keep everything, like the reference). */
  initialConfig?: TracingConfig;
  /** A drain failure other than the link closing (default: console.error). */
  onError?: (error: unknown) => void;
}

export interface CellTracerStats {
  /** Records waiting in the buffer. */
  buffered: number;
  /** Records dropped because the buffer was full (total). */
  dropped: number;
  /** Records delivered to the host. */
  sent: number;
  batches: number;
  /** The filter in force. */
  filter: string;
  includeSpanEvents: boolean;
}

/** Metadata key of the W3C trace context (also what the OTel interceptors use). */
export const TRACEPARENT = "traceparent";

interface ActiveContext {
  /** Innermost local span (cell-local id), if any. */
  span: bigint | null;
  /** The traceparent of the incoming call this work belongs to. */
  traceparent: string | null;
}

/** Bounded FIFO that drops the oldest entry when full. */
class LossyBuffer<T> {
  private items: (T | undefined)[];
  private head = 0;
  private count = 0;
  dropped = 0;
  constructor(readonly capacity: number) {
    this.items = new Array(capacity);
  }
  get length(): number {
    return this.count;
  }
  push(item: T): void {
    if (this.count === this.capacity) {
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      this.dropped++;
    }
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
  }
  take(max: number): T[] {
    const n = Math.min(max, this.count);
    const out: T[] = new Array(n);
    for (let i = 0; i < n; i++) {
      out[i] = this.items[this.head] as T;
      this.items[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
    }
    this.count -= n;
    return out;
  }
}

export function toFieldValue(v: FieldInput): FieldValue {
  switch (typeof v) {
    case "string":
      return { tag: "Str", value: v };
    case "boolean":
      return { tag: "Bool", value: v };
    case "bigint":
      return v >= 0n && v < 1n << 64n ? { tag: "U64", value: v } : v < 0n && v >= -(1n << 63n) ? { tag: "I64", value: v } : { tag: "Str", value: v.toString() };
    case "number":
      if (Number.isSafeInteger(v)) return v >= 0 ? { tag: "U64", value: BigInt(v) } : { tag: "I64", value: BigInt(v) };
      return { tag: "Str", value: String(v) };
    default:
      return { tag: "Str", value: String(v) };
  }
}

function toFields(fields: FieldsInput | undefined): [string, FieldValue][] {
  if (fields === undefined) return [];
  const out: [string, FieldValue][] = [];
  for (const k of Object.keys(fields)) out.push([k, toFieldValue(fields[k])]);
  return out;
}

/** A span: entered when created; `close()` it (or use `logger.inSpan`). */
export class CellSpan {
  private closed = false;
  constructor(
    private readonly tracer: CellTracer,
    /** Cell-local id (0n when the span was filtered out: then nothing is recorded). */
    readonly id: bigint,
    readonly traceparent: string | null,
  ) {}
  /** Runs `fn` with this span as the parent of what it records (also across awaits). */
  run<R>(fn: () => R): R {
    if (this.id === 0n) return fn();
    return this.tracer.als.run({ span: this.id, traceparent: this.traceparent }, fn);
  }
  close(): void {
    if (this.closed || this.id === 0n) return;
    this.closed = true;
    this.tracer.spanEnded(this.id);
  }
}

/** Records events and spans under one target (like a Rust module path). */
export class CellLogger {
  constructor(
    private readonly tracer: CellTracer,
    readonly target: string,
  ) {}
  trace(message: string, fields?: FieldsInput): void {
    this.tracer.event("Trace", this.target, message, fields);
  }
  debug(message: string, fields?: FieldsInput): void {
    this.tracer.event("Debug", this.target, message, fields);
  }
  info(message: string, fields?: FieldsInput): void {
    this.tracer.event("Info", this.target, message, fields);
  }
  warn(message: string, fields?: FieldsInput): void {
    this.tracer.event("Warn", this.target, message, fields);
  }
  error(message: string, fields?: FieldsInput): void {
    this.tracer.event("Error", this.target, message, fields);
  }
  /** Opens a span (child of the current one); close it when done. */
  span(name: string, fields?: FieldsInput, level: Level = "Info"): CellSpan {
    return this.tracer.openSpan(level, this.target, name, toFields(fields));
  }
  /** Runs `fn` inside a new span and closes it when `fn` settles. */
  async inSpan<R>(name: string, fields: FieldsInput | undefined, fn: () => R | Promise<R>): Promise<R> {
    const s = this.span(name, fields);
    try {
      return await s.run(fn);
    } finally {
      s.close();
    }
  }
}

export class CellTracer {
  /** @internal */ readonly als = new AsyncLocalStorage<ActiveContext>();
  private readonly buffer: LossyBuffer<TracingRecord>;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly onError: (e: unknown) => void;
  private filter: TargetFilter;
  private includeSpanEvents: boolean;
  private nextSpanId = 1n;
  private readonly start0 = process.hrtime.bigint();
  private timer: ReturnType<typeof setInterval> | null = null;
  private host: ClientOf<typeof HostTracing> | null = null;
  private draining: Promise<void> | null = null;
  private reportedDrops = 0;
  private sent = 0;
  private batches = 0;
  private stopped = false;
  /** Live spans that recorded a SpanEnter (their close is recorded even if the filter changed since). */
  private readonly liveSpans = new Set<bigint>();

  constructor(options: CellTracerOptions = {}) {
    const size = options.bufferSize ?? 1024;
    if (!(Number.isInteger(size) && size > 0)) throw new RangeError(`bufferSize must be a positive integer, got ${size}`);
    this.buffer = new LossyBuffer(size);
    this.batchSize = Math.max(1, options.batchSize ?? 64);
    this.flushIntervalMs = Math.max(1, options.flushIntervalMs ?? 50);
    this.onError = options.onError ?? ((e) => console.error("roam-tracing: drain failed:", e));
    const initial = options.initialConfig ?? { filter_directives: "trace", include_span_events: true };
    this.filter = TargetFilter.parseOrInfo(initial.filter_directives);
    this.includeSpanEvents = initial.include_span_events;
  }

  /** Nanoseconds since this tracer was created (r[tracing.type.record.timestamp]). */
  now(): bigint {
    return process.hrtime.bigint() - this.start0;
  }

  logger(target: string): CellLogger {
    return new CellLogger(this, target);
  }

  /** Applies a config (what the host's `configure` call does). Throws TypeError on a bad filter. */
  configure(config: TracingConfig): void {
    this.filter = TargetFilter.parse(config.filter_directives);
    this.includeSpanEvents = config.include_span_events;
  }

  /** The `CellTracing` service for the cell's dispatcher (the host pushes configs through it). */
  dispatcher(): ServiceDispatcher {
    return serve(CellTracing, {
      configure: (config): ConfigResult => {
        try {
          this.configure(config);
          return { tag: "Ok" };
        } catch (e) {
          return { tag: "InvalidFilter", value: (e as Error).message };
        }
      },
    });
  }

  /**
   * A server interceptor for the cell's own services: each incoming call runs
   * with the caller's `traceparent` as the trace of what it records, inside a
   * span named after the method (target `rpc.server`).
   */
  serverInterceptor(): ServerInterceptor {
    return (next) => (req) => {
      const tp = req.metadata.find(([k]) => k === TRACEPARENT)?.[1];
      const traceparent = typeof tp === "string" ? tp : null;
      return this.als.run({ span: null, traceparent }, () => {
        const span = this.openSpan("Info", "rpc.server", req.name, [["rpc.method", { tag: "Str", value: req.name }]]);
        return span.run(async () => {
          try {
            const r = await next(req);
            if (r.outcome !== "ok") this.event("Warn", "rpc.server", `${req.name} ended: ${r.outcome}`, { outcome: r.outcome, message: r.message });
            return r;
          } finally {
            span.close();
          }
        });
      });
    };
  }

  /** True if a record at this level and target passes the filter (and is not roam's own). */
  enabled(level: Level, target: string): boolean {
    // Never forward roam's own records (Rust module paths roam, roam_*, roam::*):
    // shipping them would record more (the reference drops them the same way).
    if (target.startsWith("roam") && (target.length === 4 || target[4] === "_" || target[4] === ":")) return false;
    return this.filter.enabled(level, target);
  }

  /** @internal */
  event(level: Level, target: string, message: string | null, fields: FieldsInput | [string, FieldValue][] | undefined): void {
    if (!this.enabled(level, target)) return;
    const ctx = this.als.getStore();
    const f = Array.isArray(fields) ? fields : toFields(fields as FieldsInput | undefined);
    if (ctx?.span == null && ctx?.traceparent) f.push([TRACEPARENT, { tag: "Str", value: ctx.traceparent }]);
    this.buffer.push({
      tag: "Event",
      value: { parent: ctx?.span ?? null, target, level, message, fields: f, timestamp_ns: this.now() },
    });
  }

  /** @internal */
  openSpan(level: Level, target: string, name: string, fields: [string, FieldValue][]): CellSpan {
    if (!this.enabled(level, target)) return new CellSpan(this, 0n, null);
    const ctx = this.als.getStore();
    const id = this.nextSpanId++;
    const parent = ctx?.span ?? null;
    const traceparent = ctx?.traceparent ?? null;
    if (this.includeSpanEvents) {
      if (parent === null && traceparent) fields.push([TRACEPARENT, { tag: "Str", value: traceparent }]);
      this.buffer.push({ tag: "SpanEnter", value: { id, parent, target, name, level, fields, timestamp_ns: this.now() } });
      this.liveSpans.add(id);
    }
    return new CellSpan(this, id, traceparent);
  }

  /** @internal Records a SpanEnter as-is (the OpenTelemetry adapter). Returns the id. */
  recordSpanEnter(level: Level, target: string, name: string, parent: bigint | null, fields: [string, FieldValue][]): bigint {
    if (!this.enabled(level, target) || !this.includeSpanEvents) return 0n;
    const id = this.nextSpanId++;
    this.buffer.push({ tag: "SpanEnter", value: { id, parent, target, name, level, fields, timestamp_ns: this.now() } });
    this.liveSpans.add(id);
    return id;
  }

  /** @internal */
  spanEnded(id: bigint): void {
    if (!this.liveSpans.delete(id)) return;
    this.buffer.push({ tag: "SpanClose", value: { id, timestamp_ns: this.now() } });
  }

  /** @internal Records an event with an explicit parent (the OpenTelemetry adapter). */
  recordEvent(level: Level, target: string, parent: bigint | null, message: string | null, fields: [string, FieldValue][]): void {
    if (!this.enabled(level, target)) return;
    this.buffer.push({ tag: "Event", value: { parent, target, level, message, fields, timestamp_ns: this.now() } });
  }

  stats(): CellTracerStats {
    return {
      buffered: this.buffer.length,
      dropped: this.buffer.dropped,
      sent: this.sent,
      batches: this.batches,
      filter: this.filter.source,
      includeSpanEvents: this.includeSpanEvents,
    };
  }

  /**
   * r[tracing.flow.startup]: asks the host for its config, then drains every
   * `flushIntervalMs`. Records made before keep waiting in the buffer.
   */
  async start(connection: Connection): Promise<void> {
    if (this.host) throw new Error("CellTracer.start() was already called");
    this.host = client(HostTracing, connection);
    try {
      const config = await this.host.get_tracing_config();
      this.filter = TargetFilter.parseOrInfo(config.filter_directives);
      this.includeSpanEvents = config.include_span_events;
    } catch (e) {
      if (e instanceof ConnectionClosedError) return;
      // A host without HostTracing: keep the initial config and still try to drain.
      this.onError(e);
    }
    if (this.stopped) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref?.();
    connection.onClose(() => this.halt());
  }

  /** Sends everything buffered now (one batch after another). */
  flush(): Promise<void> {
    if (this.draining) return this.draining;
    const host = this.host;
    if (!host || this.stopped) return Promise.resolve();
    const run = async () => {
      while (this.buffer.length > 0 || this.buffer.dropped > this.reportedDrops) {
        const batch = this.buffer.take(this.batchSize);
        const dropped = this.buffer.dropped - this.reportedDrops;
        if (dropped > 0) {
          batch.unshift({
            tag: "Event",
            value: {
              parent: null,
              target: "roam_tracing",
              level: "Warn",
              message: `dropped ${dropped} tracing records (cell buffer of ${this.buffer.capacity} was full)`,
              fields: [["dropped", { tag: "U64", value: BigInt(dropped) }]],
              timestamp_ns: this.now(),
            },
          });
          this.reportedDrops += dropped;
        }
        await host.emit_tracing(batch);
        this.sent += batch.length - (dropped > 0 ? 1 : 0);
        this.batches++;
      }
    };
    this.draining = run()
      .catch((e) => {
        if (e instanceof ConnectionClosedError) this.halt();
        else this.onError(e);
      })
      .finally(() => (this.draining = null));
    return this.draining;
  }

  private halt(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Flushes what is buffered and stops draining. */
  async stop(): Promise<void> {
    await this.flush();
    this.halt();
  }
}
