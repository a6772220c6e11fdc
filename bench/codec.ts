/**
 * Codec throughput: encode + decode of Testbed values with roam's postcard
 * codec, next to JSON.stringify + JSON.parse of the same data in the same
 * process run (the only fair comparison on a noisy machine is a ratio).
 *
 *   npm run build && node dist/bench/codec.js [--duration-ms 1500] [--rounds 3]
 *
 * Each contender gets a warm-up, then `rounds` interleaved slices
 * (roam, JSON, roam, JSON, ...) totalling `--duration-ms`; the table shows
 * the median slice. One "op" is one encode plus one decode of the value.
 *
 * Bytes in JSON: a JSON user would send a `Vec<u8>` as a base64 string
 * (an array of numbers is 3-4x larger and far slower), so the JSON side
 * encodes with Buffer.toString("base64") and decodes back to bytes with
 * Buffer.from(s, "base64") — Node's native base64, the best case for JSON.
 */
import { pathToFileURL } from "node:url";
import { isDeepStrictEqual } from "node:util";

import { Canvas, Message as TestbedMessage, Person } from "../apps/testbed/testbed.js";
import { decodeMessage, type Message as WireMessage, messageToBytes } from "roam-ts";
import { QUICK, reportRatios } from "./lib/report.js";

export interface CodecBenchRow {
  case: string;
  roamOpsPerSec: number;
  jsonOpsPerSec: number;
  /** roam ops/s divided by JSON ops/s (> 1: roam is faster). */
  ratio: number;
  roamBytes: number;
  jsonBytes: number;
}

interface Contender {
  /** One encode + decode; returns a number derived from the result (kept, so nothing is optimised away). */
  op(): number;
  /** Size of one encoding, for the table. */
  size: number;
}

interface BenchCase {
  name: string;
  roam: Contender;
  json: Contender;
}

// ---------------------------------------------------------------------------
// data
// ---------------------------------------------------------------------------

function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function makeCanvas(): Canvas {
  const shapes: Canvas["shapes"] = [];
  for (let i = 0; i < 100; i++) {
    if (i % 3 === 0) shapes.push({ tag: "Circle", value: { radius: i * 0.5 + 0.25 } });
    else if (i % 3 === 1) shapes.push({ tag: "Rectangle", value: { width: i + 0.5, height: i * 2 + 0.75 } });
    else shapes.push({ tag: "Point" });
  }
  return { name: "benchmark canvas", shapes, background: "Blue" };
}

