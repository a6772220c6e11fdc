import type { Dispatcher } from "../session/connection.js";
import type { Negotiated } from "../session/handshake.js";
import type { Link } from "../session/link.js";
import type { LinkOptions } from "../session/link-options.js";
import type { Metadata } from "../wire/message.js";
import { resolveLimits, type ResolvedLimits } from "./limits.js";

/** Options shared by every Hello-based (stream, WebSocket) link. */
export interface PeerOptions extends Omit<LinkOptions, "initiator" | "handshake" | "dispatcher"> {
  /** Serves calls the peer makes on connection 0. */
  dispatcher?: Dispatcher | null;
  /** Advertised max payload size (default 1 MiB). The link uses the minimum of both sides. */
  maxPayloadSize?: number;
  /** Advertised initial channel credit (default 1 MiB). */
  initialChannelCredit?: number;
  /** Accept every virtual connection the peer opens, served by the returned dispatcher. */
  acceptConnections?: (metadata: Metadata, link: Link) => Dispatcher | null;
}

/** The session's own options (timeouts, per-link caps, callbacks), as a link takes them. */
export type SessionOptions = Omit<LinkOptions, "initiator" | "handshake" | "dispatcher">;

/**
 * A link's options resolved once, in one order: the transport's defaults,
 * then the user's options, then the size limits derived from them. A
 * transport adapter takes `limits` for its own frame cap and hands the whole
 * value to `openLink` (transport/open-link.ts).
 */
export interface ResolvedLinkOptions {
  /** Session options: `defaults` overridden by the user's. */
  readonly session: SessionOptions;
  readonly dispatcher: Dispatcher | null;
  readonly acceptConnections: ((metadata: Metadata, link: Link) => Dispatcher | null) | undefined;
  /** What the link advertises, and the transport's frame/message cap (transport/limits.ts). */
  readonly limits: ResolvedLimits;
}

/**
 * Resolves `o` (throws a RangeError for limits a Hello cannot carry).
 * `defaults` are session defaults the user's options override (a server's
 * handshake and idle timeouts); `limitDefaults` the limits advertised when
 * the user sets none.
 */
export function resolveLinkOptions(o: PeerOptions, defaults: Partial<SessionOptions> = {}, limitDefaults?: Negotiated): ResolvedLinkOptions {
  // Everything else in `o` (a server's or a transport's own options) rides
  // along in `session` and is ignored by the link, as it always was.
  const { dispatcher, acceptConnections, maxPayloadSize: _m, initialChannelCredit: _c, ...session } = o;
  return {
    session: { ...defaults, ...session },
    dispatcher: dispatcher ?? null,
    acceptConnections,
    limits: resolveLimits(o, limitDefaults),
  };
}
