/**
 * The bridge's `roam-bridge.v1` WebSocket endpoint (bridge.ws.*): calls with
 * channels, JSON text frames, and credit in both directions.
 *
 * End-to-end flow control: a channel from the backend to the browser is
 * pulled from its roam `Rx` only while the browser has granted credit, so a
 * browser that stops reading leaves the values in the roam receive window,
 * which stops granting roam credit, which stops the backend's `Tx.send` —
 * the same chain as through the forwarding proxy. A channel from the browser
 * to the backend gets its credit back only once each value was accepted by
 * the roam `Tx` (within the backend's credit), so a slow backend consumer
 * slows the browser the same way. Nothing in between grows without bound:
 * per channel at most one window plus one frame is buffered, and calls and
 * channels per socket are capped.
 */
import type * as http from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import { JsonDecodeError, JsonEncodeError } from "../json/errors.js";
import { jsonCodec, type JsonCodec } from "../json/codec.js";
import { parseJson } from "../json/parse.js";
import type { ChannelSchema } from "../schema/index.js";
import { channel } from "../session/channel/pair.js";
import type { Rx } from "../session/channel/rx.js";
import type { Tx } from "../session/channel/tx.js";
import {
  CancelledError,
  InvalidPayloadError,
  RemoteHandlerError,
  RoamError,
  UnknownMethodError,
  UserError,
} from "../session/errors.js";
import type { Metadata } from "../wire/message.js";
import type { BridgeBackend } from "./backend.js";
import { BridgeHttpError } from "./errors.js";
import type { ResolvedBridgeOptions } from "./http.js";
import { jsonToMetadata } from "./metadata.js";
import { BRIDGE_SUBPROTOCOL, ReceiveWindow, SendWindow, utf8Length } from "./protocol.js";
import type { BridgeMethod, BridgeRegistry } from "./registry.js";

export interface BridgeWsOptions {
  /** Largest text frame accepted (default: the bridge's body limit + 64 KiB); larger closes the socket (1009). */
  maxMessageBytes?: number;
  /** Calls in flight per socket (default 256); more are answered with a bridge error. */
  maxCalls?: number;
  /** Open channels per socket (default 1024); more are a bridge error for that request. */
  maxChannels?: number;
}

class Violation extends Error {
  constructor(
    readonly rule: string,
    detail: string,
  ) {
    super(`${rule}: ${detail}`);
  }
}

export class BridgeWebSocketServer {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<WsSession>();
  private readonly limits: Required<BridgeWsOptions>;

