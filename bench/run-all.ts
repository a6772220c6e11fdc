/**
 * `npm run bench`: runs every benchmark script in bench/ in a fresh process,
 * one after the other, and prints ONE table of ratios against the peers each
 * script measured in the same run (see lib/report.ts).
 *
 *   npm run bench                 # full rounds (several minutes)
 *   npm run bench -- --quick      # short rounds, the whole suite in under two minutes
 *   npm run bench -- --only rpc,shm
 *
 * Every script's own output (detail tables, progress) goes to stderr; the
 * combined table goes to stdout, so `npm run bench > bench.md` keeps just it.
 * A script is any bench/<name>.ts with a compiled dist/bench/<name>.js, except
 * the helpers listed in NOT_BENCHMARKS; new scripts are picked up by
 * themselves and report their rows with reportRatios(); for a script that
 * does not, the ratio columns ("× peer") of the markdown tables it prints
 * become its rows. A script that fails, or shows no ratio at all, appears in
 * the table as such and makes the exit code 1.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_ROOT, formatTable, makeTempDir, type Row } from './lib/harness.js';
import { QUICK, ratioRowsTable, targetMet, type RatioRow } from './lib/report.js';

/** bench/*.ts files that are not benchmarks themselves (children, libraries, the fuzzer, this runner). */
const NOT_BENCHMARKS = new Set(['run-all', 'rpc-client', 'streaming-client', 'codec-arbitraries', 'fuzz-codec']);
/** Run first, in this order; any other script follows alphabetically. */
const ORDER = ['rpc', 'streaming', 'shm', 'codec', 'pty'];

const SOURCE_ROOT = path.resolve(DIST_ROOT, '..');

export function discover(): string[] {
  const names = fs
    .readdirSync(path.join(SOURCE_ROOT, 'bench'))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.slice(0, -3))
    .filter((n) => !NOT_BENCHMARKS.has(n) && fs.existsSync(path.join(DIST_ROOT, 'bench', `${n}.js`)));
  const rank = (n: string) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

interface ScriptRun {
  name: string;
  code: number | null;
  seconds: number;
  /** What the script printed on stdout (its tables). */
  stdout: string;
}

const splitRow = (line: string): string[] =>
  line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim());

/**
 * Rows from the markdown tables a script printed (harness printTable format):
 * every cell "1.23×" under a column whose header names a peer with "×"
 * ("× grpc-js", "calls/s × plain") is one ratio; the row's first cell says
 * what was measured and its second cell gives the figure.
 */
export function ratiosFromTables(bench: string, stdout: string): RatioRow[] {
  const out: RatioRow[] = [];
  let header: string[] | null = null;
  for (const line of stdout.split('\n')) {
    if (!line.trim().startsWith('|')) {
      header = null;
      continue;
    }
    const cells = splitRow(line);
    if (header === null) {
      header = cells;
      continue;
    }
    if (cells.every((c) => /^-*:?$/.test(c) || /^:?-+:?$/.test(c))) continue; // the separator
    header.forEach((h, i) => {
      if (i === 0 || !h.includes('×')) return;
      const m = /^([0-9]+(?:\.[0-9]+)?)×/.exec(cells[i] ?? '');
      if (!m) return;
      out.push({ bench, work: cells[0] ?? '', roam: i > 1 ? (cells[1] ?? '') : '', peer: h.replace('×', '').trim(), ratio: Number(m[1]) });
    });
  }
  return out;
}

function runScript(name: string, resultsFile: string, timeoutMs: number): Promise<ScriptRun> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const args = [path.join(DIST_ROOT, 'bench', `${name}.js`), ...(QUICK ? ['--quick'] : [])];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BENCH_RESULTS: resultsFile, ...(QUICK ? { BENCH_QUICK: '1' } : {}) },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 1_000_000) stdout += d.toString('utf8');
    });
    child.stdout.pipe(process.stderr, { end: false });
    child.stderr.pipe(process.stderr, { end: false });
    const timer = setTimeout(() => {
      process.stderr.write(`[bench] ${name}: no result after ${timeoutMs / 1000} s, killing it\n`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ name, code, seconds: (Date.now() - t0) / 1000, stdout });
    });
    // Our own SIGINT/SIGTERM takes the running script down with us.
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    child.once('exit', () => process.off('exit', kill));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const onlyAt = argv.indexOf('--only');
  const only = onlyAt >= 0 ? new Set((argv[onlyAt + 1] ?? '').split(',')) : null;
  const scripts = discover().filter((n) => !only || only.has(n));
  const tmp = makeTempDir('roam-bench-all-');
  const resultsFile = path.join(tmp.dir, 'results.jsonl');
  const t0 = Date.now();
  const runs: ScriptRun[] = [];
  process.stderr.write(`[bench] ${scripts.length} scripts${QUICK ? ' (quick)' : ''}: ${scripts.join(', ')}\n`);
  for (const name of scripts) {
    process.stderr.write(`\n[bench] ===== ${name} =====\n`);
    runs.push(await runScript(name, resultsFile, QUICK ? 5 * 60_000 : 30 * 60_000));
  }
  const rows: RatioRow[] = fs.existsSync(resultsFile)
    ? fs
        .readFileSync(resultsFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as RatioRow)
    : [];
  tmp.remove();
  for (const r of runs) if (r.code === 0 && !rows.some((x) => x.bench === r.name)) rows.push(...ratiosFromTables(r.name, r.stdout));

  const table: Row[] = ratioRowsTable(rows);
  let failed = false;
  for (const r of runs) {
    if (r.code !== 0) {
      failed = true;
      table.push({ bench: r.name, work: `FAILED (exit ${r.code ?? 'killed'}); its output is above` });
    } else if (!rows.some((x) => x.bench === r.name)) {
      failed = true;
      table.push({ bench: r.name, work: 'ran, but showed no ratio against a peer (see its output above)' });
    }
  }
  const missed = rows.filter((r) => targetMet(r) === false).length;
  const total = (Date.now() - t0) / 1000;
  console.log(`\n## roam-ts benchmarks${QUICK ? ' (quick)' : ''}: node ${process.version}, ${new Date().toISOString()}\n`);
  console.log('Every figure next to its peer measured in the same run (fresh processes, interleaved rounds, medians); the machine is shared and noisy, ratios are the result.\n');
  console.log(formatTable(table));
  console.log(
    `\n${runs.map((r) => `${r.name} ${r.seconds.toFixed(0)} s`).join(', ')}; total ${total.toFixed(0)} s. ` +
      `Targets: ${rows.filter((r) => targetMet(r) === true).length} met, ${missed} not met.`,
  );
  if (failed) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
