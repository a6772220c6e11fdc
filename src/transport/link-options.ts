import type { Dispatcher } from "../session/connection.js";
import { HelloHandshake } from "../session/handshake.js";
import type { Link, LinkOptions } from "../session/link.js";
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

/** Link options for a Hello-based link; `limits` is the transport's resolved limits (one source for both). */
export function linkOptions(initiator: boolean, o: PeerOptions, limits: ResolvedLimits = resolveLimits(o)): LinkOptions {
  return {
    ...o,
    initiator,
    dispatcher: o.dispatcher ?? null,
    handshake: new HelloHandshake({ maxPayloadSize: limits.maxPayloadSize, initialChannelCredit: limits.initialChannelCredit }),
  };
}

export function wireAcceptConnections(link: Link, o: PeerOptions): void {
  const f = o.acceptConnections;
  if (f) link.acceptConnections((md) => f(md, link));
}
