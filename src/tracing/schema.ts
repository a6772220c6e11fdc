/**
 * The wire types and services of roam-tracing (tracing-spec at 13c25df0),
 * written from the Rust crate `roam-tracing` at the same commit so the
 * method ids equal Rust's. Field and variant order is the wire order.
 *
 * Where the spec's prose and the Rust crate differ, the crate wins because
 * it is what a Rust cell or host sends: `TracingConfig` is
 * `{ filter_directives: String, include_span_events: bool }` (the prose shows
 * `min_level` + `filters`), and `configure` returns `ConfigResult`.
 */
import { arg, defineService, method } from "../service/define.js";
import { t, type Infer } from "../schema/index.js";

/** `Level` (repr u8, Trace = 0 … Error = 4). */
export const Level = t.literals(["Trace", "Debug", "Info", "Warn", "Error"], "Level");
export type Level = Infer<typeof Level>;

/** `FieldValue`: I64(i64) | U64(u64) | Bool(bool) | Str(String). */
export const FieldValue = t.enum({ I64: t.i64, U64: t.u64, Bool: t.bool, Str: t.string }, "FieldValue");
export type FieldValue = Infer<typeof FieldValue>;

const Fields = t.list(t.tuple(t.string, FieldValue));

/** `TracingRecord`. `SpanId` is a cell-local u64; `timestamp_ns` is monotonic from the cell's start. */
export const TracingRecord = t.enum(
  {
    SpanEnter: {
      id: t.u64,
      parent: t.option(t.u64),
      target: t.string,
      name: t.string,
      level: Level,
      fields: Fields,
      timestamp_ns: t.u64,
    },
    SpanExit: { id: t.u64, timestamp_ns: t.u64 },
    SpanClose: { id: t.u64, timestamp_ns: t.u64 },
    Event: {
      parent: t.option(t.u64),
      target: t.string,
      level: Level,
      message: t.option(t.string),
      fields: Fields,
      timestamp_ns: t.u64,
    },
  },
  "TracingRecord",
);
export type TracingRecord = Infer<typeof TracingRecord>;

/** `TracingConfig`: RUST_LOG-style directives (`info`, `debug,my_cell::db=trace`, `warn,noisy=off`). */
export const TracingConfig = t.struct({ filter_directives: t.string, include_span_events: t.bool }, "TracingConfig");
export type TracingConfig = Infer<typeof TracingConfig>;

/** `ConfigResult`: Ok | InvalidFilter(String). */
export const ConfigResult = t.enum({ Ok: null, InvalidFilter: t.string }, "ConfigResult");
export type ConfigResult = Infer<typeof ConfigResult>;

/** Implemented by the host, called by cells (tracing.service.host-tracing). */
export const HostTracing = defineService("HostTracing", {
  get_tracing_config: method([], TracingConfig),
  emit_tracing: method([arg("records", t.list(TracingRecord))], t.unit),
});

/** Implemented by cells, called by the host to push a new config (tracing.service.cell-tracing). */
export const CellTracing = defineService("CellTracing", {
  configure: method([arg("config", TracingConfig)], ConfigResult),
});

/** A record as the host hands it on: tagged with the cell that sent it (tracing.type.tagged). */
export interface TaggedRecord {
  readonly peerId: number;
  readonly peerName: string | null;
  readonly record: TracingRecord;
}

/** Level order, for filtering. */
export const LEVEL_RANK: Readonly<Record<Level, number>> = { Trace: 0, Debug: 1, Info: 2, Warn: 3, Error: 4 };
