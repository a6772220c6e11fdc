/**
 * One pseudo-terminal session of the daemon: the node-pty process, its
 * output store (scrollback + every client's backlog), the attached clients
 * and the flow control between them.
 *
 * Flow control, end to end:
 *   child ──write──▶ PTY master ──read──▶ OutputStore ──Tx<bytes>.send──▶ client
 * Each client has a cursor into the store and a pump that sends from it;
 * `send` waits for the client's credit, which the client grants only as it
 * consumes. A client's lag is what the PTY produced since it attached that
 * the pump has not sent yet. Under the "pause" policy the PTY stops being
 * read once the largest lag reaches the high watermark, so the child blocks
 * in write(2), and is read again once every lag is at most the low
 * watermark; under "detach" a client that stays at the high watermark too
 * long (or reaches the hard buffer cap) is detached instead.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import type { IPty } from "node-pty";

import { EncodeFailedError, RoamError, type Tx } from "roam-ts";
import type { FlowConfig } from "./config.js";
import { OutputStore } from "./store.js";
import type { AttachEvent, DetachReason, ExitStatus, PressureLevel, SessionInfo, SessionStats, SizePolicy } from "./service.js";

type NodePty = typeof import("node-pty");
let nodePty: NodePty | null = null;

/** Loads node-pty (a native addon) on first use, with an actionable error if it was not built. */
export function loadNodePty(): NodePty {
  if (nodePty) return nodePty;
  try {
    nodePty = createRequire(import.meta.url)("node-pty") as NodePty;
  } catch (e) {
    throw new Error(
      `node-pty could not be loaded (${(e as Error).message}). It is a native addon built at install time: ` +
        `run \`npm ci\` (package.json "allowScripts" lets npm 11 run its build) or \`npm rebuild node-pty\`.`,
      { cause: e },
    );
  }
  return nodePty;
}

export interface SpawnSpec {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
  name: string;
}

/** A typed failure the daemon turns into a PtyError. */
export class SpawnError extends Error {
  constructor(
    readonly kind: "SpawnFailed" | "InvalidArgument",
    message: string,
  ) {
    super(message);
  }
}

