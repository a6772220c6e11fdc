/**
 * roam-pty throughput: `cat` of a large file on a PTY, read
 *   (a) directly with node-pty in this process (the baseline), and
 *   (b) through the roam-pty daemon (a separate process, Unix socket) by one
 *       fast client in this process (SDK consume loop, credit per chunk),
 * in the same run, interleaved. Reports MB/s, the ratio (target ≥ 70 % of
 * direct), bytes received (a short count means lost output) and RSS.
 *
 *   npx tsc -p . && node dist/bench/pty.js [--size BYTES] [--rounds N] [--timeout-ms MS]
 * Env: BENCH_PTY_SIZE (default 1 GiB), BENCH_ROUNDS (default 3), ROAM_PTY_FLOW_* for the daemon.
 * The machines are noisy (direct runs alone vary ±30 %): the table gives the
 * median and the best run of each path, and both ratios.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

// roam-pty from its sources (the root build), not its package entry point: the bench also
// needs two internals (node-pty loading and the pattern generator) that roam-pty does not export.
import { connectPty } from "../packages/roam-pty/src/sdk.js";
import { loadNodePty } from "../packages/roam-pty/src/session.js";
import { PatternStream } from "../packages/roam-pty/src/pattern.js";
import { fmtRatio, makeTempDir, median, parseArgs, printTable, type Row } from "./lib/harness.js";
import { QUICK, reportRatios } from "./lib/report.js";

const args = parseArgs(process.argv.slice(2));
const SIZE = Number(args["size"] ?? process.env["BENCH_PTY_SIZE"] ?? (QUICK ? 64 * 1024 ** 2 : 1024 ** 3));
const ROUNDS = Number(args["rounds"] ?? process.env["BENCH_ROUNDS"] ?? (QUICK ? 2 : 3));
const TIMEOUT_MS = Number(args["timeout-ms"] ?? 180_000);
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "packages", "roam-pty", "src", "cli.js");

interface RunResult {
  bytes: number;
  seconds: number;
  /** Peak RSS of the process holding the PTY (this one for direct, the daemon otherwise). */
  peakRss: number;
  /** Peak RSS of this (client) process during the daemon run. */
  clientPeakRss?: number;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

function sampler(pid: number): { stop(): number } {
  let peak = rssOf(pid);
  const t = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 50);
  return {
    stop() {
      clearInterval(t);
      return Math.max(peak, rssOf(pid));
    },
  };
}

function writeFile(file: string, size: number): void {
  const fd = fs.openSync(file, "w");
  try {
    const p = new PatternStream(1234);
    for (let done = 0; done < size; ) {
      const n = Math.min(4 << 20, size - done);
      fs.writeSync(fd, p.next(n));
      done += n;
    }
    // On disk and in the page cache before anything is timed (writeback would compete with the first run).
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const rd = fs.openSync(file, "r");
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    while (fs.readSync(rd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(rd);
  }
}

/** Resolves once `pid` (the PTY's sh) runs `head`: stty raw -echo is done, the start byte will not echo. */
async function waitReady(pid: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
      if (kids.some((k) => fs.readFileSync(`/proc/${k}/comm`, "utf8").trim() === "head")) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the PTY command did not get ready");
}

/** The PTY command: raw mode, wait for one input byte, then cat. */
function catCommand(file: string): { command: string; args: string[] } {
  return { command: "sh", args: ["-c", `stty raw -echo && head -c 1 >/dev/null && exec cat '${file.replace(/'/g, "'\\''")}'`] };
}

function withTimeout<T>(p: Promise<T>, what: string, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new Error(`${what} did not finish within ${TIMEOUT_MS} ms`));
      }, TIMEOUT_MS);
    }),
  ]);
}

async function runDirect(file: string): Promise<RunResult> {
  const lib = loadNodePty();
  const { command, args: a } = catCommand(file);
  const p = lib.spawn(command, a, { cols: 80, rows: 24, encoding: null, name: "xterm-256color" });
  const rss = sampler(process.pid);
  let bytes = 0;
  p.onData((d: string | Buffer) => (bytes += d.length));
  const exited = new Promise<void>((resolve) => p.onExit(() => resolve()));
  await waitReady(p.pid);
  const t0 = process.hrtime.bigint();
  p.write("g");
  await withTimeout(exited, "direct run", () => p.kill("SIGKILL"));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { bytes, seconds, peakRss: rss.stop() };
}

async function startDaemon(socketPath: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, "daemon", "--foreground", "--socket", socketPath, "--quiet"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("daemon did not start")), 15_000);
    child.stdout!.on("data", (d: Buffer) => {
      if (String(d).includes("listening")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`daemon exited with ${code}`)));
  });
  return child;
}

