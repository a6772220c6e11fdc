/**
 * The MessageTransport of one host/guest pair over a segment: whole Messages
 * in, SHM frames out, and back. The same class runs on both ends; it routes
 * between the session core and four collaborators it drives:
 *
 * - Outbox (outbox.ts): the write path, with its bounded FIFO for frames that
 *   do not fit yet, reported through `writable()`.
 * - Inbox (inbox.ts): the read path; every frame checked before it is trusted.
 * - ChannelMap (channel-map.ts): SHM channel ids (table entries) against the
 *   core's channel ids, each channel's last frames, and its credit objects,
 *   which the flow backend (flow.ts) gets from it.
 * - Sleeper and PeerBell (sleeper.ts): spin, sleep and wake-ups.
 */
import { ConnectionClosedError } from "../../session/errors.js";
import { isReply, type MessageTransport, type TransportSink } from "../../session/transport.js";
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED } from "../../wire/envelope.js";
import type { Message } from "../../wire/message.js";
import { Writer } from "../../codec/writer.js";
import { ChannelMap } from "./channel-map.js";
import { ShmFlowControl } from "./flow.js";
import { controlPayload, decodeFrame, MSG_TYPE_NAMES, MsgType, writeCallPrefix } from "./frame.js";
import { Inbox } from "./inbox.js";
import { EXT, FRAME_HEADER_SIZE } from "./layout.js";
import { noSlotsReason, Outbox } from "./outbox.js";
import type { ChannelTable, Segment } from "./segment.js";
import { PeerBell, Sleeper, WANTS_CREDIT, WANTS_ROOM } from "./sleeper.js";
import type { SlotRef } from "./varslot.js";
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

const prefixWriter = new Writer(1024);

export class ShmTransport implements MessageTransport {
  readonly description: string;
  readonly flow: ShmFlowControl;
  readonly table: ChannelTable;
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
  private sink: TransportSink | null = null;
  private readonly seg: Segment;
  private readonly isHost: boolean;
  private readonly inline: number;
  /** The segment places no size classes we can use (a spec-only host): inline frames only. */
  private readonly poolless: boolean;
  private readonly maxChannels: number;
  private readonly waker: Waker;
  private readonly bell: PeerBell;
  private readonly outbox: Outbox;
  private readonly inbox: Inbox;
  private readonly channels: ChannelMap;
  private readonly sleeper: Sleeper;

  private closing = false;
  private stopped = false;
  private rxFailed = false;
  /** The link paused reading: the incoming ring is left alone (the peer blocks when it is full). */
  private readPaused = false;
  private closeTimer: ReturnType<typeof setTimeout> | null = null;
  /** Requests we sent whose Response did not arrive yet (input is expected soon). */
  private outstanding = 0;

