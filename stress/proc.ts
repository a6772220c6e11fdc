/** Child processes of the stress suite, and its result rows. */
import { spawn, type ChildProcess } from "node:child_process";
import * as readline from "node:readline";
import { fileURLToPath } from "node:url";

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Row {
  attack: string;
  count: string;
  peakRssMB: number;
  lagMs: number;
  cpuLagMs: number;
  canaryP99Ms: number;
  outcome: string;
  ok: boolean;
}

/** A child speaking JSON lines: `ask("report")` returns the next line. */
export class Proc {
  private lines: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stderr = "";
  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on("line", (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
    child.stderr!.on("data", (d) => (this.stderr = (this.stderr + d).slice(-2000)));
    this.exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
  }
  static start(script: string, args: string[]): Proc {
    return new Proc(spawn(process.execPath, [here(script), ...args], { stdio: ["pipe", "pipe", "pipe"] }));
  }
  next(timeoutMs = 60_000): Promise<any> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(JSON.parse(l));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no answer from child (stderr: ${this.stderr})`)), timeoutMs);
      this.waiters.push((x) => {
        clearTimeout(t);
        resolve(JSON.parse(x));
      });
    });
  }
  ask(cmd: string): Promise<any> {
    this.child.stdin!.write(cmd + "\n");
    return this.next();
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async stop(): Promise<void> {
    this.child.stdin!.end();
    await Promise.race([this.exited, sleep(3000)]);
    if (this.alive) this.child.kill("SIGKILL");
  }
}

