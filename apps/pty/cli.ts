#!/usr/bin/env node
/**
 * roam-pty: terminal sessions that outlive their clients, over roam.
 *
 *   roam-pty daemon [--socket PATH] [--web [HOST:]PORT] [flow options]
 *   roam-pty new [-d] [-n NAME] [-c DIR] [-e NAME=VALUE]... [--] [COMMAND [ARG]...]
 *   roam-pty ls [--json]
 *   roam-pty attach ID [--no-replay] [--detach-key ^\]
 *   roam-pty kill ID [-s SIGNAL] [--rm]
 *   roam-pty rm ID | stats ID [--json] | web [ID] | info
 *
 * Every client command connects to the daemon's Unix socket (--socket, else
 * $ROAM_PTY_SOCKET, else a per-user default) and starts the daemon if nobody
 * listens there (unless --no-autostart or ROAM_PTY_NO_AUTOSTART=1).
 */
import * as fs from "node:fs";

import { connectUnix } from "../../src/transport/node.js";
import { formatDiagnostics } from "../../src/session/diagnostics.js";
import { installDiagnosticsSignal } from "../../src/diagnostics/signal.js";
import { ConfigError, FLOW_ENV, FLOW_FLAGS, flowFlagValue, type FlowConfig } from "./config.js";
import { defaultSocketPath, PtyDaemon } from "./daemon.js";
import { connectPty, describeError, describeExit, isPtyError, type DetachReason, type PtyConnection, type SessionInfo } from "./sdk.js";

const USAGE = `usage: roam-pty <command> [options]

commands:
  daemon                 run the daemon in the foreground
      --socket PATH      Unix socket (default: $ROAM_PTY_SOCKET or a per-user path)
      --web [HOST:]PORT  also serve the web terminal + WebSocket (default host 127.0.0.1; env ROAM_PTY_WEB)
      --web-token TOKEN  access token of the web terminal (default: random; env ROAM_PTY_WEB_TOKEN)
      --shell CMD        default command of new sessions (default: $SHELL or /bin/sh)
      --high-watermark N --low-watermark N --yellow-threshold N --red-threshold N
      --hysteresis N --policy pause|detach --detach-after-ms MS --max-buffer N
      --window N --chunk N --scrollback N
                         flow control (sizes in bytes, e.g. 100000, 64KiB, 1MiB);
                         env: ${Object.keys(FLOW_ENV).join(", ")}
  new [--] [CMD ARGS]    start a session (default: the daemon's shell) and attach to it
      -d, --detached     do not attach; print the session id
      -n, --name NAME    -c, --cwd DIR    -e, --env NAME=VALUE (repeatable)
      --cols N --rows N  size (default: this terminal's, else 80x24)
  ls [--json]            list sessions
  attach ID              attach this terminal (raw mode; detach with Ctrl-\\)
      --no-replay        do not replay the scrollback
      --detach-key KEY   detach key: ^X notation or a character (default ^\\; env ROAM_PTY_DETACH_KEY)
  kill ID [-s SIGNAL]    signal the session's process (default SIGHUP); --rm also forgets it
  rm ID                  forget an exited session
  stats ID [--json]      flow-control figures of a session and its clients
  web [ID]               print the web terminal's URL (daemon started with --web)
  info [--text]          daemon figures (pid, RSS, settings) and its roam diagnostics
                         (links, calls in flight, channels); --text renders them for humans

global options: --socket PATH, --no-autostart
`;

class UsageError extends Error {}

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
  /** Everything after `--`. */
  rest: string[] | null;
}

/** Flags that take a value (long names; short aliases below). */
const VALUE_FLAGS = new Set(["socket", "web", "web-token", "shell", "name", "cwd", "env", "cols", "rows", "detach-key", "signal", ...Object.keys(FLOW_FLAGS)]);
const SHORT: Record<string, string> = { d: "detached", n: "name", c: "cwd", e: "env", s: "signal", h: "help" };

