/**
 * The HTTP/JSON bridge (http-spec, `bridge.*`) as a plain `node:http`
 * handler: `POST {base}/{service}/{method}` with a JSON array of arguments
 * answers with the JSON result, and `{base}/@ws` upgrades to the
 * `roam-bridge.v1` WebSocket for calls with channels.
 *
 * It is mountable: `bridge.handle(req, res)` returns false for paths outside
 * its base, so an existing server keeps its other routes.
 */
import type * as http from "node:http";
import type { Duplex } from "node:stream";
import { Reader } from "../codec/reader.js";
import { Writer } from "../codec/writer.js";
import { JsonDecodeError, JsonEncodeError } from "../json/errors.js";
import { parseJson } from "../json/parse.js";
import type { ServiceDescriptor } from "../service/define.js";
import type { Connection } from "../session/connection.js";
import { ConnectionClosedError, EncodeFailedError, ResponseDecodeError, RoamError, TimeoutError } from "../session/errors.js";
import { DEFAULT_LIMITS } from "../transport/defaults.js";
import type { PeerOptions } from "../transport/link-options.js";
import { HANDLER_ERROR_KEY } from "../wire/envelope.js";
import type { Metadata } from "../wire/message.js";
import { resolveBackend, type BridgeBackend, type BridgeBackendOption } from "./backend.js";
import { OriginPolicy, type CorsOptions } from "./cors.js";
import { BridgeHttpError } from "./errors.js";
import { headersToMetadata, metadataToHeaders } from "./metadata.js";
import { BRIDGE_WS_SEGMENT, OUTCOME_HEADER } from "./protocol.js";
import { BridgeRegistry, type BridgeMethod } from "./registry.js";
import { BridgeWebSocketServer, type BridgeWsOptions } from "./ws-server.js";

export interface BridgeOptions {
  /** The services the bridge can encode (it is schema-aware only for these). */
  services: readonly ServiceDescriptor<any>[];
  /** A local dispatcher, an upstream roam connection, or a function returning one per call. */
  backend: BridgeBackendOption;
  /** URL prefix the bridge is mounted at (bridge.url.base), default "/". */
  basePath?: string;
  /** Browser access; default: same-origin pages and non-browser clients only. */
  cors?: CorsOptions;
  /** Largest request body accepted (default 1 MiB, the binary codec's max payload); larger gets 413. */
  maxBodyBytes?: number;
  /** A call without a response within this many ms gets 504 (default 30 000). */
  timeoutMs?: number;
  /** WebSocket endpoint limits. */
  ws?: BridgeWsOptions;
  /** Link options of the in-process link to a local dispatcher (limits, onHandlerError, …). */
  localLink?: PeerOptions;
  /** Unexpected failures inside the bridge (default: console.error). */
  onError?: (error: unknown, where: string) => void;
}

/** Resolved options, passed down whole. */
export interface ResolvedBridgeOptions {
  readonly basePath: string;
  readonly maxBodyBytes: number;
  readonly timeoutMs: number;
  readonly onError: (error: unknown, where: string) => void;
}

const JSON_TYPE = "application/json";
/**
 * Content types a call may carry. The spec asks clients for application/json
 * (bridge.request.content-type); `curl -d` sends form-urlencoded and `fetch`
 * with a string body sends text/plain, and the body is JSON all the same, so
 * those are accepted too. Browser pages from other origins are refused by the
 * Origin check, not by the content type.
 */
const ACCEPTED_TYPES = new Set([JSON_TYPE, "application/x-www-form-urlencoded", "text/plain"]);
const utf8 = new TextDecoder("utf-8", { fatal: true });

export class RoamBridge {
  readonly registry: BridgeRegistry;
  readonly options: ResolvedBridgeOptions;
  private readonly backend: BridgeBackend;
  private readonly policy: OriginPolicy;
  private readonly wss: BridgeWebSocketServer;
  private closed = false;

