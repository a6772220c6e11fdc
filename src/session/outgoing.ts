/**
 * Calls this side makes on one connection: request ids, the pending table,
 * cancellation and timeouts, and turning each Response into the call's
 * outcome (call.*, channeling.lifecycle.*). Driven by its connection:
 * `call`/`callRaw` from the user, `onResponse` from routing, `teardown` once.
 */
import { EncodeError } from "../codec/errors.js";
import { Writer } from "../codec/writer.js";
import type { MethodDescriptor } from "../service/define.js";
import type { WithBinder } from "../schema/index.js";
import { HANDLER_ERROR_KEY } from "../wire/envelope.js";
import { checkMetadataLimits, type Message, type ResponseMessage } from "../wire/message.js";
import { CallChannelBinder } from "./channel/binder.js";
import type { ChannelHost } from "./channel/host.js";
import type { ChannelRegistry } from "./channel/registry.js";
import { Rx } from "./channel/rx.js";
import { Tx } from "./channel/tx.js";
import { EMPTY_METADATA, NO_IDS, qualified, receivedPayloadReader } from "./call-common.js";
import type { CallOptions, RawCallOptions } from "./connection.js";
import {
  CancelledError,
  ConnectionClosedError,
  EncodeFailedError,
  InvalidPayloadError,
  ProtocolViolation,
  RemoteHandlerError,
  ResponseDecodeError,
  RoamError,
  TimeoutError,
  UnknownMethodError,
  UserError,
} from "./errors.js";
import { CallRejectedError, REJECTED_KEY } from "./rejected.js";

/** What outgoing calls need from their connection. */
export interface OutgoingPort {
  readonly connId: number;
  /** Binds the channels in a call's arguments (and gives the negotiated max_payload_size). */
  readonly host: ChannelHost;
  readonly registry: ChannelRegistry;
  /** Undefined once the handshake completed, else a promise for it. */
  handshakePending(): Promise<void> | undefined;
  /** The error the connection closed with; null while open. */
  closedError(): RoamError | null;
  send(m: Message): void;
}

/** A call in flight, for diagnostics. */
export interface InFlightCall {
  direction: "outgoing" | "incoming";
  requestId: number;
  name: string;
  started: number;
}

interface PendingCall {
  /** For error messages: `Service.method`, or the hex method id for raw calls. */
  name: string;
  /** Completes the call from its Response. */
  onResponse: (m: ResponseMessage) => void;
  reject: (e: unknown) => void;
  binder: CallChannelBinder | null;
  cleanup: (() => void) | null;
  /** Cancelled locally: the promise already rejected, the late Response is dropped. */
  abandoned: boolean;
  /** performance.now() when sent (diagnostics). */
  started: number;
}

// mutation: equivalent — (16 / 1024) the initial size only: the Writer grows to fit.
const argWriter = new Writer(16 * 1024);

export class OutgoingCalls {
  #nextRequestId = 1;
  readonly #pending = new Map<number, PendingCall>();

  constructor(private readonly port: OutgoingPort) {}

