/**
 * The roam-pty service: a daemon that owns pseudo-terminal sessions.
 *
 * Browser-safe (imports only the schema DSL and service definitions), so the
 * web terminal uses the very same definition as the Node SDK and CLI.
 *
 * Output flow control is roam credit: `attach` hands the daemon a `Tx<bytes>`
 * it sends the session's output on. The daemon's sends wait for credit, and
 * the client grants credit only as it takes chunks after processing the
 * previous one, so a slow terminal holds the daemon back; the daemon in turn
 * stops reading the PTY master (the child blocks on write) once the slowest
 * client is `highWatermark` bytes behind.
 */
import { arg, defineService, type Infer, method, t } from "roam-ts";

/** How a process ended: its exit code, or the signal that killed it. */
export const ExitStatus = t.struct(
  {
    exitCode: t.i32,
    /** Signal name (e.g. "SIGKILL") when the process was killed by a signal. */
    signal: t.option(t.string),
  },
  "ExitStatus",
);

export const SessionStatus = t.enum({ Running: null, Exited: ExitStatus }, "SessionStatus");

export const EnvVar = t.struct({ name: t.string, value: t.string }, "EnvVar");

/** Everything `create` needs; every field but `command` has a default. */
export const CreateOptions = t.struct(
  {
    /** Program to run (looked up in PATH when it has no slash). Empty: the daemon's default shell. */
    command: t.string,
    args: t.list(t.string),
    /** Working directory; default: the daemon's. */
    cwd: t.option(t.string),
    /** Variables set on top of the daemon's environment (TERM defaults to xterm-256color). */
    env: t.list(EnvVar),
    /** Terminal size; 0 means the default (80x24). */
    cols: t.u16,
    rows: t.u16,
    /** A label shown by `ls`; default: the command's base name. */
    name: t.option(t.string),
  },
  "CreateOptions",
);

export const SessionInfo = t.struct(
  {
    id: t.u32,
    name: t.string,
    command: t.string,
    args: t.list(t.string),
    cwd: t.string,
    pid: t.u32,
    cols: t.u16,
    rows: t.u16,
    /** Milliseconds since the Unix epoch. */
    createdAtMs: t.f64,
    /** Clients attached now. */
    clients: t.u32,
    status: SessionStatus,
  },
  "SessionInfo",
);

export const PressureLevel = t.literals(["green", "yellow", "red"], "PressureLevel");

/** What the daemon tells one attached client about its own output stream. */
export const LevelEvent = t.struct(
  {
    level: PressureLevel,
    /** Output bytes this client is behind: produced by the PTY, not yet sent to it (waiting for its credit). */
    queuedBytes: t.u32,
    /** Credit the daemon holds on this client's output channel (bytes it may still send). */
    creditOutstanding: t.u32,
    /** The channel's credit window. */
    window: t.u32,
    /** Whether the session's PTY is paused (its child blocked on write) right now. */
    sessionPaused: t.bool,
  },
  "LevelEvent",
);

export const AttachEvent = t.enum(
  {
    /** First event of every attachment. */
    Attached: {
      clientId: t.u32,
      session: SessionInfo,
      /** Bytes of scrollback that precede the live output on the output channel. */
      replayBytes: t.u32,
    },
    Level: LevelEvent,
    Resized: { cols: t.u16, rows: t.u16 },
    /** The process exited; the output channel still delivers what it wrote before. */
    Exited: ExitStatus,
  },
  "AttachEvent",
);

export const AttachOptions = t.struct(
  {
    /** Replay the scrollback before the live output. */
    replay: t.bool,
    /**
     * This client's terminal size (0 = it has none and does not take part in sizing). The
     * session's size follows the daemon's size policy over the attached clients' sizes.
     */
    cols: t.u16,
    rows: t.u16,
    /** A viewer (`attach -r`): the daemon refuses its `input`. */
    readOnly: t.bool,
    /** Detach every other client of the session first (`attach -d`). */
    detachOthers: t.bool,
  },
  "AttachOptions",
);

/** Why an attachment ended (the successful result of `attach`). */
export const DetachReason = t.enum(
  {
    /** The session's process exited and every byte it wrote was delivered. */
    SessionExited: ExitStatus,
    /** `detach` was called for this client (by itself or by another client). */
    Detached: null,
    /** The detach policy: this client stayed behind longer than allowed. */
    TooSlow: { behindMs: t.u32, queuedBytes: t.u32 },
    /** The session was removed or the daemon is shutting down. */
    SessionClosed: null,
  },
  "DetachReason",
);

