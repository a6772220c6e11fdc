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
import type { ChannelSchema } from "../schema/index.js";
import type { ClientArgs, ClientResult, MethodDescriptor, MethodSpecs, ServiceDescriptor } from "../service/define.js";
import { Rx } from "../session/channel/rx.js";
import { Tx } from "../session/channel/tx.js";
import type { ChannelHost } from "../session/channel/host.js";
import type { CallOptions } from "../session/connection.js";
import {
  CancelledError,
  ChannelResetError,
  ConnectionClosedError,
  EncodeFailedError,
  InvalidPayloadError,
  RemoteHandlerError,
  ResponseDecodeError,
  RoamError,
  TimeoutError,
  UnknownMethodError,
  UserError,
} from "../session/errors.js";
import type { FlowControlBackend, ReceiveCredit, SendCredit } from "../session/flow.js";
import { DEFAULT_THRESHOLDS } from "../session/pressure.js";
import { JsonDecodeError, JsonEncodeError } from "../json/errors.js";
import { parseJson } from "../json/parse.js";
import type { JsonCodec } from "../json/codec.js";
import { jsonCodec } from "../json/codec.js";
import {
  BRIDGE_SUBPROTOCOL,
  BRIDGE_WS_SEGMENT,
  OUTCOME_HEADER,
  PROTOCOL_ERROR_CODES,
  ReceiveWindow,
  SendWindow,
  snakeFromKebab,
  utf8Length,
} from "./protocol.js";
import { compileMethod, type BridgeMethod } from "./registry.js";

/** The bridge itself failed (bridge.response.bridge-error): not the service, not the call. */
export class BridgeError extends RoamError {
  override readonly name = "BridgeError";
  readonly code = "bridge";
  constructor(
    /** HTTP status (502 backend unreachable, 504 timeout, 400 bad request, …); 0 over WebSocket. */
    readonly status: number,
    /** The bridge's message. */
    readonly detail: string,
    /** The spec rule the bridge cited, when it did. */
    readonly rule?: string,
  ) {
    super(`the roam bridge answered ${status || "over WebSocket"}: ${detail}${rule ? ` (${rule})` : ""}`);
  }
}

/** The subset of the WebSocket API the client uses (browser WebSocket, or `ws` in Node). */
export interface BridgeWebSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type BridgeWebSocketCtor = new (url: string, protocols: string | string[]) => BridgeWebSocket;

export interface BridgeClientOptions {
  /** Where the bridge is mounted: `http://127.0.0.1:8080/`, or relative (`/api/roam/`) in a browser. */
  baseUrl: string | URL;
  /** Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** For calls with channels. Default: the global `WebSocket` (browsers, Node ≥ 22); in Node 20 pass `WebSocket` from "ws". */
  WebSocket?: BridgeWebSocketCtor;
  /** Extra headers on every HTTP call (e.g. authorization). */
  headers?: Record<string, string>;
  /** Default per-call timeout in ms (none by default). */
  timeout?: number;
  /** `fetch` credentials mode (default "same-origin"). */
  credentials?: "omit" | "same-origin" | "include";
  /** How often a call with a nonce is retried after a network failure, 502 or 504 (default 2). */
  retries?: number;
}

export interface BridgeCallOptions extends CallOptions {
  /**
   * `Roam-Nonce` (bridge.request.nonce): 16 bytes, or `true` for a random one.
   * With a nonce, a call that failed at the HTTP level is retried with the
   * same nonce (bridge.nonce.retry-safe); a backend with deduplication runs it once.
   */
  nonce?: Uint8Array | true;
}

