/**
 * Tx/Rx channels: the user-facing handles and the per-connection registry
 * that routes Data/Close/Reset/Credit (channeling.*, flow.channel.*).
 *
 * Users never handle channel ids: `channel<T>()` makes a pair, one end is
 * passed as a call argument (the session binds it to a fresh id when the
 * arguments are encoded), the other end stays with the caller.
 */
import { Reader } from "../codec/reader.js";
import { Writer } from "../codec/writer.js";
import type { ChannelBinder, ChannelSchema, Schema } from "../schema/index.js";
import { ChannelClosedError, ChannelResetError, EncodeFailedError, ProtocolViolation, type RoamError } from "./errors.js";
import { abortReason, type FlowControlBackend, type ReceiveCredit, type SendCredit } from "./flow.js";
import { DEFAULT_THRESHOLDS, PressureGauge, type ChannelStats, type LevelListener, type PressureThresholds } from "./pressure.js";
import { OpenedChannelIds } from "./channel-ids.js";

/** What a channel needs from its connection. */
export interface ChannelHost {
  readonly connId: number;
  readonly maxPayloadSize: number;
  readonly initialCredit: number;
  readonly flow: FlowControlBackend;
  readonly thresholds: PressureThresholds;
  /** Sends one element; `head`, when given, precedes `payload` (element = head ++ payload). */
  sendData(channelId: number, payload: Uint8Array, head?: Uint8Array): void;
  /** Undefined while the transport can take more, else resolves once it drained below its high-water mark. */
  writable(): Promise<void> | undefined;
  sendClose(channelId: number): void;
  sendReset(channelId: number): void;
  /** The channel is finished locally; forget it (ids stay burned). */
  release(channelId: number, how: "closed" | "reset"): void;
}

const scratch = new Writer(64 * 1024);
const MAX_PENDING_SENDS = 1 << 16;
/**
 * Work all senders together may do in one turn of the event loop before the
 * next one to send yields: resumed senders (a thousand woken by one drain, or
 * by credit) run from the microtask queue, and without a shared budget they
 * would keep timers, I/O and the link's own close from ever running.
 */
const TURN_SENDS = 1024;
const TURN_BYTES = 4 * 1024 * 1024;
let turnSends = 0;
let turnBytes = 0;
let turnResetPending = false;
/** `bytes` elements at least this large go out without being copied into the scratch buffer. */
const ZERO_COPY_BYTES = 4096;

const yieldToEventLoop: () => Promise<void> =
  typeof setImmediate === "function"
    ? () => new Promise<void>((resolve) => setImmediate(resolve))
    : () => new Promise<void>((resolve) => setTimeout(resolve, 0));

const resetTurn = (): void => {
  turnSends = 0;
  turnBytes = 0;
  turnResetPending = false;
};

/** Counts one send against this turn's budget; true when the sender must yield. */
function spendTurn(bytes: number): boolean {
  if (!turnResetPending) {
    turnResetPending = true;
    if (typeof setImmediate === "function") setImmediate(resetTurn);
    else setTimeout(resetTurn, 0);
  }
  turnSends++;
  turnBytes += bytes;
  return turnSends > TURN_SENDS || turnBytes > TURN_BYTES;
}

interface TxBinding {
  host: ChannelHost;
  id: number;
  credit: SendCredit;
  schema: Schema<any>;
}

/**
 * The sending end of a channel. `send` resolves once the value is within the
 * receiver's credit and handed to the transport — awaiting it is the
 * backpressure.
 */
export class Tx<T> {
  /** @internal */ partner: Rx<T> | null = null;
  private binding: TxBinding | null = null;
  private bindWaiters: (() => void)[] = [];
  private state: "open" | "closing" | "closed" | "reset" = "open";
  private failure: RoamError | null = null;
  private pending = 0;
  private pendingBytes = 0;
  private closeWaiters: (() => void)[] = [];
  private readonly gauge = new PressureGauge();
  private totalBytes = 0;
  private totalValues = 0;
  /** Sees every value passed to send() (interceptors that opt in). */
  private observer: ((value: T) => void) | null = null;

  /** Calls `fn` with every value sent from now on (for interceptors; one observer, replaced by the next). */
  observe(fn: ((value: T) => void) | null): void {
    this.observer = fn;
  }