/** Typed errors: the SDK user gets `UserError<PtyError>` with `.error` one of these. */
export const PtyError = t.enum(
  {
    UnknownSession: t.u32,
    UnknownClient: t.u32,
    /** Terminal sizes must be 1..=4096 columns and rows. */
    InvalidSize: { cols: t.u32, rows: t.u32 },
    /** The session's process has exited (its status attached). */
    SessionExited: ExitStatus,
    /** `remove` of a session whose process still runs (kill it first). */
    SessionRunning: t.u32,
    SpawnFailed: t.string,
    InvalidSignal: t.string,
    InvalidArgument: t.string,
    LimitReached: t.string,
    /** No session has this name. */
    UnknownName: t.string,
    /** Another session already has this name (names are unique). */
    NameInUse: t.string,
    /** `input` from a client attached read-only. */
    ReadOnly: t.u32,
  },
  "PtyError",
);

export const ClientStats = t.struct(
  {
    clientId: t.u32,
    /** Bytes behind (produced, not yet sent on the channel). */
    queuedBytes: t.u32,
    /** Sender-side figures of the output channel. */
    creditOutstanding: t.u32,
    inFlightBytes: t.u32,
    window: t.u32,
    level: PressureLevel,
    sentBytes: t.f64,
    /** How long this client has been at/over the high watermark (0 when it is not). */
    behindMs: t.f64,
    attachedAtMs: t.f64,
    /** The client's terminal size (0x0: none). */
    cols: t.u16,
    rows: t.u16,
    readOnly: t.bool,
  },
  "ClientStats",
);

export const SessionStats = t.struct(
  {
    id: t.u32,
    paused: t.bool,
    /** Total time the PTY spent paused, including the current pause. */
    pausedMs: t.f64,
    pauseCount: t.u32,
    /** Bytes read from the PTY since the session started. */
    outputBytes: t.f64,
    /** Bytes the daemon holds for this session (scrollback and clients' backlog). */
    bufferedBytes: t.u32,
    scrollbackBytes: t.u32,
    clients: t.list(ClientStats),
  },
  "SessionStats",
);

export const FlowSettings = t.struct(
  {
    highWatermark: t.u32,
    lowWatermark: t.u32,
    yellowThreshold: t.u32,
    redThreshold: t.u32,
    policy: t.literals(["pause", "detach"], "SlowClientPolicy"),
    detachAfterMs: t.u32,
    maxBufferBytes: t.u32,
    windowBytes: t.u32,
    chunkBytes: t.u32,
    scrollbackBytes: t.u32,
  },
  "FlowSettings",
);

/**
 * How a session's size follows its clients (like tmux's `window-size`): `smallest` — the
 * smallest columns and rows of the attached clients, so everyone sees the whole screen;
 * `latest` — the size of the client that most recently attached, resized or typed.
 * Recomputed whenever a client attaches, leaves, resizes (or, for `latest`, types).
 */
export const SizePolicy = t.literals(["smallest", "latest"], "SizePolicy");

export const DaemonInfo = t.struct(
  {
    pid: t.u32,
    /** The roam-ts package version of the daemon. */
    version: t.string,
    sizePolicy: SizePolicy,
    socketPath: t.option(t.string),
    /** The web terminal's URL (with its access token), when serving WebSocket. */
    webUrl: t.option(t.string),
    rssBytes: t.f64,
    heapUsedBytes: t.f64,
    sessions: t.u32,
    clients: t.u32,
    flow: FlowSettings,
  },
  "DaemonInfo",
);

