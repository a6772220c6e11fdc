/**
 * Calls the peer makes on one connection: the served-call table, the
 * per-connection limits, Cancel, and the Response going back (call.*).
 * Driven by its connection: `onRequest`/`onCancel` from routing, `teardown`
 * once. Each served call carries the connection's typed-handler runner.
 */
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED, RESPONSE_UNKNOWN_METHOD } from "../wire/envelope.js";
import { checkMetadataLimits, type CancelMessage, type Message, type Metadata, type RequestMessage } from "../wire/message.js";
import type { CallChannelBinder } from "./channel/binder.js";
import type { ChannelRegistry } from "./channel/registry.js";
import { EMPTY_METADATA, NO_IDS, qualified } from "./call-common.js";
import type { Connection, Dispatcher, IncomingCall, ResponseCapture } from "./connection.js";
import type { TypedHandlerRunner } from "./dispatch.js";
import { CancelledError, ProtocolViolation, type RoamError } from "./errors.js";
import type { InFlightCall } from "./outgoing.js";

/**
 * An incoming call being served. Its AbortSignal is created only if someone
 * asks for it: most handlers never look, and an AbortController per request
 * was the largest cost of a small call.
 */
export class ServedCall implements IncomingCall {
  responded = false;
  binder: CallChannelBinder | null = null;
  private cancelReason: unknown = undefined;
  private cancelled = false;
  private controller: AbortController | null = null;
  /** Internal cancellation hook (set by the typed runner), cheaper than an event listener. */
  onCancel: ((reason: unknown) => void) | null = null;
  /** Where the next respond() goes instead of the wire (interceptors). */
  private capture: ResponseCapture | null = null;
  /** performance.now() on arrival (diagnostics). */
  readonly started = performance.now();

  constructor(
    readonly connection: Connection,
    readonly request: RequestMessage,
    /** Runs typed handlers for this call's connection (see `runTypedHandler`). */
    readonly runner: TypedHandlerRunner,
    private readonly sendResponse: (call: ServedCall, payload: Uint8Array, metadata: Metadata, channels: number[]) => void,
  ) {}

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort(this.cancelReason);
    }
    return this.controller.signal;
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  cancel(reason: unknown): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.cancelReason = reason;
    this.controller?.abort(reason);
    const f = this.onCancel;
    this.onCancel = null;
    f?.(reason);
  }

  respond(payload: Uint8Array, metadata: Metadata = EMPTY_METADATA, channels: number[] = NO_IDS): void {
    if (this.responded) return;
    if (this.capture !== null) {
      const c = this.capture;
      this.capture = null;
      // The payload may be a view of a shared writer: the capture keeps a copy.
      c(payload.slice(), metadata, channels);
      return;
    }
    this.responded = true;
    this.sendResponse(this, payload, metadata, channels);
  }

  divert(capture: ResponseCapture | null): ResponseCapture | null {
    const prev = this.capture;
    this.capture = capture;
    return prev;
  }
}

/** What incoming calls need from their connection. */
export interface IncomingPort {
  readonly connection: Connection;
  readonly registry: ChannelRegistry;
  readonly runner: TypedHandlerRunner;
  /** Incoming calls served at once; more are answered with an error Response. */
  readonly maxInFlightCalls: number;
  /** Open channels; a Request that would exceed it is answered with an error Response. */
  readonly maxChannels: number;
  dispatcher(): Dispatcher | null;
  /** True once the connection closed (nothing more is sent). */
  isClosed(): boolean;
  send(m: Message): void;
}

export class IncomingCalls {
  readonly #serving = new Map<number, ServedCall>();

  constructor(private readonly port: IncomingPort) {}

  /** Calls being served. */
  get size(): number {
    return this.#serving.size;
  }

