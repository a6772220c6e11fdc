/**
 * Calls with channels over the bridge's roam-bridge.v1 WebSocket: one socket
 * per client, channels with credit both ways (bridge.ws.*).
 */
import type { ChannelSchema } from "../schema/index.js";
import { Rx } from "../session/channel/rx.js";
import { Tx } from "../session/channel/tx.js";
import type { ChannelHost } from "../session/channel/host.js";
import {
  CancelledError,
  ChannelResetError,
  ConnectionClosedError,
  EncodeFailedError,
  ResponseDecodeError,
  RoamError,
  TimeoutError,
} from "../session/errors.js";
import type { FlowControlBackend, ReceiveCredit, SendCredit } from "../session/flow.js";
import { DEFAULT_THRESHOLDS } from "../session/pressure.js";
import { JsonEncodeError } from "../json/errors.js";
import { parseJson } from "../json/parse.js";
import type { JsonCodec } from "../json/codec.js";
import { jsonCodec } from "../json/codec.js";
import { BRIDGE_SUBPROTOCOL, ReceiveWindow, SendWindow, snakeFromKebab, utf8Length } from "./protocol.js";
import { type BridgeMethod } from "./registry.js";

import { BridgeError, base64, randomNonce, settle, type BridgeCallOptions, type BridgeWebSocket } from "./client-api.js";

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

export class BridgeSocket {
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
