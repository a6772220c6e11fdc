/**
 * Interceptors: cross-cutting code (auth, logging, metrics, tracing) around
 * every call, in the style of connect-es. An interceptor takes the next step
 * of the chain and returns a step that wraps it:
 *
 *   const logger: ClientInterceptor = (next) => async (req) => {
 *     console.log("->", req.name);
 *     try { return await next(req); } finally { console.log("<-", req.name); }
 *   };
 *   const c = client(Svc, link.root, { interceptors: [logger] });
 *   const d = serve(Svc, impl, { interceptors: [auth, metrics] });
 *   const p = intercept(new ForwardingDispatcher(upstream), [auth]);  // any dispatcher
 *
 * Order: the first interceptor of the list is the outermost — it sees the
 * request first and the response last (as in connect-es and gRPC).
 * Streaming calls pass through once, as a call; an interceptor that wants
 * every element opts in with `req.observeChannels(observer)`.
 * With no interceptors nothing is wrapped: the call path is the plain one.
 */
import type { MethodDescriptor } from "../service/define.js";
import { Reader } from "../codec/reader.js";
import { Writer } from "../codec/writer.js";
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED, RESULT_OK, ROAM_ERROR_INVALID_PAYLOAD, ROAM_ERROR_UNKNOWN_METHOD, ROAM_ERROR_USER } from "../wire/envelope.js";
import type { Metadata, MetadataEntry } from "../wire/message.js";
import { Rx } from "./channel/rx.js";
import { Tx } from "./channel/tx.js";
import type { CallContext, Connection, Dispatcher, IncomingCall } from "./connection.js";
import { CallRejectedError, REJECTED_KEY } from "./rejected.js";
import { UserError } from "./errors.js";

/** One element crossing a channel of an observed call. */
export interface ChannelElement {
  /** "send": this side sent it; "receive": this side received it. */
  readonly direction: "send" | "receive";
  readonly channelId: number | undefined;
  readonly value: unknown;
}
export type ChannelObserver = (element: ChannelElement) => void;

// --- client side ----------------------------------------------------------------

/** An outgoing call as interceptors see it. `args`, `metadata`, `signal`, `timeout` may be changed. */
export interface ClientRequest {
  readonly method: MethodDescriptor;
  /** `Service.method`. */
  readonly name: string;
  readonly connection: Connection;
  args: unknown[];
  /** Request metadata; push entries (e.g. `traceparent`). */
  metadata: MetadataEntry[];
  signal: AbortSignal | undefined;
  timeout: number | undefined;
  /** True when the method has Tx/Rx arguments. */
  readonly streaming: boolean;
  /** Opt in to seeing every element of the call's channels (found in `args`). */
  observeChannels(observer: ChannelObserver): void;
}

/** A completed outgoing call: the success value and the Response metadata. */
export interface ClientResponse<T = unknown> {
  value: T;
  readonly metadata: Metadata;
}

export type ClientNext = (req: ClientRequest) => Promise<ClientResponse>;
/** Failures (UserError, CallRejectedError, TimeoutError, …) arrive as rejections of `next`. */
export type ClientInterceptor = (next: ClientNext) => ClientNext;

/** Builds one step function from `interceptors` around `terminal` (first = outermost). */
export function composeClient(interceptors: readonly ClientInterceptor[], terminal: ClientNext): ClientNext {
  let next = terminal;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next);
  return next;
}

class ClientRequestImpl implements ClientRequest {
  private observer: ChannelObserver | null = null;
  constructor(
    readonly method: MethodDescriptor,
    readonly connection: Connection,
    public args: unknown[],
    public metadata: MetadataEntry[],
    public signal: AbortSignal | undefined,
    public timeout: number | undefined,
  ) {}
  get name(): string {
    return `${this.method.service}.${this.method.name}`;
  }
  get streaming(): boolean {
    return this.method.hasChannels;
  }
  observeChannels(observer: ChannelObserver): void {
    const prev = this.observer;
    this.observer = prev === null ? observer : (e) => (prev(e), observer(e));
    attachObservers(this.args, this.observer);
  }
}

