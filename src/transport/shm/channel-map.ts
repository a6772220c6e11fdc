/**
 * The SHM side of every channel of one host/guest pair, in one place: which
 * table entry a channel has, who allocated it, which last frames went each
 * way, and its credit objects.
 *
 * SHM channel ids index the guest's channel table (1..max-1; host even,
 * guest odd — r[shm.id.channel-parity], r[shm.flow.channel-table-indexing]),
 * while the session core numbers channels per connection without reuse. The
 * map translates: a channel the core opens takes a free entry of our parity
 * when its Request or Response is sent; a channel the peer opens gets a fresh
 * core id ("alias") of the peer's parity. An entry is reused only after both
 * sides sent their last frame for it: each side sends exactly one terminal
 * frame (Close or Reset) per channel, the data receiver answering the
 * sender's Close with a Reset, so no stale frame can reach a reused entry.
 * A peer without that extension (closeReply) ends channels the spec's way:
 * the receiver sets the entry Free and the allocator waits for it.
 *
 * The core asks for a channel's credit object (through ShmFlowControl) when
 * it binds the channel to a call, which may be before the call is sent: the
 * map then keeps the channel as an entry without a table index yet, and gives
 * the credit object its index when the call goes out. The credit objects talk
 * to the map (CreditHost); the map reaches the rest of the transport only
 * through the ports handed to it.
 */
import { channelKey, ShmReceiveCredit, ShmSendCredit, type CreditHost } from "./flow.js";
import { MsgType } from "./frame.js";
import type { ChannelTable } from "./segment.js";

/** One channel as the SHM side tracks it. */
export interface ShmChannel {
  /** Table index; 0 while the core bound the channel but the call carrying it was not sent yet. */
  t: number;
  connId: number;
  /** The core's id for the channel. */
  localId: number;
  key: number;
  /** Allocated by this side (owns the table entry). */
  ours: boolean;
  sentTerm: boolean;
  recvTerm: boolean;
  /** Spec channel end: finished, kept only so late frames on its entry are ignored until the entry is reused. */
  dead?: boolean;
  send: ShmSendCredit | null;
  recv: ShmReceiveCredit | null;
}

export interface ChannelMapOptions {
  isHost: boolean;
  table: ChannelTable;
  /** Table entries (ids 1..maxChannels-1). */
  maxChannels: number;
  /** granted_total of an entry when it is activated. */
  initialCredit: number;
  /** Where the number of mapped channels is kept (the transport's stats). */
  stats: { channelsOpen: number };
}

/** What the map needs from the rest of the transport. */
export interface ChannelMapPorts {
  /** Whether the peer answers a channel's last frame (layout.EXT.closeReply); asked each time. */
  peerAnswersClose(): boolean;
  /** Writes our last frame (Close or Reset) for table entry `t` of connection `connId`. */
  sendEnd(type: number, t: number, connId: number): void;
  /** The peer broke a rule: fail the link. */
  violate(rule: string, detail: string): void;
  /** The core dropped a channel and its Reset was written: let the link send it. */
  ended(): void;
  /** A sender started waiting for credit: the idle loop must watch for it. */
  creditWait(): void;
  /** We granted credit: ring the sender's side if it sleeps for it. */
  granted(): void;
}

export class ChannelMap implements CreditHost {
  readonly table: ChannelTable;
  private readonly isHost: boolean;
  private readonly maxChannels: number;
  private readonly initialCredit: number;
  private readonly stats: { channelsOpen: number };

  /** Every channel the core knows, mapped (t > 0) or not yet. */
  private readonly chans = new Map<number, ShmChannel>();
  private readonly byIndex: (ShmChannel | undefined)[];
  private freeIdx: number[] = [];
  private freeHead = 0;
  /** Entries we allocated whose channel ended; a spec-only receiver sets them Free before we reuse them. */
  private awaitFree: number[] = [];
  private readonly aliasNext = new Map<number, number>();
  private readonly creditWaiting = new Set<ShmSendCredit>();
  /** A Goodbye on connection 0 was sent or received: channels need no last frames. */
  private linkEnding = false;
  private stopped = false;

