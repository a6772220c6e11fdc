/**
 * What a link is built with: its options and the defaults of its limits
 * (see docs/limits.md).
 */
import type { Message } from "../wire/message.js";
import type { Dispatcher } from "./connection.js";
import { RECENT_CONNECTION_IDS } from "./connection-table.js";
import type { FlowControlBackend } from "./flow.js";
import type { HandshakeBackend } from "./handshake.js";
import type { PressureThresholds } from "./pressure.js";

export interface LinkOptions {
  /** True for the side that opened the link (odd channel ids). */
  initiator: boolean;
  handshake: HandshakeBackend;
  /** Builds the flow-control backend; default: Credit messages. */
  flowControl?: (send: (m: Message) => void) => FlowControlBackend;
  /** Serves incoming calls on connection 0. */
  dispatcher?: Dispatcher | null;
  /** Watermarks for channel level events. */
  thresholds?: Partial<PressureThresholds>;
  /** Called when a handler throws unexpectedly (default: console.error). */
  onHandlerError?: (error: unknown, info: { method: string; connId: number; requestId: number }) => void;
  /** Called for every protocol violation, sent or received (default: none). */
  onProtocolError?: (info: { rule: string; reason: string; direction: "sent" | "received"; connId: number }) => void;
  /** Send the handler's exception message to the caller (default true). */
  exposeHandlerErrors?: boolean;
  /** How long `connect()` waits for Accept/Reject (default 30 s). */
  connectTimeoutMs?: number;
  /** Max Connects waiting for the application to accept (default 128). */
  acceptBacklog?: number;
  /** How long to wait for the peer's Hello before giving up (default 10 s). */
  handshakeTimeoutMs?: number;
  /**
   * Reply bytes (Responses, Accept/Reject, Goodbye, Credit) queued for the
   * peer above which the link stops reading from it until they drain to half
   * (default 2 MiB). Bounds what a peer that sends but never reads can make
   * us buffer; see docs/limits.md.
   */
  replyHighWaterMark?: number;
  /** Incoming calls served at once per connection (default 1024); more get an error Response. */
  maxInFlightCalls?: number;
  /** Open channels per connection (default 4096); a Request that would exceed it gets an error Response. */
  maxChannels?: number;
  /** Virtual connections the peer may have open on this link (default 1024); more Connects are rejected. */
  maxConnections?: number;
  /**
   * Closes the link after this long without any message from the peer while
   * nothing is in flight: no calls either way, no open channels, no pending
   * Connect (default 0 = never; servers default to 5 minutes). A link with
   * open channels or calls is never closed for being idle.
   */
  idleTimeoutMs?: number;
}

/** Defaults of the per-link limits (see docs/limits.md). */
export const DEFAULT_LINK_LIMITS = {
  maxInFlightCalls: 1024,
  maxChannels: 4096,
  maxConnections: 1024,
  /** Closed connection ids and abandoned Connect ids remembered (to tell late from unknown). */
  recentIds: RECENT_CONNECTION_IDS,
} as const;

/** Default of `LinkOptions.replyHighWaterMark`. */
export const DEFAULT_REPLY_HIGH_WATER_MARK = 2 * 1024 * 1024;