  /** The channel id once bound to a call (for logs; users need not care). */
  get id(): number | undefined {
    return this.binding?.id;
  }

  /** True once `close()` or `reset()` was called or the channel failed. */
  get isClosed(): boolean {
    return this.state !== "open";
  }

  /** @internal */
  bind(host: ChannelHost, id: number, schema: Schema<any>): void {
    if (this.binding) throw new EncodeFailedError("channel", "this Tx is already bound to a call; create a new channel() per call");
    const credit = host.flow.sender(host.connId, id, host.initialCredit);
    this.binding = { host, id, credit, schema };
    this.gauge.configure(host.thresholds);
    const ws = this.bindWaiters;
    this.bindWaiters = [];
    for (const w of ws) w();
  }

  /**
   * Sends one value. Resolves when it is within credit and queued for the
   * wire; rejects with ChannelResetError / ChannelClosedError if the channel
   * ended, or with the signal's reason if `signal` aborts while waiting.
   */
  async send(value: T, options?: { signal?: AbortSignal }): Promise<void> {
    if (this.state !== "open") throw this.failure ?? new ChannelClosedError("send() after close()");
    if (this.observer !== null) this.observer(value);
    if (this.pending >= MAX_PENDING_SENDS) {
      throw new ChannelClosedError(`more than ${MAX_PENDING_SENDS} sends pending on one Tx; await each send()`);
    }
    this.pending++;
    try {
      if (!this.binding) await this.waitBound(options?.signal);
      const b = this.binding!;
      let payload: Uint8Array;
      let head: Uint8Array | undefined;
      let n: number;
      if (b.schema.kind === "bytes" && value instanceof Uint8Array && value.length >= ZERO_COPY_BYTES) {
        // A large bytes element: send the caller's array as-is after its
        // length prefix (the transport encodes synchronously, before send resolves).
        const hw = new Writer(8);
        hw.varint(value.length);
        head = hw.finish();
        payload = value;
        n = head.length + value.length;
      } else {
        scratch.reset();
        try {
          b.schema.encode(scratch, value);
        } catch (e) {
          throw new EncodeFailedError("a channel value", (e as Error).message, e);
        }
        n = scratch.pos;
        payload = scratch.view();
      }
      if (n > b.host.maxPayloadSize) {
        throw new EncodeFailedError("a channel value", `${n} bytes exceeds the negotiated max_payload_size ${b.host.maxPayloadSize} (channeling.data.size-limit)`);
      }
      if (n > b.host.initialCredit) {
        throw new EncodeFailedError(
          "a channel value",
          `${n} bytes exceeds the channel credit window ${b.host.initialCredit}; split the value or raise initialChannelCredit on both sides`,
        );
      }
      const wait = b.credit.acquire(n, options?.signal);
      if (wait !== undefined) {
        // The scratch buffer is shared: keep our own copy while we wait.
        if (head === undefined) payload = payload.slice();
        this.pendingBytes += n;
        this.updateGauge();
        try {
          await wait;
        } finally {
          this.pendingBytes -= n;
        }
      }
      if (this.currentState() === "reset") throw this.failure ?? new ChannelResetError("local");
      b.host.sendData(b.id, payload, head);
      this.totalBytes += n;
      this.totalValues++;
      this.updateGauge();
      // Transport backpressure (socket buffer over its high-water mark), and
      // the shared per-turn budget (see TURN_SENDS).
      const drained = b.host.writable();
      if (drained !== undefined) await drained;
      else if (spendTurn(n)) await yieldToEventLoop();
    } finally {
      this.pending--;
      if (this.pending === 0 && this.currentState() === "closing") this.finishClose();
    }
  }

  /** Reads the state without TypeScript's narrowing (it changes across awaits). */
  private currentState(): "open" | "closing" | "closed" | "reset" {
    return this.state;
  }

  /**
   * Ends the channel (Close). Values already passed to `send` go first.
   * Resolves once Close was handed to the transport. Idempotent.
   */
  close(): Promise<void> {
    if (this.state === "closed" || this.state === "reset") return Promise.resolve();
    const p = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    if (this.state === "open") {
      this.state = "closing";
      if (this.pending === 0 && this.binding) this.finishClose();
      // Bound while the call's arguments are encoded, i.e. before its Request
      // is sent: close after that turn, never ahead of the Request.
      else if (!this.binding) this.bindWaiters.push(() => queueMicrotask(() => this.pending === 0 && this.currentState() === "closing" && this.finishClose()));
    }
    return p;
  }

