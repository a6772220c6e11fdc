/**
 * The receiving end of a channel: an async iterable of decoded values whose
 * consumption returns credit to the sender (flow.channel.*).
 */
import { Reader } from "../../codec/reader.js";
import type { Schema } from "../../schema/index.js";
import { ChannelClosedError, ChannelResetError, EncodeFailedError, ProtocolViolation, type RoamError } from "../errors.js";
import { abortReason, type ReceiveCredit } from "../flow.js";
import { PressureGauge, type ChannelStats, type LevelListener } from "../pressure.js";
import type { ChannelHost } from "./host.js";
import "./handles.js"; // types t.tx/t.rx schema values as Tx<T>/Rx<T>
import type { Tx } from "./tx.js";

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
    // mutation: equivalent — `this.head === this.values.length` -> true: next() only waits
    // when nothing is buffered, and a value that arrives then goes to the waiter.
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
    // mutation: equivalent — without the guard a second end() disposes the credit again
    // (idempotent) and finds no waiter: next() never waits once the channel ended.
    if (this.ended) return;
    this.ended = true;
    this.binding?.credit.dispose();
    // mutation: equivalent — `this.head === this.values.length` -> true: a waiter exists only
    // while nothing is buffered (see deliver).
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
    // mutation: equivalent — `sizes` is never read again: deliver ignores data after a
    // failure and next() rejects before it looks at the buffer (values is empty).
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
      // mutation: equivalent — every mutant of this condition only changes when the consumed
      // prefix is dropped (memory): the values, sizes and head stay consistent either way.
      if (this.head > 1024 && this.head * 2 > this.values.length) {
        this.values = this.values.slice(this.head);
        this.sizes = this.sizes.slice(this.head);
        this.head = 0;
      } else if (this.head === this.values.length) {
        // mutation: equivalent — (condition -> false) keeping the read prefix until the next
        // compaction costs memory only.
        this.values = [];
        this.sizes = [];
        this.head = 0;
      }
      this.bufferedBytes -= n;
      // mutation: equivalent — `?.`: only a bound Rx ever has buffered values (deliver needs the binding).
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
          // mutation: equivalent — the condition -> true and `?.` -> `.`: this listener is removed
          // when the waiter is resolved or rejected, so while it can run the waiter is this one.
          if (this.waiter?.resolve === res) this.waiter = null;
          reject(abortReason(signal));
        };
        const res = (r: IteratorResult<T>) => {
          signal.removeEventListener("abort", onAbort);
          resolve(r);
        };
        // mutation: equivalent — `once` (an AbortSignal aborts at most once).
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
    // mutation: equivalent — (-> false) only deliver and next() update the gauge, and both run bound.
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

