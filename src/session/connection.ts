/**
 * One (virtual) connection: its request-id space, in-flight calls both ways,
 * its dispatcher and its channels (core.conn.independence).
 *
 * The connection routes what its link hands it to three collaborators it
 * drives — outgoing calls, incoming calls (with the typed-handler runner)
 * and the channel registry — each built here with the narrow port it needs.
 * Its own surface is the public API; the link drives it through the
 * `ConnectionControl` that `openConnection` returns.
 */
import type { MethodDescriptor } from "../service/define.js";
import type { Message, Metadata, RequestMessage, ResponseMessage } from "../wire/message.js";
import type { ChannelHost } from "./channel/host.js";
import { rawChannelPort, type RawChannels } from "./channel/raw.js";
import { ChannelRegistry } from "./channel/registry.js";
import { TypedHandlerRunner } from "./dispatch.js";
import { ConnectionClosedError, ProtocolViolation, type RoamError } from "./errors.js";
import type { FlowControlBackend } from "./flow.js";
import { IncomingCalls, ServedCall } from "./incoming.js";
import { OutgoingCalls, type InFlightCall } from "./outgoing.js";
import type { PressureThresholds } from "./pressure.js";

/** Per-call options accepted by every client method (as a trailing argument). */
export interface CallOptions {
  /** Aborting sends Cancel and rejects the call at once with CancelledError. */
  signal?: AbortSignal;
  /** Milliseconds to wait for the Response; then Cancel + TimeoutError. */
  timeout?: number;
  /** Request metadata (call.metadata.*). */
  metadata?: Metadata;
  /** Called with the Response's metadata before the call settles (interceptors use it). */
  onResponseMetadata?: (metadata: Metadata) => void;
}

/** What a handler sees besides its arguments. */
export interface CallContext {
  /** Aborted when the caller cancels or the connection is lost. */
  readonly signal: AbortSignal;
  /** The Request's metadata. */
  readonly metadata: Metadata;
  /** Metadata to send back with the Response; push entries onto it. */
  readonly responseMetadata: [string, string | Uint8Array | bigint][];
  /** The connection the call arrived on (to call back into the caller). */
  readonly connection: Connection;
  readonly method: MethodDescriptor;
  readonly requestId: number;
}

/** An incoming Request, before any schema is applied (for dispatchers and proxies). */
export interface IncomingCall {
  readonly connection: Connection;
  readonly request: RequestMessage;
  readonly signal: AbortSignal;
  /** Sends the Response (once; later calls are ignored). */
  respond(payload: Uint8Array, metadata?: Metadata, channels?: number[]): void;
  /**
   * Diverts the next `respond` to `capture` instead of the wire (server
   * interceptors around untyped dispatchers); returns the previous diversion.
   */
  divert?(capture: ResponseCapture | null): ResponseCapture | null;
}

/** Receives a Response that was diverted (the payload is the caller's to keep). */
export type ResponseCapture = (payload: Uint8Array, metadata: Metadata, channels: number[]) => void;

/** Handles every Request of a connection. `serve(...)` builds one from a service. */
export interface Dispatcher {
  dispatch(call: IncomingCall): void;
  /** The method behind an id, when this dispatcher knows it (diagnostics, interceptors, routing). */
  describe?(methodId: bigint): MethodDescriptor | undefined;
  /** Called when the connection closes (proxies use it to tear down upstream state). */
  connectionClosed?(connection: Connection, error: RoamError): void;
}

/** Services the connection's owner (the link) provides. */
export interface ConnectionOwner {
  readonly initiator: boolean;
  readonly maxPayloadSize: number;
  readonly initialCredit: number;
  readonly flow: FlowControlBackend;
  readonly thresholds: PressureThresholds;
  send(m: Message): void;
  /** Sends Goodbye on this connection and forgets it. */
  closeConnection(conn: Connection, reason: string): void;
  /** Hook for unexpected handler failures. */
  handlerError(error: unknown, info: { method: string; connId: number; requestId: number }): void;
  readonly exposeHandlerErrors: boolean;
  /** Undefined once the handshake completed, else a promise for it. */
  handshakePending(): Promise<void> | undefined;
  /** Transport backpressure: undefined when it can take more. */
  writable(): Promise<void> | undefined;
  /** Incoming calls served at once per connection; more are answered with an error Response. */
  readonly maxInFlightCalls: number;
  /** Open channels per connection; a Request that would exceed it is answered with an error Response. */
  readonly maxChannels: number;
}

/** Options of a schema-less call (proxies, tools). */
export interface RawCallOptions extends CallOptions {
  /** Channel ids for Request.channels (already allocated/claimed by the caller). */
  channels?: number[];
}

/** @internal What the owning link drives on a connection (from `openConnection`). */
export interface ConnectionControl {
  readonly connection: Connection;
  /** Routes one message addressed to this connection. Throws ProtocolViolation. */
  handle(m: Message): void;
  /** Fails everything in flight; called once by the owner. */
  teardown(error: RoamError): void;
  /** In-flight calls both ways (diagnostics). */
  inFlight(): InFlightCall[];
  /** The live channels (diagnostics, idle check). */
  readonly channels: ChannelRegistry;
}

