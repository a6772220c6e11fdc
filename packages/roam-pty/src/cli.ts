#!/usr/bin/env node
/**
 * roam-pty: terminal sessions that outlive their clients, over roam. Habits from tmux hold:
 *
 *   roam-pty daemon [--foreground] [--socket PATH] [--web [HOST:]PORT] [--log FILE] [...]
 *   roam-pty new [-d] [-n NAME] [-c DIR] [-e NAME=VALUE]... [--] [COMMAND [ARG]...]
 *   roam-pty ls [--json]
 *   roam-pty attach SESSION [-r] [-d] [--no-replay] [--detach-key ^\\]
 *   roam-pty kill SESSION [-s SIGNAL] [--rm]
 *   roam-pty rm SESSION | stats SESSION [--json] | web SESSION | info | kill-server | --version
 *
 * SESSION is an id or a (unique) name. `daemon` detaches (own session: closing the terminal
 * does not stop it; log and pid file next to the socket) unless --foreground. `new` starts
 * the daemon when nobody listens on the socket; every other command says "no server
 * running" and exits 1, like tmux.
 */
import * as fs from "node:fs";

import { ConnectionClosedError, formatDiagnostics } from "roam-ts";
import { connectUnix, installDiagnosticsSignal } from "roam-ts/node";
import { ConfigError, FLOW_ENV, FLOW_FLAGS, flowFlagValue, type FlowConfig } from "./config.js";
import { defaultSocketPath, parseSizePolicy, PtyDaemon } from "./daemon.js";
import {
  connectPty,
  daemonFiles,
  describeError,
  describeExit,
  isNoServer,
  isPtyError,
  spawnDaemon,
  type DetachReason,
  type PtyConnection,
  type SessionInfo,
} from "./sdk.js";
import { packageVersion } from "./version.js";

const USAGE = `usage: roam-pty <command> [options]        (SESSION: an id or a name)

commands:
  daemon                 start the daemon in the background (its own session: closing this
                         terminal does not stop it); prints its pid, socket, log and web URL
      --foreground       stay in the foreground, log to stderr (for supervisors: systemd, …)
      --socket PATH      Unix socket (default: $ROAM_PTY_SOCKET or a per-user path)
      --log FILE         log file of a background daemon (default: SOCKET.log)
      --pid-file FILE    pid file (default: SOCKET.pid; removed when the daemon stops)
      --web [HOST:]PORT  also serve the web terminal + WebSocket (default host 127.0.0.1; env ROAM_PTY_WEB)
      --web-token TOKEN  access token of the web terminal (default: random; env ROAM_PTY_WEB_TOKEN)
      --shell CMD        default command of new sessions (default: $SHELL or /bin/sh)
      --size-policy P    smallest (default: the smallest attached client) or latest (the most
                         recently active client); env ROAM_PTY_SIZE_POLICY
      --high-watermark N --low-watermark N --yellow-threshold N --red-threshold N
      --hysteresis N --policy pause|detach --detach-after-ms MS --max-buffer N
      --window N --chunk N --scrollback N
                         flow control (sizes in bytes, e.g. 100000, 64KiB, 1MiB);
                         env: ${Object.keys(FLOW_ENV).join(", ")}
  kill-server            stop the daemon (every session ends)
  new [--] [CMD ARGS]    start a session (default: the daemon's shell) and attach to it;
                         starts the daemon if none runs
      -d, --detached     do not attach; print the session id
      -n, --name NAME    a unique name, usable wherever an id is (default: the command's name)
      -c, --cwd DIR      -e, --env NAME=VALUE (repeatable)
      --cols N --rows N  size (default: this terminal's, else 80x24)
  ls [--json]            list sessions
  attach SESSION         attach this terminal (raw mode; detach with Ctrl-\\)
      -r, --read-only    watch only: keystrokes are not sent (except the detach key)
      -d, --detach-others  detach every other client first
      --no-replay        do not replay the scrollback
      --detach-key KEY   ^X notation or a character (default ^\\; env ROAM_PTY_DETACH_KEY)
  kill SESSION           signal the session's process (-s SIGNAL, default SIGHUP); --rm also forgets it
  rm SESSION             forget an exited session
  stats SESSION [--json] flow-control figures of a session and its clients
  web SESSION            print the web terminal's URL for a session (daemon started with --web)
  info [--text]          daemon figures (pid, version, RSS, settings) and its roam diagnostics
                         (links, calls in flight, channels); --text renders them for humans

global options: --socket PATH, --no-autostart (new: never start a daemon), -h/--help, --version
`;

