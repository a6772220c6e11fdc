/**
 * The roam-pty SDK core: a typed client of the RoamPty service on any roam
 * connection. Environment-neutral — the web terminal uses it in the browser;
 * `sdk.ts` adds connecting (Unix socket / WebSocket) and daemon auto-start.
 *
 * Output is consumed pull-style, which is what makes the flow control end to
 * end: a chunk is taken from the output channel only once the previous one
 * was processed, and taking it is what grants the daemon credit. So
 *
 *   for await (const chunk of attachment) await render(chunk);
 *   await attachment.consume(async (chunk) => render(chunk));
 *   await attachment.consume((chunk, done) => term.write(chunk, done)); // callback style
 *
 * all acknowledge consumption only after processing.
 */
import {
  type CallOptions,
  CancelledError,
  channel,
  type ChannelStats,
  client,
  type ClientOf,
  type Connection,
  type Diagnostics,
  type LevelChange,
  RoamError,
  type Rx,
  UserError,
} from "roam-ts";
import {
  PtyService,
  describePtyError,
  type AttachEvent,
  type CreateOptions,
  type DaemonInfo,
  type DetachReason,
  type ExitStatus,
  type LevelEvent,
  type PtyError,
  type SessionInfo,
  type SessionStats,
} from "./service.js";

export * from "./service.js";

/** True when `e` is a typed roam-pty error (`e.error` is a PtyError). */
export function isPtyError(e: unknown): e is UserError<PtyError> {
  return e instanceof UserError && typeof (e.error as { tag?: unknown } | null)?.tag === "string";
}

/** A readable message for any error a roam-pty call can throw. */
export function describeError(e: unknown): string {
  if (isPtyError(e)) return describePtyError(e.error);
  return e instanceof Error ? e.message : String(e);
}

export interface NewSessionOptions {
  /** Program (default: the daemon's shell). */
  command?: string;
  args?: string[];
  cwd?: string;
  /** Variables set on top of the daemon's environment. */
  env?: Record<string, string>;
  cols?: number;
  rows?: number;
  name?: string;
}

export interface AttachOptions {
  /** Replay the scrollback first (default true). */
  replay?: boolean;
  /**
   * This client's terminal size (both or neither). The session's size follows the daemon's
   * size policy over its clients' sizes (`smallest` by default); without a size this client
   * takes no part. `Attachment.resize` reports a new size.
   */
  cols?: number;
  rows?: number;
  /** A viewer: `write` is refused by the daemon (`ReadOnly`). */
  readOnly?: boolean;
  /** Detach every other client of the session first (like `tmux attach -d`). */
  detachOthers?: boolean;
}

const encoder = new TextEncoder();

/** A typed client of a roam-pty daemon on `connection`. */
export class PtyClient {
  readonly rpc: ClientOf<typeof PtyService>;

  constructor(readonly connection: Connection) {
    this.rpc = client(PtyService, connection);
  }

  /** Starts a session. Rejects with UserError<PtyError> (SpawnFailed, InvalidSize, …). */
  create(o: NewSessionOptions = {}, call?: CallOptions): Promise<SessionInfo> {
    const opts: CreateOptions = {
      command: o.command ?? "",
      args: o.args ?? [],
      cwd: o.cwd ?? null,
      env: Object.entries(o.env ?? {}).map(([name, value]) => ({ name, value })),
      cols: o.cols ?? 0,
      rows: o.rows ?? 0,
      name: o.name ?? null,
    };
    return this.rpc.create(opts, call);
  }

  list(call?: CallOptions): Promise<SessionInfo[]> {
    return this.rpc.list(call);
  }

  info(session: number, call?: CallOptions): Promise<SessionInfo> {
    return this.rpc.info(session, call);
  }

  /** A session by id or name ("3", "work"); rejects with UnknownSession / UnknownName. */
  find(target: string | number, call?: CallOptions): Promise<SessionInfo> {
    return this.rpc.find(String(target), call);
  }

  /** Writes input (keystrokes, pasted text) to the session. */
  write(session: number, data: string | Uint8Array, call?: CallOptions): Promise<void> {
    return this.rpc.write(session, typeof data === "string" ? encoder.encode(data) : data, call);
  }

  /** Sets the session's size now (attached clients' sizes take over again when one changes). */
  resize(session: number, cols: number, rows: number, call?: CallOptions): Promise<void> {
    return this.rpc.resize(session, cols, rows, call);
  }

  /** Sends `signal` (default SIGHUP) to the session's process. */
  kill(session: number, signal?: string, call?: CallOptions): Promise<void> {
    return this.rpc.kill(session, signal ?? null, call);
  }