  private finishClose(): void {
    this.state = "closed";
    const b = this.binding;
    if (b) {
      b.host.sendClose(b.id);
      b.credit.dispose(new ChannelClosedError("closed"));
      b.host.release(b.id, "closed");
    }
    this.resolveClose();
  }

  private resolveClose(): void {
    const ws = this.closeWaiters;
    this.closeWaiters = [];
    for (const w of ws) w();
  }

  /** Aborts the channel at once (Reset); pending sends reject. */
  reset(): void {
    if (this.state === "closed" || this.state === "reset") return;
    this.state = "reset";
    this.failure = new ChannelResetError("local");
    const b = this.binding;
    if (b) {
      b.host.sendReset(b.id);
      b.credit.dispose(this.failure);
      b.host.release(b.id, "reset");
    }
    this.resolveClose();
  }

  /** @internal The peer reset the channel or the connection ended. */
  fail(error: RoamError): void {
    if (this.state === "closed" || this.state === "reset") return;
    this.state = "reset";
    this.failure = error;
    this.binding?.credit.dispose(error);
    const ws = this.bindWaiters;
    this.bindWaiters = [];
    for (const w of ws) w();
    this.resolveClose();
  }

  /** @internal A Credit message for this channel. */
  grant(bytes: number): void {
    this.binding?.credit.grant(bytes);
    this.updateGauge();
  }

  private waitBound(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(abortReason(signal!));
      signal?.addEventListener("abort", onAbort, { once: true });
      this.bindWaiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        if (this.failure) reject(this.failure);
        else resolve();
      });
    });
  }

  private updateGauge(): void {
    const b = this.binding;
    if (!b) return;
    const window = b.host.initialCredit;
    this.gauge.update((window - Math.min(window, b.credit.available) + this.pendingBytes) / window, b.id, "send");
  }

  /** Subscribes to level changes (green/yellow/red) of this channel; returns an unsubscribe function. */
  onLevel(listener: LevelListener): () => void {
    return this.gauge.on(listener);
  }

  stats(): ChannelStats {
    const b = this.binding;
    const window = b?.host.initialCredit ?? 0;
    const avail = b?.credit.available ?? 0;
    return {
      channelId: b?.id ?? 0,
      side: "send",
      window,
      bufferedBytes: this.pendingBytes,
      creditOutstanding: avail,
      inFlightBytes: Math.max(0, window - avail),
      level: this.gauge.level,
      totalBytes: this.totalBytes,
      totalValues: this.totalValues,
    };
  }
}

interface RxBinding {
  host: ChannelHost;
  id: number;
  credit: ReceiveCredit;
  schema: Schema<any>;
}

/**
 * The receiving end of a channel: an async iterable of values. Credit goes
 * back to the sender as values are taken from it — a consumer that stops
 * reading stalls the sender once the window is full, and nothing else.
 */
export class Rx<T> implements AsyncIterable<T> {
  /** @internal */ partner: Tx<T> | null = null;
  private binding: RxBinding | null = null;
  private values: T[] = [];
  private sizes: number[] = [];
  private head = 0;
  private bufferedBytes = 0;
  private ended = false;
  private failure: RoamError | null = null;
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  private readonly gauge = new PressureGauge();
  private totalBytes = 0;
  private totalValues = 0;
  /** Sees every value as it arrives (interceptors that opt in). */
  private observer: ((value: T) => void) | null = null;

  get id(): number | undefined {
    return this.binding?.id;
  }

  /** Calls `fn` with every value received from now on (for interceptors; one observer, replaced by the next). */
  observe(fn: ((value: T) => void) | null): void {
    this.observer = fn;
  }

  /** @internal */
  bind(host: ChannelHost, id: number, schema: Schema<any>): void {
    if (this.binding) throw new EncodeFailedError("channel", "this Rx is already bound to a call; create a new channel() per call");
    const credit = host.flow.receiver(host.connId, id, host.initialCredit, () => this.bufferedBytes);
    this.binding = { host, id, credit, schema };
    this.gauge.configure(host.thresholds);
  }