  constructor(o: BridgeOptions) {
    this.registry = new BridgeRegistry(o.services);
    let base = o.basePath ?? "/";
    if (!base.startsWith("/")) base = "/" + base;
    if (!base.endsWith("/")) base += "/";
    this.options = {
      basePath: base,
      maxBodyBytes: o.maxBodyBytes ?? DEFAULT_LIMITS.maxPayloadSize,
      timeoutMs: o.timeoutMs ?? 30_000,
      onError: o.onError ?? ((e, where) => console.error(`roam bridge: ${where}:`, e)),
    };
    this.backend = resolveBackend(o.backend, o.localLink);
    this.policy = new OriginPolicy(o.cors);
    this.wss = new BridgeWebSocketServer(this.registry, this.backend, this.options, o.ws ?? {});
  }

  /** A `node:http` request listener: bridge paths are served, anything else gets 404. */
  readonly listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (!this.handle(req, res)) this.sendError(req, res, new BridgeHttpError(404, "bridge.url.base", `${pathOf(req)} is outside the bridge (mounted at ${this.options.basePath})`));
  };

  /** Serves `req` if its path is under the base; returns false (untouched) otherwise. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const rest = this.relativePath(req);
    if (rest === null) return false;
    void this.serve(req, res, rest).catch((e) => {
      this.options.onError(e, "request");
      if (!res.headersSent) this.sendError(req, res, new BridgeHttpError(500, "bridge.response.bridge-error", "internal bridge error"));
      else res.destroy();
    });
    return true;
  }

  /** Handles an `upgrade` event for `{base}/@ws`; returns false for other paths. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const rest = this.relativePath(req);
    if (rest !== BRIDGE_WS_SEGMENT) return false;
    const kind = this.policy.classify(req);
    if (kind === "forbidden" || this.closed) {
      rejectUpgrade(socket, 403, this.closed ? "bridge closed" : "origin not allowed");
      return true;
    }
    this.wss.handleUpgrade(req, socket, head);
    return true;
  }

  /** Installs the bridge as the request and upgrade handler of `server`. */
  attach(server: http.Server): this {
    server.on("request", this.listener);
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head)) rejectUpgrade(socket, 404, "no WebSocket endpoint here");
    });
    return this;
  }

  /** Closes WebSocket sessions and the local backend (an upstream connection stays the caller's). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.wss.close();
    await this.backend.close();
  }

  // --------------------------------------------------------------------------

  private relativePath(req: http.IncomingMessage): string | null {
    const path = pathOf(req);
    const base = this.options.basePath;
    if (!path.startsWith(base)) return path + "/" === base ? "" : null;
    return path.slice(base.length);
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse, rest: string): Promise<void> {
    const kind = this.policy.classify(req);
    if (req.method === "OPTIONS") {
      this.policy.preflight(req, res);
      return;
    }
    if (kind === "forbidden") {
      drain(req);
      this.sendError(req, res, new BridgeHttpError(403, "bridge.url.base", `origin ${req.headers.origin} is not allowed to call this bridge`));
      return;
    }
    if (rest === BRIDGE_WS_SEGMENT) {
      drain(req);
      res.setHeader("upgrade", "websocket");
      this.sendError(req, res, new BridgeHttpError(426, "bridge.url.websocket", `${BRIDGE_WS_SEGMENT} is the WebSocket endpoint: upgrade with Sec-WebSocket-Protocol: roam-bridge.v1`));
      return;
    }
    const parts = rest.split("/");
    if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
      drain(req);
      this.sendError(req, res, new BridgeHttpError(404, "bridge.url.methods", `expected ${this.options.basePath}{service}/{method}, got ${pathOf(req)}`));
      return;
    }
    let serviceName: string;
    let methodName: string;
    try {
      serviceName = decodeURIComponent(parts[0]!);
      methodName = decodeURIComponent(parts[1]!);
    } catch {
      drain(req);
      this.sendError(req, res, new BridgeHttpError(400, "bridge.url.methods", "malformed percent-encoding in the path"));
      return;
    }
    if (req.method !== "POST") {
      drain(req);
      res.setHeader("allow", "POST, OPTIONS");
      this.sendError(req, res, new BridgeHttpError(405, "bridge.request.method", `calls use POST, not ${req.method}`));
      return;
    }
    const type = (req.headers["content-type"] ?? JSON_TYPE).split(";")[0]!.trim().toLowerCase();
    if (!ACCEPTED_TYPES.has(type)) {
      drain(req);
      this.sendError(req, res, new BridgeHttpError(415, "bridge.request.content-type", `requests use Content-Type: application/json, not ${type}`));
      return;
    }
    const service = this.registry.service(serviceName);
    if (service === undefined) {
      drain(req);
      this.sendError(req, res, new BridgeHttpError(404, "bridge.url.methods", `unknown service ${serviceName}`));
      return;
    }
    let metadata: Metadata;
    try {
      metadata = headersToMetadata(req.headers);
    } catch (e) {
      drain(req);
      if (e instanceof BridgeHttpError) return this.sendError(req, res, e);
      throw e;
    }
    const body = await readBody(req, res, this.options.maxBodyBytes);
    if (body === null) return; // 413 already sent
    const bm = service.methods.get(methodName);
    if (bm === undefined) {
      // What the service itself would answer for a method it does not have.
      this.sendJson(req, res, 200, '{"error":"unknown_method"}', "unknown_method", []);
      return;
    }
    if (bm.method.hasChannels) {
      this.sendError(req, res, new BridgeHttpError(400, "bridge.json.channels-forbidden", "Channel methods require WebSocket"));
      return;
    }
    let args: any[];
    try {
      const text = utf8.decode(body);
      args = bm.args.decode(parseJson(text));
    } catch (e) {
      if (e instanceof TypeError) return this.sendError(req, res, new BridgeHttpError(400, "bridge.request.body", "the body is not valid UTF-8"));
      if (e instanceof JsonDecodeError) {
        const where = e.path.length > 0 ? `args${e.where.startsWith("[") ? "" : "."}${e.where}: ` : "";
        return this.sendError(req, res, new BridgeHttpError(400, "bridge.request.body", `the body must be a JSON array of the arguments of ${bm.qualified} (${bm.method.argNames.join(", ")}): ${where}${e.detail}`));
      }
      throw e;
    }
    const ac = new AbortController();
    const onGone = () => {
      if (!res.writableFinished) ac.abort(new Error("client went away"));
    };
    res.on("close", onGone);
    try {
      const out = await this.callUnary(bm, args, metadata, ac.signal);
      this.sendJson(req, res, 200, out.body, out.outcome, metadataToHeaders(out.metadata));
    } catch (e) {
      if (ac.signal.aborted) return;
      this.sendError(req, res, this.mapFailure(e, bm));
    } finally {
      res.off("close", onGone);
    }
  }

  /** Sends the call; returns the JSON body (bridge.response.success / user-error / protocol-error). */
  private async callUnary(bm: BridgeMethod, args: any[], metadata: Metadata, signal: AbortSignal): Promise<{ body: string; outcome: string; metadata: Metadata }> {
    const w = new Writer(256);
    try {
      bm.method.encodeArgs(w, args);
    } catch (e) {
      throw new BridgeHttpError(400, "bridge.request.body", `the arguments of ${bm.qualified} do not fit its schema: ${(e as Error).message}`);
    }
    let conn: Connection;
    try {
      conn = await this.backend.connection();
    } catch (e) {
      throw new BridgeHttpError(502, "bridge.response.bridge-error", `backend unavailable: ${(e as Error).message}`);
    }
    const resp = await conn.callRaw(bm.method.id, w.finish(), { metadata, signal, timeout: this.options.timeoutMs });
    let result;
    try {
      result = bm.method.decodeResponse(new Reader(resp.payload));
    } catch (e) {
      throw new ResponseDecodeError(bm.qualified, e);
    }
    if (result.ok) return { body: bm.ok.encode(result.value), outcome: "ok", metadata: resp.metadata };
    const err = result.error;
    switch (err.tag) {
      case "User":
        return { body: `{"error":"user","value":${bm.err!.encode(err.value)}}`, outcome: "user", metadata: resp.metadata };
      case "UnknownMethod":
        return { body: '{"error":"unknown_method"}', outcome: "unknown_method", metadata: resp.metadata };
      case "InvalidPayload":
        return { body: '{"error":"invalid_payload"}', outcome: "invalid_payload", metadata: resp.metadata };
      case "Cancelled": {
        // A handler that threw is answered Cancelled with a `roam-error` explanation.
        const why = resp.metadata.find(([k]) => k === HANDLER_ERROR_KEY);
        const body = why && typeof why[1] === "string" ? JSON.stringify({ error: "cancelled", message: why[1] }) : '{"error":"cancelled"}';
        return { body, outcome: "cancelled", metadata: resp.metadata };
      }
    }
  }

  /** roam/transport failures → bridge errors (bridge.response.bridge-error). */
  private mapFailure(e: unknown, bm: BridgeMethod): BridgeHttpError {
    if (e instanceof BridgeHttpError) return e;
    if (e instanceof TimeoutError) return new BridgeHttpError(504, "bridge.response.bridge-error", `${bm.qualified}: no response from the backend within ${this.options.timeoutMs} ms`);
    if (e instanceof ConnectionClosedError) return new BridgeHttpError(502, "bridge.response.bridge-error", `backend connection closed: ${e.reason ?? e.by}`);
    if (e instanceof ResponseDecodeError) return new BridgeHttpError(502, "bridge.response.bridge-error", `the backend's response to ${bm.qualified} did not decode: ${(e.cause as Error)?.message ?? e.cause}`);
    if (e instanceof EncodeFailedError) return new BridgeHttpError(400, "bridge.request.metadata", e.message);
    if (e instanceof JsonEncodeError) {
      this.options.onError(e, `encoding the result of ${bm.qualified}`);
      return new BridgeHttpError(502, "bridge.response.bridge-error", `the result of ${bm.qualified} has no JSON form: ${e.message}`);
    }
    if (e instanceof RoamError) return new BridgeHttpError(502, "bridge.response.bridge-error", e.message);
    this.options.onError(e, `calling ${bm.qualified}`);
    return new BridgeHttpError(500, "bridge.response.bridge-error", "internal bridge error");
  }

  private sendJson(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string, outcome: string, extra: [string, string][]): void {
    if (res.headersSent || res.destroyed) return;
    res.statusCode = status;
    res.setHeader("content-type", JSON_TYPE);
    res.setHeader("cache-control", "no-store");
    res.setHeader("x-content-type-options", "nosniff");
    res.setHeader(OUTCOME_HEADER, outcome);
    for (const [k, v] of extra) res.setHeader(k, v);
    if (this.policy.classify(req) === "cross") this.policy.apply(req, res, extra.map(([k]) => k));
    res.end(body);
  }

  private sendError(req: http.IncomingMessage, res: http.ServerResponse, e: BridgeHttpError): void {
    if (res.headersSent || res.destroyed) return;
    res.statusCode = e.status;
    res.setHeader("content-type", JSON_TYPE);
    res.setHeader("cache-control", "no-store");
    res.setHeader("x-content-type-options", "nosniff");
    if (this.policy.classify(req) === "cross") this.policy.apply(req, res, []);
    res.end(e.body());
  }
}

function pathOf(req: http.IncomingMessage): string {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

/** Reads the body up to `limit` bytes; answers 413 and returns null past it. */
function readBody(req: http.IncomingMessage, res: http.ServerResponse, limit: number): Promise<Uint8Array | null> {
  const tooLarge = () => {
    const e = new BridgeHttpError(413, "bridge.request.body", `request body exceeds the bridge's limit of ${limit} bytes`);
    res.statusCode = 413;
    res.setHeader("content-type", JSON_TYPE);
    res.setHeader("connection", "close");
    res.end(e.body());
    // Stop reading: the rest of an oversized body is never buffered.
    res.on("finish", () => req.destroy());
  };
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    tooLarge();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        req.pause();
        tooLarge();
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (done) return;
      done = true;
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on("error", (e) => {
      if (done) return;
      done = true;
      reject(e);
    });
    req.on("close", () => {
      if (done) return;
      done = true;
      resolve(null);
    });
  });
}

function drain(req: http.IncomingMessage): void {
  req.resume();
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: "bridge", message, rule: "bridge.ws.subprotocol" });
  socket.end(`HTTP/1.1 ${status} ${status === 403 ? "Forbidden" : status === 404 ? "Not Found" : "Bad Request"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export { rejectUpgrade };
