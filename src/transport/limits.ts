/**
 * The one place a link's size limits are resolved, for every transport.
 *
 * A side advertises `maxPayloadSize` in its Hello (or, on SHM, in the segment
 * header); the link uses the minimum of both sides, and the session core
 * rejects any Request, Response or channel element above it with a Goodbye
 * naming the rule. A transport must never cut a message off before the core
 * can do that, so each transport's own frame limit is derived here from the
 * same resolved value, not from a default of its own:
 *
 *   - byte streams (TCP, Unix, stdio): `maxFrameBytes`, COBS-encoded frame
 *   - WebSocket (Node `ws` and browser): `maxMessageBytes`, one binary message
 *   - SHM: the segment's `max_payload_size` and slot sizes (transport/shm/host.ts)
 *
 * The peer can send us at most what we advertised, so our advertised value
 * bounds every frame; what is above the negotiated value but within this
 * bound reaches the core, which answers with the rule-id Goodbye.
 */
import type { Negotiated } from "../session/handshake.js";

/** Limits a side advertises in its Hello unless told otherwise. */
export const DEFAULT_LIMITS: Negotiated = {
  maxPayloadSize: 1024 * 1024,
  initialChannelCredit: 1024 * 1024,
};

/** Room for everything in a message besides its payload: metadata (call.metadata.limits) and headers. */
const MESSAGE_OVERHEAD = 64 * 1024 + 64 * 1024 + 1024;

export interface ResolvedLimits extends Negotiated {
  /** Largest postcard-encoded message accepted (one WebSocket message). */
  readonly maxMessageBytes: number;
  /** Largest COBS-encoded frame accepted on a byte stream. */
  readonly maxFrameBytes: number;
}

/** What every transport's options carry (PeerOptions, ShmHostOptions). */
export interface LimitOptions {
  maxPayloadSize?: number;
  initialChannelCredit?: number;
}

function checkU32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) {
    throw new RangeError(`${name} must be an integer in 1..2^32-1 (a u32 in Hello), got ${v}`);
  }
  return v;
}

/** Encoded-frame cap on a byte stream for a payload limit (message + COBS overhead). */
export function frameLimitFor(maxPayloadSize: number): number {
  const raw = maxPayloadSize + MESSAGE_OVERHEAD;
  return raw + Math.floor(raw / 254) + 1;
}

/** Resolves the options once; transports take the result whole. */
export function resolveLimits(o: LimitOptions = {}, defaults: Negotiated = DEFAULT_LIMITS): ResolvedLimits {
  const maxPayloadSize = checkU32("maxPayloadSize", o.maxPayloadSize ?? defaults.maxPayloadSize);
  const initialChannelCredit = checkU32("initialChannelCredit", o.initialChannelCredit ?? defaults.initialChannelCredit);
  return {
    maxPayloadSize,
    initialChannelCredit,
    maxMessageBytes: maxPayloadSize + MESSAGE_OVERHEAD,
    maxFrameBytes: frameLimitFor(maxPayloadSize),
  };
}