export const PtyService = defineService("RoamPty", {
  create: method((options = arg(CreateOptions)) => t.result(SessionInfo, PtyError)),
  list: method(() => t.list(SessionInfo)),
  info: method((session = arg(t.u32)) => t.result(SessionInfo, PtyError)),
  /** A session by id (digits) or by name: what the CLI accepts wherever it takes a session. */
  find: method((target = arg(t.string)) => t.result(SessionInfo, PtyError)),
  /**
   * Attaches until detached or the session ends: output on `output`, events
   * on `events`. Cancel the call (or call `detach`) to detach.
   */
  attach: method(
    (session = arg(t.u32), options = arg(AttachOptions), output = arg(t.tx(t.bytes)), events = arg(t.tx(AttachEvent))) =>
      t.result(DetachReason, PtyError),
  ),
  detach: method((session = arg(t.u32), client = arg(t.u32)) => t.result(t.unit, PtyError)),
  /** Writes to the session's terminal, from no client in particular. */
  write: method((session = arg(t.u32), data = arg(t.bytes)) => t.result(t.unit, PtyError)),
  /** Keystrokes of an attached client: refused for read-only clients; counts as its activity. */
  input: method((session = arg(t.u32), client = arg(t.u32), data = arg(t.bytes)) => t.result(t.unit, PtyError)),
  /** Sets the session's size now (until the size policy next recomputes it). */
  resize: method((session = arg(t.u32), cols = arg(t.u16), rows = arg(t.u16)) => t.result(t.unit, PtyError)),
  /** An attached client's terminal changed size: the session's size is recomputed by the policy. */
  resizeClient: method((session = arg(t.u32), client = arg(t.u32), cols = arg(t.u16), rows = arg(t.u16)) => t.result(t.unit, PtyError)),
  /** Sends a signal (default SIGHUP) to the session's process. */
  kill: method((session = arg(t.u32), signal = arg(t.option(t.string))) => t.result(t.unit, PtyError)),
  /** Resolves when the session's process exits. */
  wait: method((session = arg(t.u32)) => t.result(ExitStatus, PtyError)),
  /** Forgets an exited session (its scrollback goes with it). */
  remove: method((session = arg(t.u32)) => t.result(t.unit, PtyError)),
  stats: method((session = arg(t.u32)) => t.result(SessionStats, PtyError)),
  daemonInfo: method(() => DaemonInfo),
  /** What the daemon has in flight: links, calls, channels (JSON of the roam diagnostics snapshots). */
  diagnostics: method(() => t.string),
});

export type ExitStatus = Infer<typeof ExitStatus>;
export type SessionStatus = Infer<typeof SessionStatus>;
export type CreateOptions = Infer<typeof CreateOptions>;
export type SessionInfo = Infer<typeof SessionInfo>;
export type PressureLevel = Infer<typeof PressureLevel>;
export type LevelEvent = Infer<typeof LevelEvent>;
export type AttachEvent = Infer<typeof AttachEvent>;
export type AttachOptions = Infer<typeof AttachOptions>;
export type DetachReason = Infer<typeof DetachReason>;
export type PtyError = Infer<typeof PtyError>;
export type ClientStats = Infer<typeof ClientStats>;
export type SessionStats = Infer<typeof SessionStats>;
export type FlowSettings = Infer<typeof FlowSettings>;
export type DaemonInfo = Infer<typeof DaemonInfo>;
export type SizePolicy = Infer<typeof SizePolicy>;

/** Largest accepted terminal dimension. */
export const MAX_DIMENSION = 4096;

/** A short human description of a PtyError value. */
export function describePtyError(e: PtyError): string {
  switch (e.tag) {
    case "UnknownSession":
      return `no session ${e.value}`;
    case "UnknownClient":
      return `no client ${e.value} attached to that session`;
    case "InvalidSize":
      return `invalid terminal size ${e.value.cols}x${e.value.rows} (1..${MAX_DIMENSION} each)`;
    case "SessionExited":
      return `the session has exited (${describeExit(e.value)})`;
    case "SessionRunning":
      return `session ${e.value} is still running (kill it first)`;
    case "SpawnFailed":
      return `could not start the process: ${e.value}`;
    case "InvalidSignal":
      return `unknown signal ${JSON.stringify(e.value)}`;
    case "InvalidArgument":
      return e.value;
    case "LimitReached":
      return e.value;
    case "UnknownName":
      return `no session named ${JSON.stringify(e.value)}`;
    case "NameInUse":
      return `a session named ${JSON.stringify(e.value)} already exists (names are unique)`;
    case "ReadOnly":
      return `client ${e.value} is attached read-only`;
  }
}

export function describeExit(s: ExitStatus): string {
  return s.signal !== null ? `killed by ${s.signal}` : `exit code ${s.exitCode}`;
}