  constructor(
    options: ChannelMapOptions,
    private readonly ports: ChannelMapPorts,
  ) {
    this.table = options.table;
    this.isHost = options.isHost;
    this.maxChannels = options.maxChannels;
    this.initialCredit = options.initialCredit;
    this.stats = options.stats;
    this.byIndex = new Array(this.maxChannels);
    // The host allocates even entries, the guest odd ones.
    for (let t = this.isHost ? 2 : 1; t < this.maxChannels; t += 2) this.freeIdx.push(t);
  }

  // --- credit objects (asked for by ShmFlowControl) ------------------------------------

  sender(connId: number, channelId: number): ShmSendCredit {
    const c = this.entry(connId, channelId);
    const credit = new ShmSendCredit(this, c.key);
    credit.t = c.t;
    c.send = credit;
    return credit;
  }

  receiver(connId: number, channelId: number, window: number, buffered: () => number): ShmReceiveCredit {
    const c = this.entry(connId, channelId);
    const credit = new ShmReceiveCredit(this, c.key, window, buffered);
    credit.t = c.t;
    c.recv = credit;
    return credit;
  }

  /** The channel's entry; one without a table index if the core binds it before its call is sent. */
  private entry(connId: number, localId: number): ShmChannel {
    const key = channelKey(connId, localId);
    let c = this.chans.get(key);
    if (c === undefined) {
      c = { t: 0, connId, localId, key, ours: true, sentTerm: false, recvTerm: false, send: null, recv: null };
      this.chans.set(key, c);
    }
    return c;
  }

  // --- CreditHost ---------------------------------------------------------------------

  disposed(key: number, credit: ShmSendCredit | ShmReceiveCredit): void {
    const c = this.chans.get(key);
    if (c !== undefined && c.t === 0) {
      // Dropped before its call was sent: forget it (a later call maps it afresh).
      if (c.send === credit) c.send = null;
      if (c.recv === credit) c.recv = null;
      if (c.send === null && c.recv === null) this.chans.delete(key);
      return;
    }
    if (this.stopped || this.linkEnding || c === undefined) return;
    // The core is done with the channel: our last frame for it.
    if (!c.sentTerm) {
      this.sendTerminal(c, MsgType.Reset);
      this.ports.ended();
    }
  }

  waiting(credit: ShmSendCredit, on: boolean): void {
    if (on) {
      this.creditWaiting.add(credit);
      this.ports.creditWait();
    } else this.creditWaiting.delete(credit);
  }

  granted(): void {
    this.ports.granted();
  }

  /** Some sender waits for credit. */
  get waitingForCredit(): boolean {
    return this.creditWaiting.size > 0;
  }

  /** Re-reads granted_total for every waiting sender; true if any went. */
  checkCredits(): boolean {
    if (this.creditWaiting.size === 0) return false;
    let any = false;
    for (const c of [...this.creditWaiting]) if (c.poll()) any = true;
    return any;
  }

  /** A waiting sender's credit arrived (polled while spinning). */
  anyCreditReady(): boolean {
    for (const c of this.creditWaiting) if (c.ready) return true;
    return false;
  }

  // --- sending ------------------------------------------------------------------------

  /**
   * Table indices for the channels of a Request or Response we send: ours
   * are allocated and activated here, the peer's (echoed in a Response) are
   * already known. Null when the table has no free entry of our parity left.
   */
  outgoing(connId: number, ids: readonly number[]): number[] | null {
    if (this.awaitFree.length > 0) this.reclaimFreed();
    const out: number[] = new Array(ids.length);
    const fresh: ShmChannel[] = [];
    for (let i = 0; i < ids.length; i++) {
      const key = channelKey(connId, ids[i]!);
      let c = this.chans.get(key);
      if (c === undefined || c.t === 0) {
        if (this.freeHead >= this.freeIdx.length) {
          for (const f of fresh) this.unmap(f);
          return null;
        }
        const t = this.freeIdx[this.freeHead++]!;
        if (this.freeHead > 4096 && this.freeHead * 2 > this.freeIdx.length) {
          this.freeIdx.splice(0, this.freeHead);
          this.freeHead = 0;
        }
        if (c === undefined) {
          c = { t, connId, localId: ids[i]!, key, ours: true, sentTerm: false, recvTerm: false, send: null, recv: null };
          this.chans.set(key, c);
        } else c.t = t;
        // r[shm.flow.channel-activate]
        this.table.activate(t, this.initialCredit);
        this.byIndex[t] = c;
        this.stats.channelsOpen++;
        fresh.push(c);
        if (c.send !== null) {
          c.send.t = t;
          if (this.creditWaiting.has(c.send)) c.send.poll();
        }
        if (c.recv !== null) c.recv.t = t;
      }
      out[i] = c.t;
    }
    return out;
  }