  constructor(
    private readonly registry: BridgeRegistry,
    private readonly backend: BridgeBackend,
    private readonly options: ResolvedBridgeOptions,
    o: BridgeWsOptions,
  ) {
    this.limits = {
      maxMessageBytes: o.maxMessageBytes ?? options.maxBodyBytes + 64 * 1024,
      maxCalls: o.maxCalls ?? 256,
      maxChannels: o.maxChannels ?? 1024,
    };
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.limits.maxMessageBytes,
      handleProtocols: (protocols) => (protocols.has(BRIDGE_SUBPROTOCOL) ? BRIDGE_SUBPROTOCOL : false),
    });
  }

  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const offered = String(req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((p) => p.trim());
    if (!offered.includes(BRIDGE_SUBPROTOCOL)) {
      const body = JSON.stringify({ error: "bridge", message: `the WebSocket subprotocol must be ${BRIDGE_SUBPROTOCOL}`, rule: "bridge.ws.subprotocol" });
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const s = new WsSession(ws, this.registry, this.backend, this.options, this.limits, () => this.sessions.delete(s));
      this.sessions.add(s);
    });
  }

  async close(): Promise<void> {
    for (const s of [...this.sessions]) s.shutdown("bridge closing");
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

interface InboundChannel {
  readonly id: number;
  readonly call: WsCall;
  readonly tx: Tx<unknown>;
  readonly codec: JsonCodec<unknown>;
  readonly window: ReceiveWindow;
  queue: { value: unknown; bytes: number }[];
  pumping: boolean;
  closing: boolean;
  dead: boolean;
}

interface OutboundChannel {
  readonly id: number;
  readonly call: WsCall;
  readonly rx: Rx<unknown>;
  readonly codec: JsonCodec<unknown>;
  readonly window: SendWindow;
  resetByClient: boolean;
  done: Promise<void>;
}

interface WsCall {
  readonly id: number;
  readonly bm: BridgeMethod;
  readonly ac: AbortController;
  readonly inbound: InboundChannel[];
  readonly outbound: OutboundChannel[];
}

const RECENT_LIMIT = 4096;

class WsSession {
  private readonly calls = new Map<number, WsCall>();
  private readonly inbound = new Map<number, InboundChannel>();
  private readonly outbound = new Map<number, OutboundChannel>();
  /** Channel ids that ended recently: late frames for them are ignored, not violations. */
  private readonly recent = new Set<number>();
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly registry: BridgeRegistry,
    private readonly backend: BridgeBackend,
    private readonly options: ResolvedBridgeOptions,
    private readonly limits: Required<BridgeWsOptions>,
    private readonly onGone: () => void,
  ) {
    ws.on("message", (data: RawData, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on("close", () => this.teardown());
    ws.on("error", () => this.teardown());
  }

  // --- receiving ------------------------------------------------------------

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    try {
      if (isBinary) throw new Violation("bridge.ws.text-frames", "binary frames are not used; send JSON text frames");
      const text = Array.isArray(data) ? Buffer.concat(data).toString("utf8") : Buffer.from(data as ArrayBuffer).toString("utf8");
      let msg: unknown;
      try {
        msg = parseJson(text);
      } catch (e) {
        throw new Violation("bridge.ws.message-format", (e as Error).message);
      }
      if (typeof msg !== "object" || msg === null || Array.isArray(msg) || typeof (msg as { type?: unknown }).type !== "string") {
        throw new Violation("bridge.ws.message-format", "each message is a JSON object with a string `type`");
      }
      const m = msg as Record<string, unknown>;
      switch (m["type"]) {
        case "request":
          return this.onRequest(m);
        case "data":
          return this.onData(m, utf8Length(text));
        case "close":
          return this.onClose(m);
        case "reset":
          return this.onReset(m);
        case "credit":
          return this.onCredit(m);
        case "cancel":
          return this.onCancel(m);
        case "goodbye":
          this.shutdown(undefined);
          return;
        default:
          throw new Violation("bridge.ws.message-format", `unknown message type ${JSON.stringify(m["type"])}`);
      }
    } catch (e) {
      if (e instanceof Violation) this.goodbye(e.message);
      else {
        this.options.onError(e, "WebSocket message");
        this.goodbye("bridge.ws.goodbye: internal bridge error");
      }
    }
  }

  private onRequest(m: Record<string, unknown>): void {
    const id = m["id"];
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) throw new Violation("bridge.ws.request", "`id` must be a non-negative integer");
    if (this.calls.has(id)) throw new Violation("bridge.ws.request", `request id ${id} is already in flight`);
    const serviceName = m["service"];
    const methodName = m["method"];
    if (typeof serviceName !== "string" || typeof methodName !== "string") throw new Violation("bridge.ws.request", "`service` and `method` must be strings");
    const fail = (message: string) => this.sendFrame(JSON.stringify({ type: "response", id, error: "bridge", message }));
    if (this.calls.size >= this.limits.maxCalls) return fail(`more than ${this.limits.maxCalls} calls in flight on this WebSocket`);
    const service = this.registry.service(serviceName);
    if (!service) return fail(`unknown service ${serviceName}`);
    const bm = service.methods.get(methodName);
    if (!bm) return this.sendFrame(`{"type":"response","id":${id},"error":"unknown_method"}`);
    let metadata: Metadata;
    try {
      metadata = jsonToMetadata(m["metadata"]);
    } catch (e) {
      if (e instanceof BridgeHttpError) return fail(`${e.rule}: ${e.message}`);
      throw e;
    }
    const call: WsCall = { id, bm, ac: new AbortController(), inbound: [], outbound: [] };
    const claimed = new Set<number>();
    const binder = {
      incoming: (chId: number, schema: ChannelSchema<any>): unknown => {
        if (claimed.has(chId) || this.inbound.has(chId) || this.outbound.has(chId)) {
          throw new Violation("bridge.ws.request", `channel id ${chId} is already in use`);
        }
        if (this.inbound.size + this.outbound.size + claimed.size >= this.limits.maxChannels) {
          throw new JsonDecodeError(`more than ${this.limits.maxChannels} channels open on this WebSocket`);
        }
        claimed.add(chId);
        const codec = jsonCodec(schema.element);
        const [tx, rx] = channel<unknown>();
        if (schema.kind === "rx") {
          // The handler receives: the client sends `data` on chId.
          call.inbound.push({ id: chId, call, tx, codec, window: new ReceiveWindow(), queue: [], pumping: false, closing: false, dead: false });
          return rx;
        }
        call.outbound.push({ id: chId, call, rx, codec, window: new SendWindow(), resetByClient: false, done: Promise.resolve() });
        return tx;
      },
    };
    let args: any[];
    try {
      args = bm.args.decode(m["args"], binder);
    } catch (e) {
      if (e instanceof JsonDecodeError) {
        const where = e.path.length > 0 ? `args${e.where.startsWith("[") ? "" : "."}${e.where}: ` : "";
        return fail(`bridge.request.body: the args of ${bm.qualified} (${bm.method.argNames.join(", ")}): ${where}${e.detail}`);
      }
      throw e;
    }
    this.calls.set(id, call);
    for (const ch of call.inbound) this.inbound.set(ch.id, ch);
    for (const ch of call.outbound) {
      this.outbound.set(ch.id, ch);
      ch.done = this.pumpOut(ch);
    }
    void this.run(call, args, metadata);
  }

  private async run(call: WsCall, args: any[], metadata: Metadata): Promise<void> {
    const { bm, id } = call;
    let frame: string;
    try {
      let conn;
      try {
        conn = await this.backend.connection();
      } catch (e) {
        throw new BridgeHttpError(502, "bridge.response.bridge-error", `backend unavailable: ${(e as Error).message}`);
      }
      const value = await conn.call(bm.method, args, { metadata, signal: call.ac.signal });
      await Promise.all(call.outbound.map((c) => c.done));
      frame = `{"type":"response","id":${id},"result":${bm.ok.encode(value)}}`;
    } catch (e) {
      // Values the backend sent before it failed still reach the client (they
      // precede the Response), then the error.
      await Promise.all(call.outbound.map((c) => c.done));
      frame = this.errorFrame(call, e);
    }
    this.finish(call);
    this.sendFrame(frame);
  }

  private errorFrame(call: WsCall, e: unknown): string {
    const id = call.id;
    if (e instanceof UserError) return `{"type":"response","id":${id},"error":"user","value":${call.bm.err!.encode(e.error)}}`;
    if (e instanceof UnknownMethodError) return `{"type":"response","id":${id},"error":"unknown_method"}`;
    if (e instanceof InvalidPayloadError) return `{"type":"response","id":${id},"error":"invalid_payload"}`;
    if (e instanceof RemoteHandlerError) return JSON.stringify({ type: "response", id, error: "cancelled", message: e.remoteMessage });
    if (e instanceof CancelledError) return `{"type":"response","id":${id},"error":"cancelled"}`;
    if (e instanceof BridgeHttpError) return JSON.stringify({ type: "response", id, error: "bridge", message: e.message, rule: e.rule });
    if (e instanceof JsonEncodeError) {
      this.options.onError(e, `encoding the result of ${call.bm.qualified}`);
      return JSON.stringify({ type: "response", id, error: "bridge", message: `the result has no JSON form: ${e.message}` });
    }
    if (!(e instanceof RoamError)) this.options.onError(e, `calling ${call.bm.qualified}`);
    return JSON.stringify({ type: "response", id, error: "bridge", message: e instanceof RoamError ? e.message : "internal bridge error" });
  }

  private finish(call: WsCall): void {
    this.calls.delete(call.id);
    for (const ch of call.inbound) {
      // The call is over: whatever the client still sends on it is dropped.
      ch.dead = true;
      ch.queue = [];
      this.forget(ch.id, this.inbound);
    }
    for (const ch of call.outbound) this.forget(ch.id, this.outbound);
  }

  private forget(id: number, map: Map<number, unknown>): void {
    if (!map.delete(id)) return;
    this.recent.add(id);
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.values().next().value!);
  }

  private channelId(m: Record<string, unknown>, rule: string): number {
    const id = m["channel"];
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) throw new Violation(rule, "`channel` must be a non-negative integer");
    return id;
  }

  private onData(m: Record<string, unknown>, frameBytes: number): void {
    const id = this.channelId(m, "bridge.ws.data");
    const ch = this.inbound.get(id);
    if (!ch) {
      if (this.outbound.has(id)) throw new Violation("bridge.ws.data", `channel ${id} carries data from the bridge to the client`);
      if (this.recent.has(id)) return;
      throw new Violation("bridge.ws.data", `unknown channel ${id}`);
    }
    if (!ch.window.onData(frameBytes)) throw new Violation("bridge.ws.credit", `data on channel ${id} with no credit left`);
    if (ch.closing) throw new Violation("bridge.ws.close", `data on channel ${id} after close`);
    if (ch.dead) return;
    let value: unknown;
    try {
      value = ch.codec.decode(m["value"]);
    } catch (e) {
      if (e instanceof JsonDecodeError) throw new Violation("bridge.ws.data", `channel ${id}: ${e.message}`);
      throw e;
    }
    ch.queue.push({ value, bytes: frameBytes });
    if (!ch.pumping) void this.pumpIn(ch);
  }

  /** Feeds the client's values into the roam Tx, one at a time, returning credit as each is accepted. */
  private async pumpIn(ch: InboundChannel): Promise<void> {
    ch.pumping = true;
    try {
      while (ch.queue.length > 0 && !ch.dead) {
        const item = ch.queue.shift()!;
        await ch.tx.send(item.value);
        const grant = ch.window.consumed(item.bytes, ch.queue.length === 0);
        if (grant > 0 && !ch.dead) this.sendFrame(`{"type":"credit","channel":${ch.id},"bytes":${grant}}`);
      }
      if (ch.closing && !ch.dead) await ch.tx.close();
    } catch {
      // The backend reset the channel or the call failed: tell the client to stop.
      if (!ch.dead) {
        ch.dead = true;
        ch.queue = [];
        this.sendFrame(`{"type":"reset","channel":${ch.id}}`);
      }
    } finally {
      ch.pumping = false;
    }
  }

  /** Moves values from the roam Rx to the client while the client has credit. */
  private async pumpOut(ch: OutboundChannel): Promise<void> {
    try {
      for (;;) {
        const wait = ch.window.ready();
        if (wait) await wait;
        const r = await ch.rx.next();
        if (r.done) return;
        const frame = `{"type":"data","channel":${ch.id},"value":${ch.codec.encode(r.value)}}`;
        ch.window.spend(utf8Length(frame));
        this.sendFrame(frame);
      }
    } catch (e) {
      if (e instanceof JsonEncodeError) this.options.onError(e, `encoding a value on channel ${ch.id}`);
      if (!ch.resetByClient && !this.closed) {
        ch.rx.reset();
        this.sendFrame(`{"type":"reset","channel":${ch.id}}`);
      }
    }
  }

  private onClose(m: Record<string, unknown>): void {
    const id = this.channelId(m, "bridge.ws.close");
    const ch = this.inbound.get(id);
    if (!ch) {
      if (this.outbound.has(id)) throw new Violation("bridge.ws.close", `channel ${id} is closed by the bridge's response, not by the client`);
      if (this.recent.has(id)) return;
      throw new Violation("bridge.ws.close", `unknown channel ${id}`);
    }
    if (ch.closing) return;
    ch.closing = true;
    if (!ch.pumping && !ch.dead) void this.pumpIn(ch);
  }

  private onReset(m: Record<string, unknown>): void {
    const id = this.channelId(m, "bridge.ws.reset");
    const inb = this.inbound.get(id);
    if (inb) {
      inb.dead = true;
      inb.queue = [];
      inb.tx.reset();
      this.forget(id, this.inbound);
      return;
    }
    const out = this.outbound.get(id);
    if (out) {
      out.resetByClient = true;
      out.window.fail(new Error("reset by the client"));
      out.rx.reset();
      this.forget(id, this.outbound);
      return;
    }
    if (!this.recent.has(id)) throw new Violation("bridge.ws.reset", `unknown channel ${id}`);
  }

  private onCredit(m: Record<string, unknown>): void {
    const id = this.channelId(m, "bridge.ws.credit");
    const bytes = m["bytes"];
    if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes <= 0) throw new Violation("bridge.ws.credit", "`bytes` must be a positive integer");
    const out = this.outbound.get(id);
    if (out) {
      out.window.grant(bytes);
      return;
    }
    if (this.inbound.has(id)) throw new Violation("bridge.ws.credit", `channel ${id} carries data from the client; the bridge grants its credit`);
    if (!this.recent.has(id)) throw new Violation("bridge.ws.credit", `unknown channel ${id}`);
  }

  private onCancel(m: Record<string, unknown>): void {
    const id = m["id"];
    if (typeof id !== "number") throw new Violation("bridge.ws.cancel", "`id` must be an integer");
    // Advisory: a call that already finished is not an error.
    this.calls.get(id)?.ac.abort(new Error("cancelled by the client"));
  }

  // --- sending and shutdown ------------------------------------------------------

  private sendFrame(text: string): void {
    if (this.closed || this.ws.readyState !== 1) return;
    this.ws.send(text);
  }

  private goodbye(reason: string): void {
    if (this.closed) return;
    this.sendFrame(JSON.stringify({ type: "goodbye", reason }));
    this.shutdown(reason);
  }

  shutdown(reason: string | undefined): void {
    if (this.closed) return;
    try {
      this.ws.close(reason === undefined ? 1000 : 1002, (reason ?? "").slice(0, 120));
    } catch {
      // already closing
    }
    this.teardown();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const call of this.calls.values()) call.ac.abort(new Error("WebSocket closed"));
    for (const ch of this.inbound.values()) {
      ch.dead = true;
      ch.queue = [];
      ch.tx.reset();
    }
    for (const ch of this.outbound.values()) {
      ch.resetByClient = true;
      ch.window.fail(new Error("WebSocket closed"));
      ch.rx.reset();
    }
    this.onGone();
  }
}
