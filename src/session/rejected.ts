/**
 * A call refused before (or instead of) its handler — typically by a server
 * interceptor (auth, quota, validation). It travels as the protocol's
 * `Cancelled` response with two metadata entries, so any roam peer sees a
 * well-formed Cancelled call; a roam-ts caller gets this typed error back.
 */
import { RoamError } from "./errors.js";

/** Response metadata key carrying the rejection code. */
export const REJECTED_KEY = "roam-rejected";

/** Codes in the spirit of gRPC/connect status codes; any kebab-case string is allowed. */
export type RejectionCode =
  | "unauthenticated"
  | "permission-denied"
  | "resource-exhausted"
  | "invalid-argument"
  | "failed-precondition"
  | "unavailable"
  | "internal"
  | (string & {});

export class CallRejectedError extends RoamError {
  override readonly name = "CallRejectedError";
  readonly code = "rejected";
  constructor(
    /** Why: `unauthenticated`, `permission-denied`, … */
    readonly reason: RejectionCode,
    /** Human-readable detail, sent to the caller. */
    readonly detail: string,
    /** The method, filled in on the calling side. */
    readonly method = "",
  ) {
    super(`${method ? `${method} was rejected` : "call rejected"}: ${reason}: ${detail} (the server refused the call before running it; fix the credentials or the request)`);
  }
}
