/**
 * The roam-pty SDK for Node: connect to a daemon over its Unix socket (or
 * WebSocket), starting it first if asked.
 *
 *   import { connectPty } from "roam-pty";
 *   const pty = await connectPty({ autoStart: true });
 *   const s = await pty.create({ command: "sh" });
 *   const a = await pty.attach(s.id);
 *   a.onLevel((l) => console.error("output", l.level, l.queuedBytes));
 *   await a.write("echo hi\n");
 *   for await (const chunk of a) process.stdout.write(chunk);
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { connectUnix, connectWebSocket, type Link, type PeerOptions } from "roam-ts/node";
import { defaultSocketPath } from "./daemon.js";
import { PtyClient } from "./sdk-core.js";

export * from "./sdk-core.js";
export { defaultSocketPath } from "./daemon.js";

export interface ConnectPtyOptions {
  /** Unix socket of the daemon (default: defaultSocketPath()). */
  socketPath?: string;
  /** Connect over WebSocket instead (ws://host:port/roam/<token>). */
  url?: string;
  /** Start the daemon when nobody listens on socketPath (default false). */
  autoStart?: boolean;
  /** Extra `roam-pty daemon` arguments for auto-start (e.g. ["--high-watermark", "200000"]). */
  daemonArgs?: string[];
  /** Environment of an auto-started daemon (default: process.env). */
  daemonEnv?: Record<string, string | undefined>;
  /** How long to wait for the connection (and an auto-started daemon), default 10 s. */
  timeoutMs?: number;
  /** roam link options (initialChannelCredit, thresholds for local level events, …). */
  link?: PeerOptions;
}

/** A PtyClient that owns its link. */
export class PtyConnection extends PtyClient {
  constructor(readonly link: Link) {
    super(link.root);
  }
  /** Closes the link (attachments end; sessions keep running in the daemon). */
  close(): void {
    this.link.close();
  }
}

const CLI_PATH = fileURLToPath(new URL("./cli.js", import.meta.url));

/** True when `e` says nobody listens on the socket (no file, or a stale one). */
export function isNoServer(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === "ENOENT" || code === "ECONNREFUSED";
}
const isAbsent = isNoServer;

/** Where a daemon on `socketPath` logs and writes its pid, unless told otherwise. */
export function daemonFiles(socketPath: string): { log: string; pid: string } {
  return { log: `${socketPath}.log`, pid: `${socketPath}.pid` };
}

/**
 * Spawns `roam-pty daemon --foreground` detached from this process: in a session of its own
 * (setsid, so closing the terminal that started it sends it no SIGHUP), stdin from /dev/null,
 * stdout and stderr appended to `logPath` (default `<socket>.log`). It writes its pid file
 * itself. Returns the child process (unref'd).
 */
export function spawnDaemon(
  socketPath: string,
  args: string[] = [],
  env: Record<string, string | undefined> = process.env,
  logPath = daemonFiles(socketPath).log,
): ChildProcess {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  const log = fs.openSync(logPath, "a", 0o600);
  try {
    const child = spawn(process.execPath, [CLI_PATH, "daemon", "--foreground", "--socket", socketPath, ...args], {
      detached: true,
      stdio: ["ignore", log, log],
      env: env as NodeJS.ProcessEnv,
    });
    child.unref();
    return child;
  } finally {
    fs.closeSync(log);
  }
}

export async function connectPty(o: ConnectPtyOptions = {}): Promise<PtyConnection> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  if (o.url) return new PtyConnection(await connectWebSocket(o.url, { ...o.link, timeoutMs }));
  const socketPath = o.socketPath ?? defaultSocketPath();
  try {
    return new PtyConnection(await connectUnix({ ...o.link, path: socketPath, timeoutMs }));
  } catch (e) {
    if (!o.autoStart || !isAbsent(e)) throw e;
  }
  spawnDaemon(socketPath, o.daemonArgs, o.daemonEnv);
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    try {
      return new PtyConnection(await connectUnix({ ...o.link, path: socketPath, timeoutMs: Math.max(100, deadline - Date.now()) }));
    } catch (e) {
      last = e;
      if (!isAbsent(e)) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`the roam-pty daemon did not come up on ${socketPath} within ${timeoutMs} ms (see ${socketPath}.log)`, { cause: last });
}
