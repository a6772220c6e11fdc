/**
 * Node entry points: serve and connect over TCP, Unix sockets and WebSocket.
 *
 *   const server = await listenTcp({ port: 0, dispatcher: serve(Testbed, impl) });
 *   const link = await connectTcp({ port: server.port });
 *   const testbed = client(Testbed, link.root);
 */
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as nodePath from "node:path";
import { WebSocket, WebSocketServer } from "ws";
import type { Dispatcher } from "../session/connection.js";
import type { Link } from "../session/link.js";
import { diagnosticsRegistry, type ServerDiagnostics } from "../session/diagnostics.js";
import type { MessageTransport } from "../session/transport.js";
import type { ResolvedLimits } from "./limits.js";
import { resolveLinkOptions, type PeerOptions, type ResolvedLinkOptions } from "./link-options.js";
import { openLink } from "./open-link.js";
import { StreamTransport } from "./stream.js";
import { WebSocketTransport, type WebSocketLike } from "./websocket.js";
import { WsFrameWriter } from "./ws-frames.js";
import { applyTcpKeepAlive, startWebSocketHeartbeat, type KeepAliveOptions } from "./keepalive.js";

export interface ServerOptions extends PeerOptions, KeepAliveOptions {
  /** Per-link dispatcher (overrides `dispatcher`): e.g. to keep per-client state. */
  dispatcherFor?: (link: Link) => Dispatcher | null;
  /** Called for each new link once its handshake completed. */
  onLink?: (link: Link) => void;
  /**
   * Links served at once (default 4096); connections beyond it are closed
   * at once. Each link costs a socket and ~20 KiB before its handshake.
   */
  maxLinks?: number;
  /**
   * WebSocket port: an HTTP request (the upgrade) must have sent its headers
   * within this many ms, else the socket is closed (default 10 s; slowloris).
   * Applies to the HTTP server `listenWebSocket` creates.
   */
  httpHeadersTimeoutMs?: number;
}

/** Server-side defaults (a server faces unknown peers; see docs/limits.md). */
export const SERVER_DEFAULTS = {
  maxLinks: 4096,
  /** A peer that sends no Hello is cut off after this long. */
  handshakeTimeoutMs: 5000,
  /** Links with nothing in flight are closed after this long without a message. */
  idleTimeoutMs: 300_000,
  httpHeadersTimeoutMs: 10_000,
} as const;

/** `host` as it appears in a URL: IPv6 addresses go in brackets. */
function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * A listening roam server; `close()` stops listening and closes every link.
 * `address` is a URL for every transport: `tcp://127.0.0.1:4000`, `unix:///run/app.sock`,
 * `ws://127.0.0.1:8080/` (the WebSocket one is what `connectWebSocket` takes); `port`
 * (TCP, WebSocket) and `path` (Unix) give the parts.
 */
export class RoamServer {
  readonly links = new Set<Link>();
  private closing = false;

  constructor(
    private readonly stopListening: () => Promise<void>,
    /** A URL: `tcp://host:port`, `unix:///path`, `ws://host:port/path`. */
    readonly address: string,
    readonly port: number | undefined,
    readonly path: string | undefined,
    private readonly options: ServerOptions,
    /** What every link of this server is opened with (resolved once, server defaults first). */
    private readonly linkOptions: ResolvedLinkOptions = resolveServerOptions(options),
  ) {
    diagnosticsRegistry.sources.add(this);
  }

  /** The limits every link of this server uses (resolved once). */
  get limits(): ResolvedLimits {
    return this.linkOptions.limits;
  }

  /** A snapshot of every link: connections, calls in flight, open channels. */
  diagnostics(): ServerDiagnostics {
    return { kind: "server", address: this.address, links: [...this.links].map((l) => l.diagnostics()) };
  }

  /** @internal */
  ownedLinks(): Iterable<Link> {
    return this.links;
  }

  /** Whether another link may be served now (maxLinks). */
  get full(): boolean {
    return this.links.size >= (this.options.maxLinks ?? SERVER_DEFAULTS.maxLinks);
  }

  /** @internal Serves a new transport; null when the server is full (the transport is closed). */
  adopt(transport: MessageTransport): Link | null {
    const o = this.options;
    if (this.full) {
      transport.close();
      return null;
    }
    const link = openLink(transport, { ...this.linkOptions, initiator: false, dispatcherFor: o.dispatcherFor });
    this.links.add(link);
    link.onClose(() => this.links.delete(link));
    link.ready().then(
      () => o.onLink?.(link),
      () => {
        // handshake failed: the link reported it and closed
      },
    );
    if (this.closing) link.close("server shutting down");
    return link;
  }

