/**
 * A roam server that can be stopped and started again on the same address
 * (TCP port, Unix socket path or WebSocket URL), for the reconnecting-client
 * tests. "drop" cuts every link without a Goodbye (like a crash or a network
 * failure); "goodbye" closes them gracefully with a reason.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { Dispatcher } from "../../src/session/connection.js";
import type { Link } from "../../src/session/link.js";
import { listenTcp, listenUnix, listenWebSocket, type RoamServer, type ServerOptions } from "../../src/transport/node.js";
import { tcpConnector, unixConnector, webSocketConnector } from "../../src/reconnect/connectors.js";
import type { Connector } from "../../src/reconnect/client.js";
import type { PeerOptions } from "../../src/transport/link-options.js";
import { tempDir, type TransportKind } from "./testbed-server.js";

export class RestartableServer {
  server: RoamServer | null = null;
  port = 0;
  private dir: string | null = null;
  /** Links the server accepted, across restarts. */
  readonly accepted: Link[] = [];

  constructor(
    readonly kind: TransportKind,
    private readonly dispatcher: Dispatcher,
    private readonly options: ServerOptions = {},
  ) {
    if (kind === "unix") this.dir = tempDir("roam-reconnect-");
  }

  get socketPath(): string {
    return path.join(this.dir!, "roam.sock");
  }

  async start(): Promise<void> {
    if (this.server) throw new Error("already running");
    const o: ServerOptions = { ...this.options, dispatcher: this.dispatcher, onLink: (l) => this.accepted.push(l) };
    if (this.kind === "tcp") this.server = await listenTcp({ ...o, port: this.port });
    else if (this.kind === "unix") this.server = await listenUnix({ ...o, path: this.socketPath });
    else this.server = await listenWebSocket({ ...o, port: this.port });
    if (this.kind !== "unix") this.port = this.server.port!;
  }

  async stop(how: "drop" | "goodbye", reason = ""): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    if (how === "drop") for (const l of [...s.links]) l.transport.close();
    await s.close(reason);
  }

  async restart(how: "drop" | "goodbye" = "drop", downMs = 0): Promise<void> {
    await this.stop(how);
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }

  connector(o: PeerOptions = {}): Connector {
    if (this.kind === "tcp") return tcpConnector({ ...o, port: this.port, timeoutMs: 2_000 });
    if (this.kind === "unix") return unixConnector({ ...o, path: this.socketPath, timeoutMs: 2_000 });
    return webSocketConnector(`ws://127.0.0.1:${this.port}/`, { ...o, timeoutMs: 2_000 });
  }

  async dispose(): Promise<void> {
    await this.stop("drop");
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Resolves when `cond()` holds; fails after `ms`. */
export async function until(cond: () => boolean, ms = 5_000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A promise with its resolve function (a gate a handler waits on). */
export function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}
