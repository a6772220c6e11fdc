/**
 * Child processes for the multi-process tests: Ledger servers and a private
 * redis-server (own port, own temp dir, no persistence), each stopped by pid.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "./testbed-server.js";

export const REDIS_SERVER = "/usr/bin/redis-server";

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout + stderr so far (for failure messages). */
  output(): string;
  /** Resolves with the first stdout line matching `re`. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** SIGTERM (or `signal`), then SIGKILL after 3 s; resolves when it exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startProc(cmd: string, args: string[], cwd?: string): Proc {
  const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const lineWaiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onText = (b: Buffer) => {
    out += b.toString();
    for (const w of [...lineWaiters]) {
      const m = out.match(w.re);
      if (m) {
        lineWaiters.splice(lineWaiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout!.on("data", onText);
  child.stderr!.on("data", onText);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    pid: child.pid!,
    output: () => out,
    waitFor(re, ms = 15_000) {
      const m = out.match(re);
      if (m) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${cmd}: no ${re} within ${ms} ms; output:\n${out}`)), ms);
        child.once("exit", (code) => reject(new Error(`${cmd} exited (${code}) before ${re}; output:\n${out}`)));
        lineWaiters.push({
          re,
          resolve: (mm) => {
            clearTimeout(timer);
            resolve(mm);
          },
        });
      });
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const t = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(t);
    },
  };
}

const HELPERS = path.dirname(fileURLToPath(import.meta.url));

export async function startLedgerServer(cfg: { port?: number; journal: string; redisPort?: number; scope?: string; leaseMs?: number }): Promise<{ proc: Proc; port: number }> {
  const proc = startProc(process.execPath, [path.join(HELPERS, "ledger-server.js"), JSON.stringify(cfg)]);
  const m = await proc.waitFor(/LISTENING (\d+)/);
  return { proc, port: Number(m[1]) };
}

/** A port that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A private redis-server on 127.0.0.1 (no persistence, temp dir); fails loudly when Redis is missing. */
export async function startRedis(): Promise<{ port: number; proc: Proc; stop(): Promise<void> }> {
  if (!fs.existsSync(REDIS_SERVER)) {
    throw new Error(`${REDIS_SERVER} is missing: run scripts/ensure-redis.sh (npm test does) or apt-get install redis-server`);
  }
  const dir = tempDir("roam-redis-");
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const proc = startProc(REDIS_SERVER, ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"], dir);
    try {
      await proc.waitFor(/Ready to accept connections/, 10_000);
      return {
        port,
        proc,
        async stop() {
          await proc.stop();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      await proc.stop("SIGKILL");
      if (tries >= 2) throw e; // the port was taken in between: try another
    }
  }
}