  /** Calls waiting for their Response. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Calls `method` with `args`. Resolves with the success value; rejects with
   * UserError for the method's error type, or another RoamError.
   */
  call<A extends any[], T, E>(method: MethodDescriptor<A, T, E>, args: A, options?: CallOptions): Promise<T> {
    const port = this.port;
    const closed = port.closedError();
    if (closed) return rejectUnsent(method, args, closed);
    const handshake = port.handshakePending();
    // r[message.hello.ordering]: calls made before the handshake wait for it.
    if (handshake) {
      return handshake.then(
        () => this.call(method, args, options),
        (e: unknown) => rejectUnsent(method, args, e instanceof RoamError ? e : new ConnectionClosedError(String(e), "local", e)),
      );
    }
    const signal = options?.signal;
    if (signal?.aborted) return rejectUnsent(method, args, new CancelledError(qualified(method), "local", signal.reason));
    const metadata = options?.metadata ?? EMPTY_METADATA;
    // mutation: equivalent — `> 0` only skips the check for empty metadata, which always passes
    // (the same holds for the other `metadata.length > 0` guards in the session).
    if (metadata.length > 0) {
      const problem = checkMetadataLimits(metadata);
      if (problem) return rejectUnsent(method, args, new EncodeFailedError(`request metadata for ${qualified(method)}`, `${problem} (call.metadata.limits)`));
    }

    let binder: CallChannelBinder | null = null;
    const w = argWriter;
    w.reset();
    try {
      // mutation: equivalent — `-> true`: a binder on a method without channels binds nothing;
      // its ids are empty like NO_IDS and its fail/endReceivers/senders are no-ops.
      if (method.hasChannels) {
        binder = new CallChannelBinder(port.host, port.registry);
        (w as WithBinder).channelBinder = binder;
      }
      method.encodeArgs(w, args);
    } catch (e) {
      // The call is never sent: the channels bound so far end with it and leave the registry.
      binder?.fail(new ConnectionClosedError("call not sent", "local"));
      // mutation: equivalent — `e instanceof EncodeError` -> true: every schema's encode wraps
      // failures (a throwing getter included) in EncodeError, so String(e) is only a safety net.
      return Promise.reject(
        new EncodeFailedError(`the arguments of ${qualified(method)}`, e instanceof EncodeError || e instanceof TypeError ? e.message : String(e), e),
      );
    } finally {
      // mutation: equivalent — an empty finally: a stale binder on this shared Writer is only
      // read by Tx/Rx encoders, which run only for methods with channels, and each of those sets
      // its own binder first. Clearing it frees the last call's binder (memory).
      (w as WithBinder).channelBinder = undefined;
    }
    const max = port.host.maxPayloadSize;
    if (w.pos > max) {
      const error = new EncodeFailedError(`the arguments of ${qualified(method)}`, `${w.pos} bytes exceeds the negotiated max_payload_size ${max}`);
      // Its channels were bound but the call is never sent: end them with it.
      binder?.fail(error);
      return Promise.reject(error);
    }

    const requestId = this.#nextRequestId++;
    return new Promise<T>((resolve, reject) => {
      const onMeta = options?.onResponseMetadata;
      const pc: PendingCall = {
        name: qualified(method),
        onResponse:
          onMeta === undefined
            ? (resp) => completeTyped(pc, method, resp, resolve as (v: unknown) => void)
            : (resp) => {
                onMeta(resp.metadata);
                completeTyped(pc, method, resp, resolve as (v: unknown) => void);
              },
        reject,
        binder,
        cleanup: null,
        abandoned: false,
        started: performance.now(),
      };
      this.#pending.set(requestId, pc);
      // mutation: equivalent — (-> true, and `options.timeout` in the call) arming with neither a
      // signal nor a timeout installs a cleanup that does nothing; a signal implies options.
      if (signal || options?.timeout !== undefined) this.#armCancellation(requestId, pc, signal, options?.timeout);
      port.send({
        type: "Request",
        connId: port.connId,
        requestId,
        methodId: method.id,
        metadata,
        channels: binder ? binder.ids : NO_IDS,
        payload: w.view(),
      });
    });
  }

