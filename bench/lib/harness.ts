/**
 * Reusable benchmark harness.
 *
 * Designed for a small, noisy machine (2 cores, 20–45 % run-to-run variance):
 * absolute numbers are only indicative, so every benchmark should measure the
 * subject (roam) and its peers (gRPC, raw sockets) in the SAME process run and
 * report ratios. `runRounds` interleaves measurements (A, B, A, B, ...) so that
 * slow drifts of the machine hit all contenders alike; take the median.
 *
 * Every loop here is bounded both in count (`maxOps` / `maxRuns`) and in time
 * (`durationMs`, plus a hard watchdog), and every child process started with
 * `spawnNode` is killed on stop(), on parent exit and on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

export interface MeasureOpts {
  /** Un-timed warm-up phase (JIT, connection setup). Default 300 ms. */
  warmupMs?: number;
  /** Timed phase. Default 2000 ms. */
  durationMs?: number;
  /** Upper bound on timed operations (also bounds warm-up). Default 2_000_000. */
  maxOps?: number;
  /**
   * Hard limit for the whole measurement (warm-up + timed + grace); a call
   * that never settles makes the measurement reject instead of hanging.
   * Default warmupMs + durationMs + 10 s.
   */
  watchdogMs?: number;
  /**
   * Warm-up also runs until this many operations were done (JIT-compiled code
   * paths; on a busy machine a fixed time is too few calls), at most 20x warmupMs.
   */
  warmupOps?: number;
  /** Called right before the timed phase starts and right after it ends (e.g. to sample CPU time). */
  onTimed?: (phase: 'start' | 'end') => void;
}

export interface SequentialResult {
  ops: number;
  opsPerSec: number;
  p50us: number;
  p99us: number;
  meanus: number;
}

export interface ConcurrentResult extends SequentialResult {
  inflight: number;
}

export interface ThroughputOpts {
  warmupMs?: number;
  durationMs?: number;
  /** Upper bound on timed transfers. Default 10_000. */
  maxRuns?: number;
  watchdogMs?: number;
}

export interface ThroughputResult {
  /** Timed transfers performed. */
  runs: number;
  /** Payload bytes moved in the timed phase. */
  bytes: number;
  seconds: number;
  bytesPerSec: number;
  /** Decimal megabytes (1e6) per second. */
  mbPerSec: number;
  /** Decimal gigabytes (1e9) per second. */
  gbPerSec: number;
  /** Median duration of one transfer, milliseconds. */
  p50RunMs: number;
}

// ---------------------------------------------------------------------------
// Small numeric helpers
// ---------------------------------------------------------------------------

const DEFAULT_WARMUP_MS = 300;
const DEFAULT_DURATION_MS = 2000;
const DEFAULT_MAX_OPS = 2_000_000;
const DEFAULT_MAX_RUNS = 10_000;
// Generous: on a shared, saturated machine one transfer can take many seconds.
const WATCHDOG_GRACE_MS = 60_000;

const nowNs = (): bigint => process.hrtime.bigint();
const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/** Nearest-rank percentile of an ascending-sorted array (q in [0,1]). */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const idx = Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1));
  return sorted[idx]!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function summarize(latUs: Float64Array, n: number, elapsedNs: bigint): SequentialResult {
  const used = latUs.slice(0, n).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += used[i]!;
  const seconds = Number(elapsedNs) / 1e9;
  return {
    ops: n,
    opsPerSec: seconds > 0 ? n / seconds : 0,
    p50us: percentileSorted(used, 0.5),
    p99us: percentileSorted(used, 0.99),
    meanus: n > 0 ? sum / n : NaN,
  };
}

/** Race `p` against a timer (cleared as soon as `p` settles). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------

/**
 * One call at a time; latency of each call measured with hrtime.bigint().
 * opsPerSec = timed ops / timed wall-clock.
 */