  /**
   * @internal A Data message arrived. Throws ProtocolViolation on credit
   * overrun or an element that does not decode as T.
   */
  deliver(payload: Uint8Array): void {
    const b = this.binding!;
    const n = payload.length;
    if (this.ended || this.failure) {
      // Reset/abandoned locally: late data is ignored (channeling.reset.effect).
      return;
    }
    if (!b.credit.onData(n)) {
      throw new ProtocolViolation("flow.channel.credit-overrun", `${n} bytes on channel ${b.id} with ${b.credit.outstanding} bytes of credit`, b.host.connId);
    }
    let value: T;
    try {
      // Received payloads are never reused by the transport: bytes values may
      // be views into them (no copy of bulk data).
      const r = new Reader(payload);
      r.borrowBytes = true;
      value = b.schema.fromBytes(payload, r) as T;
    } catch (e) {
      throw new ProtocolViolation("channeling.data.invalid", `channel ${b.id}: ${(e as Error).message}`, b.host.connId);
    }
    this.totalBytes += n;
    this.totalValues++;
    if (this.observer !== null) this.observer(value);
    const w = this.waiter;
    if (w !== null && this.head === this.values.length) {
      // Someone is waiting: hand it over directly (consumed at once).
      this.waiter = null;
      b.credit.onConsumed(n);
      w.resolve({ value, done: false });
      return;
    }
    this.values.push(value);
    this.sizes.push(n);
    this.bufferedBytes += n;
    this.updateGauge();
  }

  /** @internal Close from the sender, or implicit close by the Response. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.binding?.credit.dispose();
    if (this.waiter && this.head === this.values.length) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: undefined as never, done: true });
    }
  }

  /** @internal Reset by the peer or connection failure. Buffered values are discarded. */
  fail(error: RoamError): void {
    if (this.failure) return;
    this.failure = error;
    this.binding?.credit.dispose();
    this.values = [];
    this.sizes = [];
    this.head = 0;
    this.bufferedBytes = 0;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(error);
  }

  /** Takes the next value; `done` once the sender closed (or the call completed). */
  next(options?: { signal?: AbortSignal }): Promise<IteratorResult<T>> {
    if (this.head < this.values.length) {
      const value = this.values[this.head]!;
      const n = this.sizes[this.head]!;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.values.length) {
        this.values = this.values.slice(this.head);
        this.sizes = this.sizes.slice(this.head);
        this.head = 0;
      } else if (this.head === this.values.length) {
        this.values = [];
        this.sizes = [];
        this.head = 0;
      }
      this.bufferedBytes -= n;
      this.binding?.credit.onConsumed(n);
      this.updateGauge();
      return Promise.resolve({ value, done: false });
    }
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.resolve({ value: undefined as never, done: true });
    if (this.waiter) return Promise.reject(new ChannelClosedError("next() called while another next() is pending on the same Rx"));
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      const signal = options?.signal;
      if (signal) {
        if (signal.aborted) return reject(abortReason(signal));
        const onAbort = () => {
          if (this.waiter?.resolve === res) this.waiter = null;
          reject(abortReason(signal));
        };
        const res = (r: IteratorResult<T>) => {
          signal.removeEventListener("abort", onAbort);
          resolve(r);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.waiter = { resolve: res, reject: (e) => (signal.removeEventListener("abort", onAbort), reject(e)) };
      } else {
        this.waiter = { resolve, reject };
      }
    });
  }

  /** Receives one value, or `undefined` once the channel ended. */
  async recv(options?: { signal?: AbortSignal }): Promise<T | undefined> {
    const r = await this.next(options);
    return r.done ? undefined : r.value;
  }

  /** Tells the sender we want no more data (Reset) and drops what is buffered. */
  reset(): void {
    if (this.ended && this.head === this.values.length) return;
    if (this.failure) return;
    const b = this.binding;
    this.fail(new ChannelResetError("local"));
    if (b) {
      b.host.sendReset(b.id);
      b.host.release(b.id, "reset");
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: async () => {
        // Leaving a for-await early means we no longer want data.
        if (!this.ended) this.reset();
        return { value: undefined as never, done: true };
      },
    };
  }

  /** Collects every remaining value (bounded by what the sender sends). */
  async collect(): Promise<T[]> {
    const out: T[] = [];
    for await (const v of this) out.push(v);
    return out;
  }

  private updateGauge(): void {
    const b = this.binding;
    if (!b) return;
    this.gauge.update(this.bufferedBytes / b.host.initialCredit, b.id, "receive");
  }

  /** Subscribes to level changes (green/yellow/red) of this channel; returns an unsubscribe function. */
  onLevel(listener: LevelListener): () => void {
    return this.gauge.on(listener);
  }

  stats(): ChannelStats {
    const b = this.binding;
    const window = b?.host.initialCredit ?? 0;
    const outstanding = b?.credit.outstanding ?? 0;
    return {
      channelId: b?.id ?? 0,
      side: "receive",
      window,
      bufferedBytes: this.bufferedBytes,
      creditOutstanding: outstanding,
      inFlightBytes: Math.max(0, window - outstanding),
      level: this.gauge.level,
      totalBytes: this.totalBytes,
      totalValues: this.totalValues,
    };
  }
}

