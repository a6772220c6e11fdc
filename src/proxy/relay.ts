/**
 * Relays one channel between two connections without knowing its type:
 * Data/Close/Reset pass through with the id remapped, and credit is
 * mediated so that backpressure crosses the relay end to end.
 *
 * Each direction has a queue bounded by the window the relay grants on its
 * inbound side: the relay grants inbound credit only as it forwards
 * outbound, and forwards outbound only within the credit the far receiver
 * granted. A slow final consumer therefore stalls the original producer,
 * and the relay never holds more than one window per direction.
 */
import { ChannelResetError, ProtocolViolation, type RoamError } from "../session/errors.js";
import type { ReceiveCredit, SendCredit } from "../session/flow.js";
import type { RawChannels, RawChannelSink } from "../session/channel/raw.js";

class Direction {
  private queue: Uint8Array[] = [];
  private head = 0;
  bytes = 0;
  private pumping = false;
  private closing = false;
  done = false;
  private readonly inCredit: ReceiveCredit;
  private readonly outCredit: SendCredit;
  private drainWaiters: (() => void)[] = [];
  /** Peak of `bytes` (for tests and stats). */
  peakBytes = 0;

  constructor(
    private readonly from: RawChannels,
    private readonly fromId: number,
    private readonly to: RawChannels,
    private readonly toId: number,
    private readonly onFinished: (how: "closed" | "reset") => void,
  ) {
    this.inCredit = from.receiveCredit(fromId, () => this.bytes);
    this.outCredit = to.sendCredit(toId);
  }

  data(payload: Uint8Array): void {
    if (this.done || this.closing) {
      if (this.closing) throw new ProtocolViolation("channeling.data-after-close", `Data on channel ${this.fromId} after Close`, this.from.connId);
      return;
    }
    if (!this.inCredit.onData(payload.length)) {
      throw new ProtocolViolation("flow.channel.credit-overrun", `${payload.length} bytes on channel ${this.fromId} with ${this.inCredit.outstanding} bytes of credit`, this.from.connId);
    }
    this.queue.push(payload);
    this.bytes += payload.length;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    if (!this.pumping) void this.pump();
  }

  credit(bytes: number): void {
    this.outCredit.grant(bytes);
  }

  /** Close from the sender: forward after everything queued. */
  close(): void {
    if (this.done || this.closing) return;
    this.closing = true;
    if (!this.pumping) void this.pump();
  }

  reset(): void {
    if (this.done) return;
    this.finish("reset");
    this.to.sendReset(this.toId);
  }

  /** The far side reset or the relay is torn down: drop what is queued. */
  abort(error: RoamError): void {
    if (this.done) return;
    this.finish("reset");
    this.outCredit.dispose(error);
  }

  /** Resolves once everything queued was forwarded (or the direction ended). */
  drained(): Promise<void> {
    if (this.done || (this.head >= this.queue.length && !this.pumping)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** True once this direction carried anything (Data or Close seen, or credit granted to it). */
  get active(): boolean {
    return this.peakBytes > 0 || this.closing || this.done;
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (!this.done && this.head < this.queue.length) {
        const payload = this.queue[this.head]!;
        const n = payload.length;
        if (n > this.to.initialCredit) {
          // Cannot ever fit the far window: end the channel on both sides.
          this.finish("reset");
          this.to.sendReset(this.toId);
          this.from.sendReset(this.fromId);
          return;
        }
        const wait = this.outCredit.acquire(n);
        if (wait !== undefined) {
          try {
            await wait;
          } catch {
            return;
          }
          if (this.done) return;
        }
        this.queue[this.head] = EMPTY;
        this.head++;
        if (this.head > 256 && this.head * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        this.bytes -= n;
        this.to.sendData(this.toId, payload);
        this.inCredit.onConsumed(n);
      }
      if (this.closing && !this.done) {
        this.finish("closed");
        this.to.sendClose(this.toId);
      }
    } finally {
      this.pumping = false;
      if (this.head >= this.queue.length || this.done) {
        const ws = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of ws) w();
      }
    }
  }

  private finish(how: "closed" | "reset"): void {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.inCredit.dispose();
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
    this.onFinished(how);
  }
}

const EMPTY = new Uint8Array(0);

export class ChannelRelay {
  /** Downstream (caller side) → upstream (callee side). */
  readonly toUpstream: Direction;
  /** Upstream → downstream. */
  readonly toDownstream: Direction;
  private released = false;

  constructor(
    readonly down: RawChannels,
    readonly downId: number,
    readonly up: RawChannels,
    readonly upId: number,
  ) {
    const finished = (how: "closed" | "reset") => this.release(how);
    this.toUpstream = new Direction(down, downId, up, upId, finished);
    this.toDownstream = new Direction(up, upId, down, downId, finished);
    down.claim(downId, this.downSink);
    up.claim(upId, this.upSink);
  }

  /** What arrives from downstream on `downId`. */
  readonly downSink: RawChannelSink = {
    data: (p) => this.toUpstream.data(p),
    close: () => this.toUpstream.close(),
    reset: () => {
      this.toUpstream.reset();
      this.toDownstream.abort(new ChannelResetError("remote"));
    },
    credit: (n) => this.toDownstream.credit(n),
    fail: (e) => this.teardown(e, "down"),
  };

  /** What arrives from upstream on `upId`. */
  readonly upSink: RawChannelSink = {
    data: (p) => this.toDownstream.data(p),
    close: () => this.toDownstream.close(),
    reset: () => {
      this.toDownstream.reset();
      this.toUpstream.abort(new ChannelResetError("remote"));
    },
    credit: (n) => this.toUpstream.credit(n),
    fail: (e) => this.teardown(e, "up"),
  };

  /**
   * The upstream Response arrived: callee→caller data is complete. Resolves
   * once it was all forwarded, so the Response can follow it downstream.
   */
  async responseArrived(): Promise<void> {
    await this.toDownstream.drained();
    // A callee→caller channel (it carried data downstream) ends with the Response.
    if (this.toDownstream.active && !this.toUpstream.active) this.release("closed");
  }

  /** One side's connection ended: reset the other side. */
  teardown(error: RoamError, gone: "down" | "up"): void {
    if (this.released) return;
    this.toUpstream.abort(error);
    this.toDownstream.abort(error);
    if (gone === "down") this.up.sendReset(this.upId);
    else this.down.sendReset(this.downId);
    this.release("reset");
  }

  private release(how: "closed" | "reset"): void {
    if (this.released) return;
    // Both directions share the ids; release when the data direction ended.
    this.released = true;
    this.down.release(this.downId, how);
    this.up.release(this.upId, how);
  }

  get isReleased(): boolean {
    return this.released;
  }
}