/** Options accepted by the intercepted client call path (subset of CallOptions). */
interface CallOpts {
  signal?: AbortSignal;
  timeout?: number;
  metadata?: Metadata;
}

/** @internal Makes the function a typed client method calls when interceptors are installed. */
export function interceptedCaller(
  connection: Connection,
  method: MethodDescriptor,
  interceptors: readonly ClientInterceptor[],
): (args: unknown[], options: CallOpts | undefined) => Promise<unknown> {
  const terminal: ClientNext = (req) => {
    // mutation: equivalent — any other initial value: Connection.call calls onResponseMetadata with the
    // Response's metadata before it resolves, so the value read in then() is always the assigned one.
    let responseMetadata: Metadata = [];
    return connection
      .call(method, req.args as any[], {
        signal: req.signal,
        timeout: req.timeout,
        metadata: req.metadata,
        onResponseMetadata: (m) => (responseMetadata = m),
      })
      .then((value) => ({ value, metadata: responseMetadata }));
  };
  const chain = composeClient(interceptors, terminal);
  return (args, options) => {
    const req = new ClientRequestImpl(method, connection, args, options?.metadata ? [...options.metadata] : [], options?.signal, options?.timeout);
    try {
      return chain(req).then((r) => r.value);
    } catch (e) {
      // An interceptor that is not async threw: still a rejected promise for the caller.
      return Promise.reject(e);
    }
  };
}

// --- server side ----------------------------------------------------------------

/** How a served call ended. */
export type CallOutcome = "ok" | "user-error" | "unknown-method" | "invalid-payload" | "cancelled" | "handler-error" | "rejected";

/** An incoming call as interceptors see it. */
export interface ServerRequest {
  readonly connection: Connection;
  readonly requestId: number;
  readonly methodId: bigint;
  /** The method, when the dispatcher knows it (always for `serve`). */
  readonly method: MethodDescriptor | undefined;
  /** `Service.method`, or `method 0x…` for unknown ids. */
  readonly name: string;
  readonly metadata: Metadata;
  /** Entries to send back with the Response; push onto it. */
  readonly responseMetadata: MetadataEntry[];
  readonly signal: AbortSignal;
  /** Decoded arguments (typed services; undefined for untyped dispatchers such as forwarders). May be replaced. */
  args: unknown[] | undefined;
  readonly streaming: boolean;
  /** Opt in to seeing every element of the call's channels (typed services). */
  observeChannels(observer: ChannelObserver): void;
}

/** A completed incoming call. `value` (typed ok) or `error` (user error value / thrown error) when known. */
export interface ServerResponse {
  outcome: CallOutcome;
  value?: unknown;
  error?: unknown;
  /** The handler's failure message, for `handler-error`/`rejected`. */
  message?: string;
}

export type ServerNext = (req: ServerRequest) => Promise<ServerResponse>;
/**
 * Throw `CallRejectedError` (or any error) to refuse the call: the caller
 * gets `CallRejectedError`. For a fallible method, `throw err(value)` answers
 * with the method's own error type.
 */
export type ServerInterceptor = (next: ServerNext) => ServerNext;

export function composeServer(interceptors: readonly ServerInterceptor[], terminal: ServerNext): ServerNext {
  let next = terminal;
  for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next);
  return next;
}

function idName(id: bigint): string {
  return `method 0x${id.toString(16).padStart(16, "0")}`;
}

class ServerRequestImpl implements ServerRequest {
  private observer: ChannelObserver | null = null;
  /** The handler context (typed path) or the raw call (untyped path). */
  ctx: CallContext | undefined = undefined;
  call: IncomingCall | undefined = undefined;
  constructor(
    readonly connection: Connection,
    readonly requestId: number,
    readonly methodId: bigint,
    readonly method: MethodDescriptor | undefined,
    readonly metadata: Metadata,
    readonly responseMetadata: MetadataEntry[],
    private readonly signalOf: () => AbortSignal,
    public args: unknown[] | undefined,
  ) {}
  get name(): string {
    return this.method ? `${this.method.service}.${this.method.name}` : idName(this.methodId);
  }
  get signal(): AbortSignal {
    return this.signalOf();
  }
  get streaming(): boolean {
    return this.method?.hasChannels ?? false;
  }
  observeChannels(observer: ChannelObserver): void {
    const prev = this.observer;
    this.observer = prev === null ? observer : (e) => (prev(e), observer(e));
    // mutation: equivalent — `if (true)`: attachObservers(undefined) returns at its first line.
    if (this.args) attachObservers(this.args, this.observer);
  }
}

