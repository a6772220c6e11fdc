/**
 * The roam driver over SHM (seed 001): the same session core as the stream
 * transports with two backends swapped — the handshake reads the limits from
 * the segment header (no Hello, r[shm.handshake]) and flow control uses the
 * channel table (no Credit message, r[shm.flow.no-credit-message]).
 *
 *   host:  const link = establishHostPeer(host, ticket.peerId, serve(Api, impl));
 *   guest: const link = establishGuest(ShmGuest.fromArgs(), serve(Callbacks, impl));
 *          const api = client(Api, link.root);
 */
import type { Dispatcher } from "../../session/connection.js";
import { ProtocolViolation } from "../../session/errors.js";
import { ImplicitHandshake } from "../../session/handshake.js";
import type { Link } from "../../session/link.js";
import type { LinkOptions } from "../../session/link-options.js";
import { resolveLinkOptions } from "../link-options.js";
import { openLink } from "../open-link.js";
import type { Message, Metadata } from "../../wire/message.js";
import type { ShmGuest } from "./guest.js";
import type { ShmHost } from "./host.js";
import type { Segment } from "./segment.js";
import type { ShmTransport } from "./transport.js";

/** Limits come from the segment header; the host's values are authoritative (r[shm.handshake.no-negotiation]). */
export class ShmHandshake extends ImplicitHandshake {
  constructor(segment: Segment) {
    super({ maxPayloadSize: segment.config.maxPayloadSize, initialChannelCredit: segment.config.initialCredit });
  }
  override receive(m: Message): never {
    throw new ProtocolViolation("shm.handshake", `SHM has no handshake messages; received ${m.type}`);
  }
}

export interface ShmLinkOptions extends Omit<LinkOptions, "initiator" | "handshake" | "flowControl" | "dispatcher"> {
  /** Microseconds to spin for input before sleeping when input is expected (default 50). */
  spinMicros?: number;
  /** Queued outgoing bytes above which channel senders wait (default 4 MiB). */
  highWaterMark?: number;
  /** Queued outgoing bytes that fail the link (default 512 MiB). */
  maxQueuedBytes?: number;
  /** Accept every virtual connection the peer opens, served by the returned dispatcher. */
  acceptConnections?: (metadata: Metadata, link: Link) => Dispatcher | null;
}

function makeLink(transport: ShmTransport, segment: Segment, initiator: boolean, dispatcher: Dispatcher | null, o: ShmLinkOptions): Link {
  const { spinMicros: _s, highWaterMark: _h, maxQueuedBytes: _m, ...rest } = o;
  // The limits are the segment header's (r[shm.handshake.no-negotiation]).
  const { maxPayloadSize, initialCredit: initialChannelCredit } = segment.config;
  return openLink(transport, {
    ...resolveLinkOptions({ ...rest, dispatcher, maxPayloadSize, initialChannelCredit }),
    initiator,
    handshake: new ShmHandshake(segment),
    // The SHM backend never sends a message: the link gets no Credit to send.
    flowControl: () => transport.flow,
  });
}

/**
 * Serves guest `peerId` of `host` (reserved with `addPeer`, or attached by
 * path) with `dispatcher`, and returns the link: `link.root` is connection 0,
 * usable by typed clients at once. Frames sent before the guest attached wait
 * in its buffer.
 */
export function establishHostPeer(host: ShmHost, peerId: number, dispatcher: Dispatcher | null, options: ShmLinkOptions = {}): Link {
  const transport = host.openTransport(peerId, options);
  const link = makeLink(transport, host.segment, false, dispatcher, options);
  host.adoptLink(peerId, link);
  return link;
}

/** The guest side: serves `dispatcher` to the host and returns the link to call it. */
export function establishGuest(guest: ShmGuest, dispatcher: Dispatcher | null, options: ShmLinkOptions = {}): Link {
  const transport = guest.openTransport(options);
  const link = makeLink(transport, guest.segment, true, dispatcher, options);
  guest.adoptLink(link);
  return link;
}