class UsageError extends Error {}
/** A failure the user caused or must act on: message printed, exit code 1. */
class CliError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
  /** Everything after `--` (or, for `new`, from the command on). */
  rest: string[] | null;
}

interface CommandSpec {
  /** Flags: long name → takes a value. */
  flags: Record<string, boolean>;
  /** Short letters → long names. */
  short?: Record<string, string>;
  /** Most positional arguments (`new`: the command begins at the first one). */
  maxPositional: number;
  /** The first positional argument starts the command to run (`new`). */
  commandAt?: boolean;
}

const GLOBAL: Record<string, boolean> = { socket: true, "no-autostart": false, help: false };
const flowFlags = Object.fromEntries(Object.keys(FLOW_FLAGS).map((f) => [f, true]));

const COMMANDS: Record<string, CommandSpec> = {
  daemon: {
    flags: { foreground: false, quiet: false, log: true, "pid-file": true, web: true, "web-token": true, shell: true, "size-policy": true, ...flowFlags },
    maxPositional: 0,
  },
  "kill-server": { flags: {}, maxPositional: 0 },
  new: {
    flags: { detached: false, name: true, cwd: true, env: true, cols: true, rows: true, "detach-key": true },
    short: { d: "detached", n: "name", c: "cwd", e: "env" },
    maxPositional: Infinity,
    commandAt: true,
  },
  ls: { flags: { json: false }, maxPositional: 0 },
  attach: {
    flags: { "read-only": false, "detach-others": false, "no-replay": false, "detach-key": true },
    short: { r: "read-only", d: "detach-others" },
    maxPositional: 1,
  },
  kill: { flags: { signal: true, rm: false }, short: { s: "signal" }, maxPositional: 1 },
  rm: { flags: {}, maxPositional: 1 },
  stats: { flags: { json: false }, maxPositional: 1 },
  web: { flags: {}, maxPositional: 1 },
  info: { flags: { text: false }, maxPositional: 0 },
};
const ALIASES: Record<string, string> = { list: "ls", a: "attach", "new-session": "new", "attach-session": "attach", "list-sessions": "ls" };

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest of `choices` to `word` (a prefix, or at most a third of its letters off), or null. */
export function suggest(word: string, choices: string[]): string | null {
  const prefixed = choices.filter((c) => c.startsWith(word) || word.startsWith(c));
  if (prefixed.length === 1) return prefixed[0]!;
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of choices) {
    const dd = distance(word, c);
    if (dd < bestD) [best, bestD] = [c, dd];
  }
  return bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : null;
}

