/**
 * Typed handler execution: decodes a served call's arguments (binding its
 * channels), runs the handler, and encodes its outcome into the Response
 * (errors as the spec's Cancelled with a `roam-error` explanation). One
 * runner per connection; `serve(...)` reaches it through the served call.
 */
import { DecodeError, EncodeError } from "../codec/errors.js";
import { Writer } from "../codec/writer.js";
import type { MethodDescriptor } from "../service/define.js";
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED, RESPONSE_INVALID_PAYLOAD } from "../wire/envelope.js";
import type { WithBinder } from "../schema/index.js";
import { checkMetadataLimits, type Metadata } from "../wire/message.js";
import { CallChannelBinder } from "./channel/binder.js";
import type { ChannelHost } from "./channel/host.js";
import type { ChannelRegistry } from "./channel/registry.js";
import { EMPTY_METADATA, qualified, receivedPayloadReader } from "./call-common.js";
import type { CallContext, Connection, IncomingCall } from "./connection.js";
import { CancelledError, ConnectionClosedError, EncodeFailedError, ProtocolViolation, UserError } from "./errors.js";
import type { ServedCall } from "./incoming.js";
import { CallRejectedError, REJECTED_KEY } from "./rejected.js";

/** The context object handed to typed handlers (signal created on first use). */
class HandlerContext implements CallContext {
  readonly responseMetadata: [string, string | Uint8Array | bigint][] = [];
  constructor(
    private readonly call: ServedCall,
    readonly method: MethodDescriptor,
  ) {}
  get signal(): AbortSignal {
    return this.call.signal;
  }
  get metadata(): Metadata {
    return this.call.request.metadata;
  }
  get connection(): Connection {
    return this.call.connection;
  }
  get requestId(): number {
    return this.call.request.requestId;
  }
}

/** What running typed handlers needs from the connection. */
export interface HandlerPort {
  readonly connId: number;
  /** Binds the channels in the arguments (and gives the negotiated max_payload_size). */
  readonly host: ChannelHost;
  readonly registry: ChannelRegistry;
  /** Send the handler's exception message to the caller. */
  readonly exposeHandlerErrors: boolean;
  /** Reports an unexpected handler failure. */
  handlerError(error: unknown, info: { method: string; connId: number; requestId: number }): void;
}

// mutation: equivalent — (16 / 1024) the initial size only: the Writer grows to fit.
const responseWriter = new Writer(16 * 1024);

/**
 * Runs a typed handler for an incoming call made by a connection (what
 * `serve(...)` dispatches to). Throws ProtocolViolation when the Request's
 * channels do not match its arguments.
 */
export function runTypedHandler(call: IncomingCall, method: MethodDescriptor, handler: (...a: any[]) => unknown): void {
  const served = call as ServedCall;
  served.runner.run(served, method, handler);
}

export class TypedHandlerRunner {
  constructor(private readonly port: HandlerPort) {}

  run(call: ServedCall, method: MethodDescriptor, handler: (...a: any[]) => unknown): void {
    const m = call.request;
    let binder: CallChannelBinder | null = null;
    let args: any[];
    const r = receivedPayloadReader(m.payload);
    try {
      // mutation: equivalent — (-> true, `>= 0`) a binder for a call without channels binds
      // nothing and finds all zero listed ids consumed; it only costs an allocation.
      if (method.hasChannels || m.channels.length > 0) {
        binder = new CallChannelBinder(this.port.host, this.port.registry, m.channels);
        (r as WithBinder).channelBinder = binder;
      }
      args = method.decodeArgs(r);
      binder?.checkAllConsumed();
    } catch (e) {
      binder?.fail(new CancelledError(qualified(method), "local"));
      // mutation: equivalent — `-> false`: a ProtocolViolation is not a DecodeError, so it is
      // rethrown by the `throw e` below all the same.
      if (e instanceof ProtocolViolation) throw e;
      // mutation: equivalent — `-> true`: decoding raises DecodeError for any bad input (the
      // reader turns even invalid UTF-8 into one) and the binder raises ProtocolViolation, so
      // nothing else reaches this point with the built-in schemas.
      if (e instanceof DecodeError) {
        call.respond(RESPONSE_INVALID_PAYLOAD);
        return;
      }
      throw e;
    }
    call.binder = binder;
    const ctx = new HandlerContext(call, method);
    call.onCancel = (reason) => {
      // The caller gave up (answer Cancelled now), or the connection is gone:
      // stop our channels with the reason that is true (ctx.signal carries the same).
      binder?.fail(reason instanceof ConnectionClosedError ? reason : new CancelledError(qualified(method), "remote"));
      call.respond(RESPONSE_CANCELLED);
    };
    let out: unknown;
    try {
      out = handler(...args, ctx);
    } catch (e) {
      this.#complete(call, method, binder, e, true, ctx.responseMetadata);
      return;
    }
    if (typeof out === "object" && out !== null && typeof (out as PromiseLike<unknown>).then === "function") {
      (out as PromiseLike<unknown>).then(
        (v) => this.#complete(call, method, binder, v, false, ctx.responseMetadata),
        (e) => this.#complete(call, method, binder, e, true, ctx.responseMetadata),
      );
    } else {
      this.#complete(call, method, binder, out, false, ctx.responseMetadata);
    }
  }