  /** The table index to send the core's Data on; 0 when there is nothing to say (ended, or not mapped). */
  dataIndex(connId: number, localId: number): number {
    const c = this.chans.get(channelKey(connId, localId));
    return c === undefined || c.sentTerm ? 0 : c.t;
  }

  /** The core ends a channel (Close or Reset): our last frame for it, unless it was sent. */
  end(connId: number, localId: number, type: number): void {
    const c = this.chans.get(channelKey(connId, localId));
    if (c === undefined || c.t === 0 || c.sentTerm) return;
    this.sendTerminal(c, type);
  }

  /** A Goodbye on connection 0 was sent or received: channels need no last frames from now on. */
  endLink(): void {
    this.linkEnding = true;
  }

  // --- receiving ----------------------------------------------------------------------

  /** Core ids for the channels of a Request or Response the peer sent; null after a violation. */
  incoming(connId: number, ids: readonly number[]): number[] | null {
    const out: number[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      const known = t > 0 && t < this.maxChannels ? this.byIndex[t] : undefined;
      if (known !== undefined && known.connId === connId && known.ours && !known.dead) {
        out[i] = known.localId; // one of ours, echoed back (Response channels)
        continue;
      }
      if (!(t > 0 && t < this.maxChannels)) {
        this.ports.violate("shm.flow.channel-table-indexing", `channel id ${t} is outside 1..${this.maxChannels - 1}`);
        return null;
      }
      if ((t % 2 === 0) !== !this.isHost) {
        this.ports.violate("shm.id.channel-parity", `the ${this.isHost ? "guest" : "host"} allocated channel ${t}, which has the other side's parity`);
        return null;
      }
      if (known !== undefined && !known.dead) {
        this.ports.violate("channeling.id.uniqueness", `channel ${t} is still in use`);
        return null;
      }
      const localId = this.nextAlias(connId);
      const key = channelKey(connId, localId);
      const c: ShmChannel = { t, connId, localId, key, ours: false, sentTerm: false, recvTerm: false, send: null, recv: null };
      this.byIndex[t] = c;
      this.chans.set(key, c);
      this.stats.channelsOpen++;
      out[i] = localId;
    }
    return out;
  }

  /** The core id for the peer's Data on entry `t`; -1 to drop the frame (after a violation, or a frame crossing a spec channel end). */
  peerData(connId: number, t: number): number {
    const c = this.byIndex[t];
    if (c?.dead) return -1; // crossed the end of its channel (spec channel end): ignore
    if (c === undefined || c.connId !== connId || c.recvTerm) {
      this.ports.violate(
        c?.recvTerm ? "channeling.data-after-close" : "channeling.unknown",
        `Data on SHM channel ${t} (connection ${connId}), which is ${c?.recvTerm ? "closed" : "not open"}`,
      );
      return -1;
    }
    return c.localId;
  }