export function measureSequential(
  call: () => Promise<void>,
  opts: MeasureOpts = {},
): Promise<SequentialResult> {
  const warmupMs = opts.warmupMs ?? DEFAULT_WARMUP_MS;
  const durationMs = opts.durationMs ?? DEFAULT_DURATION_MS;
  const maxOps = Math.max(1, Math.floor(opts.maxOps ?? DEFAULT_MAX_OPS));
  const watchdogMs = opts.watchdogMs ?? warmupMs + durationMs + WATCHDOG_GRACE_MS;

  const warmupOps = opts.warmupOps ?? 0;
  const run = async (): Promise<SequentialResult> => {
    const t0 = nowNs();
    const warmEnd = t0 + msToNs(warmupMs);
    const warmCap = t0 + msToNs(20 * warmupMs);
    for (let i = 0; i < maxOps; i++) {
      const t = nowNs();
      if ((t >= warmEnd && i >= warmupOps) || t >= warmCap) break;
      await call();
    }

    const lat = new Float64Array(maxOps);
    let n = 0;
    opts.onTimed?.('start');
    const start = nowNs();
    const end = start + msToNs(durationMs);
    let last = start;
    while (n < maxOps) {
      const t0 = nowNs();
      await call();
      last = nowNs();
      lat[n++] = Number(last - t0) / 1e3;
      if (last >= end) break;
    }
    opts.onTimed?.('end');
    return summarize(lat, n, last - start);
  };
  return withTimeout(run(), watchdogMs, 'measureSequential');
}

/**
 * Keeps `inflight` calls outstanding (closed loop: each of `inflight` workers
 * issues its next call as soon as its previous one completes).
 */
export function measureConcurrent(
  call: () => Promise<void>,
  inflight: number,
  opts: MeasureOpts = {},
): Promise<ConcurrentResult> {
  const warmupMs = opts.warmupMs ?? DEFAULT_WARMUP_MS;
  const durationMs = opts.durationMs ?? DEFAULT_DURATION_MS;
  const maxOps = Math.max(1, Math.floor(opts.maxOps ?? DEFAULT_MAX_OPS));
  const watchdogMs = opts.watchdogMs ?? warmupMs + durationMs + WATCHDOG_GRACE_MS;
  const k = Math.max(1, Math.floor(inflight));

  const run = async (): Promise<ConcurrentResult> => {
    // Warm-up, same shape as the timed phase.
    {
      const t0 = nowNs();
      const warmEnd = t0 + msToNs(warmupMs);
      const warmCap = t0 + msToNs(20 * warmupMs);
      const warmupOps = opts.warmupOps ?? 0;
      let started = 0;
      const worker = async (): Promise<void> => {
        while (started < maxOps) {
          const t = nowNs();
          if ((t >= warmEnd && started >= warmupOps) || t >= warmCap) break;
          started++;
          await call();
        }
      };
      await Promise.all(Array.from({ length: k }, worker));
    }

    const lat = new Float64Array(maxOps);
    let n = 0;
    let started = 0;
    let stop = false;
    opts.onTimed?.('start');
    const start = nowNs();
    const end = start + msToNs(durationMs);
    let last = start;
    const worker = async (): Promise<void> => {
      while (!stop && started < maxOps) {
        started++;
        const t0 = nowNs();
        await call();
        const t1 = nowNs();
        if (n < maxOps) lat[n++] = Number(t1 - t0) / 1e3;
        if (t1 > last) last = t1;
        if (t1 >= end) stop = true;
      }
    };
    await Promise.all(Array.from({ length: k }, worker));
    opts.onTimed?.('end');
    return { ...summarize(lat, n, last - start), inflight: k };
  };
  return withTimeout(run(), watchdogMs, 'measureConcurrent');
}

/**
 * Streaming throughput: `transfer()` performs one complete transfer (e.g. one
 * server-streaming call, one bulk copy), verifies it, and resolves with the
 * number of payload bytes it moved. Repeated for `durationMs`.
 */