  /** Stops accepting, sends Goodbye on every link and waits for the listener to close. */
  async close(reason = ""): Promise<void> {
    this.closing = true;
    diagnosticsRegistry.sources.delete(this);
    for (const l of [...this.links]) l.close(reason);
    await this.stopListening();
  }
}

/** A server's link options: its defaults (SERVER_DEFAULTS), then the user's, then the limits. */
function resolveServerOptions(o: ServerOptions): ResolvedLinkOptions {
  return resolveLinkOptions(o, { handshakeTimeoutMs: SERVER_DEFAULTS.handshakeTimeoutMs, idleTimeoutMs: SERVER_DEFAULTS.idleTimeoutMs });
}

function streamTransportFor(socket: net.Socket, limits: ResolvedLimits, description: string, keepAlive: KeepAliveOptions): StreamTransport {
  socket.setNoDelay(true);
  applyTcpKeepAlive(socket, keepAlive);
  return new StreamTransport(socket, { maxFrameBytes: limits.maxFrameBytes, description });
}

function listenNet(server: net.Server, bind: (cb: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    bind(() => {
      server.off("error", reject);
      resolve();
    });
  });
}

function closeNetServer(server: net.Server | http.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Serves roam over TCP (COBS framing). `port: 0` picks a free port. */
export async function listenTcp(o: ServerOptions & { host?: string; port?: number }): Promise<RoamServer> {
  const host = o.host ?? "127.0.0.1";
  const resolved = resolveServerOptions(o);
  let rs: RoamServer | null = null;
  const server = net.createServer((socket) => {
    if (rs!.full) return void socket.destroy();
    rs!.adopt(streamTransportFor(socket, resolved.limits, `tcp ${socket.remoteAddress}:${socket.remotePort}`, o));
  });
  await listenNet(server, (cb) => server.listen(o.port ?? 0, host, cb));
  const addr = server.address() as net.AddressInfo;
  rs = new RoamServer(() => closeNetServer(server), `tcp://${urlHost(host)}:${addr.port}`, addr.port, undefined, o, resolved);
  return rs;
}

/** Serves roam over a Unix domain socket at `path` (a stale socket file is replaced). */
export async function listenUnix(o: ServerOptions & { path: string }): Promise<RoamServer> {
  try {
    if (fs.statSync(o.path).isSocket()) fs.unlinkSync(o.path);
  } catch {
    // not there
  }
  const resolved = resolveServerOptions(o);
  let rs: RoamServer | null = null;
  const server = net.createServer((socket) => {
    if (rs!.full) return void socket.destroy();
    rs!.adopt(streamTransportFor(socket, resolved.limits, `unix ${o.path}`, o));
  });
  await listenNet(server, (cb) => server.listen(o.path, cb));
  rs = new RoamServer(
    async () => {
      await closeNetServer(server);
      try {
        fs.unlinkSync(o.path);
      } catch {
        // already gone
      }
    },
    `unix://${encodeURI(nodePath.resolve(o.path))}`,
    undefined,
    o.path,
    o,
    resolved,
  );
  return rs;
}

/**
 * Serves roam over WebSocket. Pass `server` to share an existing HTTP server
 * (e.g. one that also serves a web page), else one is created on host/port.
 */
export async function listenWebSocket(
  o: ServerOptions & { host?: string; port?: number; path?: string; server?: http.Server },
): Promise<RoamServer> {
  const host = o.host ?? "127.0.0.1";
  const headersTimeout = o.httpHeadersTimeoutMs ?? SERVER_DEFAULTS.httpHeadersTimeoutMs;
  const httpServer =
    o.server ??
    http.createServer(
      // Node checks these every connectionsCheckingInterval: an unfinished
      // request (headers or upgrade) is cut off instead of held forever.
      { headersTimeout, requestTimeout: headersTimeout, connectionsCheckingInterval: Math.min(1000, headersTimeout) },
      (_req, res) => {
        res.writeHead(426, { "content-type": "text/plain" });
        res.end("roam: connect with a WebSocket\n");
      },
    );
  const ownsServer = !o.server;
  if (ownsServer) await listenNet(httpServer as unknown as net.Server, (cb) => httpServer.listen(o.port ?? 0, host, cb));
  const resolved = resolveServerOptions(o);
  const { limits } = resolved;
  const wss = new WebSocketServer({ server: httpServer, path: o.path, maxPayload: limits.maxMessageBytes, perMessageDeflate: false });
  const addr = httpServer.address() as net.AddressInfo;
  let rs: RoamServer | null = null;
  wss.on("connection", (ws, req) => {
    if (rs!.full) return void ws.terminate();
    startWebSocketHeartbeat(ws, o);
    // req.socket is the connection the WebSocket runs on (`ws` sets no-delay on it).
    rs!.adopt(
      new WebSocketTransport(ws as unknown as WebSocketLike, {
        maxMessageBytes: limits.maxMessageBytes,
        description: `ws ${req.socket.remoteAddress}:${req.socket.remotePort}`,
        frames: new WsFrameWriter(req.socket, false),
      }),
    );
  });
  rs = new RoamServer(
    async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (ownsServer) await closeNetServer(httpServer);
    },
    `ws://${urlHost(host)}:${addr.port}${o.path ?? "/"}`,
    addr.port,
    undefined,
    o,
    resolved,
  );
  return rs;
}

