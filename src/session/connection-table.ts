/**
 * The connections of one link: connection 0 and the virtual connections
 * opened either way (core.conn.*) — Connect/Accept/Reject, the accept
 * backlog, id allocation, and the bounded memory of closed ids that tells a
 * late message from an unknown one. Driven by its link, which routes the
 * connection-level messages here and looks connections up for the rest.
 */
import { checkMetadataLimits, type AcceptMessage, type ConnectMessage, type Message, type Metadata, type RejectMessage } from "../wire/message.js";
import type { Connection, ConnectionControl, Dispatcher } from "./connection.js";
import { ConnectionRejectedError, EncodeFailedError, ProtocolViolation, type RoamError } from "./errors.js";

/** Closed connection ids and abandoned Connect ids remembered (to tell late from unknown). */
export const RECENT_CONNECTION_IDS = 4096;

/** A Connect received while listening: accept or reject it. */
export interface IncomingConnection {
  readonly metadata: Metadata;
  /** Accepts; the returned connection is usable at once. */
  accept(dispatcher: Dispatcher | null, metadata?: Metadata): Connection;
  reject(reason: string, metadata?: Metadata): void;
}

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

interface PendingConnect {
  resolve: (c: Connection) => void;
  reject: (e: unknown) => void;
  timer: ReturnType<typeof setTimeout>;
  dispatcher: Dispatcher | null;
}

/** @internal What the connection table needs from its link. */
export interface TablePort {
  send(m: Message): void;
  /** Creates connection `connId` on this link. */
  open(connId: number, dispatcher: Dispatcher | null, metadata: Metadata): ConnectionControl;
  /** The error the link closed with; null while open. */
  closedError(): RoamError | null;
  /** Resolves once the handshake completed. */
  ready(): Promise<void>;
  /** How long `connect()` waits for Accept/Reject by default. */
  readonly connectTimeoutMs: number;
  /** Max Connects waiting for the application to accept. */
  readonly acceptBacklog: number;
  /** Virtual connections the peer may have open. */
  readonly maxConnections: number;
}

/** @internal A link's connections (see the top of this file). */
export class ConnectionTable {
  readonly #connections = new Map<number, ConnectionControl>();
  readonly #recentlyClosed = new RecentSet(RECENT_CONNECTION_IDS);
  /** Connect request ids we gave up on (timeout): a late Accept for one is expected. */
  readonly #abandonedConnects = new RecentSet(RECENT_CONNECTION_IDS);
  #nextConnId = 1;
  #nextConnectRequestId = 1;
  readonly #pendingConnects = new Map<number, PendingConnect>();
  readonly #peerConnectIds = new Set<number>();
  #listening = false;
  #backlog: IncomingConnection[] = [];
  #backlogWaiter: ((v: IteratorResult<IncomingConnection>) => void) | null = null;
  #autoAccept: ((metadata: Metadata) => Dispatcher | null) | null = null;

  constructor(
    private readonly port: TablePort,
    root: ConnectionControl,
  ) {
    this.#connections.set(0, root);
  }

  /** Live connections (including 0). */
  get size(): number {
    return this.#connections.size;
  }

  get(connId: number): ConnectionControl | undefined {
    return this.#connections.get(connId);
  }

  values(): IterableIterator<ConnectionControl> {
    return this.#connections.values();
  }

  /** A connection we closed recently (a message for it crossed our Goodbye). */
  recentlyClosed(connId: number): boolean {
    return this.#recentlyClosed.has(connId);
  }

