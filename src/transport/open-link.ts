/**
 * The one place a link is started, for every transport (TCP, Unix, stdio,
 * WebSocket in Node and the browser, SHM, the bridge's in-memory pair).
 *
 * A transport adapter does three things and nothing else:
 *
 *   const o = resolveLinkOptions(userOptions);           // once: defaults, the user's, the limits
 *   const t = new XTransport(socket, { maxFrameBytes: o.limits.maxFrameBytes, ... });
 *   const link = openLink(t, { ...o, initiator: true }); // builds, wires and starts it
 *   await link.ready();                                  // the handshake (clients)
 *
 * so the limits the link advertises and the limit the transport enforces come
 * from the same resolved value (transport/limits.ts), and how a link is
 * started (dispatcher, virtual-connection acceptor, handshake, start) is
 * written once.
 */
import type { Dispatcher } from "../session/connection.js";
import { HelloHandshake, type HandshakeBackend } from "../session/handshake.js";
import { Link } from "../session/link.js";
import type { LinkOptions } from "../session/link-options.js";
import type { MessageTransport } from "../session/transport.js";
import type { ResolvedLinkOptions } from "./link-options.js";

export interface OpenLinkOptions extends ResolvedLinkOptions {
  /** True on the side that opened the transport (it numbers its channels odd). */
  readonly initiator: boolean;
  /**
   * Chooses the dispatcher of connection 0 once the link exists (a server's
   * `dispatcherFor`, e.g. per-client state); overrides `dispatcher`.
   */
  readonly dispatcherFor?: ((link: Link) => Dispatcher | null) | undefined;
  /**
   * How the two sides agree on the limits. Default: a Hello advertising
   * `limits`. SHM reads them from the segment header instead.
   */
  readonly handshake?: HandshakeBackend | undefined;
  /** The flow-control backend. Default: Credit messages. SHM uses its channel table. */
  readonly flowControl?: LinkOptions["flowControl"];
}

/**
 * Builds the link over `transport`, wires its dispatcher and acceptor, and
 * starts it (the transport, then the handshake). Await `link.ready()` for
 * the handshake; a failed start closes the link and rejects `ready()` (it
 * is not reported twice as an unhandled rejection).
 */
export function openLink(transport: MessageTransport, o: OpenLinkOptions): Link {
  const { maxPayloadSize, initialChannelCredit } = o.limits;
  const flowControl = o.flowControl ?? o.session.flowControl;
  const link = new Link(transport, {
    ...o.session,
    initiator: o.initiator,
    dispatcher: o.dispatcher,
    handshake: o.handshake ?? new HelloHandshake({ maxPayloadSize, initialChannelCredit }),
    ...(flowControl ? { flowControl } : {}),
  });
  if (o.dispatcherFor) link.root.setDispatcher(o.dispatcherFor(link));
  const accept = o.acceptConnections;
  if (accept) link.acceptConnections((metadata) => accept(metadata, link));
  link.start().catch(() => {
    // The link closed during start-up: it reported why (onClose, ready()).
  });
  return link;
}
