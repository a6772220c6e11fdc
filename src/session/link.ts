/**
 * A link: one transport instance carrying connection 0 and any virtual
 * connections (core.link, core.conn.*). Transport-agnostic: the handshake
 * and flow-control mechanisms come from backends.
 */
import { linkDiagnostics, trackLink, type LinkDiagnostics } from "./diagnostics.js";
import { dataPayload, type Message, type Metadata } from "../wire/message.js";
import { openConnection, type Connection, type ConnectionControl, type ConnectionOwner, type Dispatcher } from "./connection.js";
import { ConnectionTable, type IncomingConnection } from "./connection-table.js";
import { ConnectionClosedError, ProtocolViolation, type RoamError } from "./errors.js";
import { CreditMessageFlowControl, type FlowControlBackend } from "./flow.js";
import type { HandshakeBackend, Negotiated } from "./handshake.js";
import { DEFAULT_THRESHOLDS, type PressureThresholds } from "./pressure.js";
import { InboundPacer } from "./inbound.js";
import { DEFAULT_LINK_LIMITS, DEFAULT_REPLY_HIGH_WATER_MARK, type LinkOptions } from "./link-options.js";
import type { MessageTransport, TransportSink } from "./transport.js";

export class Link {
  readonly initiator: boolean;
  private negotiated: Negotiated | null = null;
  private readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Connection 0 and the virtual connections. */
  private readonly connections: ConnectionTable;
  private closedError: RoamError | null = null;
  // mutation: equivalent — a non-empty initial array: each listener is called inside a try that
  // ignores its failure, so a bogus entry changes nothing.
  private closeListeners: ((e: RoamError) => void)[] = [];
  private preHandshake: Message[] = [];
  /** Paces reading: per-turn budget and backpressure from our replies (see replyHighWaterMark). */
  private readonly inbound: InboundPacer;
  readonly root: Connection;
  readonly flow: FlowControlBackend;
  readonly thresholds: PressureThresholds;
  readonly exposeHandlerErrors: boolean;
  readonly maxInFlightCalls: number;
  readonly maxChannels: number;
  /** performance.now() of the last message received. */
  private lastReceived = performance.now();
  private idleTimer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly transport: MessageTransport,
    private readonly options: LinkOptions,
  ) {
    this.initiator = options.initiator;
    this.thresholds = { ...DEFAULT_THRESHOLDS, ...options.thresholds };
    this.exposeHandlerErrors = options.exposeHandlerErrors ?? true;
    this.maxInFlightCalls = options.maxInFlightCalls ?? DEFAULT_LINK_LIMITS.maxInFlightCalls;
    this.maxChannels = options.maxChannels ?? DEFAULT_LINK_LIMITS.maxChannels;
    const send = (m: Message) => this.send(m);
    this.flow = options.flowControl
      ? options.flowControl(send)
      : new CreditMessageFlowControl((connId, channelId, bytes) => this.send({ type: "Credit", connId, channelId, bytes }));
    // What connections may ask of their link (not part of the Link's own API).
    const link = this;
    const owner: ConnectionOwner = {
      initiator: this.initiator,
      get maxPayloadSize() {
        return link.maxPayloadSize;
      },
      get initialCredit() {
        return link.initialCredit;
      },
      flow: this.flow,
      thresholds: this.thresholds,
      exposeHandlerErrors: this.exposeHandlerErrors,
      maxInFlightCalls: this.maxInFlightCalls,
      maxChannels: this.maxChannels,
      send,
      closeConnection: (conn, reason) => this.closeConnection(conn, reason),
      handlerError: (error, info) => this.handlerError(error, info),
      handshakePending: () => this.handshakePending(),
      writable: () => this.writable(),
    };
    const root = openConnection(0, owner, options.dispatcher ?? null);
    this.root = root.connection;
    this.connections = new ConnectionTable(
      {
        send,
        open: (connId, dispatcher, metadata) => openConnection(connId, owner, dispatcher, metadata),
        closedError: () => this.closedError,
        ready: () => this.ready(),
        connectTimeoutMs: options.connectTimeoutMs ?? 30_000,
        acceptBacklog: options.acceptBacklog ?? 128,
        maxConnections: options.maxConnections ?? DEFAULT_LINK_LIMITS.maxConnections,
      },
      root,
    );
    this.inbound = new InboundPacer({
      transport,
      replyMark: options.replyHighWaterMark ?? DEFAULT_REPLY_HIGH_WATER_MARK,
      handle: (m) => this.handle(m),
      isClosed: () => this.closedError !== null,
      overflow: (reason) => this.close(reason),
    });
    trackLink(this);
  }

  /** A snapshot of the link: connections, calls in flight, open channels (see src/session/diagnostics.ts). */
  diagnostics(): LinkDiagnostics {
    return linkDiagnostics(this, this.connections.values());
  }

  /** Starts the transport and the handshake; resolves when both sides agreed. */
  start(): Promise<void> {
    const sink: TransportSink = {
      message: (m) => this.receive(m),
      malformed: (rule, detail) => this.linkViolation(new ProtocolViolation(rule, detail, 0), "sent"),
      closed: (cause) => this.transportClosed(cause),
    };
    const ready = this.ready();
    this.transport.start(sink);
    if (!this.closedError) {
      const n = this.options.handshake.start(this.transport);
      if (n) this.handshakeDone(n);
    }
    // mutation: equivalent — arming the timer when the handshake already completed or the link
    // already closed is harmless: ready() has settled, so the timer is cleared a microtask later
    // and its callback re-checks both anyway (|| and `true` variants of this condition).
    if (!this.negotiated && !this.closedError) {
      const ms = this.options.handshakeTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        // mutation: equivalent — this guard and the clearTimeout below are redundant with each other:
        // ready() settles exactly when negotiated/closedError is set, and its handlers clear the timer
        // in the next microtask, before any timer can run. Dropping either one alone changes nothing.
        if (this.negotiated || this.closedError) return;
        this.shutdown(new ConnectionClosedError(`message.hello.timing: no Hello from the peer within ${ms} ms`, "local"));
        this.transport.close();
      }, ms);
      // mutation: equivalent — `unref?.()` vs `unref()`: Node timers always have unref (the tests run on Node).
      timer.unref?.();
      // mutation: equivalent — either arrow -> `() => undefined`: see the guard in the timer above.
      ready.then(
        () => clearTimeout(timer),
        () => clearTimeout(timer),
      );
    }
    return ready;
  }

  /** Resolves once the handshake completed (rejects if the link closed first). */
  ready(): Promise<void> {
    if (this.negotiated) return Promise.resolve();
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private writable(): Promise<void> | undefined {
    // mutation: equivalent — `this.closedError ?` -> false: only a connection's channel host asks,
    // and it returns undefined itself once its connection is torn down, which shutdown does first.
    return this.closedError ? undefined : this.transport.writable();
  }

  handshakePending(): Promise<void> | undefined {
    return this.negotiated ? undefined : this.ready();
  }

  /** The limits in force (after the handshake). */
  get limits(): Negotiated {
    if (!this.negotiated) throw new Error("the handshake has not completed; await link.ready()");
    return this.negotiated;
  }
  get maxPayloadSize(): number {
    return this.negotiated?.maxPayloadSize ?? 0;
  }
  get initialCredit(): number {
    return this.negotiated?.initialChannelCredit ?? 0;
  }
  get isClosed(): boolean {
    return this.closedError !== null;
  }

  /** Calls back once when the link closes. */
  onClose(listener: (e: RoamError) => void): void {
    if (this.closedError) listener(this.closedError);
    else this.closeListeners.push(listener);
  }

  /** Resolves when the link has closed, with the reason. */
  closed(): Promise<RoamError> {
    return new Promise((resolve) => this.onClose(resolve));
  }

  private handshakeDone(n: Negotiated): void {
    this.negotiated = n;
    const idle = this.options.idleTimeoutMs ?? 0;
    if (idle > 0) {
      this.idleTimer = setInterval(() => this.checkIdle(idle), Math.max(10, Math.min(idle / 4, 5000)));
      // mutation: equivalent — as above, Node timers always have unref.
      this.idleTimer.unref?.();
    }
    // mutation: equivalent — the reset array's contents: messages are queued only before the
    // handshake completes, and this runs when it completes, so it is never read again.
    const queued = this.preHandshake;
    this.preHandshake = [];
    for (const m of queued) this.transport.send(m);
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of ws) w.resolve();
  }

  // --- what connections ask of the link (through their ConnectionOwner) ----------

  private send(m: Message): void {
    // mutation: equivalent — every way the link closes also closes its transport (or the transport
    // closed first), and a closed transport's send() is a no-op (MessageTransport contract); before
    // the handshake a closed link never flushes preHandshake. So this guard only saves work.
    if (this.closedError) return;
    if (!this.negotiated) {
      // r[message.hello.ordering]: hold everything until both Hellos; copy the
      // payload since callers may reuse its buffer.
      // mutation: equivalent — `m.type === "Data"` -> false and `"payload" in m` -> false: only raw
      // channel Data (never with a payloadHead) and Close/Reset can precede the handshake; Requests
      // wait for it (OutgoingCalls), Responses answer Requests, and a Tx is bound only by a call.
      // For head-less Data both branches make the same copy.
      this.preHandshake.push(m.type === "Data" ? { type: "Data", connId: m.connId, channelId: m.channelId, payload: dataPayload(m).slice() } : "payload" in m ? { ...m, payload: m.payload.slice() } : m);
      return;
    }
    this.transport.send(m);
    // Credit is what a waiting sender needs to continue: do not hold it back
    // until the end of this event-loop turn.
    if (m.type === "Credit") this.transport.flush();
  }

  private closeConnection(conn: Connection, reason: string): void {
    if (conn.connId === 0) {
      this.close(reason);
      return;
    }
    const control = this.connections.get(conn.connId);
    // mutation: equivalent — Connection.close() returns early once the connection was torn down,
    // and a connection leaves the table only through forget/shutdown, which tear it down: this
    // guard is never true (its `false` and `&&` variants behave the same).
    if (control === undefined || control.connection !== conn) return;
    this.send({ type: "Goodbye", connId: conn.connId, reason });
    this.connections.forget(control, new ConnectionClosedError(reason || undefined, "local"));
  }

  private handlerError(error: unknown, info: { method: string; connId: number; requestId: number }): void {
    const hook = this.options.onHandlerError;
    if (hook) {
      try {
        hook(error, info);
      } catch {
        // the hook must not break the link
      }
    } else {
      console.error(`roam: handler for ${info.method} (conn ${info.connId}, request ${info.requestId}) failed:`, error);
    }
  }

  // --- virtual connections ----------------------------------------------------------

  /**
   * Opens a virtual connection (core.conn.open). `dispatcher` serves calls the
   * peer makes on it. Rejects with ConnectionRejectedError on Reject.
   */
  connect(options: { metadata?: Metadata; dispatcher?: Dispatcher | null; timeoutMs?: number } = {}): Promise<Connection> {
    return this.connections.connect(options);
  }

  /**
   * Starts listening for virtual connections (core.conn.accept-required) and
   * yields each Connect to accept or reject. Leaving the loop stops listening.
   */
  incomingConnections(): AsyncIterableIterator<IncomingConnection> {
    return this.connections.incomingConnections();
  }

  /** Accepts every virtual connection, serving it with `dispatcherFor(metadata)`. */
  acceptConnections(dispatcherFor: (metadata: Metadata) => Dispatcher | null): void {
    this.connections.acceptConnections(dispatcherFor);
  }

  /** Stops listening; Connects still queued are rejected. */
  stopListening(): void {
    this.connections.stopListening();
  }

  /** Live connections (including 0). */
  get connectionCount(): number {
    return this.connections.size;
  }

  // --- receiving ----------------------------------------------------------------

  private receive(m: Message): void {
    if (this.closedError) return;
    const now = performance.now();
    this.lastReceived = now;
    this.inbound.receive(m, now);
  }

  /** Closes the link if nothing happened for `idle` ms and nothing is in flight. */
  private checkIdle(idle: number): void {
    // mutation: equivalent — `this.closedError ||` and the `idleTimer !== null` test in shutdown()
    // are redundant with each other: shutdown clears the interval, and a closed link is not closed again.
    if (this.closedError || performance.now() - this.lastReceived < idle) return;
    if (!this.connections.quiet) return;
    this.close(`idle: no message for ${idle} ms and nothing in flight (idleTimeoutMs)`);
  }

  /** Whether reading from the peer is paused because our replies back up. */
  get readingPaused(): boolean {
    return this.inbound.paused;
  }

  private handle(m: Message): void {
    try {
      if (!this.negotiated) {
        this.handshakeDone(this.options.handshake.receive(m));
        return;
      }
      switch (m.type) {
        case "Hello":
          throw new ProtocolViolation("message.hello.ordering", "Hello received after the handshake", 0);
        case "Connect":
          this.connections.onConnect(m);
          return;
        case "Accept":
          this.connections.onAccept(m);
          return;
        case "Reject":
          this.connections.onReject(m);
          return;
        case "Goodbye":
          this.onGoodbye(m.connId, m.reason);
          return;
        default: {
          const conn = this.connections.get(m.connId);
          if (conn === undefined) {
            if (this.connections.recentlyClosed(m.connId)) return; // crossed our Goodbye
            throw new ProtocolViolation("message.conn-id", `${m.type} for unknown connection ${m.connId}`, 0);
          }
          try {
            conn.handle(m);
          } catch (e) {
            // mutation: equivalent — `conn.connection.connId !== 0` -> true: violations raised on
            // connection 0 always carry connId 0 (IncomingCalls, OutgoingCalls and the channel
            // registry all use their own connection's id), so `e.connId !== 0` already excludes them.
            if (e instanceof ProtocolViolation && e.connId !== 0 && conn.connection.connId !== 0) {
              this.connectionViolation(conn, e);
              return;
            }
            throw e;
          }
        }
      }
    } catch (e) {
      if (e instanceof ProtocolViolation) {
        this.linkViolation(e, "sent");
        return;
      }
      // A bug on our side: do not leave the link half-alive.
      console.error("roam: internal error while handling a message; closing the link:", e);
      this.linkViolation(new ProtocolViolation("core.error.connection", `internal error: ${(e as Error)?.message ?? e}`, 0), "sent");
    }
  }

  private onGoodbye(connId: number, reason: string): void {
    if (connId === 0) {
      // r[message.goodbye.connection-zero]: the whole link ends.
      this.report({ rule: reason.split(/[:\s]/, 1)[0] ?? "", reason, direction: "received", connId: 0 });
      this.shutdown(new ConnectionClosedError(reason || undefined, "remote"));
      this.transport.close();
      return;
    }
    const conn = this.connections.get(connId);
    if (!conn) return;
    this.connections.forget(conn, new ConnectionClosedError(reason || undefined, "remote"));
  }

  private connectionViolation(conn: ConnectionControl, v: ProtocolViolation): void {
    const connId = conn.connection.connId;
    this.report({ rule: v.rule, reason: v.reason, direction: "sent", connId });
    this.send({ type: "Goodbye", connId, reason: v.reason });
    this.connections.forget(conn, new ConnectionClosedError(v.reason, "local", v));
  }

  private linkViolation(v: ProtocolViolation, direction: "sent"): void {
    if (this.closedError) return;
    this.report({ rule: v.rule, reason: v.reason, direction, connId: 0 });
    // The Goodbye goes out even before the handshake completed: the peer
    // must learn why (e.g. message.hello.unknown-version).
    this.transport.send({ type: "Goodbye", connId: 0, reason: v.reason });
    this.transport.flush();
    this.shutdown(new ConnectionClosedError(v.reason, "local", v));
    this.transport.close();
  }

  private report(info: { rule: string; reason: string; direction: "sent" | "received"; connId: number }): void {
    try {
      // mutation: equivalent — without `?.` a missing hook throws a TypeError, which the catch ignores.
      this.options.onProtocolError?.(info);
    } catch {
      // ignore hook failures
    }
  }

  private transportClosed(cause?: Error): void {
    // mutation: equivalent — (-> false) shutdown itself returns when the link is already closed.
    if (this.closedError) return;
    this.shutdown(new ConnectionClosedError(cause?.message, "transport", cause));
  }

  /** Fails everything and marks the link closed (the transport is closed by the caller). */
  private shutdown(error: RoamError): void {
    // mutation: equivalent — every caller (close, onGoodbye via receive, linkViolation,
    // transportClosed, the Hello timer) checks closedError first: shutdown runs once.
    if (this.closedError) return;
    this.closedError = error;
    // mutation: equivalent — the `idleTimer !== null` test: see checkIdle (a leftover interval
    // finds the link closed and returns).
    if (this.idleTimer !== null) clearInterval(this.idleTimer);
    this.idleTimer = null;
    this.inbound.clear();
    this.connections.shutdown(error);
    // mutation: equivalent — the reset arrays' contents (readyWaiters, closeListeners): shutdown
    // runs once, and after it ready() and onClose() settle at once without touching them.
    const rw = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of rw) w.reject(error);
    const ls = this.closeListeners;
    this.closeListeners = [];
    for (const l of ls) {
      try {
        l(error);
      } catch {
        // ignore
      }
    }
  }

  /**
   * Closes the link: Goodbye on connection 0 (empty reason = graceful), then
   * the transport. Every pending call rejects with ConnectionClosedError.
   */
  close(reason = ""): void {
    if (this.closedError) return;
    if (this.negotiated) {
      this.transport.send({ type: "Goodbye", connId: 0, reason });
      this.transport.flush();
    }
    this.shutdown(new ConnectionClosedError(reason || undefined, "local"));
    this.transport.close();
  }
}