async function runDaemon(daemon: ChildProcess, socketPath: string, file: string): Promise<RunResult> {
  const pty = await connectPty({ socketPath });
  try {
    const s = await pty.create({ ...catCommand(file), cols: 80, rows: 24 });
    const a = await pty.attach(s.id, { replay: false });
    await waitReady(s.pid);
    const rss = sampler(daemon.pid!);
    const own = sampler(process.pid);
    let bytes = 0;
    const done = a.consume((chunk) => {
      bytes += chunk.length;
    });
    const t0 = process.hrtime.bigint();
    await pty.write(s.id, "g");
    await withTimeout(done, "daemon run", () => void pty.kill(s.id, "SIGKILL").catch(() => undefined));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const result = { bytes, seconds, peakRss: rss.stop(), clientPeakRss: own.stop() };
    await pty.remove(s.id).catch(() => undefined);
    return result;
  } finally {
    pty.close();
  }
}

const MB = 1e6;
const fmtMB = (bps: number) => `${(bps / MB).toFixed(1)} MB/s`;
const fmtMiB = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const tmp = makeTempDir("roam-pty-bench-");
  let daemon: ChildProcess | null = null;
  try {
    const file = path.join(tmp.dir, "data.bin");
    process.stderr.write(`[pty] writing a ${fmtMiB(SIZE)} file…\n`);
    writeFile(file, SIZE);
    const socketPath = path.join(tmp.dir, "pty.sock");
    daemon = await startDaemon(socketPath);
    const daemonIdleRss = rssOf(daemon.pid!);
    const direct: RunResult[] = [];
    const viaDaemon: RunResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`[pty] round ${r + 1}/${ROUNDS}: direct…\n`);
      direct.push(await runDirect(file));
      process.stderr.write(`[pty] round ${r + 1}/${ROUNDS}: daemon…\n`);
      viaDaemon.push(await runDaemon(daemon, socketPath, file));
    }
    const rate = (rs: RunResult[]) => median(rs.map((x) => x.bytes / x.seconds));
    const best = (rs: RunResult[]) => Math.max(...rs.map((x) => x.bytes / x.seconds));
    const directRate = rate(direct);
    const daemonRate = rate(viaDaemon);
    const rows: Row[] = [
      {
        path: "node-pty direct (one process)",
        "throughput (median)": fmtMB(directRate),
        best: fmtMB(best(direct)),
        "runs (MB/s)": direct.map((x) => (x.bytes / x.seconds / MB).toFixed(1)).join(", "),
        "bytes received": direct.map((x) => (x.bytes === SIZE ? "all" : `${x.bytes} (${SIZE - x.bytes} lost)`)).join(", "),
        "peak RSS": `${fmtMiB(Math.max(...direct.map((x) => x.peakRss)))} (this process)`,
        "× direct": fmtRatio(1),
      },
      {
        path: "roam-pty daemon → 1 client (Unix socket)",
        "throughput (median)": fmtMB(daemonRate),
        best: fmtMB(best(viaDaemon)),
        "runs (MB/s)": viaDaemon.map((x) => (x.bytes / x.seconds / MB).toFixed(1)).join(", "),
        "bytes received": viaDaemon.map((x) => (x.bytes === SIZE ? "all" : `${x.bytes} (${SIZE - x.bytes} lost)`)).join(", "),
        "peak RSS": `daemon ${fmtMiB(Math.max(...viaDaemon.map((x) => x.peakRss)))} (idle ${fmtMiB(daemonIdleRss)}), client ${fmtMiB(Math.max(...viaDaemon.map((x) => x.clientPeakRss ?? 0)))}`,
        "× direct": `${fmtRatio(daemonRate / directRate)} (best: ${fmtRatio(best(viaDaemon) / best(direct))})`,
      },
    ];
    printTable(rows, `cat of ${fmtMiB(SIZE)} through a PTY, ${ROUNDS} interleaved round(s)`);
    const pct = (100 * daemonRate) / directRate;
    const pctBest = (100 * best(viaDaemon)) / best(direct);
    console.log(`\nthrough the daemon: ${pct.toFixed(0)} % of direct by median, ${pctBest.toFixed(0)} % by best run (target ≥ 70 %) ${pct >= 70 ? "✓" : "✗"}`);
    reportRatios(
      [{ bench: "pty", work: `cat of ${fmtMiB(SIZE)} through roam-pty (Unix socket)`, roam: fmtMB(daemonRate), peer: `node-pty direct ${fmtMB(directRate)}`, ratio: daemonRate / directRate, target: ">= 0.7" }],
      "roam-pty vs node-pty direct (same run)",
    );
  } finally {
    if (daemon && daemon.exitCode === null) {
      daemon.kill("SIGTERM");
      await new Promise((r) => {
        const t = setTimeout(() => {
          daemon!.kill("SIGKILL");
          r(undefined);
        }, 3000);
        daemon!.once("exit", () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
    tmp.remove();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