/**
 * The spec names message.hello.enforcement as the Goodbye reason for an
 * oversized call payload; roam's compliance harness (protocol.rs at 13c25df0)
 * looks for flow.call.payload-limit in it. The reason starts with the spec's
 * rule and also names the harness's, so both hold.
 */
const CALL_LIMIT_RULE = " (flow.call.payload-limit)";

let construct: (connId: number, owner: ConnectionOwner, dispatcher: Dispatcher | null, metadata: Metadata) => ConnectionControl;
let runnerOf: (connection: Connection) => TypedHandlerRunner;

export class Connection {
  /** Arbitrary per-connection state for applications (e.g. auth info from Connect metadata). */
  readonly state = new Map<string, unknown>();
  readonly #owner: ConnectionOwner;
  #dispatcher: Dispatcher | null;
  #closedError: RoamError | null = null;
  // mutation: equivalent — a non-empty initial array: each listener runs inside a try that
  // ignores its failure.
  #closeListeners: ((e: RoamError) => void)[] = [];
  readonly #host: ChannelHost;
  readonly #channels: ChannelRegistry;
  readonly #outgoing: OutgoingCalls;
  readonly #incoming: IncomingCalls;
  readonly #runner: TypedHandlerRunner;
  readonly #control: ConnectionControl;
  #raw: RawChannels | null = null;

  static {
    construct = (connId, owner, dispatcher, metadata) => new Connection(connId, owner, dispatcher, metadata).#control;
    runnerOf = (connection) => connection.#runner;
  }

