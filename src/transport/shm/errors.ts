/** Errors specific to the SHM transport. */

/** How the host learned that a guest is gone (r[shm.death.detection-methods]). */
export type DeathCause =
  /** The doorbell socket hung up (the process closed its end or died). */
  | "doorbell"
  /** The child process or worker thread exited without detaching. */
  | "exit"
  /** The guest's heartbeat is older than twice the interval. */
  | "heartbeat"
  /** The process could not be started. */
  | "spawn-error"
  /** A spawned guest did not attach in time. */
  | "attach-timeout"
  /** The host closed the link and the guest did not detach in time. */
  | "unresponsive";

/**
 * The guest (or, seen from a guest, the host) is gone. Calls and channels in
 * flight with it reject with `ConnectionClosedError` (by "transport") whose
 * `cause` is this error.
 */
export class ShmPeerGoneError extends Error {
  override readonly name = "ShmPeerGoneError";
  constructor(
    readonly peerId: number,
    readonly how: DeathCause | "host-gone" | "detached",
    detail: string,
  ) {
    super(`shm peer ${peerId}: ${detail}`);
  }
}