  constructor(private readonly options: ShmTransportOptions) {
    const seg = options.segment;
    const g = seg.guest(options.peerId);
    this.seg = seg;
    this.isHost = options.role === "host";
    const tx = this.isHost ? g.h2g : g.g2h;
    const rx = this.isHost ? g.g2h : g.h2g;
    this.table = g.channels;
    this.inline = seg.inlineThreshold;
    this.poolless = seg.layout.classes.length === 0;
    this.maxChannels = seg.config.maxChannels;
    this.waker = options.waker;
    this.description = options.description ?? `shm ${this.isHost ? "host→guest" : "guest→host"} peer ${options.peerId}`;

    this.bell = new PeerBell({ i32: seg.i32, index: tx.iSleeping }, this.waker, () => this.peerExtensions());
    this.outbox = new Outbox(
      {
        segment: seg,
        tx,
        isHost: this.isHost,
        peerId: options.peerId,
        highWaterMark: options.highWaterMark ?? 4 * 1024 * 1024,
        maxQueuedBytes: options.maxQueuedBytes ?? 512 * 1024 * 1024,
        stats: this.stats,
      },
      this.bell,
      {
        stopped: () => this.stopped,
        fail: (cause) => this.stop("closed", cause),
        violate: (rule, detail) => this.violate(rule, detail),
      },
    );
    this.inbox = new Inbox(seg, rx, this.stats, {
      reading: () => !this.stopped && !this.rxFailed && !this.readPaused,
      violate: (rule, detail) => this.violate(rule, detail),
      frame: (type, id, methodId, payload) => this.onFrame(type, id, methodId, payload),
    });
    this.channels = new ChannelMap(
      { isHost: this.isHost, table: this.table, maxChannels: this.maxChannels, initialCredit: seg.config.initialCredit, stats: this.stats },
      {
        peerAnswersClose: () => (this.peerExtensions() & EXT.closeReply) !== 0,
        sendEnd: (type, t, connId) => this.outbox.emit(type, t, 0n, this.outbox.connBytes(connId), null, null),
        violate: (rule, detail) => this.violate(rule, detail),
        ended: () => {
          this.sleeper.awake();
          this.sleeper.schedule();
        },
        creditWait: () => this.sleeper.schedule(),
        granted: () => this.bell.ring(WANTS_CREDIT),
      },
    );
    this.sleeper = new Sleeper(
      { spinMicros: options.spinMicros ?? 50, flag: { i32: seg.i32, index: rx.iSleeping }, stats: this.stats },
      {
        stopped: () => this.stopped,
        callsInFlight: () => this.outstanding > 0,
        canRead: () => !this.rxFailed && !this.readPaused,
        hasFrames: () => rx.hasData(),
        creditWaiting: () => this.channels.waitingForCredit,
        creditReady: () => this.channels.anyCreditReady(),
        queued: () => this.outbox.queued,
        read: () => this.drain(),
        flush: () => this.outbox.flush(),
        pollCredits: () => this.channels.checkCredits(),
        finish: () => {
          if (!this.closing || this.outbox.queued) return false;
          this.stop("closed");
          return true;
        },
        sleep: (flag) => {
          const credits = this.channels.waitingForCredit;
          const waiting = this.outbox.queued || credits;
          // A safety net only: every wait has a ring from the peer; slots freed by
          // other guests (a shared pool) are polled.
          // A spec-only peer wakes a credit waiter with a futex on granted_total,
          // which does not reach us across processes: poll it (r[shm.wakeup.fallback]).
          const creditPoll = credits && !this.bell.peerPublishesSleep;
          this.waker.sleep(this.outbox.slotBlocked || creditPoll ? 2 : waiting ? 100 : undefined, flag);
        },
      },
    );
    this.flow = new ShmFlowControl(this.channels);
  }

  // --- MessageTransport --------------------------------------------------------

  start(sink: TransportSink): void {
    this.sink = sink;
    // Frames may already wait (the host writes before the guest attaches); they
    // are read on the next turn, after the link finished its (implicit) handshake.
    this.sleeper.schedule();
  }