const base64 = {
  encode: (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64"),
  decode: (s: string): Uint8Array => {
    const buf = Buffer.from(s, "base64");
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  },
};

function cases(): BenchCase[] {
  const canvas = makeCanvas();
  const person: Person = { name: "Alice", age: 30, email: "alice@example.com" };
  const payload = pseudoRandomBytes(64 * 1024, 0x5eed);
  const dataMessage: TestbedMessage = { tag: "Data", value: payload };
  const wireData: WireMessage = { type: "Data", connId: 1, channelId: 7, payload };

  return [
    {
      name: "Canvas, 100 mixed shapes",
      roam: {
        op: () => Canvas.fromBytes(Canvas.toBytes(canvas)).shapes.length,
        size: Canvas.toBytes(canvas).length,
      },
      json: {
        op: () => (JSON.parse(JSON.stringify(canvas)) as Canvas).shapes.length,
        size: JSON.stringify(canvas).length,
      },
    },
    {
      name: "Person",
      roam: {
        op: () => Person.fromBytes(Person.toBytes(person)).age,
        size: Person.toBytes(person).length,
      },
      json: {
        op: () => (JSON.parse(JSON.stringify(person)) as Person).age,
        size: JSON.stringify(person).length,
      },
    },
    {
      name: "Testbed Message::Data, 64 KiB",
      roam: {
        op: () => {
          const m = TestbedMessage.fromBytes(TestbedMessage.toBytes(dataMessage));
          return m.tag === "Data" ? m.value.length : 0;
        },
        size: TestbedMessage.toBytes(dataMessage).length,
      },
      json: {
        op: () => {
          const text = JSON.stringify({ tag: "Data", value: base64.encode(payload) });
          const parsed = JSON.parse(text) as { tag: string; value: string };
          return base64.decode(parsed.value).length;
        },
        size: JSON.stringify({ tag: "Data", value: base64.encode(payload) }).length,
      },
    },
    {
      // Not a Testbed value: the wire frame that carries 64 KiB on a channel.
      name: "wire Message::Data, 64 KiB",
      roam: {
        op: () => {
          const m = decodeMessage(messageToBytes(wireData));
          return m.type === "Data" ? m.payload.length : 0;
        },
        size: messageToBytes(wireData).length,
      },
      json: {
        op: () => {
          const text = JSON.stringify({ type: "Data", connId: 1, channelId: 7, payload: base64.encode(payload) });
          const parsed = JSON.parse(text) as { payload: string };
          return base64.decode(parsed.payload).length;
        },
        size: JSON.stringify({ type: "Data", connId: 1, channelId: 7, payload: base64.encode(payload) }).length,
      },
    },
  ];
}

/** Checks both contenders really round-trip their data before anything is timed. */
function verify(): void {
  const canvas = makeCanvas();
  if (!isDeepStrictEqual(Canvas.fromBytes(Canvas.toBytes(canvas)), canvas)) throw new Error("Canvas does not round-trip");
  if (!isDeepStrictEqual(JSON.parse(JSON.stringify(canvas)), canvas)) throw new Error("Canvas does not round-trip through JSON");
  const payload = pseudoRandomBytes(64 * 1024, 0x5eed);
  const back = TestbedMessage.fromBytes(TestbedMessage.toBytes({ tag: "Data", value: payload }));
  if (back.tag !== "Data" || Buffer.compare(back.value, payload) !== 0) throw new Error("Message::Data does not round-trip");
  if (Buffer.compare(base64.decode(base64.encode(payload)), payload) !== 0) throw new Error("base64 does not round-trip");
}

// ---------------------------------------------------------------------------
// timing
// ---------------------------------------------------------------------------

let sink = 0;

/** Runs `op` in batches until `ms` elapsed (or `maxOps`); returns ops/s. */
function timeSlice(op: () => number, ms: number, maxOps: number): number {
  // Batch so the clock is read rarely: aim for ~2 ms per batch.
  let batch = 1;
  let ops = 0;
  const start = performance.now();
  const end = start + ms;
  let now = start;
  while (now < end && ops < maxOps) {
    const t0 = now;
    for (let i = 0; i < batch; i++) sink += op();
    ops += batch;
    now = performance.now();
    if (now - t0 < 2 && batch < 1 << 20) batch *= 2;
  }
  return ops / ((now - start) / 1000);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface CodecBenchOptions {
  /** Timed milliseconds per contender per case (split into `rounds` slices). Default 1500. */
  durationMs?: number;
  rounds?: number;
  warmupMs?: number;
  /** Upper bound on ops per slice. Default 50,000,000. */
  maxOpsPerSlice?: number;
}

export function runCodecBench(opts: CodecBenchOptions = {}): CodecBenchRow[] {
  const durationMs = opts.durationMs ?? 1500;
  const rounds = Math.max(1, opts.rounds ?? 3);
  const warmupMs = opts.warmupMs ?? 300;
  const maxOps = opts.maxOpsPerSlice ?? 50_000_000;
  verify();
  const rows: CodecBenchRow[] = [];
  for (const c of cases()) {
    timeSlice(c.roam.op, warmupMs, maxOps);
    timeSlice(c.json.op, warmupMs, maxOps);
    const roam: number[] = [];
    const json: number[] = [];
    for (let r = 0; r < rounds; r++) {
      roam.push(timeSlice(c.roam.op, durationMs / rounds, maxOps));
      json.push(timeSlice(c.json.op, durationMs / rounds, maxOps));
    }
    const roamOps = median(roam);
    const jsonOps = median(json);
    rows.push({
      case: c.name,
      roamOpsPerSec: roamOps,
      jsonOpsPerSec: jsonOps,
      ratio: roamOps / jsonOps,
      roamBytes: c.roam.size,
      jsonBytes: c.json.size,
    });
  }
  return rows;
}

function fmtOps(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)} M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)} k`;
  return x.toFixed(0);
}

export function formatCodecTable(rows: readonly CodecBenchRow[]): string {
  const lines = [
    "| case | roam ops/s | JSON ops/s | ratio (roam/JSON) | roam bytes | JSON bytes |",
    "|---|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    lines.push(`| ${r.case} | ${fmtOps(r.roamOpsPerSec)} | ${fmtOps(r.jsonOpsPerSec)} | ${r.ratio.toFixed(2)}x | ${r.roamBytes} | ${r.jsonBytes} |`);
  }
  return lines.join("\n");
}

function arg(flag: string): number | undefined {
  const i = process.argv.indexOf(flag);
  if (i === -1 || i + 1 >= process.argv.length) return undefined;
  const n = Number(process.argv[i + 1]);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const durationMs = arg("--duration-ms");
  const rounds = arg("--rounds");
  const rows = runCodecBench({
    ...(durationMs !== undefined ? { durationMs } : QUICK ? { durationMs: 400 } : {}),
    ...(rounds !== undefined ? { rounds } : {}),
    ...(QUICK ? { warmupMs: 100 } : {}),
  });
  console.log(`codec: encode+decode per op, node ${process.version}; JSON bytes as base64 strings (Node Buffer)\n`);
  console.log(formatCodecTable(rows));
  reportRatios(
    rows.map((r) => ({ bench: "codec", work: `encode+decode ${r.case}`, roam: `${fmtOps(r.roamOpsPerSec)} ops/s, ${r.roamBytes} B`, peer: `JSON ${fmtOps(r.jsonOpsPerSec)} ops/s, ${r.jsonBytes} B`, ratio: r.ratio })),
    "Codec: roam vs JSON (same run)",
  );
  if (sink === 42) console.log(""); // keeps `sink` observable
}