  /**
   * A schema-less call: sends `payload` as-is and resolves with the peer's
   * Response message (whatever its outcome). Used by the forwarding proxy.
   */
  callRaw(methodId: bigint, payload: Uint8Array, options: RawCallOptions = {}): Promise<ResponseMessage> {
    const port = this.port;
    const closed = port.closedError();
    if (closed) return Promise.reject(closed);
    const handshake = port.handshakePending();
    if (handshake) return handshake.then(() => this.callRaw(methodId, payload, options));
    const name = `method 0x${methodId.toString(16).padStart(16, "0")}`;
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(new CancelledError(name, "local", signal.reason));
    const metadata = options.metadata ?? EMPTY_METADATA;
    // mutation: equivalent — `length > 0` -> `true` / `>= 0`: empty metadata passes the check; the test only skips it.
    if (metadata.length > 0) {
      const problem = checkMetadataLimits(metadata);
      if (problem) return Promise.reject(new EncodeFailedError(`request metadata for ${name}`, `${problem} (call.metadata.limits)`));
    }
    const max = port.host.maxPayloadSize;
    if (payload.length > max) {
      return Promise.reject(new EncodeFailedError(`the arguments of ${name}`, `${payload.length} bytes exceeds the negotiated max_payload_size ${max}`));
    }
    const requestId = this.#nextRequestId++;
    return new Promise<ResponseMessage>((resolve, reject) => {
      const pc: PendingCall = {
        name,
        onResponse: (resp) => {
          pc.cleanup?.();
          resolve(resp);
        },
        reject,
        binder: null,
        cleanup: null,
        abandoned: false,
        started: performance.now(),
      };
      this.#pending.set(requestId, pc);
      // mutation: equivalent — (-> true) arming with neither installs a cleanup that does nothing.
      if (signal || options.timeout !== undefined) this.#armCancellation(requestId, pc, signal, options.timeout);
      port.send({ type: "Request", connId: port.connId, requestId, methodId, metadata, channels: options.channels ?? NO_IDS, payload });
    });
  }

  /** A Response arrived. Throws ProtocolViolation on bad metadata. */
  onResponse(m: ResponseMessage): void {
    const pc = this.#pending.get(m.requestId);
    // call.lifecycle.unknown-request-id: ignore responses we do not wait for.
    if (pc === undefined) return;
    // Checked while the call is still pending: the violation closes the
    // connection, whose teardown rejects this call with the rest.
    // mutation: equivalent — `length > 0` -> `true` / `>= 0`: empty metadata passes the check; the test only skips it.
    if (m.metadata.length > 0) {
      const problem = checkMetadataLimits(m.metadata);
      if (problem) throw new ProtocolViolation("call.metadata.limits", `response metadata: ${problem}`, this.port.connId);
    }
    this.#pending.delete(m.requestId);
    // mutation: equivalent — `abandoned` is never true for a call still in #pending: #abandon
    // removes the call from it (the same holds in teardown and inFlight below).
    if (pc.abandoned) return;
    pc.onResponse(m);
  }

  /** The connection ended: every pending call rejects with `error`, its channels fail. */
  teardown(error: RoamError): void {
    for (const pc of this.#pending.values()) {
      pc.cleanup?.();
      pc.binder?.fail(error);
      if (!pc.abandoned) pc.reject(error);
    }
    this.#pending.clear();
  }

