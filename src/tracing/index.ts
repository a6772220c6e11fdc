/**
 * roam-tracing for Node (`roam-ts/tracing`): cells record events and spans
 * (`CellTracer`), the host collects them tagged by cell (`TracingHub`).
 * Spec: tracing-spec at 13c25df0; wire types in ./schema.ts.
 */
export * from "./schema.js";
export { TargetFilter } from "./filter.js";
export { CellTracer, CellLogger, CellSpan, toFieldValue, TRACEPARENT, type CellTracerOptions, type CellTracerStats, type FieldInput, type FieldsInput } from "./cell.js";
export { TracingHub, formatRecord, type TracingHubOptions, type PeerTracingStats } from "./host.js";