  /** Resolves with the exit status once the session's process exited. */
  wait(session: number, call?: CallOptions): Promise<ExitStatus> {
    return this.rpc.wait(session, call);
  }

  /** Forgets an exited session. */
  remove(session: number, call?: CallOptions): Promise<void> {
    return this.rpc.remove(session, call);
  }

  /** Per-session and per-client flow figures (queued bytes, credit, paused time). */
  stats(session: number, call?: CallOptions): Promise<SessionStats> {
    return this.rpc.stats(session, call);
  }

  /** Detaches another client (like `tmux detach-client`). */
  detach(session: number, clientId: number, call?: CallOptions): Promise<void> {
    return this.rpc.detach(session, clientId, call);
  }

  daemonInfo(call?: CallOptions): Promise<DaemonInfo> {
    return this.rpc.daemonInfo(call);
  }

  /** The daemon's roam diagnostics: its servers, links, calls in flight and open channels. */
  async diagnostics(call?: CallOptions): Promise<Diagnostics[]> {
    return JSON.parse(await this.rpc.diagnostics(call)) as Diagnostics[];
  }

  /**
   * Attaches to a session. Resolves once the daemon confirmed (the
   * `Attached` event); rejects with UserError<PtyError> (UnknownSession,
   * InvalidSize). Read the output from the returned Attachment.
   */
  async attach(session: number, o: AttachOptions = {}): Promise<Attachment> {
    const [outTx, outRx] = channel<Uint8Array>();
    const [evTx, evRx] = channel<AttachEvent>();
    const abort = new AbortController();
    const options = { replay: o.replay ?? true, cols: o.cols ?? 0, rows: o.rows ?? 0, readOnly: o.readOnly ?? false, detachOthers: o.detachOthers ?? false };
    const call = this.rpc.attach(session, options, outTx, evTx, { signal: abort.signal });
    const first = evRx.next().then((r) => (r.done ? null : r.value));
    // Whichever comes first: the Attached event, or the call failing.
    const outcome = await Promise.race([first.then((ev) => ({ ev })), call.then((reason) => ({ reason }))]);
    // A short attachment (an exited session) may complete in the same turn as
    // its Attached event arrives: the event is then already in the channel.
    const ev = "ev" in outcome ? outcome.ev : await first.catch(() => null);
    // No event at all: the call failed (UnknownSession, InvalidSize, …) and closed the event
    // channel on its way; its own error says why.
    if (ev === null && "ev" in outcome) await call;
    if (ev === null && "reason" in outcome) throw new Error(`attach ended before it started: ${outcome.reason.tag}`);
    if (!ev || ev.tag !== "Attached") {
      abort.abort();
      throw new Error(`unexpected first attach event ${ev?.tag ?? "(none)"}`);
    }
    return new Attachment(this, session, ev.value.clientId, ev.value.session, ev.value.replayBytes, outRx, evRx, call, abort, options.readOnly);
  }
}

export type EventListener = (ev: AttachEvent) => void;
export type LevelListener = (ev: LevelEvent) => void;

/** One attachment of this client to a session. */
export class Attachment implements AsyncIterable<Uint8Array> {
  /** The daemon's latest level report for this client's output stream. */
  level: LevelEvent | null = null;
  exitStatus: ExitStatus | null = null;
  /** Resolves with why the attachment ended (Detached after `detach()`). */
  readonly done: Promise<DetachReason>;
  private detaching = false;
  private eventListeners: EventListener[] = [];
  private levelListeners: LevelListener[] = [];
  private reading = false;
  private readonly eventsDone: Promise<void>;
  /** Bytes taken from the output channel so far. */
  receivedBytes = 0;

  constructor(
    readonly client: PtyClient,
    readonly sessionId: number,
    readonly clientId: number,
    /** The session as it was when attaching. */
    readonly session: SessionInfo,
    /** How many bytes of scrollback come first on the output. */
    readonly replayBytes: number,
    private readonly output: Rx<Uint8Array>,
    private readonly events: Rx<AttachEvent>,
    call: Promise<DetachReason>,
    private readonly abort: AbortController,
    /** Attached read-only: `write` is refused. */
    readonly readOnly = false,
  ) {
    this.done = call.catch((e: unknown) => {
      if (this.detaching && (e instanceof CancelledError || e instanceof RoamError)) return { tag: "Detached" } as DetachReason;
      throw e;
    });
    this.done.catch(() => undefined);
    this.eventsDone = this.pumpEvents();
  }

  private async pumpEvents(): Promise<void> {
    try {
      for (;;) {
        const r = await this.events.next();
        if (r.done) return;
        this.dispatch(r.value);
      }
    } catch {
      // The call ended (detach, connection lost): no more events.
    }
  }