export function parseArgs(command: string, argv: string[]): Parsed {
  const spec = COMMANDS[command]!;
  const known: Record<string, boolean> = { ...GLOBAL, ...spec.flags };
  const short: Record<string, string> = { h: "help", ...spec.short };
  const out: Parsed = { positional: [], flags: new Map(), rest: null };
  const add = (k: string, v: string) => out.flags.set(k, [...(out.flags.get(k) ?? []), v]);
  const unknown = (a: string): never => {
    const name = a.replace(/^-+/, "").replace(/=.*$/, "");
    const guess = a.startsWith("--") ? suggest(name, Object.keys(known)) : null;
    const shorts = Object.keys(short).map((k) => `-${k}`).join(", ");
    throw new UsageError(
      `${command}: unknown option ${a}` + (guess ? ` (did you mean --${guess}?)` : a.startsWith("--") ? "" : ` (short options of ${command}: ${shorts})`),
    );
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.rest = argv.slice(i + 1);
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (!(name in known)) unknown(a);
      if (known[name]) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        add(name, v);
      } else {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        add(name, "");
      }
      continue;
    }
    if (a.startsWith("-") && a !== "-") {
      // -rd: several short switches together.
      const letters = a.slice(1);
      for (let k = 0; k < letters.length; k++) {
        const name = short[letters[k]!];
        if (name === undefined) unknown(a);
        if (known[name!]) {
          const v = k < letters.length - 1 ? letters.slice(k + 1) : argv[++i];
          if (v === undefined) throw new UsageError(`-${letters[k]} needs a value`);
          add(name!, v);
          break;
        }
        add(name!, "");
      }
      continue;
    }
    if (spec.commandAt) {
      // `new CMD args...` without `--`: the command's own flags are not ours.
      out.rest = argv.slice(i);
      break;
    }
    out.positional.push(a);
    if (out.positional.length > spec.maxPositional) throw new UsageError(`${command}: unexpected argument ${JSON.stringify(a)}`);
  }
  return out;
}

function one(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return v === undefined ? undefined : v[v.length - 1];
}

