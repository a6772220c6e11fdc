/**
 * What every benchmark script shares for `npm run bench` (run-all.ts):
 *
 *  - quick mode (`--quick` or BENCH_QUICK=1): shorter rounds, so the whole
 *    suite stays under two minutes; env BENCH_ROUNDS / BENCH_WARMUP_MS /
 *    BENCH_DURATION_MS still override.
 *  - ratio rows: each script reports its headline results as "roam figure,
 *    peer figure from the same run, ratio" rows. Run standalone, the rows are
 *    printed as a table; under run-all (env BENCH_RESULTS names a file) they
 *    are also appended to that file as JSON lines, and run-all prints every
 *    script's rows as one table.
 *  - CPU time of a measurement: this process plus the server processes, read
 *    around the timed phase (CPU-µs per call is the cost, independent of how
 *    busy the shared machine is).
 */
import * as fs from 'node:fs';
import { fmtRatio, printTable, type Row } from './harness.js';

export const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';

export interface BenchSettings {
  rounds: number;
  warmupMs: number;
  durationMs: number;
}

/** Rounds/warm-up/duration for this run: `full` normally, `quick` with --quick; env overrides both. */
export function settings(full: BenchSettings, quick: BenchSettings): BenchSettings {
  const base = QUICK ? quick : full;
  const num = (k: string, d: number): number => {
    const v = Number(process.env[k]);
    return Number.isFinite(v) && v > 0 ? v : d;
  };
  return {
    rounds: num('BENCH_ROUNDS', base.rounds),
    warmupMs: num('BENCH_WARMUP_MS', base.warmupMs),
    durationMs: num('BENCH_DURATION_MS', base.durationMs),
  };
}

export interface RatioRow {
  /** Which script ("rpc", "shm", ...). */
  bench: string;
  /** The work measured ("unary echo, 64 in flight, WebSocket"). */
  work: string;
  /** roam-ts's figure, formatted ("212k calls/s, 4.9 CPU-µs/call"). */
  roam: string;
  /** The peer and its figure from the same run ("ws JSON-RPC 103k/s"). */
  peer: string;
  /** roam ÷ peer of the compared quantity. */
  ratio: number;
  /** How to read the ratio when it is not "higher is better" (e.g. "× the floor's latency"). */
  ratioOf?: string;
  /** The issue's target for this ratio, e.g. ">= 2" or "<= 3"; empty when informative only. */
  target?: string;
}

/** Whether `r` meets `target` (">= x" or "<= x"); undefined without a target. */
export function targetMet(r: RatioRow): boolean | undefined {
  const m = /^\s*(>=|<=)\s*([0-9.]+)\s*$/.exec(r.target ?? '');
  if (!m) return undefined;
  const x = Number(m[2]);
  return m[1] === '>=' ? r.ratio >= x : r.ratio <= x;
}

export function ratioRowsTable(rows: readonly RatioRow[]): Row[] {
  return rows.map((r) => {
    const met = targetMet(r);
    return {
      bench: r.bench,
      work: r.work,
      'roam-ts': r.roam,
      'peer (same run)': r.peer,
      ratio: `${fmtRatio(r.ratio)}${r.ratioOf ? ` ${r.ratioOf}` : ''}`,
      target: r.target ? `${r.target.replace('>=', '≥').replace('<=', '≤')}× ${met ? 'met' : 'NOT met'}` : '',
    };
  });
}

/** Prints the rows as a table and, under run-all, hands them over (BENCH_RESULTS). */
export function reportRatios(rows: readonly RatioRow[], title: string): void {
  printTable(ratioRowsTable(rows), title);
  const file = process.env.BENCH_RESULTS;
  if (file) fs.appendFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux Node supports). */
const USER_HZ = 100;

/** User + system CPU seconds of process `pid` (all threads), from /proc; NaN where unavailable. */
export function processCpuSeconds(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start past the last ')'.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / USER_HZ;
  } catch {
    return NaN;
  }
}

/**
 * CPU time of this process and of `pids` between the timed phase's start and
 * end: pass `onTimed` to a measurement, then read `seconds()`.
 */
export function cpuMeter(pids: readonly number[]): { onTimed: (phase: 'start' | 'end') => void; seconds(): number } {
  let self0 = process.cpuUsage();
  let others0 = 0;
  let total = NaN;
  const others = (): number => pids.reduce((a, p) => a + processCpuSeconds(p), 0);
  return {
    onTimed(phase) {
      if (phase === 'start') {
        self0 = process.cpuUsage();
        others0 = others();
      } else {
        const d = process.cpuUsage(self0);
        total = (d.user + d.system) / 1e6 + (others() - others0);
      }
    },
    seconds: () => total,
  };
}