function parseArgs(argv: string[], stopAtCommand: boolean): Parsed {
  const out: Parsed = { positional: [], flags: new Map(), rest: null };
  const add = (k: string, v: string) => out.flags.set(k, [...(out.flags.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.rest = argv.slice(i + 1);
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (VALUE_FLAGS.has(name)) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new UsageError(`--${name} needs a value`);
        add(name, v);
      } else {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        add(name, "");
      }
      continue;
    }
    if (a.startsWith("-") && a.length === 2 && SHORT[a[1]!]) {
      const name = SHORT[a[1]!]!;
      if (VALUE_FLAGS.has(name)) {
        const v = argv[++i];
        if (v === undefined) throw new UsageError(`${a} needs a value`);
        add(name, v);
      } else add(name, "");
      continue;
    }
    if (a.startsWith("-") && a !== "-") throw new UsageError(`unknown option ${a}`);
    out.positional.push(a);
    // `new CMD args...` without `--`: the command's own flags are not ours.
    if (stopAtCommand) {
      out.rest = argv.slice(i);
      out.positional.pop();
      break;
    }
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

function sessionArg(p: Parsed): number {
  const v = p.positional[0];
  if (v === undefined) throw new UsageError("missing session id");
  if (!/^\d+$/.test(v)) throw new UsageError(`session id must be a number, got ${JSON.stringify(v)}`);
  return Number(v);
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

async function connect(p: Parsed): Promise<PtyConnection> {
  const autoStart = !p.flags.has("no-autostart") && process.env["ROAM_PTY_NO_AUTOSTART"] !== "1";
  return connectPty({ socketPath: one(p, "socket"), autoStart });
}

// --- daemon ----------------------------------------------------------------------

async function daemonCmd(p: Parsed): Promise<number> {
  const socketPath = one(p, "socket") ?? defaultSocketPath();
  const flow: Partial<FlowConfig> = {};
  for (const [flag, key] of Object.entries(FLOW_FLAGS)) {
    const v = one(p, flag);
    if (v !== undefined) (flow as Record<string, unknown>)[key] = flowFlagValue(key, v, flag);
  }
  // Another daemon alive on this socket? (listenUnix would replace its socket file.)
  try {
    const probe = await connectUnix({ path: socketPath, timeoutMs: 1000 });
    probe.close();
    console.error(`roam-pty: a daemon already listens on ${socketPath}`);
    return 1;
  } catch {
    // nobody there (or a stale socket file): go ahead
  }
  const quiet = p.flags.has("quiet");
  const log = (line: string) => {
    if (!quiet) process.stderr.write(`${new Date().toISOString()} roam-pty: ${line}\n`);
  };
  const daemon = new PtyDaemon({ flow, defaultCommand: one(p, "shell"), log });
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
  await daemon.listen({ socketPath, web });
  // `kill -USR1 <pid>` prints the daemon's links, calls in flight and channels to its stderr.
  installDiagnosticsSignal();
  const f = daemon.flow;
  log(
    `flow: high ${f.highWatermark} low ${f.lowWatermark} yellow ${f.yellowThreshold} red ${f.redThreshold} policy ${f.policy}` +
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
    process.once("SIGHUP", () => stop("SIGHUP"));
  });
  await daemon.close();
  return 0;
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
  const pty = await connect(p);
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
  const id = sessionArg(p);
  const pty = await connect(p);
  try {
    return await attachTo(pty, id, p);
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
  const a = await pty.attach(id, { replay: !p.flags.has("no-replay"), ...(tty ? size() : {}) });
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
    if (data.length > 0) a.write(data).catch(() => undefined);
    if (at >= 0) void a.detach();
  };
  stdin.on("data", onInput);
  stdin.once("end", () => void a.detach());
  stdin.resume();
  const onResize = () => void a.resize(size().cols, size().rows).catch(() => undefined);
  if (tty) stdout.on("resize", onResize);
  let reason: DetachReason;
  try {
    // Output is taken only after the terminal accepted the previous chunk.
    reason = await a.consume((chunk, done) => void stdout.write(chunk, () => done()));
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
        : reason.tag === "TooSlow"
          ? `[detached from session ${id}: this terminal fell ${reason.value.queuedBytes} bytes behind for ${reason.value.behindMs} ms]`
          : `[session ${id} closed]`;
  await new Promise<void>((r) => stdout.write(`\r\n${msg}\r\n`, () => r()));
  return 0;
}

async function killCmd(p: Parsed): Promise<number> {
  const id = sessionArg(p);
  const pty = await connect(p);
  try {
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
  const id = sessionArg(p);
  const pty = await connect(p);
  try {
    await pty.remove(id);
    return 0;
  } finally {
    pty.close();
  }
}

async function statsCmd(p: Parsed): Promise<number> {
  const id = sessionArg(p);
  const pty = await connect(p);
  try {
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
  const pty = await connect(p);
  try {
    const info = await pty.daemonInfo();
    if (!info.webUrl) {
      console.error("roam-pty: the daemon serves no web terminal (start it with --web PORT or ROAM_PTY_WEB)");
      return 1;
    }
    const id = p.positional[0];
    process.stdout.write(`${info.webUrl}${id !== undefined ? `&session=${encodeURIComponent(id)}` : ""}\n`);
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
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    const p = parseArgs(rest, command === "new");
    if (p.flags.has("help")) {
      process.stdout.write(USAGE);
      return 0;
    }
    switch (command) {
      case "daemon":
        return await daemonCmd(p);
      case "new":
        return await newCmd(p);
      case "ls":
      case "list":
        return await lsCmd(p);
      case "attach":
      case "a":
        return await attachCmd(p);
      case "kill":
        return await killCmd(p);
      case "rm":
        return await rmCmd(p);
      case "stats":
        return await statsCmd(p);
      case "web":
        return await webCmd(p);
      case "info":
        return await infoCmd(p);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`roam-pty: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ConfigError || isPtyError(e)) {
      process.stderr.write(`roam-pty: ${describeError(e)}\n`);
      return 1;
    }
    process.stderr.write(`roam-pty: ${describeError(e)}\n`);
    return 1;
  }
}

// Run when executed (as the bin or `node dist/apps/pty/cli.js`), not when imported.
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