/** Wraps an already-connected Duplex (socket, stdio pair) as the link initiator or acceptor. */
export async function linkOverStream(stream: net.Socket, o: PeerOptions & KeepAliveOptions & { initiator: boolean; description?: string }): Promise<Link> {
  const { initiator, description: _d, ...peer } = o;
  const resolved = resolveLinkOptions(peer);
  return started(openLink(streamTransportFor(stream, resolved.limits, o.description ?? "stream", o), { ...resolved, initiator }));
}

/** The link once its handshake completed (rejects with why it closed). */
async function started(link: Link): Promise<Link> {
  await link.ready();
  return link;
}

/** Size of the read buffer a connecting socket reuses for every read. */
const READ_BUFFER_BYTES = 256 * 1024;

/**
 * Connects a socket and runs the link over it as the initiator. The socket
 * reads into one reused buffer (`onread`) that goes straight to the
 * transport, which decodes it before returning: no allocation per read, so a
 * bulk stream makes no garbage. (Sockets a server accepts cannot take
 * `onread` in Node; they use 'data' events.)
 */
async function connectStream(opts: net.NetConnectOpts, o: PeerOptions & KeepAliveOptions & { timeoutMs?: number }, description: string): Promise<Link> {
  let transport: StreamTransport | null = null;
  const socket = new net.Socket({
    onread: {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (n: number, buf: Uint8Array): boolean => {
        transport!.feed(buf.subarray(0, n));
        return true;
      },
    },
  } as net.SocketConstructorOpts);
  const resolved = resolveLinkOptions(o);
  transport = streamTransportFor(socket, resolved.limits, description, o);
  const timeoutMs = o.timeoutMs ?? 10_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", reject);
      resolve();
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.connect(opts);
  });
  return started(openLink(transport, { ...resolved, initiator: true }));
}

/** Connects over TCP as the link initiator and completes the Hello exchange. */
export async function connectTcp(o: PeerOptions & KeepAliveOptions & { host?: string; port: number; timeoutMs?: number }): Promise<Link> {
  const host = o.host ?? "127.0.0.1";
  return connectStream({ host, port: o.port }, o, `tcp ${host}:${o.port}`);
}

/** Connects to a Unix socket as the link initiator. */
export async function connectUnix(o: PeerOptions & KeepAliveOptions & { path: string; timeoutMs?: number }): Promise<Link> {
  return connectStream({ path: o.path }, o, `unix ${o.path}`);
}

/** Connects over WebSocket (Node, with `ws`) as the link initiator. */
export async function connectWebSocket(url: string, o: PeerOptions & KeepAliveOptions & { timeoutMs?: number } = {}): Promise<Link> {
  const resolved = resolveLinkOptions(o);
  const { limits } = resolved;
  const ws = new WebSocket(url, { maxPayload: limits.maxMessageBytes, perMessageDeflate: false });
  // The upgrade response's socket is the connection the WebSocket runs on;
  // the frame writer batches our frames onto it (client frames are masked).
  let frames: WsFrameWriter | undefined;
  ws.once("upgrade", (res) => {
    frames = new WsFrameWriter(res.socket, true);
  });
  let transport: WebSocketTransport | undefined;
  // Attach before 'open' so nothing the server sends right away is missed:
  // 'upgrade' and 'open' are emitted together, before any message.
  ws.once("open", () => {
    transport = new WebSocketTransport(ws as unknown as WebSocketLike, { maxMessageBytes: limits.maxMessageBytes, description: `ws ${url}`, frames });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`WebSocket connect to ${url} timed out`));
    }, o.timeoutMs ?? 10_000);
    ws.once("open", () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  startWebSocketHeartbeat(ws, o);
  return started(openLink(transport!, { ...resolved, initiator: true }));
}