export function measureThroughput(
  transfer: () => Promise<number>,
  opts: ThroughputOpts = {},
): Promise<ThroughputResult> {
  const warmupMs = opts.warmupMs ?? DEFAULT_WARMUP_MS;
  const durationMs = opts.durationMs ?? DEFAULT_DURATION_MS;
  const maxRuns = Math.max(1, Math.floor(opts.maxRuns ?? DEFAULT_MAX_RUNS));
  const watchdogMs = opts.watchdogMs ?? warmupMs + durationMs + WATCHDOG_GRACE_MS;

  const run = async (): Promise<ThroughputResult> => {
    const warmEnd = nowNs() + msToNs(warmupMs);
    // At least one warm-up transfer (establishes connections, JIT).
    for (let i = 0; i < maxRuns; i++) {
      await transfer();
      if (nowNs() >= warmEnd) break;
    }
    const runMs: number[] = [];
    let bytes = 0;
    const start = nowNs();
    const end = start + msToNs(durationMs);
    let last = start;
    for (let i = 0; i < maxRuns; i++) {
      const t0 = nowNs();
      bytes += await transfer();
      last = nowNs();
      runMs.push(Number(last - t0) / 1e6);
      if (last >= end) break;
    }
    const seconds = Number(last - start) / 1e9;
    const bytesPerSec = seconds > 0 ? bytes / seconds : 0;
    return {
      runs: runMs.length,
      bytes,
      seconds,
      bytesPerSec,
      mbPerSec: bytesPerSec / 1e6,
      gbPerSec: bytesPerSec / 1e9,
      p50RunMs: median(runMs),
    };
  };
  return withTimeout(run(), watchdogMs, 'measureThroughput');
}

/**
 * Interleaved rounds for same-run comparison on a noisy machine: runs
 * task A, B, C, A, B, C, ... `rounds` times (order rotated every round so no
 * contender is always first) and returns every result per task name.
 * Combine with `median(results.map(r => r.opsPerSec))`.
 */
export async function runRounds<T>(
  rounds: number,
  tasks: Record<string, () => Promise<T>>,
): Promise<Record<string, T[]>> {
  const names = Object.keys(tasks);
  const out: Record<string, T[]> = {};
  for (const n of names) out[n] = [];
  const r = Math.max(1, Math.min(1000, Math.floor(rounds)));
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length]!;
      if (process.env.BENCH_TRACE) process.stderr.write(`[round ${i + 1}] ${name}\n`);
      out[name]!.push(await tasks[name]!());
    }
  }
  return out;
}

/**
 * Machine-speed probe for reports: nanoseconds per iteration of a fixed
 * integer loop (median of 5 short samples, ~50–200 ms total). Lets readers of
 * two reports see whether the machine itself was slower in one of them.
 */
