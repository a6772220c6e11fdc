/**
 * The MessageTransport of one host/guest pair over a segment: whole Messages
 * in, SHM frames out, and back. The same class runs on both ends.
 *
 * Sending: a frame goes straight into the outgoing BipBuffer (payloads above
 * the inline threshold into a VarSlotPool slot). When the buffer is full or
 * no slot is free, frames wait in a FIFO whose size is reported through
 * `writable()` (so channel senders wait) and capped hard: a peer that stops
 * consuming fails the link instead of growing the queue without bound.
 *
 * Receiving: on a wake-up the incoming BipBuffer is drained; payloads are
 * copied out (the slot is freed at once) and handed to the session core.
 * Before sleeping, a side spins briefly when it expects input soon (a call in
 * flight, a busy peer), so a busy pair exchanges frames without any syscall;
 * then it raises its sleeping flag and waits for the peer's ring.
 *
 * Channels: SHM channel ids index the guest's channel table (1..max-1; host
 * even, guest odd — r[shm.id.channel-parity], r[shm.flow.channel-table-indexing]),
 * while the session core numbers channels per connection without reuse. The
 * transport maps between the two: the allocator takes a free table entry per
 * channel, the other side gives it a fresh core id. An entry is reused only
 * after both sides sent their last frame for it: each side sends exactly one
 * terminal frame (Close or Reset) per channel, the data receiver answering the
 * sender's Close with a Reset, so no stale frame can reach a reused entry.
 */
import { Writer } from "../../codec/writer.js";
import { RESPONSE_CANCELLED } from "../../wire/envelope.js";
import { ConnectionClosedError } from "../../session/errors.js";
import { isReply, ReplyBacklog, type MessageTransport, type TransportSink } from "../../session/transport.js";
import type { Message } from "../../wire/message.js";
import { FAULT, type BipBuffer } from "./bipbuf.js";
import { channelKey, ShmFlowControl, ShmReceiveCredit, ShmSendCredit, type CreditHost } from "./flow.js";
import { connIdBytes, controlPayload, decodeFrame, FLAG_SLOT_REF, MSG_TYPE_NAMES, MsgType, writeCallPrefix } from "./frame.js";
import { align, EXT, FRAME_HEADER_SIZE, SLOT_REF_SIZE } from "./layout.js";
import type { ChannelTable, Segment } from "./segment.js";
import { SegmentFault, type SlotRef } from "./varslot.js";
import type { Waker } from "./waker.js";

export interface ShmTransportOptions {
  role: "host" | "guest";
  segment: Segment;
  peerId: number;
  waker: Waker;
  /**
   * Microseconds to spin for incoming frames before sleeping when input is
   * expected soon (default 50; 0 disables spinning).
   */
  spinMicros?: number;
  /** Queued outgoing bytes above which `writable()` makes channel senders wait (default 4 MiB). */
  highWaterMark?: number;
  /** Queued outgoing bytes that fail the link (default 512 MiB). */
  maxQueuedBytes?: number;
  description?: string;
  /** Called once when the transport stops (closed locally, or the peer is gone). */
  onStop?: (how: "closed" | "gone", cause?: Error) => void;
}

interface Chan {
  t: number;
  connId: number;
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

interface Queued {
  /** A reply (see isReply): counted in the reply backlog. */
  reply: boolean;
  type: number;
  id: number;
  methodId: bigint;
  bytes: Uint8Array;
}

/** Transport statistics (tests, diagnostics). */
export interface ShmTransportStats {
  framesSent: number;
  framesReceived: number;
  slotFramesSent: number;
  queuedFrames: number;
  queuedHighWater: number;
  sleeps: number;
  wakes: number;
  spinHits: number;
  channelsOpen: number;
}

const EMPTY: Uint8Array = new Uint8Array(0);
/** Bits of a side's sleeping flag (layout.B.sleeping): what it waits for, and whether it was rung. */
const WANTS_FRAMES = 1;
const RUNG = 2;
const WANTS_ROOM = 4;
const WANTS_CREDIT = 8;
const ARENA_SIZE = 1024 * 1024;
const ARENA_PIECE_MAX = 256 * 1024;
const STAGE_SIZE = 64 * 1024;
const stage = new Uint8Array(STAGE_SIZE + 8);
const prefixWriter = new Writer(1024);

export class ShmTransport implements MessageTransport, CreditHost {
  readonly description: string;
  readonly flow: ShmFlowControl;
  readonly table: ChannelTable;
  private sink: TransportSink | null = null;
  private readonly tx: BipBuffer;
  private readonly rx: BipBuffer;
  private readonly seg: Segment;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly i32: Int32Array;
  private readonly myFlag: number;
  private readonly peerFlag: number;
  private readonly owner: number;
  private readonly isHost: boolean;
  private readonly inline: number;
  private readonly maxFramePayload: number;
  /** The segment places no size classes we can use (a spec-only host): inline frames only. */
  private readonly poolless: boolean;
  private readonly initialCredit: number;
  private readonly maxChannels: number;
  private readonly waker: Waker;

