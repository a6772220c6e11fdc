/**
 * Helpers for the roam-pty tests: daemons (in-process or as a child
 * process), an output collector, bounded waiting, /proc readings.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import type { FlowConfig } from "../../packages/roam-pty/src/config.js";
import { PtyDaemon } from "../../packages/roam-pty/src/daemon.js";
import { connectPty, type Attachment, type PtyConnection } from "../../packages/roam-pty/src/sdk.js";

export const ROOT = fs.realpathSync(fileURLToPath(new URL("../../../", import.meta.url)));
export const CLI = path.join(ROOT, "dist", "packages", "roam-pty", "src", "cli.js");
export const PATTERN = path.join(ROOT, "dist", "packages", "roam-pty", "src", "pattern.js");

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function tempDir(prefix = "roam-pty-test-"): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `probe` until it returns a truthy value; throws after `timeoutMs` (bounded count too). */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (let i = 0; i < Math.ceil(timeoutMs / everyMs) + 10; i++) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** A daemon in this process plus a connected SDK client. */
export async function inProcessDaemon(flow: Partial<FlowConfig> = {}, link?: { initialChannelCredit?: number }) {
  const tmp = tempDir();
  const socketPath = path.join(tmp.dir, "pty.sock");
  const daemon = new PtyDaemon({ flow, env: {} });
  await daemon.listen({ socketPath });
  const clients: PtyConnection[] = [];
  const connect = async () => {
    const c = await connectPty({ socketPath, link: link ?? {} });
    clients.push(c);
    return c;
  };
  const pty = await connect();
  return {
    daemon,
    socketPath,
    pty,
    connect,
    async close() {
      for (const c of clients) c.close();
      await daemon.close();
      tmp.remove();
    },
  };
}

/** Consumes an attachment in the background, keeping the output as text. */
export class Collector {
  text = "";
  bytes = 0;
  readonly done: Promise<unknown>;
  private readonly decoder = new TextDecoder();

  constructor(readonly attachment: Attachment) {
    this.done = attachment.consume((chunk) => {
      this.bytes += chunk.length;
      this.text += this.decoder.decode(chunk, { stream: true });
    });
    this.done.catch(() => undefined);
  }

  /** Waits until the output matches `re` (searching from `from`). */
  async waitFor(re: RegExp, timeoutMs = 10_000, from = 0): Promise<RegExpExecArray> {
    return waitFor(`output matching ${re} (got ${JSON.stringify(this.text.slice(-300))})`, () => re.exec(this.text.slice(from)), timeoutMs);
  }
}

/** A `roam-pty daemon` child process on a temp socket. */
export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  socketPath: string;
  stdout: string;
  rss(): number;
  stop(): Promise<void>;
}

export async function startDaemonProcess(args: string[] = [], env: Record<string, string> = {}): Promise<DaemonProcess> {
  const tmp = tempDir();
  const socketPath = path.join(tmp.dir, "pty.sock");
  const child = spawn(process.execPath, [CLI, "daemon", "--foreground", "--socket", socketPath, "--quiet", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d));
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  const dp: DaemonProcess = {
    child,
    pid: child.pid!,
    socketPath,
    get stdout() {
      return stdout;
    },
    rss: () => rssOf(child.pid!),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
      tmp.remove();
    },
  };
  try {
    await waitFor(`the daemon to listen (stderr: ${stderr})`, () => stdout.includes("listening on") || child.exitCode !== null, 15_000);
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${stderr}`);
  } catch (e) {
    await dp.stop();
    throw e;
  }
  return dp;
}

export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Bytes a process passed to write(2) so far (/proc/PID/io wchar). */
export function wcharOf(pid: number): number {
  const m = /wchar:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, "utf8"));
  if (!m) throw new Error(`no wchar in /proc/${pid}/io`);
  return Number(m[1]);
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until a patternCommand() session runs the generator (sh exec'd node
 * after `stty raw -echo`): from then on the start byte is neither echoed nor
 * transformed.
 */
export async function waitGeneratorReady(pid: number): Promise<void> {
  // Not /proc/PID/comm: between fork and exec the child is a copy of node too.
  await waitFor(`process ${pid} to exec the generator`, () => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === PATTERN;
    } catch {
      return false;
    }
  }, 15_000, 10);
}

/** sh -c that puts the PTY in raw mode and runs the pattern generator after one input byte. */
export function patternCommand(bytes: number): { command: string; args: string[] } {
  return { command: "sh", args: ["-c", `stty raw -echo && exec '${process.execPath}' '${PATTERN}' ${bytes} --wait`] };
}
