/**
 * The roam-pty daemon: owns PTY sessions and serves the RoamPty service on a
 * Unix socket and, optionally, on WebSocket next to the web terminal page.
 *
 *   const daemon = new PtyDaemon({ flow: { highWatermark: 100_000 } });
 *   await daemon.listen({ socketPath: "/tmp/pty.sock", web: { port: 0 } });
 *   ...
 *   await daemon.close();
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { err, type ImplementationOf, serve, type UserError } from "roam-ts";
import { listenUnix, type RoamServer } from "roam-ts/node";
import { ConfigError, flowSettings, resolveFlow, type FlowConfig } from "./config.js";
import { isSignalName, PtySession, resolveCommand, SpawnError, type SpawnSpec } from "./session.js";
import { MAX_DIMENSION, PtyService, type CreateOptions, type DaemonInfo, type PtyError, type SizePolicy } from "./service.js";
import { packageVersion } from "./version.js";
import { startWebServer, type WebServer } from "./web-server.js";

export interface DaemonOptions {
  /** Flow-control settings; missing ones come from `env` (ROAM_PTY_FLOW_*), then the defaults. */
  flow?: Partial<FlowConfig>;
  /** Environment to read ROAM_PTY_FLOW_* from (default: process.env). */
  env?: Record<string, string | undefined>;
  /** Command for `create` with an empty command (default: $SHELL, else /bin/sh). */
  defaultCommand?: string;
  /** Most sessions at once (default 256). */
  maxSessions?: number;
  /** Exited sessions kept for `ls`/`wait` before the oldest are forgotten (default 64). */
  keepExited?: number;
  /** Log line sink (default: nothing). */
  log?: (line: string) => void;
  /** How a session's size follows its clients (default: $ROAM_PTY_SIZE_POLICY, else "smallest"). */
  sizePolicy?: SizePolicy;
}

/** `smallest` or `latest`; anything else is an error (a typo must not pass silently). */
export function parseSizePolicy(v: string, from: string): SizePolicy {
  if (v === "smallest" || v === "latest") return v;
  throw new ConfigError(`${from} must be "smallest" or "latest", got ${JSON.stringify(v)}`);
}

/** Session names are unique, never all digits (so they cannot be mistaken for ids), printable. */
export function checkSessionName(name: string): string | null {
  if (name.length === 0 || name.length > 64) return "a session name has 1 to 64 characters";
  if (/^\d+$/.test(name)) return `a session name cannot be all digits (${JSON.stringify(name)} would read as an id)`;
  if (/[\s\x00-\x1f\x7f]/.test(name)) return `a session name has no spaces or control characters, got ${JSON.stringify(name)}`;
  return null;
}

export interface ListenOptions {
  /** Unix socket path (omit to skip). */
  socketPath?: string;
  /** Serve WebSocket + the web terminal page on host:port (port 0 picks one). */
  web?: { host?: string; port?: number; token?: string };
}

let nextClientId = 1;

/** Default socket path: $ROAM_PTY_SOCKET, else $XDG_RUNTIME_DIR/roam-pty.sock, else /tmp/roam-pty-<uid>/roam-pty.sock. */
export function defaultSocketPath(env: Record<string, string | undefined> = process.env): string {
  if (env["ROAM_PTY_SOCKET"]) return env["ROAM_PTY_SOCKET"];
  const runtime = env["XDG_RUNTIME_DIR"];
  if (runtime) return path.join(runtime, "roam-pty.sock");
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  return path.join(os.tmpdir(), `roam-pty-${uid}`, "roam-pty.sock");
}

export class PtyDaemon {
  readonly flow: FlowConfig;
  readonly sizePolicy: SizePolicy;
  private readonly sessions = new Map<number, PtySession>();
  private nextSessionId = 1;
  private readonly servers: RoamServer[] = [];
  private web: WebServer | null = null;
  private socketPath: string | null = null;
  private closed = false;
  private readonly log: (line: string) => void;

  constructor(private readonly options: DaemonOptions = {}) {
    const env = options.env ?? process.env;
    this.flow = resolveFlow(options.flow ?? {}, env);
    const policy = options.sizePolicy ?? env["ROAM_PTY_SIZE_POLICY"];
    this.sizePolicy = policy ? parseSizePolicy(policy, options.sizePolicy ? "sizePolicy" : "ROAM_PTY_SIZE_POLICY") : "smallest";
    this.log = options.log ?? (() => {});
  }

  /** The roam dispatcher serving RoamPty (add it to any server). */
  dispatcher() {
    return serve(PtyService, this.impl);
  }

