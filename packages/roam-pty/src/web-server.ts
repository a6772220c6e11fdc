/**
 * The web terminal: one HTTP server (127.0.0.1 by default) that serves the
 * page, its static assets (xterm.js and roam-ts's browser modules from where
 * they are installed, roam-pty's own browser modules) and the roam WebSocket endpoint.
 *
 * Access: a terminal is a shell, so the page and the WebSocket need a token
 * (random per daemon unless given). The page is `/?token=…`; the WebSocket
 * path is `/roam/<token>`. Requests whose Host header is not the server's own
 * address are refused (DNS rebinding), and so are WebSocket upgrades from a
 * foreign Origin. Static assets carry no secret and are served to anyone
 * local; nothing outside the mounts below is reachable (traversal guard).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { readFileSync, realpathSync, statSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createRequire } from "node:module";
import { dirname, extname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";

import { listenWebSocket, type RoamServer, type ServerOptions } from "roam-ts/node";
import { CODE_DIR, WEB_STATIC_DIR } from "./layout.js";

/** Where a dependency's files are (resolved from `from`, a module URL). */
function packageDir(spec: string, probe: string, from: string = import.meta.url): string {
  return dirname(createRequire(from).resolve(`${spec}/${probe}`));
}

/** The directory of roam-ts's compiled modules (its main entry point's directory). */
function roamTsDir(): string {
  return dirname(createRequire(import.meta.url).resolve("roam-ts"));
}

/** A URL prefix served from a directory. */
export interface Mount {
  prefix: string;
  dir: string;
  /** Paths below the mount that may be served (prefixes); all when absent. */
  allow?: readonly string[];
}

function mounts(): Mount[] {
  const roamTs = roamTsDir();
  return [
    // roam-pty's browser modules only (not the daemon, CLI or this server).
    { prefix: "/assets/app/", dir: CODE_DIR, allow: ["service.js", "sdk-core.js", "web/"] },
    // roam-ts's environment-neutral modules (the page's import map points "roam-ts" here).
    { prefix: "/assets/roam-ts/", dir: roamTs },
    { prefix: "/assets/xterm/", dir: packageDir("@xterm/xterm", "package.json"), allow: ["lib/", "css/"] },
    // roam-ts's dependency, resolved from roam-ts (where npm installed it for roam-ts).
    { prefix: "/assets/noble-hashes/", dir: packageDir("@noble/hashes", "blake3.js", pathToFileURL(join(roamTs, "index.js")).href) },
    { prefix: "/assets/web/", dir: WEB_STATIC_DIR, allow: ["style.css"] },
  ];
}

const CONTENT_TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

/** Maps a URL path to a file under one of the mounts, or null. */
export function resolveAsset(urlPath: string, table: Mount[] = mounts()): { file: string; type: string } | null {
  let p: string;
  try {
    p = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (p.includes("\0") || p.includes("\\")) return null;
  for (const { prefix, dir, allow } of table) {
    if (!p.startsWith(prefix)) continue;
    const rest = p.slice(prefix.length);
    if (rest.split("/").some((seg) => seg === ".." || seg === "." || seg === "")) return null;
    if (allow && !allow.some((a) => (a.endsWith("/") ? rest.startsWith(a) : rest === a || rest === `${a}.map`))) return null;
    const type = CONTENT_TYPES[extname(rest)];
    if (type === undefined) return null;
    const file = resolve(dir, rest);
    if (!file.startsWith(dir + sep)) return null;
    try {
      const real = realpathSync(file);
      if (!real.startsWith(realpathSync(dir) + sep) || !statSync(real).isFile()) return null;
      return { file: real, type };
    } catch {
      return null;
    }
  }
  return null;
}

export interface WebServer {
  readonly url: string;
  readonly port: number;
  readonly token: string;
  readonly roam: RoamServer;
  close(): Promise<void>;
}

/** CSP hashes of the page's inline scripts (its import map). */
function inlineScriptHashes(html: string): string {
  const out: string[] = [];
  for (const m of html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)) {
    if (m[0].includes(" src=")) continue;
    out.push(`'sha256-${createHash("sha256").update(m[1]!).digest("base64")}'`);
  }
  return out.join(" ");
}

function sameToken(a: string | null, b: string): boolean {
  if (a === null) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export async function startWebServer(o: { host?: string; port?: number; token?: string; peer: ServerOptions }): Promise<WebServer> {
  const host = o.host ?? "127.0.0.1";
  const token = o.token ?? randomBytes(18).toString("base64url");
  if (!/^[A-Za-z0-9_-]{8,}$/.test(token)) throw new Error("the web token must be at least 8 characters of [A-Za-z0-9_-]");
  const table = mounts();
  const pagePath = join(WEB_STATIC_DIR, "index.html");
  let port = 0;
  const allowedHosts = () => new Set([`${host}:${port}`, `127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);

  const server = http.createServer((req, res) => {
    const send = (status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff", ...extra });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (!allowedHosts().has(req.headers.host ?? "")) return send(421, "text/plain", "unexpected Host header\n");
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n");
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname === "/" || url.pathname === "/index.html") {
      if (!sameToken(url.searchParams.get("token"), token)) {
        return send(403, "text/plain", "roam-pty: missing or wrong token; `roam-pty web` prints the URL\n");
      }
      const page = readFileSync(pagePath, "utf8");
      return send(200, "text/html; charset=utf-8", page, {
        "content-security-policy": `default-src 'self'; script-src 'self' ${inlineScriptHashes(page)}; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:`,
        "referrer-policy": "no-referrer",
      });
    }
    if (url.pathname === "/favicon.ico") return send(204, "text/plain", "");
    const hit = resolveAsset(url.pathname, table);
    if (!hit) return send(404, "text/plain", "not found\n");
    send(200, hit.type, readFileSync(hit.file));
  });

  // ws attaches to this stand-in; only checked upgrades reach it.
  const gate = new EventEmitter() as EventEmitter & { address(): AddressInfo | string | null };
  gate.address = () => server.address();
  server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const origin = req.headers.origin;
    const hostOk = allowedHosts().has(req.headers.host ?? "");
    const originOk = origin === undefined || allowedHosts().has(origin.replace(/^https?:\/\//, ""));
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const pathOk = url.pathname.startsWith("/roam/") && sameToken(url.pathname.slice("/roam/".length), token);
    if (!hostOk || !originOk || !pathOk) {
      socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      socket.destroy();
      return;
    }
    gate.emit("upgrade", req, socket, head);
  });

  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(o.port ?? 0, host, () => {
      server.off("error", fail);
      ok();
    });
  });
  port = (server.address() as AddressInfo).port;
  const roam = await listenWebSocket({ ...o.peer, server: gate as unknown as http.Server, path: `/roam/${token}` });
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/?token=${token}`,
    port,
    token,
    roam,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