/** Creates a connected pair. Pass one end to a call, keep the other. */
export function channel<T>(): [Tx<T>, Rx<T>] {
  const tx = new Tx<T>();
  const rx = new Rx<T>();
  tx.partner = rx;
  rx.partner = tx;
  return [tx, rx];
}

/** Ids of channels that ended recently, to tell "ignore" from "unknown" (bounded). */
class RecentIds {
  private readonly set = new Map<number, "closed" | "reset">();
  constructor(private readonly limit: number) {}
  add(id: number, how: "closed" | "reset"): void {
    this.set.delete(id);
    this.set.set(id, how);
    if (this.set.size > this.limit) {
      const first = this.set.keys().next().value as number;
      this.set.delete(first);
    }
  }
  get(id: number): "closed" | "reset" | undefined {
    return this.set.get(id);
  }
  delete(id: number): void {
    this.set.delete(id);
  }
}

/**
 * Receives the messages of a channel claimed without a schema (proxies):
 * payloads are passed through undecoded.
 */
export interface RawChannelSink {
  data(payload: Uint8Array): void;
  close(): void;
  reset(): void;
  credit(bytes: number): void;
  /** The connection ended. */
  fail(error: RoamError): void;
}

/**
 * Live channels of one connection and the routing of channel messages.
 * Violations throw ProtocolViolation (the connection turns them into Goodbye).
 */
export class ChannelRegistry {
  /** Channels we receive on (Data arrives). */
  readonly incoming = new Map<number, Rx<any>>();
  /** Channels we send on (Credit arrives). */
  readonly outgoing = new Map<number, Tx<any>>();
  /** Channels handled raw (forwarding proxy): both directions, payloads undecoded. */
  readonly claimed = new Map<number, RawChannelSink>();
  private readonly recent = new RecentIds(4096);
  /** Every id opened on this connection by either side (bounded; see OpenedChannelIds). */
  private readonly opened = new OpenedChannelIds();
  private nextId: number;

  constructor(
    private readonly host: ChannelHost,
    /** Link initiator allocates odd ids, acceptor even (channeling.id.parity[.virtual]). */
    initiator: boolean,
  ) {
    this.nextId = initiator ? 1 : 2;
  }

  /** Channels open now (both directions, and raw ones). */
  get openCount(): number {
    return this.incoming.size + this.outgoing.size + this.claimed.size;
  }

  /**
   * Our own ids keep the parity rule (channeling.id.parity). An id of our
   * parity that the peer already used on this connection is skipped, so a
   * peer that ignores parity (roam's harness does) never collides with us.
   */
  allocate(): number {
    let id = this.opened.nextFree(this.nextId);
    while (this.isLive(id)) id = this.opened.nextFree(id + 2);
    this.nextId = id + 2;
    this.opened.add(id);
    return id;
  }

  private isLive(id: number): boolean {
    return this.incoming.has(id) || this.outgoing.has(id) || this.claimed.has(id);
  }

  /**
   * Registers a channel the peer allocated in a Request we are serving.
   *
   * Any id not in use on this connection is accepted, whatever its parity:
   * the parity rule (channeling.id.parity) says what a side MUST allocate,
   * and roam's own compliance harness, which is the link acceptor, calls
   * with ids 1 and 3; the Rust and TypeScript references accept those. A
   * collision with a live channel of either side is the violation
   * (channeling.id.uniqueness).
   */
  notePeerId(id: number): void {
    if (id === 0) throw new ProtocolViolation("channeling.id.zero-reserved", "Request allocated channel 0", this.host.connId);
    if (this.isLive(id)) {
      throw new ProtocolViolation("channeling.id.uniqueness", `channel ${id} is already in use`, this.host.connId);
    }
    // A closed id may be used again; it is live from now on.
    this.recent.delete(id);
    this.opened.add(id);
  }

