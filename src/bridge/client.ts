/**
 * A typed client for a roam service behind the HTTP bridge, built at run time
 * from the same service definition (no code generation). Works in browsers
 * and Node:
 *
 * ```ts
 * const api = bridgeClient(Testbed, { baseUrl: "http://127.0.0.1:8080/" });
 * await api.echo("hi");                         // POST /Testbed/echo  ["hi"]
 * const [tx, rx] = channel<number>();
 * const total = api.sum(rx);                    // over the roam-bridge.v1 WebSocket
 * await tx.send(1); await tx.close(); await total;
 * ```
 *
 * Calls without channels go over `fetch`; calls with channels go over one
 * shared `roam-bridge.v1` WebSocket per client, opened on first use, with
 * the same `channel()` ends as a native roam client and credit both ways.
 * Errors are the same typed `RoamError`s as a native client, plus
 * `BridgeError` for the bridge's own failures (HTTP status and spec rule).
 */
import type { MethodDescriptor, MethodSpecs, ServiceDescriptor } from "../service/define.js";
import { CancelledError, ConnectionClosedError, EncodeFailedError, ResponseDecodeError, TimeoutError } from "../session/errors.js";
import { parseJson } from "../json/parse.js";
import { BRIDGE_SUBPROTOCOL, BRIDGE_WS_SEGMENT, OUTCOME_HEADER, PROTOCOL_ERROR_CODES, snakeFromKebab } from "./protocol.js";
import { compileMethod, type BridgeMethod } from "./registry.js";

import {
  BridgeError,
  base64,
  randomNonce,
  settle,
  type BridgeCallOptions,
  type BridgeClient,
  type BridgeClientOptions,
  type BridgeWebSocketCtor,
} from "./client-api.js";
import { BridgeSocket } from "./client-socket.js";

export { BridgeError, type BridgeCallOptions, type BridgeClient, type BridgeClientOptions, type BridgeWebSocket, type BridgeWebSocketCtor } from "./client-api.js";

const WELL_KNOWN = new Set(["traceparent", "tracestate", "authorization"]);
/** Builds a client for `service` behind the bridge at `options.baseUrl`. */
export function bridgeClient<S extends MethodSpecs>(service: ServiceDescriptor<S>, options: BridgeClientOptions): BridgeClient<S> {
  const core = new ClientCore(service, options);
  const out: Record<string, unknown> = { close: () => core.close() };
  for (const name of Object.keys(service.methods)) {
    const method = (service.methods as Record<string, MethodDescriptor>)[name]!;
    const bm = compileMethod(service, method);
    const argc = method.argSchemas.length;
    out[name] = (...args: unknown[]) => {
      if (args.length !== argc && args.length !== argc + 1) {
        return Promise.reject(new TypeError(`${service.name}.${name} takes ${argc} argument(s) (+ optional options), got ${args.length}`));
      }
      const o = (args.length === argc + 1 ? args[argc] : undefined) as BridgeCallOptions | undefined;
      const a = args.slice(0, argc);
      return method.hasChannels ? core.stream(bm, a, o) : core.unary(bm, a, o);
    };
  }
  return out as BridgeClient<S>;
}
class ClientCore {
  private readonly base: URL;
  private readonly fetchFn: typeof fetch;
  private socket: BridgeSocket | null = null;

  constructor(
    private readonly service: ServiceDescriptor<any>,
    private readonly o: BridgeClientOptions,
  ) {
    const loc = (globalThis as { location?: { href: string } }).location;
    const base = new URL(String(o.baseUrl), loc?.href);
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    this.base = base;
    const f = o.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch available: pass options.fetch");
    this.fetchFn = f.bind(globalThis);
  }

  close(): void {
    this.socket?.close();
    this.socket = null;
  }

  private url(bm: BridgeMethod): string {
    // The declared service name and the Rust spelling of the method: what the Rust bridge routes too.
    return new URL(`${encodeURIComponent(this.service.name)}/${encodeURIComponent(snakeFromKebab(bm.method.kebabName))}`, this.base).toString();
  }