  private dispatch(ev: AttachEvent): void {
    if (ev.tag === "Level") this.level = ev.value;
    if (ev.tag === "Exited") this.exitStatus = ev.value;
    for (const l of this.eventListeners) {
      try {
        l(ev);
      } catch {
        // a listener's failure is its own
      }
    }
    if (ev.tag === "Level") {
      for (const l of this.levelListeners) {
        try {
          l(ev.value);
        } catch {
          // ignore
        }
      }
    }
  }

  /** Every event (Level, Resized, Exited). Returns an unsubscribe function. */
  onEvent(listener: EventListener): () => void {
    this.eventListeners.push(listener);
    return () => (this.eventListeners = this.eventListeners.filter((l) => l !== listener));
  }

  /** Level changes (green/yellow/red) of this client's output stream, as the daemon sees them. */
  onLevel(listener: LevelListener): () => void {
    this.levelListeners.push(listener);
    return () => (this.levelListeners = this.levelListeners.filter((l) => l !== listener));
  }

  /** Level changes of the local receive buffer (bytes delivered, not yet taken), per the link's thresholds. */
  onLocalLevel(listener: (change: LevelChange) => void): () => void {
    return this.output.onLevel(listener);
  }

  /** Figures of the local end of the output channel. */
  localStats(): ChannelStats {
    return this.output.stats();
  }

  /**
   * Takes the next output chunk, or null once the attachment ended and
   * everything was read. Call it only after the previous chunk was processed:
   * taking a chunk is what acknowledges the previous ones to the daemon.
   */
  async read(): Promise<Uint8Array | null> {
    if (this.reading) throw new Error("read() called while another read() is pending");
    this.reading = true;
    try {
      const r = await this.output.next();
      if (r.done) return null;
      this.receivedBytes += r.value.length;
      return r.value;
    } catch (e) {
      if (this.detaching) return null;
      throw e;
    } finally {
      this.reading = false;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return {
      next: async () => {
        const v = await this.read();
        return v === null ? { value: undefined as never, done: true } : { value: v, done: false };
      },
      return: async () => {
        await this.detach();
        return { value: undefined as never, done: true };
      },
    };
  }

  /**
   * Takes the next chunk plus every chunk already received behind it (up to
   * `maxBytes` in all), joined: one piece of work for the consumer instead of
   * many small ones, with the same acknowledgement rule. Null at the end.
   */
  async readBatch(maxBytes = 256 * 1024): Promise<Uint8Array | null> {
    const first = await this.read();
    if (first === null) return null;
    let parts: Uint8Array[] | null = null;
    let total = first.length;
    // Values already buffered locally are taken without waiting.
    while (total < maxBytes && this.output.stats().bufferedBytes > 0) {
      const next = await this.read();
      if (next === null) break;
      (parts ??= [first]).push(next);
      total += next.length;
    }
    if (parts === null) return first;
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * Feeds the output to `onChunk` and takes more only when it finished with
   * the previous piece: when its promise settles, or — callback style, like
   * xterm's `write(data, callback)` — when it calls `done`. Chunks that
   * arrived while it was busy are handed over together (up to `maxBatchBytes`,
   * default 256 KiB; 0 = one channel value at a time). Resolves with the
   * detach reason.
   */
  async consume(
    onChunk: (chunk: Uint8Array, done: () => void) => void | Promise<void>,
    options: { maxBatchBytes?: number } = {},
  ): Promise<DetachReason> {
    const batch = options.maxBatchBytes ?? 256 * 1024;
    for (;;) {
      const chunk = batch > 0 ? await this.readBatch(batch) : await this.read();
      if (chunk === null) break;
      if (onChunk.length >= 2) {
        await new Promise<void>((resolve, reject) => {
          try {
            const r = onChunk(chunk, resolve);
            if (r && typeof (r as Promise<void>).then === "function") (r as Promise<void>).catch(reject);
          } catch (e) {
            reject(e);
          }
        });
      } else {
        await onChunk(chunk, () => undefined);
      }
    }
    return this.done;
  }

  /** Input as this client (refused for a read-only attachment; counts as its activity). */
  write(data: string | Uint8Array): Promise<void> {
    return this.client.rpc.input(this.sessionId, this.clientId, typeof data === "string" ? encoder.encode(data) : data);
  }

  /** This client's terminal size changed; the daemon recomputes the session's size. */
  resize(cols: number, rows: number): Promise<void> {
    return this.client.rpc.resizeClient(this.sessionId, this.clientId, cols, rows);
  }

  /** Detaches (cancels the attach call); the session keeps running. */
  async detach(): Promise<DetachReason> {
    if (!this.detaching) {
      this.detaching = true;
      this.abort.abort();
    }
    await this.eventsDone;
    return this.done;
  }
}
