/**
 * What the host's monitor concludes about one peer on a tick: nothing, it
 * detached (peer state Goodbye), or it is dead — it did not attach in time,
 * its heartbeat went stale (r[shm.crash.heartbeat]), or it did not detach
 * after the host closed its link. The host acts on the verdict.
 */
import type { DeathCause } from "./errors.js";
import { PeerState } from "./layout.js";

/** The parts of the host's peer record the verdict reads. */
export interface WatchedPeer {
  attached: boolean;
  /** performance.now() by which a spawned guest must attach (0: no deadline). */
  attachDeadline: number;
  /** performance.now() when the host closed the link (0: it did not). */
  closingSince: number;
  /** hrtime (ns) when the monitor first saw it attached (0 before). */
  attachedAtNs: bigint;
}

export interface WatchReading {
  /** The peer's state in the peer table. */
  state: number;
  /** Its heartbeat (hrtime ns; 0 when never written); read only when needed. */
  heartbeat: () => bigint;
  now: number;
  nowNs: bigint;
  /** The segment's heartbeat interval (0: heartbeats off). */
  heartbeatNs: bigint;
  /** How long a guest may take to detach after the host closed its link. */
  goodbyeMs: number;
}

export const DETACHED = "detached" as const;
export type PeerVerdict = null | typeof DETACHED | { cause: DeathCause; detail: string };

export function assessPeer(peer: WatchedPeer, r: WatchReading): PeerVerdict {
  if (r.state === PeerState.Goodbye) return DETACHED;
  if (!peer.attached && peer.attachDeadline > 0 && r.now > peer.attachDeadline) return { cause: "attach-timeout", detail: "it did not attach in time" };
  if (peer.attached && r.heartbeatNs > 0n) {
    // A heartbeat of 0 (never written, or zeroed by the guest) is stale,
    // counted from when we saw it attach: it must not switch hang detection off.
    const hb = r.heartbeat();
    const since = hb > 0n && hb <= r.nowNs ? hb : peer.attachedAtNs;
    if (r.nowNs - since > 2n * r.heartbeatNs) {
      return {
        cause: "heartbeat",
        detail: `no heartbeat for ${Number((r.nowNs - since) / 1_000_000n)} ms (interval ${Number(r.heartbeatNs / 1_000_000n)} ms)`,
      };
    }
  }
  if (peer.closingSince > 0 && r.now - peer.closingSince > r.goodbyeMs) {
    return { cause: "unresponsive", detail: `it did not detach within ${r.goodbyeMs} ms after the host closed the link` };
  }
  return null;
}