  /** Appends the calls waiting for a Response (diagnostics). */
  inFlight(out: InFlightCall[]): void {
    // mutation: equivalent — `!pc.abandoned` -> true: #abandon deletes the call from #pending
    // as it sets the flag, so no abandoned call is ever listed here.
    for (const [requestId, pc] of this.#pending) if (!pc.abandoned) out.push({ direction: "outgoing", requestId, name: pc.name, started: pc.started });
  }

  #armCancellation(requestId: number, pc: PendingCall, signal: AbortSignal | undefined, timeout: number | undefined): void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    // mutation: equivalent — `signal.reason`: onAbort is only registered on a signal.
    const onAbort = () => this.#abandon(requestId, pc, new CancelledError(pc.name, "local", signal?.reason));
    // mutation: equivalent — `{ once: true }` -> `{}`: a signal aborts once, and cleanup removes the listener.
    if (signal) signal.addEventListener("abort", onAbort, { once: true });
    if (timeout !== undefined && Number.isFinite(timeout)) {
      timer = setTimeout(() => this.#abandon(requestId, pc, new TimeoutError(pc.name, timeout)), Math.max(0, timeout));
    }
    pc.cleanup = () => {
      if (signal) signal.removeEventListener("abort", onAbort);
      // mutation: equivalent — (-> true) clearTimeout(undefined) does nothing.
      if (timer !== undefined) clearTimeout(timer);
    };
  }

  /**
   * Rejects now, sends Cancel and forgets the call at once. Its request id is
   * never reused (ids only grow), so a late Response is simply one for an
   * unknown request id, which is ignored (call.lifecycle.unknown-request-id;
   * call.cancel.no-response-required): nothing of the call stays alive
   * waiting for it.
   */
  #abandon(requestId: number, pc: PendingCall, error: RoamError): void {
    // mutation: equivalent — the abort listener and the timer are the only callers and the first
    // to fire removes the other (cleanup), so this runs at most once per call; and the entry under
    // `requestId` is this call or nothing (ids are never reused), so deleting it unconditionally is
    // the same: the guard, the flag and the `=== pc` test below cannot change what happens.
    if (pc.abandoned) return;
    pc.abandoned = true;
    // mutation: equivalent — `pc.cleanup()` without `?.`: #armCancellation set it before either caller could run.
    pc.cleanup?.();
    pc.cleanup = null;
    if (this.#pending.get(requestId) === pc) this.#pending.delete(requestId);
    pc.binder?.fail(error);
    pc.reject(error);
    if (!this.port.closedError()) this.port.send({ type: "Cancel", connId: this.port.connId, requestId });
  }
}

/**
 * A call that is never sent: reject it, and fail the channel handles in its
 * arguments with the same error, so the caller's ends of those channels
 * (a Tx it keeps sending on, an Rx it reads) settle too instead of waiting
 * forever for a binding that will never come.
 */
function rejectUnsent<T>(method: MethodDescriptor, args: readonly unknown[], error: RoamError): Promise<T> {
  // mutation: equivalent — `-> true`: encoding the arguments of a method without channels
  // calls no binder method, and any encode failure is swallowed below.
  if (method.hasChannels) {
    const w = new Writer(256);
    (w as WithBinder).channelBinder = {
      bindOutgoing: (handle) => {
        if (handle instanceof Rx || handle instanceof Tx) {
          handle.partner?.fail(error);
          handle.fail(error);
        }
        return 0;
      },
      // mutation: equivalent — never called: this binder is only used to encode.
      bindIncoming: () => {
        throw new TypeError("not decoding");
      },
    };
    try {
      method.encodeArgs(w, args as any[]);
    } catch {
      // arguments that do not encode: their channels were failed up to that point
    }
  }
  return Promise.reject(error);
}

/** Settles a typed call from its Response. */
function completeTyped(pc: PendingCall, method: MethodDescriptor, m: ResponseMessage, resolve: (v: unknown) => void): void {
  pc.cleanup?.();
  // r[channeling.lifecycle.response-closes-pulls]: our receive ends end here.
  pc.binder?.endReceivers();
  const name = pc.name;
  let result;
  try {
    result = method.decodeResponse(receivedPayloadReader(m.payload));
  } catch (e) {
    pc.binder?.fail(new ResponseDecodeError(name, e));
    pc.reject(new ResponseDecodeError(name, e));
    return;
  }
  if (result.ok) {
    resolve(result.value);
    return;
  }
  const error = result.error;
  let failure: RoamError;
  switch (error.tag) {
    case "User":
      failure = new UserError(error.value);
      break;
    case "UnknownMethod":
      failure = new UnknownMethodError(name);
      break;
    case "InvalidPayload":
      failure = new InvalidPayloadError(name);
      break;
    case "Cancelled": {
      const remote = m.metadata.find(([k]) => k === HANDLER_ERROR_KEY);
      const rejected = remote && m.metadata.find(([k]) => k === REJECTED_KEY);
      failure =
        rejected && typeof rejected[1] === "string" && typeof remote[1] === "string"
          ? new CallRejectedError(rejected[1], remote[1], name)
          : remote && typeof remote[1] === "string"
            ? new RemoteHandlerError(name, remote[1])
            : new CancelledError(name, "remote");
      break;
    }
  }
  // Failed calls burn their channels (channeling.lifecycle.speculative).
  if (pc.binder) for (const tx of pc.binder.senders) tx.fail(failure);
  pc.reject(failure);
}
