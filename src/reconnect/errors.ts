/**
 * Errors of the reconnecting client (reconnect.error.*). RPC errors
 * (UserError, UnknownMethodError, ...) are not wrapped: they reach the caller
 * as the very objects a plain connection throws (reconnect.error.rpc).
 */
import { RoamError } from "../session/errors.js";

/**
 * The link was lost and every reconnection attempt failed
 * (reconnect.error.retries-exhausted). `original` is what broke the link;
 * `cause` the last connection failure.
 */
export class RetriesExhaustedError extends RoamError {
  override readonly name = "RetriesExhaustedError";
  readonly code = "retries-exhausted";
  constructor(
    readonly original: unknown,
    readonly attempts: number,
    override readonly cause?: unknown,
  ) {
    super(
      `the connection was lost (${describe(original)}) and ${attempts} reconnection attempt(s) failed` +
        (cause !== undefined ? ` (last: ${describe(cause)})` : "") +
        "; check that the server is up, or raise RetryPolicy.maxAttempts",
    );
  }
}

/**
 * The connector could not establish a connection — the first one, or one
 * whose error the client was told not to retry (reconnect.error.connect-failed).
 */
export class ConnectFailedError extends RoamError {
  override readonly name = "ConnectFailedError";
  readonly code = "connect-failed";
  constructor(
    readonly attempts: number,
    override readonly cause: unknown,
  ) {
    super(`could not connect after ${attempts} attempt(s): ${describe(cause)}; check the address and that the server is running`);
  }
}

/**
 * The link was lost after the request was sent, and the call could not be
 * retried safely: it had no roam-nonce and its method is not marked
 * idempotent, or it carried channels (core.nonce.channels). The server may or
 * may not have run it; only the application can decide what to do.
 */
export class OutcomeUnknownError extends RoamError {
  override readonly name = "OutcomeUnknownError";
  readonly code = "outcome-unknown";
  constructor(
    readonly method: string,
    readonly why: "no-nonce" | "channels",
    override readonly cause: unknown,
  ) {
    super(
      `the connection was lost while ${method} was in flight, so it may or may not have run on the server` +
        (why === "channels"
          ? "; calls with channels are not retried (channel state does not survive a reconnect): its channels failed, start it again if the application can resume"
          : "; it was not retried because it carries no roam-nonce and is not marked idempotent: check the server's state, then retry if that is safe"),
    );
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