  /** Nothing in flight on any connection, no Connect pending either way (idle check). */
  get quiet(): boolean {
    if (this.#pendingConnects.size > 0 || this.#backlog.length > 0) return false;
    for (const c of this.#connections.values()) if (c.connection.pendingCalls > 0 || c.connection.servingCalls > 0 || c.channels.openCount > 0) return false;
    return true;
  }

  /** Removes a connection and tears it down with `error`; its id is remembered as closed. */
  forget(conn: ConnectionControl, error: RoamError): void {
    this.#connections.delete(conn.connection.connId);
    this.#recentlyClosed.add(conn.connection.connId);
    conn.teardown(error);
  }

  /** The link closed: every connection and pending Connect fails with `error`. */
  shutdown(error: RoamError): void {
    for (const conn of this.#connections.values()) conn.teardown(error);
    this.#connections.clear();
    for (const pc of this.#pendingConnects.values()) {
      clearTimeout(pc.timer);
      pc.reject(error);
    }
    this.#pendingConnects.clear();
    this.stopListening();
  }

  /**
   * Opens a virtual connection (core.conn.open). `dispatcher` serves calls the
   * peer makes on it. Rejects with ConnectionRejectedError on Reject.
   */
  async connect(options: { metadata?: Metadata; dispatcher?: Dispatcher | null; timeoutMs?: number } = {}): Promise<Connection> {
    await this.port.ready();
    const closed = this.port.closedError();
    if (closed) throw closed;
    const metadata = options.metadata ?? [];
    const problem = checkMetadataLimits(metadata);
    if (problem) throw new EncodeFailedError("Connect metadata", `${problem} (call.metadata.limits)`);
    const requestId = this.#nextConnectRequestId++;
    const timeoutMs = options.timeoutMs ?? this.port.connectTimeoutMs;
    return new Promise<Connection>((resolve, reject) => {
      const timer = setTimeout(() => {
        // mutation: equivalent — `-> true`: every path that removes the entry (Accept, Reject,
        // shutdown) clears this timer first, so it only fires while the entry is there.
        if (this.#pendingConnects.delete(requestId)) {
          this.#abandonedConnects.add(requestId);
          reject(new ConnectionRejectedError(`no Accept or Reject within ${timeoutMs} ms (message.connect.timeout)`, []));
        }
      }, timeoutMs);
      // mutation: equivalent — `unref()` without `?.`: Node timers always have unref.
      timer.unref?.();
      this.#pendingConnects.set(requestId, { resolve, reject, timer, dispatcher: options.dispatcher ?? null });
      this.port.send({ type: "Connect", requestId, metadata });
    });
  }

  /**
   * Starts listening for virtual connections (core.conn.accept-required) and
   * yields each Connect to accept or reject. Leaving the loop stops listening.
   */
  incomingConnections(): AsyncIterableIterator<IncomingConnection> {
    this.#listening = true;
    const it: AsyncIterableIterator<IncomingConnection> = {
      next: (): Promise<IteratorResult<IncomingConnection>> => {
        const c = this.#backlog.shift();
        if (c) return Promise.resolve({ value: c, done: false });
        if (this.port.closedError() || !this.#listening) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#backlogWaiter = resolve;
        });
      },
      return: async (): Promise<IteratorResult<IncomingConnection>> => {
        this.stopListening();
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
    this.#listening = true;
    this.#autoAccept = dispatcherFor;
  }

  /** Stops listening; Connects still queued are rejected. */
  stopListening(): void {
    this.#listening = false;
    this.#autoAccept = null;
    const queued = this.#backlog;
    this.#backlog = [];
    for (const c of queued) c.reject("not listening");
    const w = this.#backlogWaiter;
    this.#backlogWaiter = null;
    w?.({ value: undefined, done: true });
  }

  // mutation: equivalent — `#nextConnId--`: the loop still skips every id in use or recently
  // closed (0 is connection 0), so ids stay unique; only the search gets longer.
  #allocateConnId(): number {
    while (this.#connections.has(this.#nextConnId) || this.#recentlyClosed.has(this.#nextConnId)) this.#nextConnId++;
    return this.#nextConnId++;
  }

  /** A Connect from the peer. Throws ProtocolViolation. */
  onConnect(m: ConnectMessage): void {
    const problem = checkMetadataLimits(m.metadata);
    if (problem) throw new ProtocolViolation("call.metadata.limits", `Connect metadata: ${problem}`, 0);
    if (this.#peerConnectIds.has(m.requestId)) {
      throw new ProtocolViolation("message.connect.request-id", `Connect request id ${m.requestId} is already in flight`, 0);
    }
    const reject = (reason: string, metadata: Metadata = []) => {
      this.#peerConnectIds.delete(m.requestId);
      this.port.send({ type: "Reject", requestId: m.requestId, reason, metadata });
    };
    if (!this.#listening) {
      reject("not listening");
      return;
    }
    // r[message.reject.response]: over the limit is a Reject, not growth. Counted: the open
    // connections other than 0, and every Connect from the peer not yet decided (queued in the
    // backlog or handed to the application, both in #peerConnectIds).
    const max = this.port.maxConnections;
    if (this.#connections.size - 1 + this.#peerConnectIds.size >= max) {
      reject(`too many connections: ${max} are open on this link (maxConnections)`);
      return;
    }
    this.#peerConnectIds.add(m.requestId);
    let settled = false;
    const incoming: IncomingConnection = {
      metadata: m.metadata,
      accept: (dispatcher, metadata = []) => {
        if (settled) throw new Error("this connection request was already accepted or rejected");
        const closed = this.port.closedError();
        if (closed) throw closed;
        settled = true;
        this.#peerConnectIds.delete(m.requestId);
        const connId = this.#allocateConnId();
        const conn = this.port.open(connId, dispatcher, m.metadata);
        this.#connections.set(connId, conn);
        this.port.send({ type: "Accept", requestId: m.requestId, connId, metadata });
        return conn.connection;
      },
      reject: (reason, metadata = []) => {
        if (settled) return;
        settled = true;
        reject(reason, metadata);
      },
    };
    if (this.#autoAccept) {
      incoming.accept(this.#autoAccept(m.metadata));
      return;
    }
    if (this.#backlog.length >= this.port.acceptBacklog) {
      incoming.reject("backlog full");
      return;
    }
    const w = this.#backlogWaiter;
    if (w) {
      this.#backlogWaiter = null;
      w({ value: incoming, done: false });
    } else {
      this.#backlog.push(incoming);
    }
  }

  /** An Accept for one of our Connects. Throws ProtocolViolation. */
  onAccept(m: AcceptMessage): void {
    const pc = this.#pendingConnects.get(m.requestId);
    // mutation: equivalent — `m.connId === 0` -> false: connection 0 is in #connections for the
    // link's whole life, so has() rejects it too (with the same detail).
    if (m.connId === 0 || this.#connections.has(m.connId)) {
      throw new ProtocolViolation("core.conn.id-allocation", `Accept assigned connection id ${m.connId}, which is ${m.connId === 0 ? "reserved" : "in use"}`, 0);
    }
    if (!pc) {
      if (!this.#abandonedConnects.delete(m.requestId)) {
        throw new ProtocolViolation("message.accept.response", `Accept for Connect request ${m.requestId}, which is not in flight`, 0);
      }
      // Late Accept for a Connect we gave up on: close that connection again.
      this.port.send({ type: "Goodbye", connId: m.connId, reason: "message.connect.timeout: Connect was abandoned" });
      this.#recentlyClosed.add(m.connId);
      return;
    }
    // Checked while the Connect is still pending: the violation closes the
    // link, whose teardown rejects this connect() with the rest.
    const problem = checkMetadataLimits(m.metadata);
    if (problem) throw new ProtocolViolation("call.metadata.limits", `Accept metadata: ${problem}`, 0);
    this.#pendingConnects.delete(m.requestId);
    clearTimeout(pc.timer);
    const conn = this.port.open(m.connId, pc.dispatcher, m.metadata);
    this.#connections.set(m.connId, conn);
    pc.resolve(conn.connection);
  }

  /** A Reject for one of our Connects. */
  onReject(m: RejectMessage): void {
    const pc = this.#pendingConnects.get(m.requestId);
    if (!pc) return;
    this.#pendingConnects.delete(m.requestId);
    clearTimeout(pc.timer);
    pc.reject(new ConnectionRejectedError(m.reason, m.metadata));
  }
}