  /** Listens on a Unix socket and/or WebSocket (with the web terminal). */
  async listen(o: ListenOptions): Promise<void> {
    const peer = { initialChannelCredit: this.flow.windowBytes, dispatcher: this.dispatcher(), onHandlerError: (e: unknown) => this.log(`handler error: ${String(e)}`) };
    if (o.socketPath) {
      const dir = path.dirname(o.socketPath);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const server = await listenUnix({ ...peer, path: o.socketPath });
      try {
        fs.chmodSync(o.socketPath, 0o600);
      } catch {
        // best effort
      }
      this.servers.push(server);
      this.socketPath = o.socketPath;
      this.log(`listening on ${o.socketPath}`);
    }
    if (o.web) {
      this.web = await startWebServer({ ...o.web, peer });
      this.servers.push(this.web.roam);
      this.log(`web terminal: ${this.web.url}`);
    }
  }

  get webUrl(): string | null {
    return this.web?.url ?? null;
  }

  /** Sessions by id (for embedding and tests). */
  session(id: number): PtySession | undefined {
    return this.sessions.get(id);
  }

  /** Stops listening, detaches every client and kills every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sessions.values()) s.close();
    await Promise.all(this.servers.map((s) => s.close("daemon shutting down").catch(() => undefined)));
    if (this.web) await this.web.close();
    this.sessions.clear();
  }

  // --- the service ---------------------------------------------------------------

  private lookup(id: number): PtySession | UserError<PtyError> {
    const s = this.sessions.get(id);
    return s ?? err({ tag: "UnknownSession", value: id });
  }

  private byName(name: string): PtySession | undefined {
    for (const s of this.sessions.values()) if (s.name === name) return s;
    return undefined;
  }

  /** An id (digits) or a name. */
  private find(target: string): PtySession | UserError<PtyError> {
    if (/^\d+$/.test(target)) {
      const id = Number(target);
      return id <= 0xffff_ffff ? this.lookup(id) : err({ tag: "UnknownName", value: target });
    }
    return this.byName(target) ?? err({ tag: "UnknownName", value: target });
  }

  /** A free default name: the command's base name, else base-ID, else base-ID-N. */
  private defaultName(base: string, id: number): string {
    const clean = base.replace(/[\s\x00-\x1f\x7f]/g, "_").slice(0, 48) || "session";
    const stem = /^\d+$/.test(clean) ? `${clean}_` : clean;
    if (!this.byName(stem)) return stem;
    for (let i = 0; i < 1000; i++) {
      const n = i === 0 ? `${stem}-${id}` : `${stem}-${id}-${i}`;
      if (!this.byName(n)) return n;
    }
    return `${stem}-${id}-${Date.now()}`;
  }

  private checkSize(cols: number, rows: number): UserError<PtyError> | null {
    if (cols < 1 || rows < 1 || cols > MAX_DIMENSION || rows > MAX_DIMENSION) return err({ tag: "InvalidSize", value: { cols, rows } });
    return null;
  }

  private create(o: CreateOptions): PtySession | UserError<PtyError> {
    if (this.closed) return err({ tag: "LimitReached", value: "the daemon is shutting down" });
    const running = [...this.sessions.values()].filter((s) => s.isRunning).length;
    const max = this.options.maxSessions ?? 256;
    if (running >= max) return err({ tag: "LimitReached", value: `at most ${max} sessions run at once` });
    const cols = o.cols === 0 ? 80 : o.cols;
    const rows = o.rows === 0 ? 24 : o.rows;
    const bad = this.checkSize(cols, rows);
    if (bad) return bad;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    env["TERM"] = "xterm-256color";
    for (const { name, value } of o.env) {
      if (!name || name.includes("=") || name.includes("\0") || value.includes("\0")) {
        return err({ tag: "InvalidArgument", value: `invalid environment variable ${JSON.stringify(name)}` });
      }
      env[name] = value;
    }
    const cwd = o.cwd ?? process.cwd();
    try {
      if (!fs.statSync(cwd).isDirectory()) return err({ tag: "InvalidArgument", value: `cwd ${cwd} is not a directory` });
    } catch {
      return err({ tag: "InvalidArgument", value: `cwd ${cwd} does not exist` });
    }
    const command = o.command || this.options.defaultCommand || process.env["SHELL"] || "/bin/sh";
    if (command.includes("\0") || o.args.some((a) => a.includes("\0"))) return err({ tag: "InvalidArgument", value: "NUL in command or arguments" });
    let resolved: string;
    try {
      resolved = resolveCommand(command, env["PATH"], cwd);
    } catch (e) {
      if (e instanceof SpawnError) return err({ tag: e.kind, value: e.message });
      throw e;
    }
    if (o.name !== null && o.name !== "") {
      const bad = checkSessionName(o.name);
      if (bad) return err({ tag: "InvalidArgument", value: bad });
      if (this.byName(o.name)) return err({ tag: "NameInUse", value: o.name });
    }
    const id = this.nextSessionId++;
    const spec: SpawnSpec = { command: resolved, args: o.args, cwd, env, cols, rows, name: o.name || this.defaultName(path.basename(command), id) };
    let session: PtySession;
    try {
      session = new PtySession(id, spec, this.flow, { exited: (s) => this.onExited(s), error: (s, e) => this.log(`session ${s.id}: unexpected error: ${(e as Error)?.stack ?? String(e)}`) });
    } catch (e) {
      if (e instanceof SpawnError) return err({ tag: e.kind, value: e.message });
      return err({ tag: "SpawnFailed", value: (e as Error).message });
    }
    session.sizePolicy = this.sizePolicy;
    this.sessions.set(id, session);
    this.log(`session ${id}: ${resolved} ${o.args.join(" ")} (pid ${session.pid})`);
    return session;
  }