function intFlag(p: Parsed, name: string): number | undefined {
  const v = one(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} needs a whole number, got ${JSON.stringify(v)}`);
  return Number(v);
}

function sessionArg(p: Parsed): string {
  const v = p.positional[0];
  if (v === undefined) throw new UsageError("missing session (an id or a name)");
  return v;
}

/** Resolves an id or name to a session id (UnknownSession / UnknownName otherwise). */
async function resolveSession(pty: PtyConnection, target: string): Promise<number> {
  return (await pty.find(target)).id;
}

/** "^\\" → 0x1c, "^A" → 0x01, "^?" → 0x7f, or a single character. */
export function parseDetachKey(s: string): number {
  if (s.length === 2 && s[0] === "^") {
    const c = s[1]!;
    if (c === "?") return 0x7f;
    const code = c.toUpperCase().charCodeAt(0);
    if (code >= 0x40 && code <= 0x5f) return code - 0x40;
  }
  if (s.length === 1) return s.charCodeAt(0);
  throw new UsageError(`detach key must be ^X notation or one character, got ${JSON.stringify(s)}`);
}

function socketOf(p: Parsed): string {
  return one(p, "socket") ?? defaultSocketPath();
}

/** Connects to the daemon; only `new` may start one (like tmux, where only new-session starts a server). */
async function connect(p: Parsed, mayStart = false): Promise<PtyConnection> {
  const socketPath = socketOf(p);
  const autoStart = mayStart && !p.flags.has("no-autostart") && process.env["ROAM_PTY_NO_AUTOSTART"] !== "1";
  try {
    return await connectPty({ socketPath, autoStart });
  } catch (e) {
    if (isNoServer(e)) throw new CliError(`no server running on ${socketPath}`);
    throw e;
  }
}

// --- daemon ----------------------------------------------------------------------

/** Is a daemon answering on `socketPath`? */
async function daemonAlive(socketPath: string): Promise<boolean> {
  try {
    const probe = await connectUnix({ path: socketPath, timeoutMs: 1000 });
    probe.close();
    return true;
  } catch {
    return false;
  }
}

async function daemonCmd(p: Parsed, argv: string[]): Promise<number> {
  const socketPath = socketOf(p);
  const files = daemonFiles(socketPath);
  const pidFile = one(p, "pid-file") ?? files.pid;
  // Validate everything before going to the background, so mistakes show here.
  const flow: Partial<FlowConfig> = {};
  for (const [flag, key] of Object.entries(FLOW_FLAGS)) {
    const v = one(p, flag);
    if (v !== undefined) (flow as Record<string, unknown>)[key] = flowFlagValue(key, v, flag);
  }
  const policyText = one(p, "size-policy");
  const sizePolicy = policyText !== undefined ? parseSizePolicy(policyText, "--size-policy") : undefined;
  const webSpec = one(p, "web") ?? process.env["ROAM_PTY_WEB"];
  let web: { host?: string; port?: number; token?: string } | undefined;
  if (webSpec !== undefined && webSpec !== "") {
    const m = /^(?:(.*):)?(\d+)$/.exec(webSpec);
    if (!m) throw new UsageError(`--web expects [HOST:]PORT, got ${JSON.stringify(webSpec)}`);
    web = { port: Number(m[2]) };
    if (m[1]) web.host = m[1].replace(/^\[(.*)\]$/, "$1");
    const token = one(p, "web-token") ?? process.env["ROAM_PTY_WEB_TOKEN"];
    if (token) web.token = token;
  }
  // Another daemon alive on this socket? (listenUnix would replace its socket file.)
  if (await daemonAlive(socketPath)) {
    console.error(`roam-pty: a daemon already listens on ${socketPath}`);
    return 1;
  }
  if (!p.flags.has("foreground")) return await daemonInBackground(socketPath, argv, one(p, "log") ?? files.log, pidFile);

  const quiet = p.flags.has("quiet");
  const log = (line: string) => {
    if (!quiet) process.stderr.write(`${new Date().toISOString()} roam-pty: ${line}\n`);
  };
  const daemon = new PtyDaemon({ flow, defaultCommand: one(p, "shell"), log, sizePolicy });
  await daemon.listen({ socketPath, web });
  writePidFile(pidFile);
  // `kill -USR1 <pid>` prints the daemon's links, calls in flight and channels to its stderr (its log).
  installDiagnosticsSignal();
  const f = daemon.flow;
  log(
    `roam-pty ${packageVersion()}, pid ${process.pid}, size policy ${daemon.sizePolicy}; flow: high ${f.highWatermark} low ${f.lowWatermark} ` +
      `yellow ${f.yellowThreshold} red ${f.redThreshold} policy ${f.policy}` +
      `${f.policy === "detach" ? ` after ${f.detachAfterMs} ms` : ""} window ${f.windowBytes} scrollback ${f.scrollbackBytes}`,
  );
  if (daemon.webUrl) process.stdout.write(`web terminal: ${daemon.webUrl}\n`);
  process.stdout.write(`roam-pty daemon ${process.pid} listening on ${socketPath}\n`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log(`${sig}: shutting down`);
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
    // In the foreground, a hang-up is the terminal going away; a background daemon is in a
    // session of its own and gets none from a terminal.
    process.once("SIGHUP", () => stop("SIGHUP"));
  });
  await daemon.close();
  removePidFile(pidFile);
  return 0;
}

function writePidFile(file: string): void {
  fs.writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
}

function removePidFile(file: string): void {
  try {
    if (fs.readFileSync(file, "utf8").trim() === String(process.pid)) fs.unlinkSync(file);
  } catch {
    // gone already
  }
}

/** Starts `daemon --foreground` (same arguments) in its own session and waits until it answers. */
async function daemonInBackground(socketPath: string, argv: string[], logPath: string, pidFile: string): Promise<number> {
  // Drop the values of --socket/--log given as separate words.
  const cleaned: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--socket" || a === "--log") {
      i++;
      continue;
    }
    if (a.startsWith("--socket=") || a.startsWith("--log=")) continue;
    cleaned.push(a);
  }
  const logStart = fileSize(logPath);
  const child = spawnDaemon(socketPath, cleaned, process.env, logPath);
  let exited: number | null = null;
  child.once("exit", (code, signal) => (exited = code ?? (signal ? 128 : 1)));
  const deadline = Date.now() + 15_000;
  for (let i = 0; i < 1000 && Date.now() < deadline && exited === null; i++) {
    try {
      const pty = await connectPty({ socketPath, timeoutMs: 1000 });
      try {
        const info = await pty.daemonInfo();
        process.stdout.write(`roam-pty daemon ${info.pid} listening on ${socketPath}\n`);
        process.stdout.write(`log: ${logPath}\npid file: ${pidFile}\n`);
        if (info.webUrl) process.stdout.write(`web terminal: ${info.webUrl}\n`);
        process.stdout.write(`stop it with: roam-pty kill-server${socketPath === defaultSocketPath() ? "" : ` --socket ${socketPath}`}\n`);
        return 0;
      } finally {
        pty.close();
      }
    } catch (e) {
      if (!isNoServer(e)) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const tail = readFrom(logPath, logStart).trim();
  if (exited === null) child.kill("SIGTERM");
  console.error(`roam-pty: the daemon did not start${exited !== null ? ` (exit ${exited})` : ""}${tail ? `:\n${tail}` : ""}\n(log: ${logPath})`);
  return 1;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function readFrom(file: string, offset: number): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString("utf8");
  } catch {
    return "";
  }
}

async function killServerCmd(p: Parsed): Promise<number> {
  const pty = await connect(p);
  let pid: number;
  try {
    pid = (await pty.daemonInfo()).pid;
  } finally {
    pty.close();
  }
  process.kill(pid, "SIGTERM");
  // Return once it is gone, so `kill-server; daemon` works.
  const deadline = Date.now() + 10_000;
  for (let i = 0; i < 500 && Date.now() < deadline; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return 0;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new CliError(`the daemon (pid ${pid}) did not stop within 10 s`);
}

// --- client commands ---------------------------------------------------------------

function statusText(s: SessionInfo): string {
  return s.status.tag === "Running" ? "running" : `exited (${describeExit(s.status.value)})`;
}

async function lsCmd(p: Parsed): Promise<number> {
  const pty = await connect(p);
  try {
    const list = await pty.list();
    if (p.flags.has("json")) {
      process.stdout.write(JSON.stringify(list, null, 2) + "\n");
      return 0;
    }
    if (list.length === 0) {
      process.stdout.write("no sessions\n");
      return 0;
    }
    const rows = [["ID", "NAME", "PID", "SIZE", "CLIENTS", "STATUS", "STARTED", "COMMAND"]];
    for (const s of list) {
      rows.push([
        String(s.id),
        s.name,
        String(s.pid),
        `${s.cols}x${s.rows}`,
        String(s.clients),
        statusText(s),
        new Date(s.createdAtMs).toISOString().replace("T", " ").slice(0, 19),
        [s.command, ...s.args].join(" "),
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n");
    return 0;
  } finally {
    pty.close();
  }
}

async function newCmd(p: Parsed): Promise<number> {
  const cmd = p.rest ?? [];
  const env: Record<string, string> = {};
  for (const kv of p.flags.get("env") ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--env expects NAME=VALUE, got ${JSON.stringify(kv)}`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  for (const k of ["LANG", "LC_ALL", "LC_CTYPE", "COLORTERM"]) if (process.env[k] && env[k] === undefined) env[k] = process.env[k]!;
  const tty = process.stdout.isTTY === true;
  const pty = await connect(p, true);
  try {
    const s = await pty.create({
      command: cmd[0],
      args: cmd.slice(1),
      cwd: one(p, "cwd") ?? process.cwd(),
      env,
      cols: intFlag(p, "cols") ?? (tty ? process.stdout.columns : undefined),
      rows: intFlag(p, "rows") ?? (tty ? process.stdout.rows : undefined),
      name: one(p, "name"),
    });
    if (p.flags.has("detached")) {
      process.stdout.write(`${s.id}\n`);
      return 0;
    }
    return await attachTo(pty, s.id, p);
  } finally {
    pty.close();
  }
}

