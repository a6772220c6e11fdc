/**
 * The sending end of a channel (channeling.*, flow.channel.*): encodes each
 * value, waits for the receiver's credit, hands it to the transport, and
 * shares one per-turn budget with every other sender.
 */
import { Writer } from "../../codec/writer.js";
import type { Schema } from "../../schema/index.js";
import { ChannelClosedError, ChannelResetError, EncodeFailedError, type RoamError } from "../errors.js";
import { abortReason, type SendCredit } from "../flow.js";
import { PressureGauge, type ChannelStats, type LevelListener } from "../pressure.js";
import type { ChannelHost } from "./host.js";
import "./handles.js"; // types t.tx/t.rx schema values as Tx<T>/Rx<T>
import type { Rx } from "./rx.js";

// mutation: equivalent — (64 / 1024) the initial size only: the Writer grows to fit each value.
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

// mutation: equivalent — (the condition, and the setTimeout arrow) Node always has
// setImmediate; the setTimeout branch is for browsers, which the mutation run does not use.
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
    // mutation: equivalent — (-> true) Node has setImmediate; the setTimeout branch is for browsers.
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
    // mutation: equivalent — (-> true) a second close() while closing: a bound end is
    // closing only with sends pending (which finish the close), an unbound one queues a
    // second deferred check that finds it closed.
    if (this.state === "open") {
      this.state = "closing";
      if (this.pending === 0 && this.binding) this.finishClose();
      // Bound while the call's arguments are encoded, i.e. before its Request
      // is sent: close after that turn, never ahead of the Request.
      // mutation: equivalent — (-> true) a bound end with sends pending would also queue a
      // bind waiter, which never runs (it is bound) or, after fail(), finds it reset.
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
    // mutation: equivalent — resolveClose runs once per Tx (it ends closed or reset, after
    // which close/reset/fail return early), so the fresh array is never read.
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
      // mutation: equivalent — `once` (an AbortSignal aborts at most once).
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