/** Finds `command` like execvp would (PATH search when it has no slash). */
export function resolveCommand(command: string, envPath: string | undefined, cwd: string): string {
  const executable = (p: string) => {
    try {
      const st = fs.statSync(p);
      if (!st.isFile()) return false;
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (command.includes("/")) {
    const p = path.resolve(cwd, command);
    if (!executable(p)) throw new SpawnError("SpawnFailed", `${command}: no such executable file`);
    return p;
  }
  for (const dir of (envPath ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    if (!dir) continue;
    const p = path.join(dir, command);
    if (executable(p)) return p;
  }
  throw new SpawnError("SpawnFailed", `${command}: command not found in PATH`);
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(os.constants.signals).map(([name, n]) => [n as number, name]));

export function isSignalName(s: string): boolean {
  return Object.prototype.hasOwnProperty.call(os.constants.signals, s);
}

/** Bounded queue of attach events: Level events coalesce, so a client that ignores events cannot grow it. */
class EventQueue {
  private q: AttachEvent[] = [];
  private running = false;
  private idleWaiters: (() => void)[] = [];
  private dead = false;

  constructor(
    private readonly tx: Tx<AttachEvent>,
    private readonly signal: AbortSignal,
  ) {}

  push(ev: AttachEvent): void {
    if (this.dead) return;
    if (ev.tag === "Level") {
      // Only the latest level matters: replace a queued one.
      const last = this.q.length - 1;
      if (last >= 0 && this.q[last]!.tag === "Level") {
        this.q[last] = ev;
        return;
      }
      if (this.q.length >= 64) return;
    } else if (this.q.length >= 256) {
      return;
    }
    this.q.push(ev);
    if (!this.running) void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.q.length > 0 && !this.dead) {
        const ev = this.q.shift()!;
        await this.tx.send(ev, { signal: this.signal });
      }
    } catch {
      this.dead = true;
      this.q = [];
    } finally {
      this.running = false;
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Resolves once everything queued was sent (or the channel died), or after `ms`. */
  idle(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

/** How recent the last send must be for new output to wait for more, and how much is enough (see ClientAttachment.wake). */
const COALESCE_MS = 2;
const COALESCE_BYTES = 16 * 1024;

const LEVEL_RANK: Record<PressureLevel, number> = { green: 0, yellow: 1, red: 2 };
const RANK_LEVEL: PressureLevel[] = ["green", "yellow", "red"];

/** One client attached to a session: a cursor into the output and a pump that sends from it. */
export class ClientAttachment {
  readonly attachedAtMs = Date.now();
  readonly abort = new AbortController();
  cursor: number;
  /** Store offset at attach time: bytes before it are replay, not lag. */
  readonly attachHead: number;
  level: PressureLevel = "green";
  behindSince: number | null = null;
  detachTimer: ReturnType<typeof setTimeout> | null = null;
  sentBytes = 0;
  /** This client's terminal size (0x0: none; it takes no part in sizing). */
  cols = 0;
  rows = 0;
  /** A viewer: its input is refused. */
  readOnly = false;
  /** When it last attached, resized or typed (a counter of the session; the `latest` size policy). */
  activeAt = 0;
  private wakeUp: (() => void) | null = null;
  private wakeTimer: ReturnType<typeof setTimeout> | null = null;
  private lastSendAt = 0;
  private stopped = false;
  private settle!: (r: DetachReason) => void;
  /** Resolves with the reason once the attachment ended (the result of `attach`). */
  readonly done: Promise<DetachReason>;
  readonly events: EventQueue;

  constructor(
    readonly id: number,
    readonly session: PtySession,
    readonly output: Tx<Uint8Array>,
    events: Tx<AttachEvent>,
    cursor: number,
    private readonly chunkBytes: number,
  ) {
    this.cursor = cursor;
    this.attachHead = session.store.head;
    this.events = new EventQueue(events, this.abort.signal);
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  /** Bytes produced since attach that were not sent yet. */
  get lag(): number {
    return this.session.store.head - Math.max(this.cursor, this.attachHead);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * New output (or a state change) for the pump. While output streams (the
   * last send was moments ago) the pump waits up to 1 ms for 16 KiB to gather,
   * so PTY reads (≤ 4 KiB each) leave as fewer, larger messages: less work
   * for the daemon, the socket and the client alike, while adding far less
   * than a watermark to the client's lag. An idle session (a keystroke's
   * echo) is sent at once.
   */
  wake(urgent = false): void {
    if (this.wakeUp === null) return;
    if (!urgent && !this.stopped && performance.now() - this.lastSendAt < COALESCE_MS && this.session.store.head - this.cursor < COALESCE_BYTES) {
      if (this.wakeTimer === null) {
        this.wakeTimer = setTimeout(() => {
          this.wakeTimer = null;
          this.wake(true);
        }, 1);
      }
      return;
    }
    if (this.wakeTimer !== null) {
      clearTimeout(this.wakeTimer);
      this.wakeTimer = null;
    }
    const w = this.wakeUp;
    this.wakeUp = null;
    w();
  }

  /** Sends output until stopped or the session's output ended (then it delivered everything). */
  async pump(): Promise<void> {
    const s = this.session;
    const signal = this.abort.signal;
    try {
      while (!this.stopped) {
        const avail = s.store.head - this.cursor;
        if (avail > 0) {
          const chunk = s.store.read(this.cursor, this.chunkBytes);
          await this.output.send(chunk, { signal });
          this.lastSendAt = performance.now();
          this.cursor += chunk.length;
          this.sentBytes += chunk.length;
          s.clientProgressed(this);
          continue;
        }
        if (s.outputEnded) {
          await this.stop({ tag: "SessionExited", value: s.exitStatus ?? { exitCode: -1, signal: null } });
          return;
        }
        await new Promise<void>((resolve) => (this.wakeUp = resolve));
      }
    } catch (e) {
      // Expected: the send was aborted (detach) or the channel died (client gone).
      if (!this.stopped && (!(e instanceof RoamError) || e instanceof EncodeFailedError)) this.session.reportError(e);
      await this.stop({ tag: "Detached" });
    }
  }

  /** Ends the attachment with `reason` (first reason wins). */
  async stop(reason: DetachReason): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.detachTimer) clearTimeout(this.detachTimer);
    this.detachTimer = null;
    this.session.clientLeft(this);
    // A natural end lets queued events (Exited, last level) reach the client first.
    if (reason.tag === "SessionExited") await this.events.idle(2000);
    this.abort.abort(new Error("detached"));
    this.wake(true);
    this.settle(reason);
  }
}

export interface SessionHooks {
  /** The process exited and its output was fully read. */
  exited(session: PtySession): void;
  /** An unexpected failure (a bug): logged by the daemon. */
  error?(session: PtySession, e: unknown): void;
}

/** A pseudo-terminal session. */
export class PtySession {
  readonly store = new OutputStore();
  readonly clients = new Map<number, ClientAttachment>();
  readonly createdAtMs = Date.now();
  readonly pid: number;
  cols: number;
  rows: number;
  exitStatus: ExitStatus | null = null;
  /** No more output will come (the PTY's read side closed). */
  outputEnded = false;
  paused = false;
  private pausedSince = 0;
  private totalPausedMs = 0;
  pauseCount = 0;
  private readonly pty: IPty;
  private exitWaiters: ((s: ExitStatus) => void)[] = [];
  /** Our own descriptor of the PTY slave: keeps the master readable until we drained it. */
  private slaveFd: number | null = null;
  private realDestroy: ((e?: Error) => void) | null = null;
  /** The slave was released: the master may now read to EOF (node-pty's destroy passes through). */
  private draining = false;
  private drainWatch = false;
  private destroyRequested = false;
  /** Count of PTY reads (the drain watcher's clock). */
  private dataEvents = 0;
  private drainTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  /** How the size follows the clients (the daemon's setting). */
  sizePolicy: SizePolicy = "smallest";
  private activity = 0;

  constructor(
    readonly id: number,
    readonly spec: SpawnSpec,
    private readonly flow: FlowConfig,
    private readonly hooks: SessionHooks,
  ) {
    const lib = loadNodePty();
    this.cols = spec.cols;
    this.rows = spec.rows;
    try {
      this.pty = lib.spawn(spec.command, spec.args, {
        name: spec.env["TERM"] ?? "xterm-256color",
        cols: spec.cols,
        rows: spec.rows,
        cwd: spec.cwd,
        env: spec.env,
        encoding: null,
      });
    } catch (e) {
      throw new SpawnError("SpawnFailed", (e as Error).message);
    }
    this.pid = this.pty.pid;
    this.holdSlave();
    this.pty.onData((d: string | Buffer) => this.onData(typeof d === "string" ? Buffer.from(d) : d));
    this.pty.onExit(({ exitCode, signal }) => this.onExit(exitCode, signal));
  }

  /**
   * node-pty gives a child's last output up to ~200 ms to be read after it
   * exits and then destroys the master's stream; on Linux the master may also
   * report EOF while the child's last writes are still in flight. Either
   * loses the tail of the output — and always would while we hold the PTY
   * paused. So the daemon keeps its own descriptor of the slave open (the
   * master never sees the hang-up on its own) and defers node-pty's destroy
   * until the output is drained: then it closes the slave and lets the
   * master read to EOF. Relies on two node-pty internals (`_pty`, the slave's
   * path, and `_socket`); without them it falls back to node-pty's behaviour.
   */
  private holdSlave(): void {
    const inner = this.pty as unknown as { _pty?: unknown; _socket?: { destroy: (e?: Error) => unknown; once: (ev: string, f: () => void) => void } };
    const sock = inner._socket;
    if (typeof inner._pty === "string" && inner._pty.startsWith("/dev/")) {
      try {
        this.slaveFd = fs.openSync(inner._pty, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
      } catch {
        this.slaveFd = null;
      }
    }
    if (sock && typeof sock.destroy === "function") {
      const real = sock.destroy.bind(sock) as (e?: Error) => void;
      this.realDestroy = real;
      sock.destroy = (e?: Error) => {
        if (this.draining || this.closed) return real(e);
        // node-pty's exit timer (the child exited): drain first.
        this.destroyRequested = true;
        this.maybeDrain();
        return sock;
      };
      sock.once("close", () => {
        if (this.drainTimer) clearTimeout(this.drainTimer);
        this.drainTimer = null;
        this.releaseSlave();
      });
    }
  }

  private releaseSlave(): void {
    if (this.slaveFd === null) return;
    const fd = this.slaveFd;
    this.slaveFd = null;
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }

  /**
   * After the child exited: once the master has been read dry — not paused,
   * and no output for a few ticks plus one more poll of the event loop —
   * close our slave so the master reports EOF. (Closing it while output is
   * still queued in the kernel loses that output on Linux.)
   */
  private maybeDrain(): void {
    if (!this.destroyRequested || this.drainWatch || this.draining || this.closed) return;
    this.drainWatch = true;
    let seen = -1;
    let quiet = 0;
    const schedule = () => {
      this.drainTimer = setTimeout(tick, 20);
      this.drainTimer.unref?.();
    };
    const tick = () => {
      this.drainTimer = null;
      if (this.outputEnded || this.closed) return;
      if (this.paused || this.dataEvents !== seen) {
        seen = this.dataEvents;
        quiet = 0;
        schedule();
        return;
      }
      if (++quiet < 3) {
        schedule();
        return;
      }
      // One more poll phase: anything readable now shows up as a data event.
      setImmediate(() => {
        if (this.outputEnded || this.closed) return;
        if (this.paused || this.dataEvents !== seen) {
          seen = this.dataEvents;
          quiet = 0;
          schedule();
          return;
        }
        this.draining = true;
        this.releaseSlave();
        // Something else may still hold the slave (a background grandchild):
        // then EOF never comes; give up after a while unpaused, as node-pty would.
        const arm = () => {
          this.drainTimer = setTimeout(() => {
            if (this.outputEnded) return;
            if (this.paused) arm();
            else this.realDestroy?.();
          }, 1000);
          this.drainTimer.unref?.();
        };
        arm();
      });
    };
    schedule();
  }

  get name(): string {
    return this.spec.name;
  }

  get isRunning(): boolean {
    return this.exitStatus === null;
  }

  info(): SessionInfo {
    return {
      id: this.id,
      name: this.spec.name,
      command: this.spec.command,
      args: this.spec.args,
      cwd: this.spec.cwd,
      pid: this.pid,
      cols: this.cols,
      rows: this.rows,
      createdAtMs: this.createdAtMs,
      clients: this.clients.size,
      status: this.exitStatus ? { tag: "Exited", value: this.exitStatus } : { tag: "Running" },
    };
  }

  pausedMs(): number {
    return this.totalPausedMs + (this.paused ? Date.now() - this.pausedSince : 0);
  }

  stats(): SessionStats {
    const now = Date.now();
    return {
      id: this.id,
      paused: this.paused,
      pausedMs: this.pausedMs(),
      pauseCount: this.pauseCount,
      outputBytes: this.store.head,
      bufferedBytes: this.store.size,
      scrollbackBytes: Math.min(this.store.size, this.flow.scrollbackBytes),
      clients: [...this.clients.values()].map((c) => {
        const st = c.output.stats();
        return {
          clientId: c.id,
          queuedBytes: c.lag,
          creditOutstanding: st.creditOutstanding,
          inFlightBytes: st.inFlightBytes,
          window: st.window,
          level: c.level,
          sentBytes: c.sentBytes,
          behindMs: c.behindSince === null ? 0 : now - c.behindSince,
          attachedAtMs: c.attachedAtMs,
          cols: c.cols,
          rows: c.rows,
          readOnly: c.readOnly,
        };
      }),
    };
  }

  // --- input / control -------------------------------------------------------

  write(data: Uint8Array): void {
    if (data.length === 0) return;
    this.pty.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  /** Resizes the terminal and tells the clients (but `quiet`, which learns the size otherwise). */
  resize(cols: number, rows: number, quiet?: ClientAttachment): void {
    if (cols === this.cols && rows === this.rows) return;
    this.pty.resize(cols, rows);
    this.cols = cols;
    this.rows = rows;
    for (const c of this.clients.values()) if (c !== quiet) c.events.push({ tag: "Resized", value: { cols, rows } });
  }

  /** Marks `c` as the most recently active client (attach, resize, input). */
  touch(c: ClientAttachment): void {
    c.activeAt = ++this.activity;
  }

  /** A client's terminal size changed: record it and apply the size policy. */
  clientResized(c: ClientAttachment, cols: number, rows: number): void {
    c.cols = cols;
    c.rows = rows;
    this.touch(c);
    this.applySizePolicy();
  }

  /**
   * The size the policy gives over the clients that have one (null: none has): `smallest` —
   * the smallest columns and the smallest rows; `latest` — the most recently active client's.
   */
  policySize(): { cols: number; rows: number } | null {
    let best: ClientAttachment | null = null;
    let cols = Infinity;
    let rows = Infinity;
    for (const c of this.clients.values()) {
      if (c.cols === 0 || c.rows === 0) continue;
      cols = Math.min(cols, c.cols);
      rows = Math.min(rows, c.rows);
      if (best === null || c.activeAt > best.activeAt) best = c;
    }
    if (best === null) return null;
    return this.sizePolicy === "latest" ? { cols: best.cols, rows: best.rows } : { cols, rows };
  }

  /** Resizes the session to the policy's size (when any client has a size and the process runs). */
  applySizePolicy(): void {
    if (!this.isRunning || this.closed) return;
    const size = this.policySize();
    if (size) this.resize(size.cols, size.rows);
  }

  kill(signal: string): void {
    this.pty.kill(signal);
  }

  waitExit(): Promise<ExitStatus> {
    if (this.exitStatus) return Promise.resolve(this.exitStatus);
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  // --- clients -------------------------------------------------------------------

  attach(
    id: number,
    output: Tx<Uint8Array>,
    events: Tx<AttachEvent>,
    replay: boolean,
    linkWindow: number,
    client: { cols?: number; rows?: number; readOnly?: boolean } = {},
  ): ClientAttachment {
    const head = this.store.head;
    const from = replay ? Math.max(this.store.start, head - this.flow.scrollbackBytes) : head;
    // A value is its bytes plus a length prefix (≤ 5 bytes). It must fit in half
    // the credit window: the receiver tops the sender's credit up only once
    // half the window is free, so a larger value could wait forever.
    const chunk = Math.max(1, Math.min(this.flow.chunkBytes, Math.floor(linkWindow / 2) - 8));
    const c = new ClientAttachment(id, this, output, events, from, chunk);
    c.cols = client.cols ?? 0;
    c.rows = client.rows ?? 0;
    c.readOnly = client.readOnly ?? false;
    this.touch(c);
    this.clients.set(id, c);
    // The new client learns the size from its Attached event, which must come first.
    const size = this.isRunning && !this.closed ? this.policySize() : null;
    if (size) this.resize(size.cols, size.rows, c);
    c.events.push({ tag: "Attached", value: { clientId: id, session: this.info(), replayBytes: head - from } });
    if (this.exitStatus) c.events.push({ tag: "Exited", value: this.exitStatus });
    c.events.push(this.levelEvent(c));
    void c.pump();
    return c;
  }

  /** @internal */
  reportError(e: unknown): void {
    this.hooks.error?.(this, e);
  }

  /** @internal A client's pump sent a chunk. */
  clientProgressed(c: ClientAttachment): void {
    this.updateLevel(c);
    this.evaluate();
    this.trim();
  }

  /** @internal A client's attachment ended. */
  clientLeft(c: ClientAttachment): void {
    if (this.clients.get(c.id) !== c) return;
    this.clients.delete(c.id);
    this.applySizePolicy();
    this.evaluate();
    this.trim();
  }

  // --- output and flow control ---------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.dataEvents++;
    this.store.append(chunk);
    for (const c of this.clients.values()) {
      this.updateLevel(c);
      c.wake();
    }
    this.evaluate();
    this.trim();
  }

  private onExit(exitCode: number, signal: number | undefined): void {
    this.outputEnded = true;
    this.releaseSlave();
    if (this.paused) this.setPaused(false);
    this.exitStatus = { exitCode, signal: signal ? (SIGNAL_NAMES.get(signal) ?? `signal ${signal}`) : null };
    for (const c of this.clients.values()) {
      c.events.push({ tag: "Exited", value: this.exitStatus });
      c.wake(true);
    }
    const ws = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of ws) w(this.exitStatus);
    this.hooks.exited(this);
  }

  private levelEvent(c: ClientAttachment): AttachEvent {
    const st = c.output.stats();
    return {
      tag: "Level",
      value: {
        level: c.level,
        queuedBytes: Math.min(c.lag, 0xffff_ffff),
        creditOutstanding: st.creditOutstanding,
        window: st.window,
        sessionPaused: this.paused,
      },
    };
  }

  private updateLevel(c: ClientAttachment): void {
    const f = this.flow;
    const lag = c.lag;
    const up = lag >= f.redThreshold ? 2 : lag >= f.yellowThreshold ? 1 : 0;
    const withMargin = lag + f.hysteresis;
    const down = withMargin >= f.redThreshold ? 2 : withMargin >= f.yellowThreshold ? 1 : 0;
    const cur = LEVEL_RANK[c.level];
    const next = up > cur ? up : down < cur ? down : cur;
    if (next === cur) return;
    c.level = RANK_LEVEL[next]!;
    c.events.push(this.levelEvent(c));
  }

  /** Applies the policy: pause/resume the PTY, or start/stop detach timers. */
  private evaluate(): void {
    const f = this.flow;
    if (f.policy === "pause") {
      let maxLag = 0;
      for (const c of this.clients.values()) {
        const lag = c.lag;
        if (lag > maxLag) maxLag = lag;
        if (lag >= f.highWatermark) {
          if (c.behindSince === null) c.behindSince = Date.now();
        } else if (lag <= f.lowWatermark) {
          c.behindSince = null;
        }
      }
      if (!this.paused && maxLag >= f.highWatermark) this.setPaused(true);
      else if (this.paused && maxLag <= f.lowWatermark) this.setPaused(false);
      return;
    }
    // "detach": never hold the PTY back for a slow client; detach it instead.
    if (this.paused) this.setPaused(false);
    for (const c of [...this.clients.values()]) {
      const lag = c.lag;
      if (lag >= f.maxBufferBytes) {
        this.detachSlow(c);
        continue;
      }
      if (lag >= f.highWatermark) {
        if (c.behindSince === null) {
          c.behindSince = Date.now();
          c.detachTimer = setTimeout(() => {
            c.detachTimer = null;
            if (c.behindSince !== null && c.lag >= f.highWatermark) this.detachSlow(c);
          }, f.detachAfterMs);
          c.detachTimer.unref?.();
        }
      } else if (c.behindSince !== null) {
        c.behindSince = null;
        if (c.detachTimer) clearTimeout(c.detachTimer);
        c.detachTimer = null;
      }
    }
  }

  private detachSlow(c: ClientAttachment): void {
    const behindMs = c.behindSince === null ? 0 : Date.now() - c.behindSince;
    void c.stop({ tag: "TooSlow", value: { behindMs: Math.min(behindMs, 0xffff_ffff), queuedBytes: Math.min(c.lag, 0xffff_ffff) } });
  }

  private setPaused(p: boolean): void {
    if (p === this.paused) return;
    if (p && this.outputEnded) return;
    this.paused = p;
    if (p) {
      this.pausedSince = Date.now();
      this.pauseCount++;
      this.pty.pause();
    } else {
      this.totalPausedMs += Date.now() - this.pausedSince;
      if (!this.outputEnded) this.pty.resume();
      this.maybeDrain();
    }
    // Every attached client learns that the session paused (or resumed) for the slowest one:
    // a Level event carries `sessionPaused` (issue 19: it only did when the level changed too).
    for (const c of this.clients.values()) c.events.push(this.levelEvent(c));
  }

  /** Drops output that neither the scrollback window nor any client needs. */
  private trim(): void {
    let keep = this.store.head - this.flow.scrollbackBytes;
    for (const c of this.clients.values()) if (c.cursor < keep) keep = c.cursor;
    if (keep > this.store.start) this.store.trimBefore(keep);
  }

  /** Detaches every client and kills the process (daemon shutdown, remove). */
  close(): void {
    if (this.closed) return;
    for (const c of [...this.clients.values()]) void c.stop({ tag: "SessionClosed" });
    this.closed = true;
    if (this.isRunning) {
      try {
        this.pty.kill("SIGHUP");
      } catch {
        // gone
      }
    }
    if (this.paused) {
      this.paused = false;
      try {
        this.pty.resume();
      } catch {
        // gone
      }
    }
    this.releaseSlave();
    try {
      this.realDestroy?.();
    } catch {
      // already destroyed
    }
  }
}
