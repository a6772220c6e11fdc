/**
 * A link: one transport instance carrying connection 0 and any virtual
 * connections (core.link, core.conn.*). Transport-agnostic: the handshake
 * and flow-control mechanisms come from backends.
 */
import { linkDiagnostics, trackLink, type LinkDiagnostics } from "./diagnostics.js";
import { checkMetadataLimits, dataPayload, type AcceptMessage, type ConnectMessage, type Message, type Metadata, type RejectMessage } from "../wire/message.js";
import { openConnection, type Connection, type ConnectionControl, type ConnectionOwner, type Dispatcher } from "./connection.js";
import { ConnectionClosedError, ConnectionRejectedError, EncodeFailedError, ProtocolViolation, type RoamError } from "./errors.js";
import { CreditMessageFlowControl, type FlowControlBackend } from "./flow.js";
import type { HandshakeBackend, Negotiated } from "./handshake.js";
import { DEFAULT_THRESHOLDS, type PressureThresholds } from "./pressure.js";
import type { MessageTransport, TransportSink } from "./transport.js";

export interface LinkOptions {
  /** True for the side that opened the link (odd channel ids). */
  initiator: boolean;
  handshake: HandshakeBackend;
  /** Builds the flow-control backend; default: Credit messages. */
  flowControl?: (send: (m: Message) => void) => FlowControlBackend;
  /** Serves incoming calls on connection 0. */
  dispatcher?: Dispatcher | null;
  /** Watermarks for channel level events. */
  thresholds?: Partial<PressureThresholds>;
  /** Called when a handler throws unexpectedly (default: console.error). */
  onHandlerError?: (error: unknown, info: { method: string; connId: number; requestId: number }) => void;
  /** Called for every protocol violation, sent or received (default: none). */
  onProtocolError?: (info: { rule: string; reason: string; direction: "sent" | "received"; connId: number }) => void;
  /** Send the handler's exception message to the caller (default true). */
  exposeHandlerErrors?: boolean;
  /** How long `connect()` waits for Accept/Reject (default 30 s). */
  connectTimeoutMs?: number;
  /** Max Connects waiting for the application to accept (default 128). */
  acceptBacklog?: number;
  /** How long to wait for the peer's Hello before giving up (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * Reply bytes (Responses, Accept/Reject, Goodbye, Credit) queued for the
   * peer above which the link stops reading from it until they drain to half
   * (default 2 MiB). Bounds what a peer that sends but never reads can make
   * us buffer; see docs/limits.md.
   */
  replyHighWaterMark?: number;
  /** Incoming calls served at once per connection (default 1024); more get an error Response. */
  maxInFlightCalls?: number;
  /** Open channels per connection (default 4096); a Request that would exceed it gets an error Response. */
  maxChannels?: number;
  /** Virtual connections the peer may have open on this link (default 1024); more Connects are rejected. */
  maxConnections?: number;
  /**
   * Closes the link after this long without any message from the peer while
   * nothing is in flight: no calls either way, no open channels, no pending
   * Connect (default 0 = never; servers default to 5 minutes). A link with
   * open channels or calls is never closed for being idle.
   */
  idleTimeoutMs?: number;
}

/** Defaults of the per-link limits (see docs/limits.md). */
export const DEFAULT_LINK_LIMITS = {
  maxInFlightCalls: 1024,
  maxChannels: 4096,
  maxConnections: 1024,
  /** Closed connection ids and abandoned Connect ids remembered (to tell late from unknown). */
  recentIds: 4096,
} as const;

/** A set of recently ended ids with a fixed capacity (the oldest is forgotten). */
class RecentSet {
  private readonly set = new Set<number>();
  constructor(private readonly limit: number) {}
  add(id: number): void {
    this.set.delete(id);
    this.set.add(id);
    if (this.set.size > this.limit) this.set.delete(this.set.values().next().value as number);
  }
  has(id: number): boolean {
    return this.set.has(id);
  }
  delete(id: number): boolean {
    return this.set.delete(id);
  }
}

/** Default of `LinkOptions.replyHighWaterMark`. */
export const DEFAULT_REPLY_HIGH_WATER_MARK = 2 * 1024 * 1024;
/**
 * Messages held while reading is paused: what was already read when the
 * pause began (the rest of one read). A transport that cannot pause reading
 * (a browser WebSocket) ends the link instead of holding more than this.
 */