export type BridgeClient<S extends MethodSpecs> = {
  [K in keyof ServiceDescriptor<S>["methods"]]: (
    ...args: [...ClientArgs<ServiceDescriptor<S>["methods"][K]>, options?: BridgeCallOptions]
  ) => Promise<ClientResult<ServiceDescriptor<S>["methods"][K]>>;
} & {
  /** Closes the streaming WebSocket, if one is open. */
  close(): void;
};

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

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function randomNonce(): Uint8Array {
  const n = new Uint8Array(16);
  globalThis.crypto.getRandomValues(n);
  return n;
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

/** Turns a response outcome into the value or the typed error. */
function settle(bm: BridgeMethod, outcome: string, body: unknown): unknown {
  const q = bm.qualified;
  try {
    switch (outcome) {
      case "ok":
        return bm.ok.decode(body);
      case "user":
        if (!bm.err) throw new JsonDecodeError(`a user error for the infallible ${q}`);
        throw new UserError(bm.err.decode((body as { value?: unknown }).value));
      case "unknown_method":
        throw new UnknownMethodError(q);
      case "invalid_payload":
        throw new InvalidPayloadError(q);
      case "cancelled": {
        const m = (body as { message?: unknown }).message;
        throw typeof m === "string" ? new RemoteHandlerError(q, m) : new CancelledError(q, "remote");
      }
      default: {
        const m = (body as { message?: unknown }).message;
        throw new BridgeError(0, typeof m === "string" ? m : `unexpected outcome ${outcome}`);
      }
    }
  } catch (e) {
    if (e instanceof JsonDecodeError) throw new ResponseDecodeError(q, e);
    throw e;
  }
}

// ---------------------------------------------------------------------------
// The roam-bridge.v1 WebSocket
// ---------------------------------------------------------------------------

interface PendingCall {
  bm: BridgeMethod;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  senders: Tx<unknown>[];
  receivers: Rx<unknown>[];
  channelIds: number[];
}

interface SendSide {
  tx: Tx<unknown>;
  window: SendWindow;
  credit: WindowSendCredit;
}

interface RecvSide {
  rx: Rx<unknown>;
  codec: JsonCodec<unknown>;
  schema: ChannelSchema<any>["element"];
  window: ReceiveWindow;
  /** Frame sizes of values delivered and not yet consumed, in order. */
  sizes: number[];
}

const OPEN = 1;
const WS_HIGH_WATER = 1024 * 1024;

/**
 * SendCredit over a bridge SendWindow: one send at a time may go while the
 * window is above zero (the frame size is only known once it is encoded).
 */
class WindowSendCredit implements SendCredit {
  private busy = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private failure: Error | null = null;
  constructor(private readonly window: SendWindow) {}
  get available(): number {
    return this.window.available;
  }
  acquire(): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.busy && this.waiters.length === 0 && this.window.ready() === undefined) {
      this.busy = true;
      return undefined;
    }
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.pump();
    });
  }
  /** The frame went out: the next sender may try. */
  sent(): void {
    this.busy = false;
    this.pump();
  }
  pump(): void {
    if (this.busy || this.waiters.length === 0 || this.failure) return;
    const wait = this.window.ready();
    if (wait) {
      wait.then(
        () => this.pump(),
        (e) => this.dispose(e as Error),
      );
      return;
    }
    this.busy = true;
    this.waiters.shift()!.resolve();
  }
  grant(): void {
    this.pump();
  }
  dispose(reason: Error): void {
    if (this.failure) return;
    this.failure = reason;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(reason);
  }
}

class BridgeSocket {
  private readonly opened: Promise<void>;
  private nextId = 1;
  private nextChannel = 1;
  private readonly calls = new Map<number, PendingCall>();
  private readonly sends = new Map<number, SendSide>();
  private readonly recvs = new Map<number, RecvSide>();
  private failure: RoamError | null = null;

  constructor(private readonly ws: BridgeWebSocket) {
    this.opened = new Promise((resolve, reject) => {
      ws.onopen = () => {
        if (ws.protocol !== BRIDGE_SUBPROTOCOL) {
          this.fail(new BridgeError(0, `the server did not accept the ${BRIDGE_SUBPROTOCOL} subprotocol`, "bridge.ws.subprotocol"));
          ws.close();
          reject(this.failure);
          return;
        }
        resolve();
      };
      ws.onclose = (ev) => {
        const e = this.failure ?? new ConnectionClosedError(ev.reason || `WebSocket closed (${ev.code ?? "?"})`, "transport");
        reject(e);
        this.fail(e);
      };
    });
    this.opened.catch(() => {});
    ws.onerror = () => {
      // onclose follows.
    };
    ws.onmessage = (ev) => this.onFrame(ev.data);
  }

  get isClosed(): boolean {
    return this.failure !== null;
  }

  close(): void {
    this.fail(new ConnectionClosedError("client closed", "local"));
    try {
      this.ws.close(1000, "");
    } catch {
      // already closing
    }
  }

