/** The service a tracing test guest serves (next to CellTracing). */
import { arg, defineService, method } from "../../src/service/define.js";
import { t } from "../../src/schema/index.js";
import { Level } from "../../src/tracing/schema.js";

export const TraceTest = defineService("TraceTest", {
  /** Records `count` events at `level` (field i = 0..count-1). */
  log: method([arg("count", t.u32), arg("level", Level)], t.unit),
  /** Records `count` events synchronously (overflows a small buffer). */
  burst: method([arg("count", t.u32)], t.unit),
  /** A span "work" with an event inside, using the cell logger API. */
  work: method([arg("label", t.string)], t.string),
  /** The same through the OpenTelemetry API (RoamTracingSpanProcessor). */
  otelWork: method([arg("label", t.string)], t.string),
  /** The cell tracer's own counters. */
  stats: method([], t.struct({ dropped: t.u64, sent: t.u64, filter: t.string })),
});

/** A front service the trace test calls over TCP; its handler calls the guest. */
export const Front = defineService("Front", {
  run: method([arg("label", t.string)], t.string),
});