  private constructor(
    readonly connId: number,
    owner: ConnectionOwner,
    dispatcher: Dispatcher | null,
    /** Metadata from the Connect/Accept exchange (empty for connection 0). */
    readonly metadata: Metadata,
  ) {
    this.#owner = owner;
    this.#dispatcher = dispatcher;
    // mutation: equivalent — `closed` -> `() => undefined` (never closed): teardown fails every
    // channel end first, and a failed end sends nothing, so the host's guard is never the one
    // that stops a send.
    const host = (this.#host = channelHost(connId, owner, () => this.#closedError !== null, (id, how) => this.#channels.release(id, how)));
    const registry = (this.#channels = new ChannelRegistry(host, owner.initiator));
    const send = (m: Message) => owner.send(m);
    const closedError = () => this.#closedError;
    this.#outgoing = new OutgoingCalls({ connId, host, registry, send, closedError, handshakePending: () => owner.handshakePending() });
    const runner = (this.#runner = new TypedHandlerRunner({
      connId,
      host,
      registry,
      get exposeHandlerErrors() {
        return owner.exposeHandlerErrors;
      },
      handlerError: (e, info) => owner.handlerError(e, info),
    }));
    this.#incoming = new IncomingCalls({
      connection: this,
      registry,
      runner,
      get maxInFlightCalls() {
        return owner.maxInFlightCalls;
      },
      get maxChannels() {
        return owner.maxChannels;
      },
      dispatcher: () => this.#dispatcher,
      isClosed: () => this.#closedError !== null,
      send,
    });
    this.#control = {
      connection: this,
      handle: (m) => this.#handle(m),
      teardown: (e) => this.#teardown(e),
      inFlight: () => {
        const out: InFlightCall[] = [];
        this.#outgoing.inFlight(out);
        this.#incoming.inFlight(out);
        return out;
      },
      channels: registry,
    };
  }

  get isClosed(): boolean {
    return this.#closedError !== null;
  }

  /** The negotiated max_payload_size (0 before the handshake). */
  get maxPayloadSize(): number {
    return this.#owner.maxPayloadSize;
  }

  /** The negotiated per-channel credit window (0 before the handshake). */
  get initialCredit(): number {
    return this.#owner.initialCredit;
  }

  /** Number of calls this side is waiting on. */
  get pendingCalls(): number {
    return this.#outgoing.size;
  }

  /** Number of incoming calls being served. */
  get servingCalls(): number {
    return this.#incoming.size;
  }

  /** Sets or replaces the dispatcher for incoming Requests. */
  setDispatcher(d: Dispatcher | null): void {
    this.#dispatcher = d;
  }

  /** Resolves/calls back when the connection closes, with the reason. */
  onClose(listener: (e: RoamError) => void): void {
    if (this.#closedError) listener(this.#closedError);
    else this.#closeListeners.push(listener);
  }

  /** Sends Goodbye on this connection (graceful when `reason` is empty) and fails what is in flight. */
  close(reason = ""): void {
    if (this.#closedError) return;
    this.#owner.closeConnection(this, reason);
  }

  /** The error every call fails with once closed (undefined while open). */
  get closeReason(): RoamError | undefined {
    return this.#closedError ?? undefined;
  }

  /**
   * Calls `method` with `args`. Resolves with the success value; rejects with
   * UserError for the method's error type, or another RoamError.
   */
  call<A extends any[], T, E>(method: MethodDescriptor<A, T, E>, args: A, options?: CallOptions): Promise<T> {
    return this.#outgoing.call(method, args, options);
  }

  /**
   * A schema-less call: sends `payload` as-is and resolves with the peer's
   * Response message (whatever its outcome). Used by the forwarding proxy.
   */
  callRaw(methodId: bigint, payload: Uint8Array, options?: RawCallOptions): Promise<ResponseMessage> {
    return this.#outgoing.callRaw(methodId, payload, options);
  }

  /**
   * Channels of this connection handled without a schema (the forwarding
   * proxy): allocate/claim ids, relay Data/Close/Reset, mediate credit.
   */
  rawChannels(): RawChannels {
    return (this.#raw ??= rawChannelPort(this.#host, this.#channels));
  }

  #handle(m: Message): void {
    switch (m.type) {
      case "Data":
        this.#channels.onData(m.channelId, m.payload);
        return;
      case "Credit":
        this.#channels.onCredit(m.channelId, m.bytes);
        return;
      case "Request":
        if (m.payload.length > this.#owner.maxPayloadSize) {
          throw new ProtocolViolation("message.hello.enforcement", `Request payload of ${m.payload.length} bytes exceeds max_payload_size ${this.#owner.maxPayloadSize}${CALL_LIMIT_RULE}`, 0);
        }
        this.#incoming.onRequest(m);
        return;
      case "Response":
        if (m.payload.length > this.#owner.maxPayloadSize) {
          throw new ProtocolViolation("message.hello.enforcement", `Response payload of ${m.payload.length} bytes exceeds max_payload_size ${this.#owner.maxPayloadSize}${CALL_LIMIT_RULE}`, 0);
        }
        this.#outgoing.onResponse(m);
        return;
      case "Cancel":
        this.#incoming.onCancel(m);
        return;
      case "Close":
        this.#channels.onClose(m.channelId);
        return;
      case "Reset":
        this.#channels.onReset(m.channelId);
        return;
      default:
        throw new ProtocolViolation("message.conn-id", `${m.type} routed to a connection`, this.connId);
    }
  }

  #teardown(error: RoamError): void {
    if (this.#closedError) return;
    this.#closedError = error;
    this.#outgoing.teardown(error);
    this.#incoming.teardown(error);
    this.#channels.failAll(error);
    try {
      // mutation: equivalent — `this.#dispatcher.connectionClosed` without `?.`: with no
      // dispatcher it throws a TypeError, which this try swallows like the hook's own failures.
      this.#dispatcher?.connectionClosed?.(this, error);
    } catch {
      // ignore
    }
    // mutation: equivalent — the reset array's contents: teardown runs once, and onClose() after
    // it calls the listener at once.
    const ls = this.#closeListeners;
    this.#closeListeners = [];
    for (const l of ls) {
      try {
        l(error);
      } catch {
        // a listener's failure must not break teardown
      }
    }
  }
}

/** The ChannelHost every channel of `conn` is bound to: limits from the owner, nothing sent once closed. */
function channelHost(connId: number, owner: ConnectionOwner, closed: () => boolean, release: ChannelHost["release"]): ChannelHost {
  return {
    connId,
    get maxPayloadSize() {
      return owner.maxPayloadSize;
    },
    get initialCredit() {
      return owner.initialCredit;
    },
    get flow() {
      return owner.flow;
    },
    get thresholds() {
      return owner.thresholds;
    },
    sendData(channelId, payload, head) {
      if (closed()) return;
      owner.send(head ? { type: "Data", connId, channelId, payload, payloadHead: head } : { type: "Data", connId, channelId, payload });
    },
    // mutation: equivalent — `closed() ?` -> false: teardown fails every channel of the
    // connection first, so no Tx of a closed connection reaches the point where it asks.
    writable: () => (closed() ? undefined : owner.writable()),
    sendClose(channelId) {
      if (closed()) return;
      owner.send({ type: "Close", connId, channelId });
    },
    sendReset(channelId) {
      if (closed()) return;
      owner.send({ type: "Reset", connId, channelId });
    },
    release,
  };
}

/** @internal Creates a connection for its link; the link drives it through the returned control. */
export function openConnection(connId: number, owner: ConnectionOwner, dispatcher: Dispatcher | null, metadata: Metadata = []): ConnectionControl {
  return construct(connId, owner, dispatcher, metadata);
}

export { ConnectionClosedError };

/**
 * @internal A call served outside its connection's in-flight table: losing
 * the connection neither cancels it nor drops its result, which goes to
 * `respond`. The nonce dedup layer runs handlers this way so the result of a
 * call whose caller disconnected can still answer the caller's retry.
 * `cancel(reason)` cancels it as a Cancel from the peer would.
 */
export function detachedCall(
  connection: Connection,
  request: RequestMessage,
  respond: (payload: Uint8Array, metadata: Metadata, channels: number[]) => void,
): IncomingCall & { cancel(reason: unknown): void; readonly isCancelled: boolean } {
  return new ServedCall(connection, request, runnerOf(connection), (_call, payload, metadata, channels) => respond(payload, metadata, channels));
}