export function calibrateNsPerIter(iters = 5_000_000): number {
  const samples: number[] = [];
  let sink = 0;
  for (let s = 0; s < 5; s++) {
    const t0 = nowNs();
    let x = s;
    for (let i = 0; i < iters; i++) x = (x + i * 7) | 0;
    sink ^= x;
    samples.push(Number(nowNs() - t0) / iters);
  }
  if (sink === 0x7fffffff) console.log(''); // keep the loop observable
  return median(samples);
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/** Root of the compiled tree (this file lives at dist/bench/lib/harness.js). */
export const DIST_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ReadyInfo {
  ready: true;
  addr: string;
  [k: string]: unknown;
}

export interface SpawnedNode {
  child: ChildProcess;
  ready: ReadyInfo;
  /** SIGTERM, then SIGKILL after `graceMs` (default 2000). Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOpts {
  /** Give up (and kill the child) if it is not ready in time. Default 10 s. */
  startupTimeoutMs?: number;
  /** Forward the child's stderr to ours after it is ready. Default true. */
  forwardStderr?: boolean;
}

const liveChildren = new Set<ChildProcess>();
const liveTempDirs = new Set<string>();
let exitHooksInstalled = false;

/** Kill every child we spawned and remove our temp dirs (synchronous). */
function killAllChildrenSync(): void {
  for (const c of liveChildren) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveChildren.clear();
  for (const d of liveTempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  liveTempDirs.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killAllChildrenSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllChildrenSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

/**
 * Start `node <DIST_ROOT>/<scriptPathInDist> ...args`. The child must print one
 * JSON line `{"ready":true,"addr":...}` on stdout once it is listening (see
 * `announceReady`). The child's stdin is a pipe we hold open: the child should
 * call `exitWithParent()` so it dies when we die, even on SIGKILL.
 */
export function spawnNode(
  scriptPathInDist: string,
  args: readonly string[] = [],
  env: Record<string, string> = {},
  opts: SpawnOpts = {},
): Promise<SpawnedNode> {
  installExitHooks();
  const script = path.isAbsolute(scriptPathInDist)
    ? scriptPathInDist
    : path.join(DIST_ROOT, scriptPathInDist);
  const startupTimeoutMs = opts.startupTimeoutMs ?? 10_000;
  const forwardStderr = opts.forwardStderr ?? true;

  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  liveChildren.add(child);

  let exited = child.exitCode !== null || child.signalCode !== null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      liveChildren.delete(child);
      resolve();
    });
  });
  // EPIPE etc. on our end of the pipes must not crash the bench.
  child.stdin?.on('error', () => {});
  child.stdout?.on('error', () => {});
  child.stderr?.on('error', () => {});

  let stopped: Promise<void> | undefined;
  const stop = (graceMs = 2000): Promise<void> => {
    if (stopped) return stopped;
    stopped = (async () => {
      child.stdin?.end();
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => {
          if (!exited) child.kill('SIGKILL');
        }, graceMs);
        await exitPromise;
        clearTimeout(t);
      }
      liveChildren.delete(child);
    })();
    return stopped;
  };

  return new Promise<SpawnedNode>((resolve, reject) => {
    let stderrTail = '';
    let stdoutBuf = '';
    let settled = false;
    const onStderr = (d: Buffer): void => {
      if (settled && forwardStderr) process.stderr.write(d);
      else stderrTail = (stderrTail + d.toString('utf8')).slice(-4000);
    };
    child.stderr?.on('data', onStderr);

    const fail = (msg: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop(500).then(() =>
        reject(new Error(`${msg} [${scriptPathInDist}]${stderrTail ? `\nchild stderr:\n${stderrTail}` : ''}`)),
      );
    };
    const timer = setTimeout(() => fail(`child not ready within ${startupTimeoutMs} ms`), startupTimeoutMs);
    timer.unref();

    child.once('error', (e) => fail(`spawn failed: ${e.message}`));
    child.once('exit', (code, sig) => fail(`child exited before ready (code ${code}, signal ${sig})`));

    const onStdout = (d: Buffer): void => {
      if (settled) {
        process.stdout.write(d); // later output is just passed through
        return;
      }
      stdoutBuf += d.toString('utf8');
      if (stdoutBuf.length > 64_000) return fail('child printed too much before ready');
      let nl: number;
      while (!settled && (nl = stdoutBuf.indexOf('\n')) >= 0) {
        const line = stdoutBuf.slice(0, nl).trim();
        stdoutBuf = stdoutBuf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        let info: unknown;
        try {
          info = JSON.parse(line);
        } catch {
          continue;
        }
        if (info && typeof info === 'object' && (info as ReadyInfo).ready === true) {
          settled = true;
          clearTimeout(timer);
          if (forwardStderr && stderrTail) process.stderr.write(stderrTail);
          resolve({ child, ready: info as ReadyInfo, stop });
        }
      }
    };
    child.stdout?.on('data', onStdout);
  });
}

/** For child scripts: print the ready line the parent waits for. */
export function announceReady(info: { addr: string; [k: string]: unknown }): void {
  process.stdout.write(JSON.stringify({ ready: true, ...info }) + '\n');
}

/**
 * For child scripts: exit when the parent goes away (stdin EOF), on
 * SIGTERM/SIGINT, or after `maxLifetimeMs` (default 10 min) at the latest.
 * `cleanup` runs first (best effort, bounded to 1 s).
 */