  async unary(bm: BridgeMethod, args: unknown[], o: BridgeCallOptions | undefined): Promise<unknown> {
    let body: string;
    try {
      body = bm.args.encode(args);
    } catch (e) {
      throw new EncodeFailedError(`the arguments of ${bm.qualified}`, (e as Error).message, e);
    }
    const headers: Record<string, string> = { "content-type": "application/json", ...this.o.headers };
    for (const [k, v] of o?.metadata ?? []) {
      if (typeof v !== "string") throw new EncodeFailedError(`metadata ${k}`, "only string metadata travels as HTTP headers (and the nonce, via options.nonce)");
      headers[WELL_KNOWN.has(k) ? k : `roam-${k}`] = v;
    }
    const nonce = o?.nonce === true ? randomNonce() : o?.nonce;
    if (nonce) {
      if (nonce.length !== 16) throw new EncodeFailedError("the nonce", "Roam-Nonce must be 16 bytes");
      headers["roam-nonce"] = base64(nonce);
    }
    const timeout = o?.timeout ?? this.o.timeout;
    const ac = new AbortController();
    const userSignal = o?.signal;
    if (userSignal?.aborted) throw new CancelledError(bm.qualified, "local", userSignal.reason);
    const onAbort = () => ac.abort(userSignal!.reason);
    userSignal?.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const timer = timeout !== undefined ? setTimeout(() => ((timedOut = true), ac.abort()), timeout) : undefined;
    const attempts = 1 + (nonce ? (this.o.retries ?? 2) : 0);
    try {
      for (let attempt = 1; ; attempt++) {
        let res: Response;
        let text: string;
        try {
          res = await this.fetchFn(this.url(bm), { method: "POST", headers, body, signal: ac.signal, credentials: this.o.credentials ?? "same-origin" });
          text = await res.text();
        } catch (e) {
          if (timedOut) throw new TimeoutError(bm.qualified, timeout!);
          if (ac.signal.aborted) throw new CancelledError(bm.qualified, "local", userSignal?.reason);
          if (attempt < attempts) continue; // bridge.nonce.retry-safe: same nonce
          throw new ConnectionClosedError(`the bridge at ${this.base} is unreachable: ${(e as Error).message}`, "transport", e);
        }
        if ((res.status === 502 || res.status === 504) && attempt < attempts) continue;
        return this.decodeHttp(bm, res, text);
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      userSignal?.removeEventListener("abort", onAbort);
    }
  }

  private decodeHttp(bm: BridgeMethod, res: Response, text: string): unknown {
    let parsed: unknown;
    try {
      parsed = parseJson(text);
    } catch (e) {
      if (res.status !== 200) throw new BridgeError(res.status, text.slice(0, 200));
      throw new ResponseDecodeError(bm.qualified, e);
    }
    if (res.status !== 200) {
      const p = parsed as { message?: unknown; rule?: unknown } | null;
      throw new BridgeError(res.status, typeof p?.message === "string" ? p.message : text.slice(0, 200), typeof p?.rule === "string" ? p.rule : undefined);
    }
    let outcome = res.headers.get(OUTCOME_HEADER);
    if (outcome === null) {
      // A bridge that does not send the outcome header: recognise the error bodies by shape.
      const e = (parsed as { error?: unknown } | null)?.error;
      outcome = typeof parsed === "object" && parsed !== null && (e === "user" || PROTOCOL_ERROR_CODES.includes(e as never)) ? (e as string) : "ok";
    }
    return settle(bm, outcome, parsed);
  }

  stream(bm: BridgeMethod, args: unknown[], o: BridgeCallOptions | undefined): Promise<unknown> {
    if (!this.socket || this.socket.isClosed) {
      const Ctor = this.o.WebSocket ?? (globalThis as { WebSocket?: BridgeWebSocketCtor }).WebSocket;
      if (typeof Ctor !== "function") {
        return Promise.reject(new TypeError(`${bm.qualified} has channels and needs a WebSocket: pass options.WebSocket (in Node 20: WebSocket from "ws")`));
      }
      const url = new URL(BRIDGE_WS_SEGMENT, this.base);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      this.socket = new BridgeSocket(new Ctor(url.toString(), BRIDGE_SUBPROTOCOL));
    }
    return this.socket.call(bm, args, o, o?.timeout ?? this.o.timeout);
  }
}
