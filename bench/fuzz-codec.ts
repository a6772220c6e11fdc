/**
 * Codec robustness fuzzer: feeds random bytes and mutated valid encodings to
 * every decoder (random schemas, decodeMessage, cobsDecode, CobsFrameDecoder)
 * and requires that each one only ever returns a value or throws
 * DecodeError/FramingError, quickly. The same property as
 * test/codec-properties.test.ts, at a larger scale.
 *
 *   npm run fuzz                               # 100,000 cases
 *   node dist/bench/fuzz-codec.js --cases 1000000 --seed 42 --time-limit 600
 *   FUZZ_CASES=200000 FUZZ_SEED=7 FUZZ_TIME_LIMIT_S=120 node dist/bench/fuzz-codec.js
 *
 * Exit status: 0 = every requested case ran and none failed; 1 = an untyped
 * exception (or a decode slower than SLOW_DECODE_MS) — the shrunk
 * counterexample is printed; 2 = the time limit stopped the run before all
 * cases ran (no failure seen in the cases that did run).
 */
import fc from "fast-check";

import { cobsDecode, cobsEncode, decodeMessage, messageToBytes } from "roam-ts";
import {
  SLOW_DECODE_MS,
  classify,
  cobsRawArb,
  feedFrames,
  messageArb,
  mutate,
  mutationsArb,
  sampleArb,
  schemaArb,
  type Outcome,
} from "./codec-arbitraries.js";

// ---------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------

function option(flag: string, env: string): string | undefined {
  const i = process.argv.indexOf(flag);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`${flag}=`));
  if (eq !== undefined) return eq.slice(flag.length + 1);
  return process.env[env];
}