const MAX_DEFERRED_MESSAGES = 65_536;
/**
 * Time one link may spend handling received messages in one turn of the
 * event loop: a read can hold thousands of messages, each starting a
 * handler, and the rest waits for the next turn (timers, other links).
 */
const TURN_BUDGET_MS = 10;
/** Runs `f` in a later turn of the event loop (browsers have no setImmediate). */
const nextTurn: (f: () => void) => void = typeof setImmediate === "function" ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/** A Connect received while listening: accept or reject it. */
export interface IncomingConnection {
  readonly metadata: Metadata;
  /** Accepts; the returned connection is usable at once. */
  accept(dispatcher: Dispatcher | null, metadata?: Metadata): Connection;
  reject(reason: string, metadata?: Metadata): void;
}

interface PendingConnect {
  resolve: (c: Connection) => void;
  reject: (e: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  dispatcher: Dispatcher | null;
}

export class Link implements ConnectionOwner {
  readonly initiator: boolean;
  private negotiated: Negotiated | null = null;
  private readyWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private readonly connections = new Map<number, ConnectionControl>();
  private readonly recentlyClosed = new RecentSet(DEFAULT_LINK_LIMITS.recentIds);
  /** Connect request ids we gave up on (timeout): a late Accept for one is expected. */
  private readonly abandonedConnects = new RecentSet(DEFAULT_LINK_LIMITS.recentIds);
  private nextConnId = 1;
  private nextConnectRequestId = 1;
  private readonly pendingConnects = new Map<number, PendingConnect>();
  private readonly peerConnectIds = new Set<number>();
  private listening = false;
  private backlog: IncomingConnection[] = [];
  private backlogWaiter: ((v: IteratorResult<IncomingConnection>) => void) | null = null;
  private autoAccept: ((metadata: Metadata) => Dispatcher | null) | null = null;
  private closedError: RoamError | null = null;
  private closeListeners: ((e: RoamError) => void)[] = [];
  private preHandshake: Message[] = [];
  /** Reading is paused: replies back up (see replyHighWaterMark). */
  private inboundPaused = false;
  private deferred: Message[] = [];
  private deferredHead = 0;
  private readonly replyMark: number;
  readonly root: Connection;
  readonly flow: FlowControlBackend;
  readonly thresholds: PressureThresholds;
  readonly exposeHandlerErrors: boolean;
  readonly maxInFlightCalls: number;
  readonly maxChannels: number;
  private readonly maxConnections: number;
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
    this.replyMark = options.replyHighWaterMark ?? DEFAULT_REPLY_HIGH_WATER_MARK;
    this.maxInFlightCalls = options.maxInFlightCalls ?? DEFAULT_LINK_LIMITS.maxInFlightCalls;
    this.maxChannels = options.maxChannels ?? DEFAULT_LINK_LIMITS.maxChannels;
    this.maxConnections = options.maxConnections ?? DEFAULT_LINK_LIMITS.maxConnections;
    const send = (m: Message) => this.send(m);
    this.flow = options.flowControl
      ? options.flowControl(send)
      : new CreditMessageFlowControl((connId, channelId, bytes) => this.send({ type: "Credit", connId, channelId, bytes }));
    const root = openConnection(0, this, options.dispatcher ?? null);
    this.root = root.connection;
    this.connections.set(0, root);
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
    if (!this.negotiated && !this.closedError) {
      const ms = this.options.handshakeTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        if (this.negotiated || this.closedError) return;
        this.shutdown(new ConnectionClosedError(`message.hello.timing: no Hello from the peer within ${ms} ms`, "local"));
        this.transport.close();
      }, ms);
      timer.unref?.();
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