  /** A Request arrived. Throws ProtocolViolation. */
  onRequest(m: RequestMessage): void {
    const port = this.port;
    if (this.#serving.has(m.requestId)) {
      throw new ProtocolViolation("call.request-id.duplicate-detection", `request id ${m.requestId} is already in flight`, port.connection.connId);
    }
    // mutation: equivalent — `length > 0` -> `true` / `>= 0`: empty metadata passes the check.
    if (m.metadata.length > 0) {
      const problem = checkMetadataLimits(m.metadata);
      if (problem) throw new ProtocolViolation("call.metadata.limits", `request metadata: ${problem}`, port.connection.connId);
    }
    const over = this.#overLimit(m);
    if (over !== undefined) {
      this.#refuse(m, over);
      return;
    }
    const sc = new ServedCall(port.connection, m, port.runner, this.#sendResponse);
    this.#serving.set(m.requestId, sc);
    const d = port.dispatcher();
    if (d === null) {
      sc.respond(RESPONSE_UNKNOWN_METHOD);
      return;
    }
    d.dispatch(sc);
  }

  /** A Cancel arrived: advisory once answered. */
  onCancel(m: CancelMessage): void {
    const sc = this.#serving.get(m.requestId);
    if (sc === undefined) return; // already answered: Cancel is advisory
    sc.cancel(new CancelledError(`request ${m.requestId}`, "remote"));
  }

  /** The connection ended: every served call is cancelled with `error` and answers nothing. */
  teardown(error: RoamError): void {
    for (const sc of this.#serving.values()) {
      // mutation: equivalent — `responded = false`: a later respond() reaches #sendResponse,
      // which sends nothing once the connection is closed (isClosed is true before teardown).
      sc.responded = true;
      sc.cancel(error);
    }
    this.#serving.clear();
  }

  /** Appends the calls being served (diagnostics). */
  inFlight(out: InFlightCall[]): void {
    const d = this.port.dispatcher();
    for (const [requestId, sc] of this.#serving) {
      const id = sc.request.methodId;
      const m = d?.describe?.(id);
      out.push({ direction: "incoming", requestId, name: m ? qualified(m) : `method 0x${id.toString(16).padStart(16, "0")}`, started: sc.started });
    }
  }

  /** Why `m` cannot be taken up now (a limit), or undefined. */
  #overLimit(m: RequestMessage): string | undefined {
    const maxCalls = this.port.maxInFlightCalls;
    if (this.#serving.size >= maxCalls) {
      return `call.limits: ${maxCalls} calls are already in flight on this connection (maxInFlightCalls); retry when some complete`;
    }
    if (m.channels.length > 0) {
      const maxChannels = this.port.maxChannels;
      const open = this.port.registry.openCount;
      if (open + m.channels.length > maxChannels) {
        return `call.limits: ${open} channels are open on this connection and the call opens ${m.channels.length} more (maxChannels ${maxChannels})`;
      }
    }
    return undefined;
  }

  /**
   * Answers a Request we will not serve with the spec's error Response
   * (Cancelled, with the reason in `roam-error` metadata) and burns the
   * channels it opened: Data already sent on them is ignored
   * (channeling.reset.effect), and the caller fails its ends on this Response.
   */
  #refuse(m: RequestMessage, reason: string): void {
    const registry = this.port.registry;
    for (const id of m.channels) {
      registry.notePeerId(id);
      registry.release(id, "reset");
    }
    if (this.port.isClosed()) return;
    this.port.send({ type: "Response", connId: this.port.connection.connId, requestId: m.requestId, metadata: [[HANDLER_ERROR_KEY, reason]], channels: NO_IDS, payload: RESPONSE_CANCELLED });
  }

  readonly #sendResponse = (sc: ServedCall, payload: Uint8Array, metadata: Metadata, channels: number[]): void => {
    const id = sc.request.requestId;
    // mutation: equivalent — `=== sc` -> true: a served call responds once (the `responded` flag)
    // and its id is free only after that, so the entry under `id` is always `sc` or absent.
    if (this.#serving.get(id) === sc) this.#serving.delete(id);
    // mutation: equivalent — (-> false) a transport's send is a no-op once closed (Transport.send).
    if (this.port.isClosed()) return;
    this.port.send({ type: "Response", connId: this.port.connection.connId, requestId: id, metadata, channels, payload });
  };
}