/**
 * @internal Wraps a typed handler with a server chain (used by `serve(..., { interceptors })`):
 * the chain sees decoded arguments and the handler's result.
 */
export function interceptHandler(
  method: MethodDescriptor,
  fn: (...a: any[]) => unknown,
  interceptors: readonly ServerInterceptor[],
): (...a: any[]) => Promise<unknown> {
  const terminal: ServerNext = async (req) => {
    const ctx = (req as ServerRequestImpl).ctx!;
    try {
      const v = await fn(...(req.args ?? []), ctx);
      if (v instanceof UserError) return { outcome: "user-error", error: v.error, value: v };
      return { outcome: "ok", value: v };
    } catch (e) {
      return { outcome: "handler-error", error: e, message: e instanceof Error ? e.message : String(e) };
    }
  };
  const chain = composeServer(interceptors, terminal);
  return async (...all: any[]) => {
    const ctx = all.pop() as CallContext;
    const req = new ServerRequestImpl(ctx.connection, ctx.requestId, method.id, method, ctx.metadata, ctx.responseMetadata, () => ctx.signal, all);
    req.ctx = ctx;
    const r = await chain(req);
    switch (r.outcome) {
      case "ok":
        return r.value;
      case "user-error":
        return r.value instanceof UserError ? r.value : new UserError(r.error);
      default:
        throw r.error ?? new CallRejectedError("internal", r.message ?? r.outcome);
    }
  };
}

/** Reads the outcome of a Response payload without its schema. */
export function outcomeOf(payload: Uint8Array, metadata: Metadata): ServerResponse {
  // mutation: equivalent — `false`: an empty payload is not RESULT_OK and the Reader throws on it,
  // which answers invalid-payload below too.
  if (payload.length === 0) return { outcome: "invalid-payload" };
  if (payload[0] === RESULT_OK) return { outcome: "ok" };
  const r = new Reader(payload);
  try {
    r.varint32();
    const inner = r.varint32();
    switch (inner) {
      case ROAM_ERROR_USER:
        return { outcome: "user-error" };
      case ROAM_ERROR_UNKNOWN_METHOD:
        return { outcome: "unknown-method" };
      case ROAM_ERROR_INVALID_PAYLOAD:
        return { outcome: "invalid-payload" };
      default: {
        const msg = metadata.find(([k]) => k === HANDLER_ERROR_KEY);
        const rej = metadata.find(([k]) => k === REJECTED_KEY);
        if (rej) return { outcome: "rejected", message: String(msg?.[1] ?? "") };
        if (msg) return { outcome: "handler-error", message: String(msg[1]) };
        return { outcome: "cancelled" };
      }
    }
  } catch {
    return { outcome: "invalid-payload" };
  }
}

/**
 * Wraps any dispatcher (a forwarder, a routed dispatcher) with a server
 * chain. Interceptors see the call and its outcome (read from the Response
 * bytes); `args` is undefined because the payload is not decoded here.
 */
export class InterceptingDispatcher implements Dispatcher {
  private readonly chain: ServerNext;
  constructor(
    private readonly inner: Dispatcher,
    interceptors: readonly ServerInterceptor[],
  ) {
    this.chain = composeServer(interceptors, (req) => {
      const call = (req as ServerRequestImpl).call!;
      return new Promise<ServerResponse>((resolve) => {
        const prev = call.divert!((payload, metadata, channels) => {
          call.divert!(prev);
          resolve({ ...outcomeOf(payload, metadata), raw: { payload, metadata, channels } } as ServerResponse);
        });
        this.inner.dispatch(call);
      });
    });
  }

  describe(methodId: bigint): MethodDescriptor | undefined {
    return this.inner.describe?.(methodId);
  }