  private onExited(s: PtySession): void {
    this.log(`session ${s.id} exited (${JSON.stringify(s.exitStatus)})`);
    // Keep a bounded number of exited sessions for ls/wait.
    const keep = this.options.keepExited ?? 64;
    const exited = [...this.sessions.values()].filter((x) => !x.isRunning && x.clients.size === 0);
    for (let i = 0; i < exited.length - keep; i++) this.sessions.delete(exited[i]!.id);
  }

  private info(): DaemonInfo {
    const mem = process.memoryUsage();
    let clients = 0;
    for (const s of this.sessions.values()) clients += s.clients.size;
    return {
      pid: process.pid,
      version: packageVersion(),
      sizePolicy: this.sizePolicy,
      socketPath: this.socketPath,
      webUrl: this.web?.url ?? null,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      sessions: this.sessions.size,
      clients,
      flow: flowSettings(this.flow),
    };
  }

  private readonly impl: ImplementationOf<typeof PtyService> = {
    create: (options) => {
      const s = this.create(options);
      return s instanceof PtySession ? s.info() : s;
    },
    list: () => [...this.sessions.values()].map((s) => s.info()),
    info: (id) => {
      const s = this.lookup(id);
      return s instanceof PtySession ? s.info() : s;
    },
    find: (target) => {
      const s = this.find(target);
      return s instanceof PtySession ? s.info() : s;
    },
    attach: async (id, options, output, events, ctx) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      if (options.cols !== 0 || options.rows !== 0) {
        const bad = this.checkSize(options.cols, options.rows);
        if (bad) return bad;
      }
      if (options.detachOthers) for (const other of [...s.clients.values()]) void other.stop({ tag: "Detached" });
      const c = s.attach(nextClientId++, output, events, options.replay, ctx.connection.initialCredit, {
        cols: options.cols,
        rows: options.rows,
        readOnly: options.readOnly,
      });
      const onAbort = () => void c.stop({ tag: "Detached" });
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        return await c.done;
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
    detach: (id, clientId) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      const c = s.clients.get(clientId);
      if (!c) return err({ tag: "UnknownClient", value: clientId });
      void c.stop({ tag: "Detached" });
      return undefined;
    },
    write: (id, data) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      if (!s.isRunning) return err({ tag: "SessionExited", value: s.exitStatus! });
      s.write(data);
      return undefined;
    },
    input: (id, clientId, data) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      const c = s.clients.get(clientId);
      if (!c) return err({ tag: "UnknownClient", value: clientId });
      if (c.readOnly) return err({ tag: "ReadOnly", value: clientId });
      if (!s.isRunning) return err({ tag: "SessionExited", value: s.exitStatus! });
      s.write(data);
      if (s.sizePolicy === "latest" && data.length > 0) {
        s.touch(c);
        s.applySizePolicy();
      }
      return undefined;
    },
    resizeClient: (id, clientId, cols, rows) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      const c = s.clients.get(clientId);
      if (!c) return err({ tag: "UnknownClient", value: clientId });
      const bad = this.checkSize(cols, rows);
      if (bad) return bad;
      s.clientResized(c, cols, rows);
      return undefined;
    },
    resize: (id, cols, rows) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      const bad = this.checkSize(cols, rows);
      if (bad) return bad;
      if (!s.isRunning) return err({ tag: "SessionExited", value: s.exitStatus! });
      s.resize(cols, rows);
      return undefined;
    },
    kill: (id, signal) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      const sig = signal ?? "SIGHUP";
      if (!isSignalName(sig)) return err({ tag: "InvalidSignal", value: sig });
      if (!s.isRunning) return err({ tag: "SessionExited", value: s.exitStatus! });
      s.kill(sig);
      return undefined;
    },
    wait: async (id, ctx) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      const signal = ctx.signal;
      return await new Promise((resolve, reject) => {
        const onAbort = () => reject(new Error("cancelled"));
        signal.addEventListener("abort", onAbort, { once: true });
        void s.waitExit().then((st) => {
          signal.removeEventListener("abort", onAbort);
          resolve(st);
        });
      });
    },
    remove: (id) => {
      const s = this.lookup(id);
      if (!(s instanceof PtySession)) return s;
      if (s.isRunning) return err({ tag: "SessionRunning", value: id });
      s.close();
      this.sessions.delete(id);
      return undefined;
    },
    stats: (id) => {
      const s = this.lookup(id);
      return s instanceof PtySession ? s.stats() : s;
    },
    daemonInfo: () => this.info(),
    diagnostics: () => JSON.stringify(this.servers.map((s) => s.diagnostics())),
  };
}