  send(m: Message): void {
    if (this.closing) return;
    const out = this.outbox;
    out.replying = isReply(m);
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
            this.refuseRequest(m.connId, m.requestId, noSlotsReason(w.pos + m.payload.length, this.inline));
            return;
          }
        }
        if (m.channels.length > 0) {
          const mapped = this.channels.outgoing(m.connId, m.channels);
          if (mapped === null) {
            if (m.type === "Request") this.refuseRequest(m.connId, m.requestId);
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
          out.emit(MsgType.Request, m.requestId >>> 0, m.methodId, w.view(), m.payload, null);
        } else {
          out.emit(MsgType.Response, m.requestId >>> 0, 0n, w.view(), m.payload, null);
        }
        break;
      }
      case "Data": {
        const t = this.channels.dataIndex(m.connId, m.channelId);
        if (t === 0) return; // the channel ended: nothing to say
        // A large bytes element may come in two parts (payloadHead ++ payload).
        if (m.payloadHead !== undefined) out.emit(MsgType.Data, t, 0n, out.connBytes(m.connId), m.payloadHead, m.payload);
        else out.emit(MsgType.Data, t, 0n, out.connBytes(m.connId), m.payload, null);
        break;
      }
      case "Close":
      case "Reset":
        this.channels.end(m.connId, m.channelId, m.type === "Close" ? MsgType.Close : MsgType.Reset);
        break;
      case "Cancel":
        out.emit(MsgType.Cancel, m.requestId >>> 0, 0n, controlPayload(m), null, null);
        break;
      case "Goodbye":
        if (m.connId === 0) this.channels.endLink();
        out.emit(MsgType.Goodbye, m.connId >>> 0, 0n, controlPayload(m), null, null);
        break;
      case "Connect":
      case "Accept":
      case "Reject":
        out.emit(MsgType[m.type], m.requestId >>> 0, 0n, controlPayload(m), null, null);
        break;
      case "Hello":
      case "Credit":
        // r[shm.handshake], r[shm.flow.no-credit-message]: never on SHM.
        return;
    }
    this.sleeper.awake();
    this.sleeper.schedule();
  }

  flush(): void {
    this.outbox.flush();
  }

  replyBacklog(): number {
    return this.outbox.replies.bytes;
  }

  onReplyDrain(bytes: number, cb: () => void): void {
    if (this.stopped) queueMicrotask(cb);
    else this.outbox.replies.onDrain(bytes, cb);
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
    return this.outbox.writable();
  }

  /** Closes after the queued frames went out (bounded by 1 s). */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.outbox.flush();
    if (!this.outbox.queued) {
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
    this.sleeper.awake();
    this.drain();
    this.outbox.flush();
    this.channels.checkCredits();
    if (this.closing && !this.outbox.queued) {
      this.stop("closed");
      return;
    }
    this.sleeper.schedule();
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
    return this.outbox.takeSentSlots();
  }

  // --- routing ----------------------------------------------------------------------

  /**
   * The peer's extension bits (layout.EXT), read from the segment each time,
   * since a guest advertises when it attaches, which may be after the host
   * started writing to it.
   */
  private peerExtensions(): number {
    return this.isHost ? this.seg.peerExtensions(this.options.peerId) : this.seg.hostExtensions();
  }

  /** A Request we cannot send (no table entry, or too large without slots): answer it locally with an error. */
  private refuseRequest(connId: number, requestId: number, why?: string): void {
    const reason =
      why ?? `shm.flow.channel-table-indexing: the channel table of peer ${this.options.peerId} is full (${this.maxChannels} entries); too many channels open at once`;
    queueMicrotask(() => {
      if (this.stopped) return;
      this.sink?.message({ type: "Response", connId, requestId, metadata: [[HANDLER_ERROR_KEY, reason]], channels: [], payload: RESPONSE_CANCELLED });
    });
  }

  private drain(): void {
    if (this.stopped || this.rxFailed || this.readPaused) return;
    if (this.inbox.drain() > 0) {
      this.sleeper.noteInput();
      // We released ring space (and maybe slots): the peer may be waiting for it.
      this.bell.ring(WANTS_ROOM);
      if (!this.rxFailed && !this.readPaused && this.inbox.hasFrames() && !this.stopped) setImmediate(() => this.wake());
    }
  }

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
          const ids = this.channels.incoming(m.connId, m.channels);
          if (ids === null) return;
          m.channels = ids;
        }
        break;
      }
      case "Data": {
        const localId = this.channels.peerData(m.connId, m.channelId);
        if (localId < 0) return;
        m.channelId = localId;
        break;
      }
      case "Close":
      case "Reset": {
        const c = this.channels.peerEnded(m.connId, m.channelId, m.type);
        if (c === null) return;
        m.channelId = c.localId;
        this.sink!.message(m);
        this.channels.answer(c);
        return;
      }
      case "Goodbye":
        if (m.connId === 0) this.channels.endLink();
        break;
      default:
        break;
    }
    this.sink!.message(m);
  }

  // --- stopping ---------------------------------------------------------------------

  private stop(how: "closed" | "gone", cause?: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.closing = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    const err = cause ?? new ConnectionClosedError("the SHM link closed", "transport");
    this.channels.stop(err);
    this.outbox.stop();
    this.sleeper.stop();
    this.sink?.closed(cause);
    this.options.onStop?.(how, cause);
  }
}