  dispatch(call: IncomingCall): void {
    if (call.divert === undefined) {
      // An IncomingCall not made by a Connection (a test double): nothing to intercept.
      this.inner.dispatch(call);
      return;
    }
    const m = call.request;
    const responseMetadata: MetadataEntry[] = [];
    const req = new ServerRequestImpl(call.connection, m.requestId, m.methodId, this.inner.describe?.(m.methodId), m.metadata, responseMetadata, () => call.signal, undefined);
    req.call = call;
    let p: Promise<ServerResponse>;
    try {
      p = this.chain(req);
    } catch (e) {
      // An interceptor that is not async threw before returning a promise.
      respondFailure(call, req.method, e, responseMetadata);
      return;
    }
    p.then(
      (r) => {
        const raw = (r as ServerResponse & { raw?: { payload: Uint8Array; metadata: Metadata; channels: number[] } }).raw;
        if (raw === undefined) {
          // An interceptor answered without calling next: only a user error or a rejection can be expressed.
          respondFailure(call, req.method, r.outcome === "user-error" ? new UserError(r.error) : new CallRejectedError("internal", r.message ?? r.outcome), responseMetadata);
          return;
        }
        call.respond(raw.payload, responseMetadata.length > 0 ? [...raw.metadata, ...responseMetadata] : raw.metadata, raw.channels);
      },
      (e) => respondFailure(call, req.method, e, responseMetadata),
    );
  }

  connectionClosed(connection: Connection, error: import("./errors.js").RoamError): void {
    this.inner.connectionClosed?.(connection, error);
  }
}

/** Answers a call an interceptor refused. */
function respondFailure(call: IncomingCall, method: MethodDescriptor | undefined, e: unknown, extra: readonly MetadataEntry[]): void {
  if (e instanceof UserError && method?.fallible) {
    const w = new Writer(64);
    try {
      method.encodeUserError(w, e.error);
      call.respond(w.finish(), extra);
      return;
    } catch {
      // does not fit the error type: fall through to a rejection
    }
  }
  const rej = e instanceof CallRejectedError ? e : new CallRejectedError("internal", e instanceof Error ? e.message : String(e));
  call.respond(RESPONSE_CANCELLED, [...extra, [HANDLER_ERROR_KEY, rej.detail.slice(0, 1024)], [REJECTED_KEY, rej.reason.slice(0, 128)]]);
}

/** `intercept(dispatcher, [a, b])`: the dispatcher with a server chain around every call. */
export function intercept(dispatcher: Dispatcher, interceptors: readonly ServerInterceptor[]): Dispatcher {
  return interceptors.length === 0 ? dispatcher : new InterceptingDispatcher(dispatcher, interceptors);
}

// --- channel observation ---------------------------------------------------------

/** Finds the Tx/Rx handles inside call arguments (any depth, bounded) and observes them. */
function attachObservers(args: unknown, observer: ChannelObserver, depth = 0): void {
  if (depth > 8 || args === null || typeof args !== "object") return;
  // A caller passes one end of a channel() pair and uses its partner; a
  // handler gets bound ends without partners and uses them directly.
  if (args instanceof Tx || args instanceof Rx) {
    const end = (args.partner ?? args) as Tx<unknown> | Rx<unknown>;
    const direction = end instanceof Tx ? "send" : "receive";
    end.observe((value) => observer({ direction, channelId: end.id, value }));
    return;
  }
  // mutation: equivalent — `false`: Object.values of a byte array gives numbers, each returning at once (only slower).
  if (args instanceof Uint8Array) return;
  // mutation: equivalent — `false` or an empty block: Object.values of an array yields the same
  // elements at the same depth as the loop (call arguments carry no extra own properties).
  if (Array.isArray(args)) {
    for (const a of args) attachObservers(a, observer, depth + 1);
    return;
  }
  // mutation: equivalent — `false` or `&&`: a Map or Set has no own enumerable properties, so
  // Object.values below gives [] and nothing is attached either way.
  if (args instanceof Map || args instanceof Set) return;
  for (const v of Object.values(args as Record<string, unknown>)) attachObservers(v, observer, depth + 1);
}