  writable(): Promise<void> | undefined {
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
      this.idleTimer.unref?.();
    }
    const queued = this.preHandshake;
    this.preHandshake = [];
    for (const m of queued) this.transport.send(m);
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of ws) w.resolve();
  }

  // --- ConnectionOwner ---------------------------------------------------------

  send(m: Message): void {
    if (this.closedError) return;
    if (!this.negotiated) {
      // r[message.hello.ordering]: hold everything until both Hellos; copy the
      // payload since callers may reuse its buffer.
      this.preHandshake.push(m.type === "Data" ? { type: "Data", connId: m.connId, channelId: m.channelId, payload: dataPayload(m).slice() } : "payload" in m ? { ...m, payload: m.payload.slice() } : m);
      return;
    }
    this.transport.send(m);
    // Credit is what a waiting sender needs to continue: do not hold it back
    // until the end of this event-loop turn.
    if (m.type === "Credit") this.transport.flush();
  }

  closeConnection(conn: Connection, reason: string): void {
    if (conn.connId === 0) {
      this.close(reason);
      return;
    }
    const control = this.connections.get(conn.connId);
    if (control === undefined || control.connection !== conn) return;
    this.send({ type: "Goodbye", connId: conn.connId, reason });
    this.forget(control, new ConnectionClosedError(reason || undefined, "local"));
  }

  handlerError(error: unknown, info: { method: string; connId: number; requestId: number }): void {
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
  async connect(options: { metadata?: Metadata; dispatcher?: Dispatcher | null; timeoutMs?: number } = {}): Promise<Connection> {
    await this.ready();
    if (this.closedError) throw this.closedError;
    const metadata = options.metadata ?? [];
    const problem = checkMetadataLimits(metadata);
    if (problem) throw new EncodeFailedError("Connect metadata", `${problem} (call.metadata.limits)`);
    const requestId = this.nextConnectRequestId++;
    const timeoutMs = options.timeoutMs ?? this.options.connectTimeoutMs ?? 30_000;
    return new Promise<Connection>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pendingConnects.delete(requestId)) {
          this.abandonedConnects.add(requestId);
          reject(new ConnectionRejectedError(`no Accept or Reject within ${timeoutMs} ms (message.connect.timeout)`, []));
        }
      }, timeoutMs);
      timer.unref?.();
      this.pendingConnects.set(requestId, { resolve, reject, timer, dispatcher: options.dispatcher ?? null });
      this.send({ type: "Connect", requestId, metadata });
    });
  }

  /**
   * Starts listening for virtual connections (core.conn.accept-required) and
   * yields each Connect to accept or reject. Leaving the loop stops listening.
   */
  incomingConnections(): AsyncIterableIterator<IncomingConnection> {
    this.listening = true;
    const self = this;
    const it: AsyncIterableIterator<IncomingConnection> = {
      next(): Promise<IteratorResult<IncomingConnection>> {
        const c = self.backlog.shift();
        if (c) return Promise.resolve({ value: c, done: false });
        if (self.closedError || !self.listening) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          self.backlogWaiter = resolve;
        });
      },
      async return(): Promise<IteratorResult<IncomingConnection>> {
        self.stopListening();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  /** Accepts every virtual connection, serving it with `dispatcherFor(metadata)`. */
  acceptConnections(dispatcherFor: (metadata: Metadata) => Dispatcher | null): void {
    this.listening = true;
    this.autoAccept = dispatcherFor;
  }

  /** Stops listening; Connects still queued are rejected. */
  stopListening(): void {
    this.listening = false;
    this.autoAccept = null;
    const queued = this.backlog;
    this.backlog = [];
    for (const c of queued) c.reject("not listening");
    const w = this.backlogWaiter;
    this.backlogWaiter = null;
    w?.({ value: undefined, done: true });
  }

  /** Live connections (including 0). */
  get connectionCount(): number {
    return this.connections.size;
  }

  private allocateConnId(): number {
    while (this.connections.has(this.nextConnId) || this.recentlyClosed.has(this.nextConnId)) this.nextConnId++;
    return this.nextConnId++;
  }

  private onConnect(m: ConnectMessage): void {
    const problem = checkMetadataLimits(m.metadata);
    if (problem) throw new ProtocolViolation("call.metadata.limits", `Connect metadata: ${problem}`, 0);
    if (this.peerConnectIds.has(m.requestId)) {
      throw new ProtocolViolation("message.connect.request-id", `Connect request id ${m.requestId} is already in flight`, 0);
    }
    const reject = (reason: string, metadata: Metadata = []) => {
      this.peerConnectIds.delete(m.requestId);
      this.send({ type: "Reject", requestId: m.requestId, reason, metadata });
    };
    if (!this.listening) {
      reject("not listening");
      return;
    }
    // r[message.reject.response]: over the limit is a Reject, not growth.
    if (this.connections.size - 1 + this.backlog.length + this.peerConnectIds.size >= this.maxConnections) {
      reject(`too many connections: ${this.maxConnections} are open on this link (maxConnections)`);
      return;
    }
    this.peerConnectIds.add(m.requestId);
    let settled = false;
    const incoming: IncomingConnection = {
      metadata: m.metadata,
      accept: (dispatcher, metadata = []) => {
        if (settled) throw new Error("this connection request was already accepted or rejected");
        if (this.closedError) throw this.closedError;
        settled = true;
        this.peerConnectIds.delete(m.requestId);
        const connId = this.allocateConnId();
        const conn = openConnection(connId, this, dispatcher, m.metadata);
        this.connections.set(connId, conn);
        this.send({ type: "Accept", requestId: m.requestId, connId, metadata });
        return conn.connection;
      },
      reject: (reason, metadata = []) => {
        if (settled) return;
        settled = true;
        reject(reason, metadata);
      },
    };
    if (this.autoAccept) {
      incoming.accept(this.autoAccept(m.metadata));
      return;
    }
    if (this.backlog.length >= (this.options.acceptBacklog ?? 128)) {
      incoming.reject("backlog full");
      return;
    }
    const w = this.backlogWaiter;
    if (w) {
      this.backlogWaiter = null;
      w({ value: incoming, done: false });
    } else {
      this.backlog.push(incoming);
    }
  }

  private onAccept(m: AcceptMessage): void {
    const pc = this.pendingConnects.get(m.requestId);
    if (m.connId === 0 || this.connections.has(m.connId)) {
      throw new ProtocolViolation("core.conn.id-allocation", `Accept assigned connection id ${m.connId}, which is ${m.connId === 0 ? "reserved" : "in use"}`, 0);
    }
    if (!pc) {
      if (!this.abandonedConnects.delete(m.requestId)) {
        throw new ProtocolViolation("message.accept.response", `Accept for Connect request ${m.requestId}, which is not in flight`, 0);
      }
      // Late Accept for a Connect we gave up on: close that connection again.
      this.send({ type: "Goodbye", connId: m.connId, reason: "message.connect.timeout: Connect was abandoned" });
      this.recentlyClosed.add(m.connId);
      return;
    }
    this.pendingConnects.delete(m.requestId);
    clearTimeout(pc.timer);
    const problem = checkMetadataLimits(m.metadata);
    if (problem) throw new ProtocolViolation("call.metadata.limits", `Accept metadata: ${problem}`, 0);
    const conn = openConnection(m.connId, this, pc.dispatcher, m.metadata);
    this.connections.set(m.connId, conn);
    pc.resolve(conn.connection);
  }

  private onReject(m: RejectMessage): void {
    const pc = this.pendingConnects.get(m.requestId);
    if (!pc) return;
    this.pendingConnects.delete(m.requestId);
    clearTimeout(pc.timer);
    pc.reject(new ConnectionRejectedError(m.reason, m.metadata));
  }

  // --- receiving ----------------------------------------------------------------

  private receive(m: Message): void {
    if (this.closedError) return;
    const now = performance.now();
    this.lastReceived = now;
    if (this.inboundPaused) {
      // The rest of a read that arrived as the pause began: keep the order.
      if (this.deferred.length - this.deferredHead >= MAX_DEFERRED_MESSAGES) {
        this.close(`flow.backpressure: the peer sent more than ${MAX_DEFERRED_MESSAGES} messages without reading our replies`);
        return;
      }
      this.deferred.push(m);
      return;
    }
    if (this.turnStart === 0) {
      this.turnStart = now;
      nextTurn(this.endTurn);
    }
    this.handle(m);
    if (this.transport.replyBacklog !== undefined && this.transport.replyBacklog() > this.replyMark) this.pauseInbound();
    else if (performance.now() - this.turnStart > TURN_BUDGET_MS) this.yieldInbound();
  }

  /** performance.now() when this turn's first message was handled (0: none yet). */
  private turnStart = 0;
  private readonly endTurn = (): void => {
    this.turnStart = 0;
  };

  /** This turn's budget is spent: hold what else arrives and go on in the next turn. */
  private yieldInbound(): void {
    if (this.inboundPaused || this.closedError) return;
    this.inboundPaused = true;
    this.transport.pauseReading?.();
    nextTurn(this.resumeInbound);
  }

  /** Replies back up: stop reading until they drained to half the mark. */
  private pauseInbound(): void {
    const t = this.transport;
    if (this.inboundPaused || this.closedError || t.onReplyDrain === undefined) return;
    this.inboundPaused = true;
    t.pauseReading?.();
    // Resume in a later turn: the drain can be reported from the write's
    // own callback, and resuming there would chain turn-less work.
    t.onReplyDrain(this.replyMark / 2, () => nextTurn(this.resumeInbound));
  }

  private readonly resumeInbound = (): void => {
    this.inboundPaused = false;
    if (this.closedError) return;
    const t = this.transport;
    const start = performance.now();
    while (this.deferredHead < this.deferred.length && !this.closedError) {
      const m = this.deferred[this.deferredHead]!;
      this.deferred[this.deferredHead++] = undefined as never;
      this.handle(m);
      if (t.replyBacklog !== undefined && t.replyBacklog() > this.replyMark) {
        this.pauseInbound();
        return;
      }
      if (performance.now() - start > TURN_BUDGET_MS && this.deferredHead < this.deferred.length) {
        this.inboundPaused = true;
        nextTurn(this.resumeInbound);
        return;
      }
    }
    this.deferred = [];
    this.deferredHead = 0;
    if (!this.closedError) t.resumeReading?.();
  };

  /** Closes the link if nothing happened for `idle` ms and nothing is in flight. */
  private checkIdle(idle: number): void {
    if (this.closedError || performance.now() - this.lastReceived < idle) return;
    if (this.pendingConnects.size > 0 || this.backlog.length > 0) return;
    for (const c of this.connections.values()) if (c.connection.pendingCalls > 0 || c.connection.servingCalls > 0 || c.channels.openCount > 0) return;
    this.close(`idle: no message for ${idle} ms and nothing in flight (idleTimeoutMs)`);
  }

  /** Whether reading from the peer is paused because our replies back up. */
  get readingPaused(): boolean {
    return this.inboundPaused;
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
          this.onConnect(m);
          return;
        case "Accept":
          this.onAccept(m);
          return;
        case "Reject":
          this.onReject(m);
          return;
        case "Goodbye":
          this.onGoodbye(m.connId, m.reason);
          return;
        default: {
          const conn = this.connections.get(m.connId);
          if (conn === undefined) {
            if (this.recentlyClosed.has(m.connId)) return; // crossed our Goodbye
            throw new ProtocolViolation("message.conn-id", `${m.type} for unknown connection ${m.connId}`, 0);
          }
          try {
            conn.handle(m);
          } catch (e) {
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
    this.forget(conn, new ConnectionClosedError(reason || undefined, "remote"));
  }

  private forget(conn: ConnectionControl, error: RoamError): void {
    this.connections.delete(conn.connection.connId);
    this.recentlyClosed.add(conn.connection.connId);
    conn.teardown(error);
  }

  private connectionViolation(conn: ConnectionControl, v: ProtocolViolation): void {
    const connId = conn.connection.connId;
    this.report({ rule: v.rule, reason: v.reason, direction: "sent", connId });
    this.send({ type: "Goodbye", connId, reason: v.reason });
    this.forget(conn, new ConnectionClosedError(v.reason, "local", v));
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
      this.options.onProtocolError?.(info);
    } catch {
      // ignore hook failures
    }
  }

  private transportClosed(cause?: Error): void {
    if (this.closedError) return;
    this.shutdown(new ConnectionClosedError(cause?.message, "transport", cause));
  }

  /** Fails everything and marks the link closed (the transport is closed by the caller). */
  private shutdown(error: RoamError): void {
    if (this.closedError) return;
    this.closedError = error;
    if (this.idleTimer !== null) clearInterval(this.idleTimer);
    this.idleTimer = null;
    this.deferred = [];
    this.deferredHead = 0;
    for (const conn of this.connections.values()) conn.teardown(error);
    this.connections.clear();
    for (const pc of this.pendingConnects.values()) {
      clearTimeout(pc.timer);
      pc.reject(error);
    }
    this.pendingConnects.clear();
    this.stopListening();
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