  async call(bm: BridgeMethod, args: unknown[], o: BridgeCallOptions | undefined, timeout: number | undefined): Promise<unknown> {
    await this.opened;
    if (this.failure) throw this.failure;
    const q = bm.qualified;
    const signal = o?.signal;
    if (signal?.aborted) throw new CancelledError(q, "local", signal.reason);
    const id = this.nextId++;
    const pc: PendingCall = { bm, resolve: () => {}, reject: () => {}, senders: [], receivers: [], channelIds: [] };
    const bound: (() => void)[] = [];
    const binder = {
      outgoing: (handle: unknown, schema: ChannelSchema<any>): number => {
        const chId = this.nextChannel++;
        pc.channelIds.push(chId);
        if (schema.kind === "rx") {
          // The handler receives: we send on the partner Tx of the Rx passed in.
          if (!(handle instanceof Rx) || !handle.partner) throw new TypeError("expected the Rx end of channel() for an Rx<T> argument");
          const tx = handle.partner as Tx<unknown>;
          const window = new SendWindow();
          const credit = new WindowSendCredit(window);
          bound.push(() => {
            this.sends.set(chId, { tx, window, credit });
            tx.bind(this.host(chId, schema.element, { sender: () => credit }), chId, schema.element);
            pc.senders.push(tx);
          });
        } else {
          if (!(handle instanceof Tx) || !handle.partner) throw new TypeError("expected the Tx end of channel() for a Tx<T> argument");
          const rx = handle.partner as Rx<unknown>;
          const side: RecvSide = { rx, codec: jsonCodec(schema.element), schema: schema.element, window: new ReceiveWindow(), sizes: [] };
          bound.push(() => {
            this.recvs.set(chId, side);
            rx.bind(this.host(chId, schema.element, { receiver: (buffered) => this.receiveCredit(chId, side, buffered) }), chId, schema.element);
            pc.receivers.push(rx);
          });
        }
        return chId;
      },
    };
    let argsJson: string;
    try {
      argsJson = bm.args.encode(args, binder);
    } catch (e) {
      throw new EncodeFailedError(`the arguments of ${q}`, (e as Error).message, e);
    }
    const md: Record<string, string> = {};
    for (const [k, v] of o?.metadata ?? []) {
      if (typeof v !== "string") throw new EncodeFailedError(`metadata ${k}`, "only string metadata travels over the bridge (and the nonce, via options.nonce)");
      md[k] = v;
    }
    const nonce = o?.nonce === true ? randomNonce() : o?.nonce;
    if (nonce) md["roam-nonce"] = base64(nonce);
    for (const b of bound) b();
    return new Promise<unknown>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const abandon = (e: RoamError) => {
        if (!this.calls.has(id)) return;
        this.calls.delete(id);
        cleanup();
        this.sendFrame(`{"type":"cancel","id":${id}}`);
        this.failChannels(pc, e);
        reject(e);
      };
      const onAbort = () => abandon(new CancelledError(q, "local", signal?.reason));
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) timer = setTimeout(() => abandon(new TimeoutError(q, timeout)), timeout);
      pc.resolve = (v) => (cleanup(), resolve(v));
      pc.reject = (e) => (cleanup(), reject(e));
      this.calls.set(id, pc);
      const hasMd = Object.keys(md).length > 0;
      this.sendFrame(
        `{"type":"request","id":${id},"service":${JSON.stringify(bm.service.name)},"method":${JSON.stringify(snakeFromKebab(bm.method.kebabName))},"args":${argsJson}${hasMd ? `,"metadata":${JSON.stringify(md)}` : ""}}`,
      );
    });
  }

  private host(chId: number, element: ChannelSchema<any>["element"], flow: { sender?: () => SendCredit; receiver?: (buffered: () => number) => ReceiveCredit }): ChannelHost {
    const codec = jsonCodec(element);
    const backend: FlowControlBackend = {
      sender: () => flow.sender!(),
      receiver: (_c, _id, _initial, buffered) => flow.receiver!(buffered),
    };
    return {
      connId: 0,
      maxPayloadSize: 1 << 30,
      initialCredit: 1 << 30,
      flow: backend,
      thresholds: DEFAULT_THRESHOLDS,
      sendData: (id, payload, head) => {
        const side = this.sends.get(id);
        if (!side) return;
        let bytes = payload;
        if (head) {
          bytes = new Uint8Array(head.length + payload.length);
          bytes.set(head);
          bytes.set(payload, head.length);
        }
        const frame = `{"type":"data","channel":${id},"value":${codec.encode(element.fromBytes(bytes))}}`;
        side.window.spend(utf8Length(frame));
        this.sendFrame(frame);
        side.credit.sent();
      },
      writable: () => {
        if (this.failure || this.ws.bufferedAmount < WS_HIGH_WATER) return undefined;
        return new Promise<void>((resolve) => {
          const check = () => (this.failure || this.ws.bufferedAmount < WS_HIGH_WATER ? resolve() : setTimeout(check, 5));
          setTimeout(check, 5);
        });
      },
      sendClose: (id) => this.sendFrame(`{"type":"close","channel":${id}}`),
      sendReset: (id) => this.sendFrame(`{"type":"reset","channel":${id}}`),
      release: (id) => {
        this.sends.delete(id);
        this.recvs.delete(id);
      },
    } satisfies ChannelHost & { connId: number };
  }

  private receiveCredit(chId: number, side: RecvSide, buffered: () => number): ReceiveCredit {
    return {
      get outstanding() {
        return 0;
      },
      onData: () => true,
      onConsumed: () => {
        const bytes = side.sizes.shift() ?? 0;
        const grant = side.window.consumed(bytes, buffered() === 0);
        if (grant > 0) this.sendFrame(`{"type":"credit","channel":${chId},"bytes":${grant}}`);
      },
      dispose: () => {},
    };
  }

  private sendFrame(text: string): void {
    if (this.failure || this.ws.readyState !== OPEN) return;
    this.ws.send(text);
  }

  private onFrame(data: unknown): void {
    if (this.failure) return;
    if (typeof data !== "string") return this.goodbye("bridge.ws.text-frames: binary frame from the bridge");
    let m: Record<string, unknown>;
    try {
      m = parseJson(data) as Record<string, unknown>;
    } catch (e) {
      return this.goodbye(`bridge.ws.message-format: ${(e as Error).message}`);
    }
    if (typeof m !== "object" || m === null) return this.goodbye("bridge.ws.message-format: not a JSON object");
    const ch = m["channel"] as number;
    switch (m["type"]) {
      case "response":
        return this.onResponse(m);
      case "data": {
        const side = this.recvs.get(ch);
        if (!side) return; // a channel we reset or abandoned: late data is dropped
        const n = utf8Length(data);
        if (!side.window.onData(n)) return this.goodbye(`bridge.ws.credit: data on channel ${ch} beyond the granted credit`);
        let bytes: Uint8Array;
        try {
          bytes = side.schema.toBytes(side.codec.decode(m["value"]));
        } catch (e) {
          return this.goodbye(`bridge.ws.data: channel ${ch}: ${(e as Error).message}`);
        }
        side.sizes.push(n);
        try {
          side.rx.deliver(bytes);
        } catch (e) {
          return this.goodbye(`bridge.ws.data: channel ${ch}: ${(e as Error).message}`);
        }
        return;
      }
      case "credit": {
        const bytes = m["bytes"];
        if (typeof bytes !== "number" || !(bytes > 0)) return this.goodbye("bridge.ws.credit: `bytes` must be a positive integer");
        const side = this.sends.get(ch);
        if (side) {
          side.window.grant(bytes);
          side.credit.grant();
        }
        return;
      }
      case "reset": {
        const s = this.sends.get(ch);
        if (s) {
          this.sends.delete(ch);
          s.credit.dispose(new ChannelResetError("remote"));
          s.tx.fail(new ChannelResetError("remote"));
        }
        const r = this.recvs.get(ch);
        if (r) {
          this.recvs.delete(ch);
          r.rx.fail(new ChannelResetError("remote"));
        }
        return;
      }
      case "close":
        // Channels towards us close with the Response (bridge.ws.close); tolerate an explicit one.
        this.recvs.get(ch)?.rx.end();
        return;
      case "goodbye":
        this.fail(new ConnectionClosedError(String(m["reason"] ?? ""), "remote"));
        try {
          this.ws.close(1000, "");
        } catch {
          // already closing
        }
        return;
      default:
        return this.goodbye(`bridge.ws.message-format: unknown message type ${JSON.stringify(m["type"])}`);
    }
  }

  private onResponse(m: Record<string, unknown>): void {
    const id = m["id"] as number;
    const pc = this.calls.get(id);
    if (!pc) return; // cancelled or timed out here: the late response is dropped
    this.calls.delete(id);
    // The Response closes the channels towards us (values before it stay readable).
    for (const rx of pc.receivers) rx.end();
    for (const chId of pc.channelIds) this.recvs.delete(chId);
    let value: unknown;
    try {
      if ("result" in m) value = settle(pc.bm, "ok", m["result"]);
      else {
        const error = String(m["error"]);
        settle(pc.bm, error, m);
      }
    } catch (e) {
      for (const tx of pc.senders) tx.fail(e as RoamError);
      for (const chId of pc.channelIds) this.sends.delete(chId);
      pc.reject(e instanceof JsonEncodeError ? new ResponseDecodeError(pc.bm.qualified, e) : e);
      return;
    }
    pc.resolve(value);
  }

  private failChannels(pc: PendingCall, e: RoamError): void {
    for (const chId of pc.channelIds) {
      const s = this.sends.get(chId);
      if (s) s.credit.dispose(e);
      this.sends.delete(chId);
      this.recvs.delete(chId);
    }
    for (const tx of pc.senders) tx.fail(e);
    for (const rx of pc.receivers) rx.fail(e);
  }

  private goodbye(reason: string): void {
    this.sendFrame(JSON.stringify({ type: "goodbye", reason }));
    this.fail(new ConnectionClosedError(reason, "local"));
    try {
      this.ws.close(1002, reason.slice(0, 120));
    } catch {
      // already closing
    }
  }

  private fail(e: RoamError): void {
    if (this.failure) return;
    this.failure = e;
    for (const pc of this.calls.values()) {
      this.failChannels(pc, e);
      pc.reject(e);
    }
    this.calls.clear();
  }
}