async function attachCmd(p: Parsed): Promise<number> {
  const target = sessionArg(p);
  const pty = await connect(p);
  try {
    return await attachTo(pty, await resolveSession(pty, target), p);
  } finally {
    pty.close();
  }
}

/** Attaches this terminal to session `id` like a multiplexer client. */
async function attachTo(pty: PtyConnection, id: number, p: Parsed): Promise<number> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const tty = stdin.isTTY === true && stdout.isTTY === true;
  const detachKey = parseDetachKey(one(p, "detach-key") ?? process.env["ROAM_PTY_DETACH_KEY"] ?? "^\\");
  const size = () => ({ cols: Math.max(1, stdout.columns || 80), rows: Math.max(1, stdout.rows || 24) });
  const readOnly = p.flags.has("read-only");
  const a = await pty.attach(id, { replay: !p.flags.has("no-replay"), readOnly, detachOthers: p.flags.has("detach-others"), ...(tty ? size() : {}) });
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    if (tty) stdin.setRawMode(false);
    stdin.pause();
  };
  if (tty) stdin.setRawMode(true);
  const onInput = (buf: Buffer) => {
    const at = buf.indexOf(detachKey);
    const data = at >= 0 ? buf.subarray(0, at) : buf;
    if (data.length > 0 && !readOnly) a.write(data).catch(() => undefined);
    if (at >= 0) void a.detach();
  };
  stdin.on("data", onInput);
  stdin.once("end", () => void a.detach());
  stdin.resume();
  const onResize = () => void a.resize(size().cols, size().rows).catch(() => undefined);
  if (tty) stdout.on("resize", onResize);
  let reason: DetachReason | { tag: "ServerExited"; value: string };
  try {
    // Output is taken only after the terminal accepted the previous chunk.
    reason = await a.consume((chunk, done) => void stdout.write(chunk, () => done()));
  } catch (e) {
    // The daemon went away (kill-server, a crash): say so the way tmux does.
    if (!(e instanceof ConnectionClosedError)) throw e;
    reason = { tag: "ServerExited", value: e.reason ?? (e.by === "transport" ? "connection lost" : "closed") };
  } finally {
    stdin.off("data", onInput);
    stdout.off("resize", onResize);
    restore();
  }
  const msg =
    reason.tag === "Detached"
      ? `[detached from session ${id}]`
      : reason.tag === "SessionExited"
        ? `[session ${id} exited: ${describeExit(reason.value)}]`
        : reason.tag === "ServerExited"
          ? `[server exited: ${reason.value}]`
          : reason.tag === "TooSlow"
          ? `[detached from session ${id}: this terminal fell ${reason.value.queuedBytes} bytes behind for ${reason.value.behindMs} ms]`
          : `[session ${id} closed]`;
  await new Promise<void>((r) => stdout.write(`\r\n${msg}\r\n`, () => r()));
  return 0;
}