  /**
   * The peer's last frame (Close or Reset) on entry `t`. Returns the channel
   * if the core must hear of it (as `localId`; then call `answer`), null if
   * there is nothing to deliver.
   */
  peerEnded(connId: number, t: number, type: "Close" | "Reset"): ShmChannel | null {
    const c = t > 0 && t < this.maxChannels ? this.byIndex[t] : undefined;
    if (c?.dead) {
      // Crossed our own end of it (spec channel end). If the peer turns out
      // to speak closeReply (it attached after we ended the channel), this
      // is its answer: the entry is ours to free.
      const i = c.ours && this.ports.peerAnswersClose() ? this.awaitFree.indexOf(c.t) : -1;
      if (i >= 0) {
        this.awaitFree.splice(i, 1);
        this.table.free(c.t);
        this.freeIdx.push(c.t);
      }
      return null;
    }
    if (c === undefined || c.connId !== connId) {
      this.ports.violate("channeling.unknown", `${type} on SHM channel ${t} (connection ${connId}), which is not open`);
      return null;
    }
    if (c.recvTerm) return null; // a second terminal frame: nothing more to learn
    if (!this.ports.peerAnswersClose()) {
      // r[shm.flow.channel-id-reuse]: no answer; the receiver frees the entry.
      const wasDone = c.sentTerm;
      this.specEnd(c, c.send === null);
      return wasDone ? null : c;
    }
    c.recvTerm = true;
    c.recv?.detach();
    if (c.sentTerm) {
      // Our own last frame crossed it (or this answers it): the channel is finished.
      this.maybeComplete(c);
      return null;
    }
    return c;
  }

  /** After the core heard of the peer's last frame: answer it if the core never took the channel up (it answers through dispose otherwise). */
  answer(c: ShmChannel): void {
    if (!c.sentTerm && c.send === null && c.recv === null) this.sendTerminal(c, MsgType.Reset);
  }

  // --- stopping -----------------------------------------------------------------------

  /** The transport stopped: fail every sender, stop every receiver granting. */
  stop(err: Error): void {
    this.stopped = true;
    for (const c of this.creditWaiting) c.fail(err);
    this.creditWaiting.clear();
    for (const c of this.chans.values()) {
      c.send?.fail(err);
      c.recv?.detach();
    }
  }

  // --- entries ------------------------------------------------------------------------

  /** r[shm.flow.channel-id-reuse]: entries the receiver set Free can be allocated again. */
  private reclaimFreed(): void {
    const still: number[] = [];
    for (const t of this.awaitFree) {
      if (this.table.state(t) === 0) this.freeIdx.push(t);
      else still.push(t);
    }
    this.awaitFree = still;
  }

  private nextAlias(connId: number): number {
    // Ids the core sees for channels the peer allocated carry the peer's parity.
    const a = this.aliasNext.get(connId) ?? (this.isHost ? 1 : 2);
    this.aliasNext.set(connId, a + 2);
    return a;
  }

  private sendTerminal(c: ShmChannel, type: number): void {
    const weReceive = c.send === null;
    c.sentTerm = true;
    c.send?.detach();
    this.ports.sendEnd(type, c.t, c.connId);
    if (!this.ports.peerAnswersClose()) {
      this.specEnd(c, weReceive);
      return;
    }
    this.maybeComplete(c);
  }

  /**
   * The spec's channel end (peer without closeReply): the channel is over for
   * us now. A receiver sets the entry Free; an entry we allocated is reused
   * once Free. A tombstone stays in the index so a frame already in flight
   * for it (a Data crossing our Reset, a Reset crossing our Close) is ignored.
   */
  private specEnd(c: ShmChannel, weReceive: boolean): void {
    c.sentTerm = true;
    c.recvTerm = true;
    c.send?.detach();
    c.recv?.detach();
    if (this.chans.get(c.key) === c) {
      this.chans.delete(c.key);
      this.stats.channelsOpen--;
    }
    c.dead = true;
    if (weReceive) this.table.free(c.t);
    if (c.ours) {
      if (weReceive) this.freeIdx.push(c.t);
      else this.awaitFree.push(c.t);
    }
  }

  private maybeComplete(c: ShmChannel): void {
    if (!c.sentTerm || !c.recvTerm) return;
    if (this.chans.get(c.key) === c) this.unmap(c);
  }

  private unmap(c: ShmChannel): void {
    c.send?.detach();
    c.recv?.detach();
    this.chans.delete(c.key);
    this.byIndex[c.t] = undefined;
    this.stats.channelsOpen--;
    if (c.ours) {
      this.table.free(c.t);
      this.freeIdx.push(c.t);
    }
  }
}