  private queue: Queued[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private readonly hwm: number;
  private readonly hardCap: number;
  private writableWaiters: (() => void)[] = [];
  private slotBlocked = false;

  private readonly chans = new Map<number, Chan>();
  private readonly byIndex: (Chan | undefined)[];
  private readonly freeIdx: number[] = [];
  /** Entries we allocated whose channel ended; a spec-only receiver sets them Free before we reuse them. */
  private awaitFree: number[] = [];
  private freeHead = 0;
  private readonly aliasNext = new Map<number, number>();
  private readonly pendingCredit = new Map<number, ShmSendCredit | ShmReceiveCredit>();
  private readonly creditWaiting = new Set<ShmSendCredit>();
  private readonly connIdCache = new Map<number, Uint8Array>();
  private arena: ArrayBuffer | null = null;
  private arenaPos = 0;
  /** Host: slots we sent, to reclaim if the guest dies before freeing them. */
  private sentSlots: SlotRef[] = [];

  /** A Goodbye on connection 0 was sent or received: channels need no last frames. */
  private linkEnding = false;
  private draining = false;
  private asleep = false;
  private idleScheduled = false;
  private closing = false;
  private stopped = false;
  private rxFailed = false;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  private outstanding = 0;
  private lastRx = 0;
  private readonly spinMs: number;
  /** Current spin budget: full after a hit, halved after each miss, 0 under sustained misses (then probed now and then). */
  private spinBudget: number;
  private spinProbe = 0;

  readonly stats: ShmTransportStats = {
    framesSent: 0,
    framesReceived: 0,
    slotFramesSent: 0,
    queuedFrames: 0,
    queuedHighWater: 0,
    sleeps: 0,
    wakes: 0,
    spinHits: 0,
    channelsOpen: 0,
  };

  constructor(private readonly options: ShmTransportOptions) {
    const seg = options.segment;
    const g = seg.guest(options.peerId);
    this.seg = seg;
    this.isHost = options.role === "host";
    this.tx = this.isHost ? g.h2g : g.g2h;
    this.rx = this.isHost ? g.g2h : g.h2g;
    this.myFlag = this.rx.iSleeping;
    this.peerFlag = this.tx.iSleeping;
    this.table = g.channels;
    this.u8 = seg.u8;
    this.dv = seg.dv;
    this.i32 = seg.i32;
    this.owner = this.isHost ? 0 : options.peerId;
    this.inline = seg.inlineThreshold;
    const classes = seg.layout.classes;
    this.poolless = classes.length === 0;
    this.maxFramePayload = this.poolless ? this.inline - FRAME_HEADER_SIZE : classes[classes.length - 1]!.slotSize;
    this.initialCredit = seg.config.initialCredit;
    this.maxChannels = seg.config.maxChannels;
    this.waker = options.waker;
    this.hwm = options.highWaterMark ?? 4 * 1024 * 1024;
    this.hardCap = options.maxQueuedBytes ?? 512 * 1024 * 1024;
    this.spinMs = (options.spinMicros ?? 50) / 1000;
    this.spinBudget = this.spinMs;
    this.byIndex = new Array(this.maxChannels);
    // The host allocates even entries, the guest odd ones.
    for (let t = this.isHost ? 2 : 1; t < this.maxChannels; t += 2) this.freeIdx.push(t);
    this.flow = new ShmFlowControl(this);
    this.description = options.description ?? `shm ${this.isHost ? "host→guest" : "guest→host"} peer ${options.peerId}`;
  }

  // --- MessageTransport --------------------------------------------------------

  start(sink: TransportSink): void {
    this.sink = sink;
    // Frames may already wait (the host writes before the guest attaches); they
    // are read on the next turn, after the link finished its (implicit) handshake.
    this.scheduleIdle();
  }

  send(m: Message): void {
    if (this.closing) return;
    this.sendingReply = isReply(m);
    switch (m.type) {
      case "Request":
      case "Response": {
        let ids: number[] = m.channels;
        if (m.type === "Request" && this.poolless) {
          // Without slots only the envelope (metadata, channel list) can push a call over the inline
          // threshold (the segment's limits were checked at attach): refuse it before any entry is taken.
          // Table indices are below max_channels: measure with the widest.
          const w = prefixWriter;
          w.reset();
          writeCallPrefix(w, m.connId, m.metadata, m.channels.map(() => this.maxChannels - 1), m.payload.length);
          if (FRAME_HEADER_SIZE + w.pos + m.payload.length > this.inline) {
            this.refuseRequest(m.connId, m.requestId, m.channels, this.noSlotsReason(w.pos + m.payload.length));
            return;
          }
        }
        if (m.channels.length > 0) {
          const mapped = this.mapOutgoing(m.connId, m.channels);
          if (mapped === null) {
            if (m.type === "Request") this.refuseRequest(m.connId, m.requestId, m.channels);
            return;
          }
          ids = mapped;
        }
        const w = prefixWriter;
        w.reset();
        writeCallPrefix(w, m.connId, m.metadata, ids, m.payload.length);
        if (m.type === "Request") {
          this.outstanding++;
          // r[shm.id.request-id]: u32 on the wire (the core counts from 1 per connection).
          this.emit(MsgType.Request, m.requestId >>> 0, m.methodId, w.view(), m.payload, null);
        } else {
          this.emit(MsgType.Response, m.requestId >>> 0, 0n, w.view(), m.payload, null);
        }
        break;
      }
      case "Data": {
        const c = this.chans.get(channelKey(m.connId, m.channelId));
        if (c === undefined || c.sentTerm || c.t === 0) return; // the channel ended: nothing to say
        // A large bytes element may come in two parts (payloadHead ++ payload).
        if (m.payloadHead !== undefined) this.emit(MsgType.Data, c.t, 0n, this.connBytes(m.connId), m.payloadHead, m.payload);
        else this.emit(MsgType.Data, c.t, 0n, this.connBytes(m.connId), m.payload, null);
        break;
      }
      case "Close":
      case "Reset": {
        const c = this.chans.get(channelKey(m.connId, m.channelId));
        if (c === undefined || c.sentTerm) return;
        this.sendTerminal(c, m.type === "Close" ? MsgType.Close : MsgType.Reset);
        break;
      }
      case "Cancel":
        this.emit(MsgType.Cancel, m.requestId >>> 0, 0n, controlPayload(m), null, null);
        break;
      case "Goodbye":
        if (m.connId === 0) this.linkEnding = true;
        this.emit(MsgType.Goodbye, m.connId >>> 0, 0n, controlPayload(m), null, null);
        break;
      case "Connect":
      case "Accept":
      case "Reject":
        this.emit(MsgType[m.type], m.requestId >>> 0, 0n, controlPayload(m), null, null);
        break;
      case "Hello":
      case "Credit":
        // r[shm.handshake], r[shm.flow.no-credit-message]: never on SHM.
        return;
    }
    if (this.asleep) this.wakeUp();
    this.scheduleIdle();
  }

  flush(): void {
    this.flushQueue();
  }

  /** The message being sent is a reply (set by send for emit). */
  private sendingReply = false;
  private readonly replies = new ReplyBacklog();
  /** The link paused reading: the incoming ring is left alone (the peer blocks when it is full). */
  private readPaused = false;

  replyBacklog(): number {
    return this.replies.bytes;
  }

  onReplyDrain(bytes: number, cb: () => void): void {
    if (this.stopped) queueMicrotask(cb);
    else this.replies.onDrain(bytes, cb);
  }

  pauseReading(): void {
    this.readPaused = true;
  }

  resumeReading(): void {
    if (!this.readPaused) return;
    this.readPaused = false;
    if (!this.stopped) setImmediate(() => this.wake());
  }

  writable(): Promise<void> | undefined {
    if (this.stopped || this.queuedBytes < this.hwm) return undefined;
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  /** Closes after the queued frames went out (bounded by 1 s). */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.flushQueue();
    if (this.queueHead >= this.queue.length) {
      this.stop("closed");
      return;
    }
    this.closeTimer = setTimeout(() => this.stop("closed"), 1000);
    this.closeTimer.unref?.();
  }

  // --- owner hooks ----------------------------------------------------------------

  /** The waker saw the peer act (doorbell byte, notify, poll tick). */
  wake(): void {
    if (this.stopped) return;
    this.stats.wakes++;
    this.wakeUp();
    this.drain();
    this.flushQueue();
    this.checkCredits();
    if (this.closing && this.queueHead >= this.queue.length) {
      this.stop("closed");
      return;
    }
    this.scheduleIdle();
  }

  /** The peer is gone (death detected by the owner): fail everything. */
  peerGone(cause: Error): void {
    this.stop("gone", cause);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Host: slots sent to the peer that it may not have freed (crash recovery). */
  takeSentSlots(): SlotRef[] {
    const s = this.sentSlots;
    this.sentSlots = [];
    return s;
  }

  /** The 8-byte little-endian conn_id prefix (cached: it is written for every Data frame). */
  private connBytes(connId: number): Uint8Array {
    let b = this.connIdCache.get(connId);
    if (b === undefined) {
      b = connIdBytes(connId);
      if (this.connIdCache.size > 1024) this.connIdCache.clear();
      this.connIdCache.set(connId, b);
    }
    return b;
  }

  // --- channel map -------------------------------------------------------------------

  private mapOutgoing(connId: number, ids: readonly number[]): number[] | null {
    if (this.awaitFree.length > 0) this.reclaimFreed();
    const out: number[] = new Array(ids.length);
    const fresh: Chan[] = [];
    for (let i = 0; i < ids.length; i++) {
      const key = channelKey(connId, ids[i]!);
      let c = this.chans.get(key);
      if (c === undefined) {
        if (this.freeHead >= this.freeIdx.length) {
          for (const f of fresh) this.unmap(f);
          return null;
        }
        const t = this.freeIdx[this.freeHead++]!;
        if (this.freeHead > 4096 && this.freeHead * 2 > this.freeIdx.length) {
          this.freeIdx.splice(0, this.freeHead);
          this.freeHead = 0;
        }
        c = { t, connId, localId: ids[i]!, key, ours: true, sentTerm: false, recvTerm: false, send: null, recv: null };
        // r[shm.flow.channel-activate]
        this.table.activate(t, this.initialCredit);
        this.byIndex[t] = c;
        this.chans.set(key, c);
        this.stats.channelsOpen++;
        fresh.push(c);
        const pending = this.pendingCredit.get(key);
        if (pending) {
          this.pendingCredit.delete(key);
          this.bindCredit(c, pending);
        }
      }
      out[i] = c.t;
    }
    return out;
  }

  /** r[shm.flow.channel-id-reuse]: entries the receiver set Free can be allocated again. */
  private reclaimFreed(): void {
    const still: number[] = [];
    for (const t of this.awaitFree) {
      if (this.table.state(t) === 0) this.freeIdx.push(t);
      else still.push(t);
    }
    this.awaitFree = still;
  }

  /** Whether the peer advertised the channel-end extension (layout.EXT.closeReply). */
  private peerAnswersClose(): boolean {
    const bits = this.isHost ? this.seg.peerExtensions(this.options.peerId) : this.seg.hostExtensions();
    return (bits & EXT.closeReply) !== 0;
  }

  /**
   * The spec's channel end (peer without closeReply): the channel is over for
   * us now. A receiver sets the entry Free; an entry we allocated is reused
   * once Free. A tombstone stays in the index so a frame already in flight
   * for it (a Data crossing our Reset, a Reset crossing our Close) is ignored.
   */
  private specEnd(c: Chan, weReceive: boolean): void {
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

  private unmap(c: Chan): void {
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

  private bindCredit(c: Chan, credit: ShmSendCredit | ShmReceiveCredit): void {
    credit.t = c.t;
    if (credit instanceof ShmSendCredit) {
      c.send = credit;
      if (this.creditWaiting.has(credit)) credit.poll();
    } else {
      c.recv = credit;
    }
  }

  private noSlotsReason(len: number): string {
    return (
      `a frame payload of ${len} bytes needs a VarSlotPool slot (inline_threshold ${this.inline}), and this segment's host ` +
      `places no size-class count, so its pool cannot be used (a spec-only host; docs/shm-compat.md)`
    );
  }

  /** A Request whose channels do not fit the table: answer it locally with an error. */
  private refuseRequest(connId: number, requestId: number, _ids: readonly number[], why?: string): void {
    const reason =
      why ?? `shm.flow.channel-table-indexing: the channel table of peer ${this.options.peerId} is full (${this.maxChannels} entries); too many channels open at once`;
    queueMicrotask(() => {
      if (this.stopped) return;
      this.sink?.message({ type: "Response", connId, requestId, metadata: [["roam-error", reason]], channels: [], payload: RESPONSE_CANCELLED });
    });
  }

  private nextAlias(connId: number): number {
    // Ids the core sees for channels the peer allocated carry the peer's parity.
    const a = this.aliasNext.get(connId) ?? (this.isHost ? 1 : 2);
    this.aliasNext.set(connId, a + 2);
    return a;
  }

  private mapIncoming(connId: number, ids: number[]): number[] | null {
    const out: number[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      const known = t > 0 && t < this.maxChannels ? this.byIndex[t] : undefined;
      if (known !== undefined && known.connId === connId && known.ours && !known.dead) {
        out[i] = known.localId; // one of ours, echoed back (Response channels)
        continue;
      }
      if (!(t > 0 && t < this.maxChannels)) {
        this.violate("shm.flow.channel-table-indexing", `channel id ${t} is outside 1..${this.maxChannels - 1}`);
        return null;
      }
      if ((t % 2 === 0) !== !this.isHost) {
        this.violate("shm.id.channel-parity", `the ${this.isHost ? "guest" : "host"} allocated channel ${t}, which has the other side's parity`);
        return null;
      }
      if (known !== undefined && !known.dead) {
        this.violate("channeling.id.uniqueness", `channel ${t} is still in use`);
        return null;
      }
      const localId = this.nextAlias(connId);
      const key = channelKey(connId, localId);
      const c: Chan = { t, connId, localId, key, ours: false, sentTerm: false, recvTerm: false, send: null, recv: null };
      this.byIndex[t] = c;
      this.chans.set(key, c);
      this.stats.channelsOpen++;
      out[i] = localId;
    }
    return out;
  }

  private sendTerminal(c: Chan, type: number): void {
    const weReceive = c.send === null;
    c.sentTerm = true;
    c.send?.detach();
    this.emit(type, c.t, 0n, this.connBytes(c.connId), null, null);
    if (!this.peerAnswersClose()) {
      this.specEnd(c, weReceive);
      return;
    }
    this.maybeComplete(c);
  }

  private maybeComplete(c: Chan): void {
    if (!c.sentTerm || !c.recvTerm) return;
    if (this.chans.get(c.key) === c) this.unmap(c);
  }

  // CreditHost ------------------------------------------------------------------------

  attach(key: number, credit: ShmSendCredit | ShmReceiveCredit): number {
    const c = this.chans.get(key);
    if (c === undefined) {
      this.pendingCredit.set(key, credit);
      return 0;
    }
    if (credit instanceof ShmSendCredit) c.send = credit;
    else c.recv = credit;
    return c.t;
  }

  disposed(key: number, credit: ShmSendCredit | ShmReceiveCredit): void {
    if (this.pendingCredit.get(key) === credit) this.pendingCredit.delete(key);
    if (this.stopped || this.linkEnding) return;
    const c = this.chans.get(key);
    if (c === undefined) return;
    // The core is done with the channel: our last frame for it.
    if (!c.sentTerm) {
      this.sendTerminal(c, MsgType.Reset);
      if (this.asleep) this.wakeUp();
      this.scheduleIdle();
    }
  }

  waiting(credit: ShmSendCredit, on: boolean): void {
    if (on) {
      this.creditWaiting.add(credit);
      this.scheduleIdle();
    } else this.creditWaiting.delete(credit);
  }

  granted(): void {
    this.wakePeer(WANTS_CREDIT);
  }

  private checkCredits(): boolean {
    if (this.creditWaiting.size === 0) return false;
    let any = false;
    for (const c of [...this.creditWaiting]) if (c.poll()) any = true;
    return any;
  }

  // --- writing -----------------------------------------------------------------------

  /** Sends a frame whose payload is a ++ b ++ c (copied before returning). */
  private emit(type: number, id: number, methodId: bigint, a: Uint8Array, b: Uint8Array | null, c: Uint8Array | null): void {
    if (this.stopped) return;
    const len = a.length + (b === null ? 0 : b.length) + (c === null ? 0 : c.length);
    if (this.poolless && FRAME_HEADER_SIZE + len > this.inline) {
      this.stop("closed", new Error(`shm: cannot send a ${MSG_TYPE_NAMES[type]} frame: ${this.noSlotsReason(len)}`));
      return;
    }
    if (this.queueHead >= this.queue.length && this.write(type, id, methodId, a, b, c, len)) return;
    // Keep order: everything after a blocked frame waits behind it.
    const bytes = new Uint8Array(len);
    bytes.set(a, 0);
    if (b !== null) bytes.set(b, a.length);
    if (c !== null) bytes.set(c, len - c.length);
    this.queue.push({ reply: this.sendingReply, type, id, methodId, bytes });
    this.queuedBytes += len;
    if (this.sendingReply) this.replies.add(len);
    this.stats.queuedFrames++;
    if (this.queuedBytes > this.stats.queuedHighWater) this.stats.queuedHighWater = this.queuedBytes;
    if (this.queuedBytes > this.hardCap) {
      this.stop(
        "closed",
        new Error(`shm: ${this.queuedBytes} bytes queued for peer ${this.options.peerId}, which does not consume them (limit ${this.hardCap})`),
      );
    }
  }

  /** Writes one frame now; false when the buffer is full or no slot is free. */
  private write(type: number, id: number, methodId: bigint, a: Uint8Array, b: Uint8Array | null, c: Uint8Array | null, len: number): boolean {
    const u8 = this.u8;
    const dv = this.dv;
    if (FRAME_HEADER_SIZE + len <= this.inline) {
      const total = align(FRAME_HEADER_SIZE + len, 4);
      const off = this.tx.grant(total);
      if (off < 0) {
        if (off === FAULT) this.txFault();
        return false;
      }
      const base = this.tx.data + off;
      dv.setUint32(base, total, true);
      dv.setUint32(base + 4, type, true); // msg_type, flags 0, reserved 0
      dv.setUint32(base + 8, id, true);
      dv.setBigUint64(base + 12, methodId, true);
      dv.setUint32(base + 20, len, true);
      u8.set(a, base + 24);
      if (b !== null) u8.set(b, base + 24 + a.length);
      if (c !== null) u8.set(c, base + 24 + len - c.length);
      for (let p = base + 24 + len; p < base + total; p++) u8[p] = 0;
      this.tx.commit(total);
    } else {
      if (len > this.maxFramePayload) throw new RangeError(`frame payload of ${len} bytes exceeds the largest slot (${this.maxFramePayload})`);
      const ref = this.seg.pool.alloc(len, this.owner, this.isHost);
      if (ref === null) {
        this.slotBlocked = true;
        return false;
      }
      const total = FRAME_HEADER_SIZE + SLOT_REF_SIZE;
      const off = this.tx.grant(total);
      if (off < 0) {
        this.seg.pool.freeAllocated(ref);
        if (off === FAULT) this.txFault();
        return false;
      }
      this.slotBlocked = false;
      const data = this.seg.pool.dataOffset(ref);
      this.put(a, data);
      if (b !== null) this.put(b, data + a.length);
      if (c !== null) this.put(c, data + len - c.length);
      this.seg.pool.markInFlight(ref);
      const base = this.tx.data + off;
      dv.setUint32(base, total, true);
      dv.setUint32(base + 4, type | (FLAG_SLOT_REF << 8), true);
      dv.setUint32(base + 8, id, true);
      dv.setBigUint64(base + 12, methodId, true);
      dv.setUint32(base + 20, len, true);
      dv.setUint32(base + 24, ref.classIdx | (ref.extentIdx << 8), true);
      dv.setUint32(base + 28, ref.slotIdx, true);
      dv.setUint32(base + 32, ref.generation, true);
      this.tx.commit(total);
      this.stats.slotFramesSent++;
      if (this.isHost) this.trackSlot(ref);
    }
    this.stats.framesSent++;
    this.wakePeer(WANTS_FRAMES);
    return true;
  }

  /**
   * Copies `src` into the segment at `dst`. V8 copies into a SharedArrayBuffer
   * word by word only when source and destination are equally aligned, and
   * byte by byte otherwise — about 7x slower, and a payload after a
   * variable-length prefix is almost never aligned like its source. Large
   * misaligned copies therefore go through a private staging buffer placed
   * at the destination's alignment: two fast copies instead of one slow one.
   */
  private put(src: Uint8Array, dst: number): void {
    const n = src.length;
    if (n < 512 || ((src.byteOffset - dst) & 7) === 0) {
      this.u8.set(src, dst);
      return;
    }
    const k = dst & 7;
    for (let at = 0; at < n; at += STAGE_SIZE) {
      const m = Math.min(STAGE_SIZE, n - at);
      const st = stage.subarray(k, k + m);
      st.set(src.subarray(at, at + m));
      this.u8.set(st, dst + at);
    }
  }

  private trackSlot(ref: SlotRef): void {
    this.sentSlots.push(ref);
    if (this.sentSlots.length >= 1024) {
      // Forget the ones the guest already freed.
      this.sentSlots = this.sentSlots.filter((r) => this.seg.pool.check(r, 0) === undefined);
    }
  }

  /** Writes queued frames while they fit; returns true if any went out. */
  private flushQueue(): boolean {
    let any = false;
    while (this.queueHead < this.queue.length && !this.stopped) {
      const q = this.queue[this.queueHead]!;
      if (!this.write(q.type, q.id, q.methodId, q.bytes, null, null, q.bytes.length)) break;
      this.queue[this.queueHead] = undefined as never;
      this.queueHead++;
      this.queuedBytes -= q.bytes.length;
      if (q.reply) this.replies.written(q.bytes.length);
      any = true;
    }
    if (this.queueHead >= this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    if (this.writableWaiters.length > 0 && this.queuedBytes < this.hwm / 2) {
      const ws = this.writableWaiters;
      this.writableWaiters = [];
      for (const w of ws) w();
    }
    return any;
  }

  /**
   * Rings the peer if it sleeps waiting for one of `bits` and nobody rang it
   * since it fell asleep: at most one doorbell write per sleep.
   */
  private wakePeer(bits: number): void {
    if (!this.peerPublishesSleep()) {
      // A peer that follows only the spec never raises a sleeping flag: signal
      // after every commit, release and grant (r[shm.doorbell.ring-integration],
      // r[shm.wakeup.producer-wait], r[shm.wakeup.credit-wait]).
      this.waker.ring();
      return;
    }
    const i = this.peerFlag;
    const f = Atomics.load(this.i32, i);
    if ((f & bits) !== 0 && (f & RUNG) === 0 && Atomics.compareExchange(this.i32, i, f, f | RUNG) === f) this.waker.ring();
  }

  /**
   * Whether the peer advertised the `sleeping` extension (layout.EXT): read
   * from the segment each time, since a guest advertises when it attaches,
   * which may be after the host started writing to it.
   */
  private peerPublishesSleep(): boolean {
    const bits = this.isHost ? this.seg.peerExtensions(this.options.peerId) : this.seg.hostExtensions();
    return (bits & EXT.sleeping) !== 0;
  }

  // --- reading -----------------------------------------------------------------------

  private drain(): void {
    if (this.draining || this.stopped || this.rxFailed || this.readPaused) return;
    this.draining = true;
    let consumed = 0;
    const u8 = this.u8;
    const dv = this.dv;
    const rx = this.rx;
    try {
      // Bounded per turn (frames, bytes) so timers — the heartbeat among them — keep running.
      let bytes = 0;
      while (consumed < 8192 && bytes < 64 * 1024 * 1024 && !this.stopped && !this.rxFailed && !this.readPaused) {
        const start = rx.readable();
        if (start === FAULT) {
          this.violate(rx.fault.slice(0, rx.fault.indexOf(":")), rx.fault.slice(rx.fault.indexOf(":") + 2));
          break;
        }
        if (start < 0) break;
        const avail = rx.readableLength;
        const base = rx.data + start;
        const total = avail >= 4 ? dv.getUint32(base, true) : 0;
        if (total < FRAME_HEADER_SIZE || (total & 3) !== 0 || total > avail) {
          this.violate("shm.frame.header", `frame length ${total} with ${avail} readable bytes`);
          break;
        }
        const type = u8[base + 4]!;
        const flags = u8[base + 5]!;
        const id = dv.getUint32(base + 8, true);
        const plen = dv.getUint32(base + 20, true);
        let payload: Uint8Array;
        if ((flags & ~FLAG_SLOT_REF) !== 0) {
          this.violate("shm.frame.header", `unknown frame flags 0x${flags.toString(16)}`);
          break;
        }
        if (flags & FLAG_SLOT_REF) {
          if (total !== FRAME_HEADER_SIZE + SLOT_REF_SIZE) {
            this.violate("shm.frame.slot-ref", `slot frame of ${total} bytes (must be 36)`);
            break;
          }
          if (this.poolless) {
            // Not the host's fault (large payloads MUST use slots): we cannot find the slot.
            this.violate("shm.handshake.no-negotiation", `a slot-referenced frame arrived, but this segment places no size-class count, so its VarSlotPool cannot be read`);
            break;
          }
          const ref: SlotRef = {
            classIdx: u8[base + 24]!,
            extentIdx: u8[base + 25]!,
            slotIdx: dv.getUint32(base + 28, true),
            generation: dv.getUint32(base + 32, true),
          };
          const problem = plen > this.maxFramePayload ? `payload_len ${plen} exceeds every slot` : this.seg.pool.check(ref, plen);
          if (problem !== undefined) {
            this.violate("shm.frame.slot-ref", problem);
            break;
          }
          payload = this.copyOut(this.seg.pool.dataOffset(ref), plen);
          this.seg.pool.free(ref);
        } else {
          if (align(FRAME_HEADER_SIZE + plen, 4) !== total) {
            this.violate("shm.frame.inline", `inline frame of ${total} bytes declares payload_len ${plen}`);
            break;
          }
          if (FRAME_HEADER_SIZE + plen > this.inline) {
            this.violate("shm.payload.slot", `inline payload of ${plen} bytes exceeds the inline threshold ${this.inline}`);
            break;
          }
          payload = this.copyOut(base + 24, plen);
        }
        const methodId = type === MsgType.Request ? dv.getBigUint64(base + 12, true) : 0n;
        rx.release(total);
        consumed++;
        bytes += plen;
        this.stats.framesReceived++;
        this.onFrame(type, id, methodId, payload);
      }
    } catch (e) {
      // Every offset above is checked; this is the last line of defence: a
      // fault reading the peer's memory ends this link, never the process.
      const msg = String((e as Error)?.message ?? e);
      if (e instanceof SegmentFault) this.violate(msg.slice(0, msg.indexOf(":")), msg.slice(msg.indexOf(":") + 2));
      else this.violate("shm.segment.header", `reading the peer's frames failed: ${msg}`);
    } finally {
      this.draining = false;
    }
    if (consumed > 0) {
      this.lastRx = performance.now();
      // We released ring space (and maybe slots): the peer may be waiting for it.
      this.wakePeer(WANTS_ROOM);
      if (!this.rxFailed && !this.readPaused && rx.hasData() && !this.stopped) setImmediate(() => this.wake());
    }
  }

  /**
   * Copies a payload out of the segment into memory the session core may keep
   * (it lends views of received payloads to the application). Allocating a
   * fresh buffer per frame costs more than the copy, so medium payloads are
   * carved out of 1 MiB arenas that are never reused: an arena is freed by the
   * garbage collector once no payload in it is referenced.
   */
  private copyOut(at: number, len: number): Uint8Array {
    if (len === 0) return EMPTY;
    const src = this.u8.subarray(at, at + len);
    if (len <= 64) return src.slice();
    if (len > ARENA_PIECE_MAX) {
      // Large: its own buffer, not zero-filled first (every byte is overwritten).
      const b = Buffer.allocUnsafeSlow(len);
      const out = new Uint8Array(b.buffer, b.byteOffset, len);
      out.set(src);
      return out;
    }
    let a = this.arena;
    if (a === null || this.arenaPos + len > a.byteLength) {
      a = this.arena = new ArrayBuffer(ARENA_SIZE);
      this.arenaPos = 0;
    }
    const out = new Uint8Array(a, this.arenaPos, len);
    out.set(src);
    this.arenaPos += (len + 7) & ~7;
    return out;
  }

  /**
   * The outgoing ring's header is corrupt (the peer wrote into it): nothing
   * more can be written to it. Reported outside the send path that found it.
   */
  private txFault(): void {
    if (this.txFaulted) return;
    this.txFaulted = true;
    const f = this.tx.fault;
    queueMicrotask(() => this.violate(f.slice(0, f.indexOf(":")), f.slice(f.indexOf(":") + 2)));
  }
  private txFaulted = false;

  private violate(rule: string, detail: string): void {
    if (this.rxFailed || this.stopped) return;
    this.rxFailed = true;
    this.sink?.malformed(rule, `${detail} (peer ${this.options.peerId})`);
  }

  private onFrame(type: number, id: number, methodId: bigint, payload: Uint8Array): void {
    if (this.closing) return; // closed: frames are consumed (slots freed) and dropped
    if (type < MsgType.Request || type > MsgType.Reject) {
      this.violate("shm.desc.msg-type", `unknown msg_type ${type}`);
      return;
    }
    let m: Message;
    try {
      m = decodeFrame(type, id, methodId, payload);
    } catch (e) {
      this.violate("shm.payload.encoding", `${MSG_TYPE_NAMES[type]} frame: ${(e as Error).message}`);
      return;
    }
    switch (m.type) {
      case "Request":
      case "Response": {
        if (m.type === "Response" && this.outstanding > 0) this.outstanding--;
        if (m.channels.length > 0) {
          const ids = this.mapIncoming(m.connId, m.channels);
          if (ids === null) return;
          m.channels = ids;
        }
        break;
      }
      case "Data": {
        const c = this.byIndex[m.channelId];
        if (c?.dead) return; // crossed the end of its channel (spec channel end): ignore
        if (c === undefined || c.connId !== m.connId || c.recvTerm) {
          this.violate(
            c?.recvTerm ? "channeling.data-after-close" : "channeling.unknown",
            `Data on SHM channel ${m.channelId} (connection ${m.connId}), which is ${c?.recvTerm ? "closed" : "not open"}`,
          );
          return;
        }
        m.channelId = c.localId;
        break;
      }
      case "Close":
      case "Reset": {
        const c = m.channelId > 0 && m.channelId < this.maxChannels ? this.byIndex[m.channelId] : undefined;
        if (c?.dead) {
          // Crossed our own end of it (spec channel end). If the peer turns out
          // to speak closeReply (it attached after we ended the channel), this
          // is its answer: the entry is ours to free.
          const i = c.ours && this.peerAnswersClose() ? this.awaitFree.indexOf(c.t) : -1;
          if (i >= 0) {
            this.awaitFree.splice(i, 1);
            this.table.free(c.t);
            this.freeIdx.push(c.t);
          }
          return;
        }
        if (c === undefined || c.connId !== m.connId) {
          this.violate("channeling.unknown", `${m.type} on SHM channel ${m.channelId} (connection ${m.connId}), which is not open`);
          return;
        }
        if (c.recvTerm) return; // a second terminal frame: nothing more to learn
        if (!this.peerAnswersClose()) {
          // r[shm.flow.channel-id-reuse]: no answer; the receiver frees the entry.
          const wasDone = c.sentTerm;
          this.specEnd(c, c.send === null);
          if (wasDone) return;
          m.channelId = c.localId;
          this.sink!.message(m);
          return;
        }
        c.recvTerm = true;
        c.recv?.detach();
        if (c.sentTerm) {
          // Our own last frame crossed it (or this answers it): the channel is finished.
          this.maybeComplete(c);
          return;
        }
        m.channelId = c.localId;
        this.sink!.message(m);
        // The core answers through dispose(); a channel the core never took up is answered here.
        if (!c.sentTerm && c.send === null && c.recv === null) this.sendTerminal(c, MsgType.Reset);
        return;
      }
      case "Goodbye":
        if (m.connId === 0) this.linkEnding = true;
        break;
      default:
        break;
    }
    this.sink!.message(m);
  }

  // --- idle, spin, sleep -----------------------------------------------------------------

  private scheduleIdle(): void {
    if (this.idleScheduled || this.stopped) return;
    this.idleScheduled = true;
    setImmediate(this.idle);
  }

  private readonly idle = (): void => {
    this.idleScheduled = false;
    if (this.stopped) return;
    if (this.spinMs > 0 && (this.outstanding > 0 || this.creditWaiting.size > 0 || performance.now() - this.lastRx < 4 * this.spinMs)) {
      if (this.spinBudget === 0 && ++this.spinProbe >= 32) {
        this.spinProbe = 0;
        this.spinBudget = this.spinMs;
      }
      if (this.spinBudget > 0) {
        if (this.spin(this.spinBudget)) {
          this.stats.spinHits++;
          this.spinBudget = this.spinMs;
          this.drain();
          this.checkCredits();
          this.flushQueue();
          this.scheduleIdle();
          return;
        }
        // The peer is slow or not running (a busy machine): spin less.
        this.spinBudget = this.spinBudget / 2 < this.spinMs / 16 ? 0 : this.spinBudget / 2;
      }
    }
    this.sleep();
  };

  /** Busy-polls for input for at most `budget` ms. */
  private spin(budget: number): boolean {
    const rx = this.rx;
    const end = performance.now() + budget;
    const credits = this.creditWaiting.size > 0;
    if (this.rxFailed || this.readPaused) return false;
    for (let i = 1; ; i++) {
      if (rx.hasData()) return true;
      if ((i & 63) === 0) {
        if (credits && this.anyCreditReady()) return true;
        if (performance.now() > end) return false;
      }
    }
  }

  private anyCreditReady(): boolean {
    for (const c of this.creditWaiting) if (c.ready) return true;
    return false;
  }

  private sleep(): void {
    // Raise the flag first, then look again (the peer does the opposite), so a
    // frame, room or credit arriving in between is never missed. The flag says
    // what we wait for, so the peer rings only for that.
    const flag =
      WANTS_FRAMES | (this.queueHead < this.queue.length ? WANTS_ROOM : 0) | (this.creditWaiting.size > 0 ? WANTS_CREDIT : 0);
    Atomics.store(this.i32, this.myFlag, flag);
    this.asleep = true;
    const progressed = this.flushQueue();
    const credited = this.checkCredits();
    if ((!this.rxFailed && !this.readPaused && this.rx.hasData()) || progressed || credited) {
      this.wakeUp();
      this.drain();
      this.scheduleIdle();
      return;
    }
    if (this.closing && this.queueHead >= this.queue.length) {
      this.stop("closed");
      return;
    }
    this.stats.sleeps++;
    const waiting = this.queueHead < this.queue.length || this.creditWaiting.size > 0;
    // A safety net only: every wait has a ring from the peer; slots freed by
    // other guests (a shared pool) are polled.
    // A spec-only peer wakes a credit waiter with a futex on granted_total,
    // which does not reach us across processes: poll it (r[shm.wakeup.fallback]).
    const creditPoll = this.creditWaiting.size > 0 && !this.peerPublishesSleep();
    this.waker.sleep(this.slotBlocked || creditPoll ? 2 : waiting ? 100 : undefined, flag);
  }

  private wakeUp(): void {
    if (!this.asleep) return;
    this.asleep = false;
    Atomics.store(this.i32, this.myFlag, 0);
  }

  // --- stopping ---------------------------------------------------------------------

  private stop(how: "closed" | "gone", cause?: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.closing = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    const err = cause ?? new ConnectionClosedError("the SHM link closed", "transport");
    for (const c of this.creditWaiting) c.fail(err);
    this.creditWaiting.clear();
    for (const c of this.chans.values()) {
      c.send?.fail(err);
      c.recv?.detach();
    }
    for (const c of this.pendingCredit.values()) if (c instanceof ShmSendCredit) c.fail(err);
    this.pendingCredit.clear();
    const ws = this.writableWaiters;
    this.writableWaiters = [];
    for (const w of ws) w();
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.replies.release();
    // Leave our flag raised: the peer rings us at most once more.
    Atomics.store(this.i32, this.myFlag, WANTS_FRAMES);
    this.sink?.closed(cause);
    this.options.onStop?.(how, cause);
  }
}