async function killCmd(p: Parsed): Promise<number> {
  const target = sessionArg(p);
  const pty = await connect(p);
  try {
    const id = await resolveSession(pty, target);
    await pty.kill(id, one(p, "signal"));
    if (p.flags.has("rm")) {
      await pty.wait(id, { timeout: 5000 });
      await pty.remove(id);
    }
    return 0;
  } finally {
    pty.close();
  }
}

async function rmCmd(p: Parsed): Promise<number> {
  const target = sessionArg(p);
  const pty = await connect(p);
  try {
    const id = await resolveSession(pty, target);
    await pty.remove(id);
    return 0;
  } finally {
    pty.close();
  }
}

async function statsCmd(p: Parsed): Promise<number> {
  const target = sessionArg(p);
  const pty = await connect(p);
  try {
    const id = await resolveSession(pty, target);
    const st = await pty.stats(id);
    if (p.flags.has("json")) {
      process.stdout.write(JSON.stringify(st, null, 2) + "\n");
      return 0;
    }
    process.stdout.write(
      `session ${st.id}: ${st.paused ? "PAUSED" : "flowing"}, paused ${Math.round(st.pausedMs)} ms in ${st.pauseCount} pause(s), ` +
        `output ${st.outputBytes} bytes, buffered ${st.bufferedBytes} bytes\n`,
    );
    for (const c of st.clients) {
      process.stdout.write(
        `  client ${c.clientId}: ${c.level}, queued ${c.queuedBytes}, credit ${c.creditOutstanding}/${c.window}, in flight ${c.inFlightBytes}, sent ${c.sentBytes}` +
          `${c.behindMs > 0 ? `, behind for ${Math.round(c.behindMs)} ms` : ""}\n`,
      );
    }
    return 0;
  } finally {
    pty.close();
  }
}