  addIncoming(id: number, rx: Rx<any>): void {
    this.incoming.set(id, rx);
  }
  addOutgoing(id: number, tx: Tx<any>): void {
    this.outgoing.set(id, tx);
  }

  release(id: number, how: "closed" | "reset"): void {
    this.incoming.delete(id);
    this.outgoing.delete(id);
    this.claimed.delete(id);
    this.recent.add(id, how);
  }

  /** Routes every message of channel `id` to `sink` until released. */
  claim(id: number, sink: RawChannelSink): void {
    this.claimed.set(id, sink);
  }

  private wasOpened(id: number): boolean {
    return this.opened.has(id);
  }

  private unknown(kind: string, id: number): never {
    if (id === 0) throw new ProtocolViolation("channeling.id.zero-reserved", `${kind} on channel 0`, this.host.connId);
    throw new ProtocolViolation("channeling.unknown", `${kind} on channel ${id}, which was never opened`, this.host.connId);
  }

  onData(id: number, payload: Uint8Array): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      if (payload.length > this.host.maxPayloadSize) {
        throw new ProtocolViolation("channeling.data.size-limit", `${payload.length} byte element on channel ${id} (max ${this.host.maxPayloadSize})`, this.host.connId);
      }
      raw.data(payload);
      return;
    }
    const rx = this.incoming.get(id);
    if (rx !== undefined) {
      if (payload.length > this.host.maxPayloadSize) {
        throw new ProtocolViolation("channeling.data.size-limit", `${payload.length} byte element on channel ${id} (max ${this.host.maxPayloadSize})`, this.host.connId);
      }
      rx.deliver(payload);
      return;
    }
    if (id === 0) this.unknown("Data", id);
    if (this.outgoing.has(id)) {
      throw new ProtocolViolation("core.channel", `Data on channel ${id}, which only this side sends on`, this.host.connId);
    }
    const ended = this.recent.get(id);
    if (ended === "reset") return; // channeling.reset.effect: ignore
    if (ended === "closed" || this.wasOpened(id)) {
      throw new ProtocolViolation("channeling.data-after-close", `Data on channel ${id} after it was closed`, this.host.connId);
    }
    this.unknown("Data", id);
  }

  onClose(id: number): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      raw.close();
      return;
    }
    const rx = this.incoming.get(id);
    if (rx !== undefined) {
      this.incoming.delete(id);
      this.recent.add(id, "closed");
      rx.end();
      return;
    }
    if (id === 0) this.unknown("Close", id);
    if (this.outgoing.has(id)) {
      // The callee closes its Tx ends before responding; as a caller we get
      // those Closes for channels we receive on. A Close for a channel we
      // send on is a direction error.
      throw new ProtocolViolation("core.channel", `Close on channel ${id}, which only this side sends on`, this.host.connId);
    }
    const ended = this.recent.get(id);
    if (ended === "reset") return;
    if (ended === "closed" || this.wasOpened(id)) {
      throw new ProtocolViolation("channeling.data-after-close", `Close on channel ${id} after it was closed`, this.host.connId);
    }
    this.unknown("Close", id);
  }

  onReset(id: number): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      raw.reset();
      return;
    }
    const rx = this.incoming.get(id);
    if (rx !== undefined) {
      this.incoming.delete(id);
      this.recent.add(id, "reset");
      rx.fail(new ChannelResetError("remote"));
      return;
    }
    const tx = this.outgoing.get(id);
    if (tx !== undefined) {
      this.outgoing.delete(id);
      this.recent.add(id, "reset");
      tx.fail(new ChannelResetError("remote"));
      return;
    }
    if (id === 0) this.unknown("Reset", id);
    if (this.recent.get(id) !== undefined || this.wasOpened(id)) return; // crossed with our own end: ignore
    this.unknown("Reset", id);
  }

  onCredit(id: number, bytes: number): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      raw.credit(bytes);
      return;
    }
    const tx = this.outgoing.get(id);
    if (tx !== undefined) {
      tx.grant(bytes);
      return;
    }
    if (id === 0) this.unknown("Credit", id);
    if (this.incoming.has(id)) {
      throw new ProtocolViolation("core.channel", `Credit on channel ${id}, which only this side receives on`, this.host.connId);
    }
    if (this.recent.get(id) !== undefined || this.wasOpened(id)) return; // credit racing a close/reset
    this.unknown("Credit", id);
  }

  /** Fails every live channel (connection closed). */
  failAll(error: RoamError): void {
    for (const rx of this.incoming.values()) rx.fail(error);
    for (const tx of this.outgoing.values()) tx.fail(error);
    const raws = [...this.claimed.values()];
    this.incoming.clear();
    this.outgoing.clear();
    this.claimed.clear();
    for (const r of raws) r.fail(error);
  }
}