function positiveInt(raw: string | undefined, fallback: number, what: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) {
    console.error(`fuzz-codec: ${what} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(64);
  }
  return n;
}

const TOTAL_CASES = positiveInt(option("--cases", "FUZZ_CASES"), 100_000, "--cases / FUZZ_CASES");
const TIME_LIMIT_S = positiveInt(option("--time-limit", "FUZZ_TIME_LIMIT_S"), 300, "--time-limit / FUZZ_TIME_LIMIT_S");
const SEED = positiveInt(option("--seed", "FUZZ_SEED"), Date.now() % 2 ** 31, "--seed / FUZZ_SEED");

// ---------------------------------------------------------------------------
// targets
// ---------------------------------------------------------------------------

interface Counts {
  cases: number;
  decodes: number;
  values: number;
  typedErrors: number;
}

interface CheckResult {
  failed: boolean;
  interrupted: boolean;
  numRuns: number;
  report: string | undefined;
}

interface Target {
  readonly name: string;
  /** Share of the total cases. */
  readonly share: number;
  check(counts: Counts, numRuns: number, seed: number, timeLimitMs: number): CheckResult;
}

function target<Ts>(name: string, share: number, property: (counts: Counts) => fc.IProperty<Ts>): Target {
  return {
    name,
    share,
    check(counts, numRuns, seed, timeLimitMs) {
      const d = fc.check(property(counts), { numRuns, seed, interruptAfterTimeLimit: timeLimitMs });
      let report: string | undefined;
      if (d.failed && !d.interrupted) {
        const error = d.errorInstance instanceof Error ? `${d.errorInstance.name}: ${d.errorInstance.message}` : String(d.errorInstance);
        report =
          `counterexample (shrunk ${d.numShrinks} times): ${fc.stringify(d.counterexample)}\n` +
          `error: ${error}\n` +
          `reproduce with: seed ${d.seed}, path ${JSON.stringify(d.counterexamplePath)}`;
      }
      return { failed: d.failed && !d.interrupted, interrupted: d.interrupted, numRuns: d.numRuns, report };
    },
  };
}

function record(counts: Counts, outcome: Outcome): void {
  counts.decodes++;
  if (outcome === "value") counts.values++;
  else counts.typedErrors++;
}

const targets: readonly Target[] = [
  target("schema decode, random bytes", 0.25, (c) =>
    fc.property(schemaArb(3), fc.uint8Array({ maxLength: 96 }), (g, bytes) => {
      c.cases++;
      record(c, classify(`decode ${g.desc}`, bytes, () => g.schema.fromBytes(bytes)));
    }),
  ),
  target("schema decode, mutated encodings", 0.35, (c) =>
    fc.property(sampleArb(3), mutationsArb, (s, mutations) => {
      c.cases++;
      const bytes = mutate(s.schema.toBytes(s.value), mutations);
      record(c, classify(`decode ${s.desc}`, bytes, () => s.schema.fromBytes(bytes)));
    }),
  ),
  target("decodeMessage, random + mutated", 0.2, (c) =>
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.tuple(messageArb, mutationsArb).map(([m, muts]) => mutate(messageToBytes(m), muts))),
      (bytes) => {
        c.cases++;
        record(c, classify("decodeMessage", bytes, () => decodeMessage(bytes)));
      },
    ),
  ),
  target("COBS decode + framing", 0.2, (c) =>
    fc.property(
      fc.oneof(fc.uint8Array({ maxLength: 700 }), fc.tuple(cobsRawArb, mutationsArb).map(([raw, muts]) => mutate(cobsEncode(raw), muts))),
      fc.array(fc.integer({ min: 1, max: 128 }), { maxLength: 5 }),
      fc.integer({ min: 1, max: 800 }),
      (bytes, chunks, limit) => {
        c.cases++;
        record(c, classify("cobsDecode", bytes, () => cobsDecode(bytes)));
        record(
          c,
          classify("CobsFrameDecoder", bytes, () =>
            feedFrames(bytes, chunks, limit, (frame) => {
              if (frame.length > limit) throw new Error(`frame of ${frame.length} bytes passed a ${limit}-byte limit`);
              record(c, classify("decodeMessage(frame)", frame, () => decodeMessage(frame)));
            }),
          ),
        );
      },
    ),
  ),
];

// ---------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------

function pad(s: string | number, n: number, right = false): string {
  const str = typeof s === "number" ? s.toLocaleString("en-US") : s;
  return right ? str.padEnd(n) : str.padStart(n);
}

console.log(`fuzz-codec: ${TOTAL_CASES.toLocaleString("en-US")} cases, seed ${SEED}, time limit ${TIME_LIMIT_S} s, slow-decode limit ${SLOW_DECODE_MS} ms`);
const started = performance.now();
const deadline = started + TIME_LIMIT_S * 1000;
const rows: Array<{ name: string; counts: Counts; ms: number }> = [];
let failed = false;
let interrupted = false;

for (const [i, target] of targets.entries()) {
  const numRuns = Math.max(1, Math.round(TOTAL_CASES * target.share));
  const counts: Counts = { cases: 0, decodes: 0, values: 0, typedErrors: 0 };
  const remainingMs = Math.max(1, deadline - performance.now());
  const t0 = performance.now();
  const details = target.check(counts, numRuns, SEED + i, remainingMs);
  rows.push({ name: target.name, counts, ms: performance.now() - t0 });
  if (details.failed) {
    failed = true;
    console.error(`\nFAILED: ${target.name}`);
    console.error(details.report);
    break;
  }
  if (details.interrupted) {
    interrupted = true;
    console.error(`\ntime limit reached during "${target.name}" after ${details.numRuns.toLocaleString("en-US")} of ${numRuns.toLocaleString("en-US")} runs`);
    break;
  }
}

const total: Counts = { cases: 0, decodes: 0, values: 0, typedErrors: 0 };
console.log("");
console.log(`| ${pad("target", 34, true)} | ${pad("cases", 9)} | ${pad("decodes", 9)} | ${pad("values", 9)} | ${pad("typed errors", 12)} | ${pad("untyped", 7)} | ${pad("ms", 7)} |`);
console.log(`|${"-".repeat(36)}|${"-".repeat(10)}:|${"-".repeat(10)}:|${"-".repeat(10)}:|${"-".repeat(13)}:|${"-".repeat(8)}:|${"-".repeat(8)}:|`);
for (const { name, counts, ms } of rows) {
  const untyped = counts.decodes - counts.values - counts.typedErrors;
  console.log(
    `| ${pad(name, 34, true)} | ${pad(counts.cases, 9)} | ${pad(counts.decodes, 9)} | ${pad(counts.values, 9)} | ${pad(counts.typedErrors, 12)} | ${pad(untyped, 7)} | ${pad(Math.round(ms), 7)} |`,
  );
  total.cases += counts.cases;
  total.decodes += counts.decodes;
  total.values += counts.values;
  total.typedErrors += counts.typedErrors;
}
const totalMs = performance.now() - started;
console.log(
  `| ${pad("total", 34, true)} | ${pad(total.cases, 9)} | ${pad(total.decodes, 9)} | ${pad(total.values, 9)} | ${pad(total.typedErrors, 12)} | ${pad(failed ? "≥1" : "0", 7)} | ${pad(Math.round(totalMs), 7)} |`,
);
console.log("");
console.log(
  "cases = property runs (incl. shrinking re-runs after a failure); decodes = decoder invocations " +
    "(the COBS target decodes each input twice and every frame as a Message).",
);

if (failed) {
  console.log("RESULT: FAIL — a decoder threw an untyped exception or was too slow (see above; rerun with the printed seed)");
  process.exit(1);
}
if (interrupted || total.cases < TOTAL_CASES) {
  console.log(`RESULT: INCOMPLETE — ${total.cases.toLocaleString("en-US")} of ${TOTAL_CASES.toLocaleString("en-US")} cases before the time limit; no failure seen`);
  process.exit(2);
}
console.log(`RESULT: OK — ${total.cases.toLocaleString("en-US")} cases, only values and typed errors (seed ${SEED})`);
