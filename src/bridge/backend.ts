/**
 * Where the bridge sends its calls: a local dispatcher (reached through an
 * in-process roam link) or an upstream roam connection.
 */
import type { Connection, Dispatcher } from "../session/connection.js";
import { ConnectionClosedError } from "../session/errors.js";
import type { Link } from "../session/link.js";
import { resolveLinkOptions, type PeerOptions } from "../transport/link-options.js";
import { openLink } from "../transport/open-link.js";
import { memoryTransportPair } from "./memory-transport.js";

/**
 * - a `Dispatcher` (e.g. `serve(Testbed, impl)`): served in this process;
 * - a `Connection` (e.g. `link.root` of `connectTcp(...)`): calls go upstream;
 * - a function returning a Connection: asked for each call (reconnecting setups).
 */
export type BridgeBackendOption = Dispatcher | Connection | (() => Connection | Promise<Connection>);

export interface BridgeBackend {
  connection(): Connection | Promise<Connection>;
  close(): Promise<void>;
}

function isConnection(x: unknown): x is Connection {
  return typeof x === "object" && x !== null && typeof (x as Connection).call === "function" && typeof (x as Connection).callRaw === "function";
}

export function resolveBackend(b: BridgeBackendOption, peer: PeerOptions = {}): BridgeBackend {
  if (typeof b === "function") return { connection: b, close: async () => {} };
  if (isConnection(b)) return { connection: () => b, close: async () => {} };
  return new LocalBackend(b, peer);
}

/** A dispatcher in this process, behind a real link over in-memory transports. */
class LocalBackend implements BridgeBackend {
  private readonly client: Link;
  private readonly server: Link;
  private readonly ready: Promise<void>;

  constructor(dispatcher: Dispatcher, peer: PeerOptions) {
    const [a, b] = memoryTransportPair();
    const resolved = resolveLinkOptions(peer);
    this.client = openLink(a, { ...resolved, dispatcher: null, initiator: true });
    this.server = openLink(b, { ...resolved, dispatcher, initiator: false });
    this.ready = Promise.all([this.client.ready(), this.server.ready()]).then(() => undefined);
    // A failed start shows up as a rejected call; do not leave it unhandled here.
    this.ready.catch(() => {});
  }

  connection(): Connection | Promise<Connection> {
    if (this.client.root.isClosed) throw this.client.root.closeReason ?? new ConnectionClosedError("local backend closed", "local");
    return this.client.root;
  }

  async close(): Promise<void> {
    this.client.close();
    this.server.close();
  }
}