export function exitWithParent(cleanup?: () => void | Promise<void>, maxLifetimeMs = 600_000): void {
  let exiting = false;
  const bye = (code: number): void => {
    if (exiting) return;
    exiting = true;
    const hard = setTimeout(() => process.exit(code), 1000);
    hard.unref();
    Promise.resolve()
      .then(() => cleanup?.())
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  process.stdin.on('end', () => bye(0));
  process.stdin.on('close', () => bye(0));
  process.stdin.on('error', () => bye(0));
  process.stdin.resume();
  process.once('SIGTERM', () => bye(0));
  process.once('SIGINT', () => bye(0));
  const life = setTimeout(() => bye(3), maxLifetimeMs);
  life.unref();
}

/**
 * A fresh private directory under os.tmpdir() (for Unix sockets). Removed by
 * remove(), or at the latest when this process exits (incl. SIGINT/SIGTERM).
 */
export function makeTempDir(prefix = 'roam-bench-'): { dir: string; remove(): void } {
  installExitHooks();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  liveTempDirs.add(dir);
  return {
    dir,
    remove() {
      liveTempDirs.delete(dir);
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    },
  };
}

/**
 * For child scripts: remove a Unix socket file and, if it is now empty, its
 * directory (only when that directory lies directly under os.tmpdir()), so
 * nothing is left behind even when the parent was SIGKILLed.
 */
export function removeSocketAndDir(socketPath: string): void {
  try {
    fs.unlinkSync(socketPath);
  } catch {
    /* gone */
  }
  const dir = path.dirname(socketPath);
  if (path.dirname(dir) !== path.resolve(os.tmpdir())) return;
  try {
    fs.rmdirSync(dir); // fails (harmlessly) unless empty
  } catch {
    /* not empty or gone */
  }
}

/** Simple `--key value` argument parser for child scripts. */
export function parseArgs(argv: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      out[key] = next;
      i++;
    } else out[key] = 'true';
  }
  return out;
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

export type Cell = string | number | null | undefined;
export type Row = Record<string, Cell>;

function fmtCell(c: Cell): string {
  if (c === null || c === undefined) return '';
  if (typeof c === 'number') return fmtNum(c);
  return c;
}

/** Number with thousands separators and a sensible number of decimals. */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtOps(opsPerSec: number): string {
  return opsPerSec >= 1e6 ? `${(opsPerSec / 1e6).toFixed(2)}M/s` : opsPerSec >= 1e3 ? `${(opsPerSec / 1e3).toFixed(1)}k/s` : `${opsPerSec.toFixed(0)}/s`;
}

export function fmtUs(us: number): string {
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

/** Decimal units (MB = 1e6 bytes, GB = 1e9 bytes). */
export function fmtBytesPerSec(bps: number): string {
  return bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} GB/s` : `${(bps / 1e6).toFixed(0)} MB/s`;
}

/** Markdown table. Column order: `columns` or first-seen key order. */
export function formatTable(rows: readonly Row[], columns?: readonly string[]): string {
  const cols = columns ? [...columns] : [];
  if (!columns) for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  if (cols.length === 0) return '';
  const cells = rows.map((r) => cols.map((c) => fmtCell(r[c])));
  const width = cols.map((c, i) => Math.max(3, c.length, ...cells.map((row) => row[i]!.length)));
  const numeric = cols.map((c) => rows.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number'));
  const line = (vals: readonly string[]): string =>
    '| ' + vals.map((v, i) => (numeric[i] ? v.padStart(width[i]!) : v.padEnd(width[i]!))).join(' | ') + ' |';
  const sep = '|' + width.map((w, i) => (numeric[i] ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|';
  return [line(cols), sep, ...cells.map(line)].join('\n');
}

/** Print a markdown table (with an optional `### title`) and return it. */
export function printTable(rows: readonly Row[], title?: string, columns?: readonly string[]): string {
  const t = (title ? `\n### ${title}\n\n` : '') + formatTable(rows, columns);
  console.log(t);
  return t;
}

/** subject / baseline (e.g. roam ops/s ÷ gRPC ops/s; > 1 means subject higher). */
export function ratio(subject: number, baseline: number): number {
  return baseline === 0 ? NaN : subject / baseline;
}

/** "1.23×" */
export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(r >= 10 ? 1 : 2)}×` : 'n/a';
}

/**
 * Ratio for "higher is better" metrics (throughput): subject/baseline.
 * For "lower is better" metrics (latency) use `ratio(baselineUs, subjectUs)`
 * to keep "> 1 ⇒ subject better", or label the column accordingly.
 */
export function speedup(subjectHigherIsBetter: number, baselineHigherIsBetter: number): string {
  return fmtRatio(ratio(subjectHigherIsBetter, baselineHigherIsBetter));
}