/**
 * Binds channel handles while a Request's arguments are encoded (caller) or
 * decoded (callee). Collects the ids in argument order for `Request.channels`.
 */
export class CallChannelBinder implements ChannelBinder {
  readonly ids: number[] = [];
  /** Channels bound by this call: receive ends close with the Response. */
  readonly receivers: Rx<any>[] = [];
  readonly senders: Tx<any>[] = [];
  private cursor = 0;

  constructor(
    private readonly host: ChannelHost,
    private readonly registry: ChannelRegistry,
    /** Callee: the authoritative ids from Request.channels. */
    private readonly authoritative?: readonly number[],
  ) {}

  bindOutgoing(handle: unknown, schema: ChannelSchema<any>): number {
    // Caller side. `t.rx` (handler receives): the caller passes the Rx end and
    // sends on its partner Tx. `t.tx` (handler sends): the caller passes the
    // Tx end and receives on its partner Rx.
    const id = this.registry.allocate();
    this.ids.push(id);
    if (schema.kind === "rx") {
      if (!(handle instanceof Rx)) throw new TypeError(`expected an Rx (the far end of channel()) for an Rx<T> argument, got ${describeHandle(handle)}`);
      const near = handle.partner;
      if (!near) throw new TypeError("this Rx has no partner Tx; create it with channel()");
      near.bind(this.host, id, schema.element);
      this.registry.addOutgoing(id, near);
      this.senders.push(near);
    } else {
      if (!(handle instanceof Tx)) throw new TypeError(`expected a Tx (the far end of channel()) for a Tx<T> argument, got ${describeHandle(handle)}`);
      const near = handle.partner;
      if (!near) throw new TypeError("this Tx has no partner Rx; create it with channel()");
      near.bind(this.host, id, schema.element);
      this.registry.addIncoming(id, near);
      this.receivers.push(near);
    }
    return id;
  }

  bindIncoming(idFromPayload: number, schema: ChannelSchema<any>): unknown {
    // Callee side: r[channeling.allocation.caller] Request.channels is authoritative.
    const auth = this.authoritative;
    let id = idFromPayload;
    if (auth) {
      if (this.cursor >= auth.length) {
        throw new ProtocolViolation("call.request.channels", `payload has more channels than Request.channels (${auth.length})`, this.host.connId);
      }
      id = auth[this.cursor++]!;
    }
    this.registry.notePeerId(id);
    this.ids.push(id);
    if (schema.kind === "rx") {
      const rx = new Rx<any>();
      rx.bind(this.host, id, schema.element);
      this.registry.addIncoming(id, rx);
      this.receivers.push(rx);
      return rx;
    }
    const tx = new Tx<any>();
    tx.bind(this.host, id, schema.element);
    this.registry.addOutgoing(id, tx);
    this.senders.push(tx);
    return tx;
  }

  /** Callee: every id in Request.channels must have been consumed by the arguments. */
  checkAllConsumed(): void {
    if (this.authoritative && this.cursor !== this.authoritative.length) {
      throw new ProtocolViolation("call.request.channels", `Request.channels lists ${this.authoritative.length} ids, the arguments hold ${this.cursor}`, this.host.connId);
    }
  }
}

function describeHandle(h: unknown): string {
  if (h instanceof Tx) return "a Tx";
  if (h instanceof Rx) return "an Rx";
  return h === null ? "null" : typeof h;
}