  #complete(
    call: ServedCall,
    method: MethodDescriptor,
    binder: CallChannelBinder | null,
    value: unknown,
    thrown: boolean,
    responseMetadata: [string, string | Uint8Array | bigint][],
  ): void {
    call.onCancel = null;
    // mutation: equivalent — `||` -> `&&`, or either operand alone: a typed call is cancelled
    // exactly when it was answered before completing (onCancel answers at once, teardown marks
    // it responded as it cancels), so the two flags agree here.
    if (call.isCancelled || call.responded) return;
    const port = this.port;
    const w = responseWriter;
    w.reset();
    let metadata: Metadata = responseMetadata;
    const info = () => ({ method: qualified(method), connId: port.connId, requestId: call.request.requestId });
    try {
      if (value instanceof UserError) {
        if (!method.fallible) throw new TypeError(`${qualified(method)} is infallible but its handler produced a UserError`);
        method.encodeUserError(w, value.error);
      } else if (thrown) {
        throw value;
      } else {
        method.encodeOk(w, value);
      }
    } catch (e) {
      w.reset();
      w.raw(RESPONSE_CANCELLED);
      if (e instanceof CallRejectedError) {
        // Refused on purpose (an interceptor): not a bug to report.
        metadata = [...responseMetadata, [HANDLER_ERROR_KEY, e.detail.slice(0, 1024)], [REJECTED_KEY, e.reason.slice(0, 128)]];
        if (binder) for (const tx of binder.senders) tx.reset();
        call.respond(w.view(), metadata);
        return;
      }
      // Unexpected failure (or a result that does not fit the schema): report it
      // through the hook and answer Cancelled with a `roam-error` explanation.
      port.handlerError(e, info());
      const msg =
        e instanceof EncodeError
          ? `the handler's result does not fit the schema: ${e.message}`
          : port.exposeHandlerErrors
            ? `${(e as Error)?.name ?? "Error"}: ${(e as Error)?.message ?? String(e)}`
            : "internal error";
      metadata = [...responseMetadata, [HANDLER_ERROR_KEY, msg.slice(0, 1024)]];
      if (binder) for (const tx of binder.senders) tx.reset();
    }
    if (w.pos > port.host.maxPayloadSize) {
      const size = w.pos;
      port.handlerError(new EncodeFailedError(`the result of ${qualified(method)}`, `${size} bytes exceeds max_payload_size`), info());
      w.reset();
      w.raw(RESPONSE_CANCELLED);
      metadata = [[HANDLER_ERROR_KEY, `result of ${size} bytes exceeds the negotiated max_payload_size`]];
    }
    // mutation: equivalent — `length > 0` -> `true` / `>= 0`: empty metadata passes the check.
    const problem = metadata.length > 0 ? checkMetadataLimits(metadata) : undefined;
    if (problem) {
      port.handlerError(new EncodeFailedError("response metadata", problem), info());
      metadata = EMPTY_METADATA;
    }
    // The reference closes the callee's send ends before the Response; values
    // already passed to send() go first.
    if (binder && binder.senders.length > 0) {
      const payload = w.finish();
      void Promise.all(binder.senders.map((tx) => tx.close())).then(() => call.respond(payload, metadata));
      return;
    }
    // Transports encode synchronously: the shared writer's view is safe here.
    call.respond(w.view(), metadata);
  }
}
