/**
 * Flow control over SHM (r[shm.flow.*]): no Credit messages. Each channel's
 * entry in the guest's channel table holds `granted_total`, the cumulative
 * bytes the receiver authorized; the sender keeps `sent_total` locally and may
 * send while `granted_total - sent_total` (wrapping, read as i32) covers the
 * element. The receiver adds to `granted_total` as its application consumes,
 * then wakes the sender if it sleeps (r[shm.wakeup.credit-wait]).
 */
import { ConnectionClosedError } from "../../session/errors.js";
import { CreditWaitQueue, WindowReceiveCredit, type FlowControlBackend, type ReceiveCredit, type SendCredit } from "../../session/flow.js";
import type { ChannelTable } from "./segment.js";

/** What the credit objects need from the channel map that created them (channel-map.ts). */
export interface CreditHost {
  readonly table: ChannelTable;
  /** The credit object's channel ended locally (the core disposed it). */
  disposed(key: number, credit: ShmSendCredit | ShmReceiveCredit): void;
  /** A sender started or stopped waiting for credit. */
  waiting(credit: ShmSendCredit, on: boolean): void;
  /** The receiver granted credit: wake the sender's side if it sleeps. */
  granted(): void;
}

export function channelKey(connId: number, channelId: number): number {
  return connId * 0x100000000 + channelId;
}

export class ShmSendCredit implements SendCredit {
  /** Table index once the channel is mapped (0 before; set by the channel map). */
  t = 0;
  /** sent_total (u32, wrapping). */
  private sent = 0;
  private readonly queue = new CreditWaitQueue();
  private dead: Error | null = null;

  constructor(
    private readonly host: CreditHost,
    readonly key: number,
  ) {}

  get available(): number {
    if (this.t === 0 || this.dead) return 0;
    const r = (this.host.table.granted(this.t) - this.sent) | 0;
    // r[shm.flow.wrap-rule]: negative means corruption; treat as no credit.
    // mutation: equivalent — `r <= 0`: at r == 0 both branches give 0.
    return r < 0 ? 0 : r;
  }

  /** The first waiter's bytes are available now. */
  get ready(): boolean {
    const need = this.queue.firstNeed;
    // mutation: equivalent — dropping `need !== undefined`: `available >= undefined` is false too
    // (the test is there for the type checker).
    return need !== undefined && this.available >= need;
  }

  acquire(n: number, signal?: AbortSignal): Promise<void> | undefined {
    if (this.dead) return Promise.reject(this.dead);
    const wasIdle = this.queue.length === 0;
    if (wasIdle && this.available >= n) {
      this.sent = (this.sent + n) >>> 0;
      return undefined;
    }
    const p = this.queue.wait(n, signal, () => this.poll());
    if (wasIdle && this.queue.firstNeed !== undefined) this.host.waiting(this, true);
    return p;
  }

  private readonly take = (n: number): boolean => {
    if (this.available < n) return false;
    this.sent = (this.sent + n) >>> 0;
    return true;
  };

  /** Re-reads granted_total and lets waiters through (FIFO). Returns true if any went. */
  poll(): boolean {
    const any = this.queue.release(this.take);
    if (this.queue.length === 0) this.host.waiting(this, false);
    return any;
  }

  /** Credit messages do not exist over SHM (r[shm.flow.no-credit-message]). */
  grant(_n: number): void {}

  /** The transport stopped: fail waiters without telling the transport. */
  fail(reason: Error): void {
    if (this.dead) return;
    this.dead = reason;
    this.queue.failAll(reason);
  }

  dispose(reason: Error): void {
    if (this.dead) return;
    this.fail(reason);
    this.host.waiting(this, false);
    this.host.disposed(this.key, this);
  }

  /** r[shm.flow.reset]: stop touching the counter once the channel ended. */
  detach(): void {
    this.t = 0;
    this.fail(new ConnectionClosedError("channel ended", "local")); // a no-op once dead (fail keeps the first reason)
  }
}

/**
 * Receiver accounting: keeps outstanding + buffered <= window. A grant over
 * SHM is one atomic add (no message, no syscall unless the sender sleeps), so
 * the sender is topped up as soon as an eighth of the window is free —
 * earlier than the message-based backend — which keeps a stream flowing
 * instead of moving in window-sized bursts.
 */
export class ShmReceiveCredit extends WindowReceiveCredit {
  t = 0;
  private dead = false;

  constructor(
    private readonly host: CreditHost,
    readonly key: number,
    window: number,
    buffered: () => number,
  ) {
    super(window, buffered);
  }

  onConsumed(_n: number): void {
    if (this.t === 0) return;
    const inUse = this.remaining + this.buffered();
    if (inUse <= this.window - this.window / 8) this.topUp(inUse);
  }

  protected deliverGrant(n: number): void {
    // r[shm.flow.ordering.receiver]: Atomics.add is sequentially consistent.
    this.host.table.grant(this.t, n);
    this.host.granted();
  }

  dispose(): void {
    if (this.dead) return;
    this.dead = true;
    this.t = 0;
    this.host.disposed(this.key, this);
  }

  /** r[shm.flow.reset]: the sender finished; stop granting (the core may still dispose later). */
  detach(): void {
    this.t = 0;
  }
}

/** Where the backend gets its credit objects: the channel map, which creates and owns them. */
export interface CreditSource {
  sender(connId: number, channelId: number): SendCredit;
  receiver(connId: number, channelId: number, window: number, buffered: () => number): ReceiveCredit;
}

/** The backend handed to the Link (it never sends a message). */
export class ShmFlowControl implements FlowControlBackend {
  constructor(private readonly channels: CreditSource) {}

  sender(connId: number, channelId: number, _initial: number): SendCredit {
    return this.channels.sender(connId, channelId);
  }

  receiver(connId: number, channelId: number, initial: number, buffered: () => number): ReceiveCredit {
    return this.channels.receiver(connId, channelId, initial, buffered);
  }
}