async function webCmd(p: Parsed): Promise<number> {
  const target = sessionArg(p);
  const pty = await connect(p);
  try {
    const s = await pty.find(target);
    if (s.status.tag !== "Running") throw new CliError(`session ${s.id} (${s.name}) has exited (${describeExit(s.status.value)})`);
    const info = await pty.daemonInfo();
    if (!info.webUrl) throw new CliError("the daemon serves no web terminal (start it with --web PORT or ROAM_PTY_WEB)");
    process.stdout.write(`${info.webUrl}&session=${s.id}\n`);
    return 0;
  } finally {
    pty.close();
  }
}

async function infoCmd(p: Parsed): Promise<number> {
  const pty = await connect(p);
  try {
    const info = await pty.daemonInfo();
    const diagnostics = await pty.diagnostics();
    if (p.flags.has("text")) process.stdout.write(`${JSON.stringify(info, null, 2)}\n${formatDiagnostics(diagnostics)}`);
    else process.stdout.write(JSON.stringify({ ...info, diagnostics }, null, 2) + "\n");
    return 0;
  } finally {
    pty.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [given, ...rest] = argv;
  if (given === undefined || given === "help" || given === "--help" || given === "-h") {
    process.stdout.write(USAGE);
    return given === undefined ? 2 : 0;
  }
  if (given === "--version" || given === "-V" || given === "version") {
    process.stdout.write(`roam-pty ${packageVersion()}\n`);
    return 0;
  }
  try {
    const command = ALIASES[given] ?? given;
    if (!(command in COMMANDS)) {
      const guess = suggest(given, [...Object.keys(COMMANDS), "help", "--version"]);
      throw new UsageError(`unknown command ${JSON.stringify(given)}${guess ? ` (did you mean ${guess}?)` : ""}`);
    }
    const p = parseArgs(command, rest);
    if (p.flags.has("help")) {
      process.stdout.write(USAGE);
      return 0;
    }
    switch (command) {
      case "daemon":
        return await daemonCmd(p, rest);
      case "kill-server":
        return await killServerCmd(p);
      case "new":
        return await newCmd(p);
      case "ls":
        return await lsCmd(p);
      case "attach":
        return await attachCmd(p);
      case "kill":
        return await killCmd(p);
      case "rm":
        return await rmCmd(p);
      case "stats":
        return await statsCmd(p);
      case "web":
        return await webCmd(p);
      default:
        return await infoCmd(p);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`roam-pty: ${e.message}\n(roam-pty --help lists the commands and options)\n`);
      return 2;
    }
    process.stderr.write(`roam-pty: ${e instanceof CliError || e instanceof ConfigError ? e.message : describeError(e)}\n`);
    return 1;
  }
}

// Run when executed (as the bin or `node dist/packages/roam-pty/src/cli.js` in the repository), not when imported.
const invoked = process.argv[1] ? fs.realpathSync(process.argv[1]) : "";
if (invoked === fs.realpathSync(new URL(import.meta.url).pathname)) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Stray handles (a half-closed socket) must not keep a finished command alive.
      setTimeout(() => process.exit(code), 200).unref();
    },
    (e) => {
      process.stderr.write(`roam-pty: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
