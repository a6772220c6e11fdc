/**
 * Errors a roam user can see. Every failure of a call rejects with a subclass
 * of `RoamError`; `code` is stable and the message says what to do.
 *
 *   RoamError
 *   ├─ UserError<E>            the handler returned the method's error type E
 *   ├─ UnknownMethodError      the peer has no handler for this method id
 *   ├─ InvalidPayloadError     the peer could not decode the arguments
 *   ├─ CancelledError          cancelled (by an AbortSignal here, or by the peer)
 *   ├─ RemoteHandlerError      the peer's handler threw an unexpected exception
 *   ├─ TimeoutError            no response within the call's `timeout`
 *   ├─ ConnectionClosedError   the connection/link closed (carries the Goodbye reason)
 *   ├─ EncodeFailedError       the arguments/result did not fit the schema, or
 *   │                          exceeded a negotiated/metadata limit
 *   ├─ ResponseDecodeError     the peer's response did not decode as the schema
 *   └─ ConnectionRejectedError a virtual connection was rejected
 */
export abstract class RoamError extends Error {
  abstract readonly code: string;
}

export class UserError<E = unknown> extends RoamError {
  override readonly name = "UserError";
  readonly code = "user";
  constructor(readonly error: E) {
    super(`the method returned a user error: ${describeUserError(error)}`);
  }
}

function describeUserError(e: unknown): string {
  if (typeof e === "string") return e;
  try {
    return JSON.stringify(e, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `<${v.length} bytes>` : v));
  } catch {
    return String(e);
  }
}

/** Builds the user-error result a fallible handler returns: `return err({ tag: "NotFound" })` or `return err("NotFound")`. */
export function err<E>(error: E): UserError<E> {
  return new UserError(error);
}

export class UnknownMethodError extends RoamError {
  override readonly name = "UnknownMethodError";
  readonly code = "unknown-method";
  constructor(readonly method: string) {
    super(`the peer does not implement ${method}: check that both sides use the same service definition (method ids hash the full signature)`);
  }
}

export class InvalidPayloadError extends RoamError {
  override readonly name = "InvalidPayloadError";
  readonly code = "invalid-payload";
  constructor(readonly method: string) {
    super(`the peer could not decode the arguments of ${method}: the service definitions of the two sides disagree`);
  }
}

export class CancelledError extends RoamError {
  override readonly name = "CancelledError";
  readonly code = "cancelled";
  constructor(
    readonly method: string,
    readonly by: "local" | "remote",
    override readonly cause?: unknown,
  ) {
    super(by === "local" ? `${method} was cancelled by its AbortSignal` : `${method} was cancelled by the peer`);
  }
}

export class RemoteHandlerError extends RoamError {
  override readonly name = "RemoteHandlerError";
  readonly code = "remote-handler";
  constructor(
    readonly method: string,
    readonly remoteMessage: string,
  ) {
    super(`the peer's handler for ${method} failed: ${remoteMessage} (a bug on the serving side; its logs have details)`);
  }
}

export class TimeoutError extends RoamError {
  override readonly name = "TimeoutError";
  readonly code = "timeout";
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`${method} got no response within ${timeoutMs} ms; the call was cancelled (raise \`timeout\` if the work is legitimately slow)`);
  }
}

export class ConnectionClosedError extends RoamError {
  override readonly name = "ConnectionClosedError";
  readonly code = "connection-closed";
  constructor(
    /** The Goodbye reason, when the connection ended with one. */
    readonly reason: string | undefined,
    /** Who ended it: "local" (we closed or detected a violation), "remote" (peer Goodbye), "transport" (link lost). */
    readonly by: "local" | "remote" | "transport",
    override readonly cause?: unknown,
  ) {
    super(
      `connection closed${by === "remote" ? " by the peer" : by === "transport" ? " (transport lost)" : ""}` +
        (reason ? `: ${reason}` : "") +
        "; open a new connection to continue",
    );
  }
}

export class EncodeFailedError extends RoamError {
  override readonly name = "EncodeFailedError";
  readonly code = "encode-failed";
  constructor(
    readonly what: string,
    readonly detail: string,
    override readonly cause?: unknown,
  ) {
    super(`could not send ${what}: ${detail}`);
  }
}

export class ResponseDecodeError extends RoamError {
  override readonly name = "ResponseDecodeError";
  readonly code = "response-decode";
  constructor(
    readonly method: string,
    override readonly cause: unknown,
  ) {
    super(`the response to ${method} did not decode (${(cause as Error)?.message ?? cause}); the service definitions of the two sides disagree`);
  }
}

export class ConnectionRejectedError extends RoamError {
  override readonly name = "ConnectionRejectedError";
  readonly code = "connection-rejected";
  constructor(
    readonly reason: string,
    readonly metadata: readonly (readonly [string, string | Uint8Array | bigint])[],
  ) {
    super(`the peer rejected the virtual connection: ${reason}`);
  }
}

/** Thrown inside the session when the peer violates a spec rule; becomes a Goodbye citing `rule`. */
export class ProtocolViolation extends Error {
  override readonly name = "ProtocolViolation";
  constructor(
    readonly rule: string,
    readonly detail: string,
    /** Connection the violation belongs to; link-level violations use 0. */
    readonly connId = 0,
  ) {
    super(`${rule}: ${detail}`);
  }
  get reason(): string {
    return `${this.rule}: ${this.detail}`;
  }
}

/** The channel was reset (by the peer, by us, or because its call failed). */
export class ChannelResetError extends RoamError {
  override readonly name = "ChannelResetError";
  readonly code = "channel-reset";
  constructor(readonly by: "local" | "remote", readonly detail?: string) {
    super(`channel reset by ${by === "local" ? "this side" : "the peer"}${detail ? `: ${detail}` : ""}; no more values will flow on it`);
  }
}

/** Sending on a channel that was closed, or whose connection ended. */
export class ChannelClosedError extends RoamError {
  override readonly name = "ChannelClosedError";
  readonly code = "channel-closed";
  constructor(readonly detail: string) {
    super(`channel closed: ${detail}`);
  }
}
