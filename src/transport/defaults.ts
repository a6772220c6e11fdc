import type { Negotiated } from "../session/handshake.js";

/** Limits a side advertises in its Hello unless told otherwise. */
export const DEFAULT_LIMITS: Negotiated = {
  maxPayloadSize: 1024 * 1024,
  initialChannelCredit: 1024 * 1024,
};

/** Encoded-frame cap derived from the payload limit (payload + metadata + headers, COBS overhead). */
export function frameLimitFor(maxPayloadSize: number): number {
  const raw = maxPayloadSize + 64 * 1024 + 64 * 1024 + 1024;
  return raw + Math.floor(raw / 254) + 1;
}
