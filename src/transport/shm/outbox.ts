/**
 * The write path of one side: frames into the outgoing BipBuffer, payloads
 * above the inline threshold into a VarSlotPool slot. When the buffer is full
 * or no slot is free, frames wait in a FIFO whose size is reported through
 * `writable()` (so channel senders wait) and capped hard: a peer that stops
 * consuming fails the link instead of growing the queue without bound.
 */
import { ReplyBacklog } from "../../session/transport.js";
import { FAULT, type BipBuffer } from "./bipbuf.js";
import { connIdBytes, FLAG_SLOT_REF, MSG_TYPE_NAMES } from "./frame.js";
import { align, FRAME_HEADER_SIZE, SLOT_REF_SIZE } from "./layout.js";
import type { Segment } from "./segment.js";
import { WANTS_FRAMES, type PeerBell } from "./sleeper.js";
import type { SlotRef } from "./varslot.js";

interface Queued {
  /** A reply (see isReply): counted in the reply backlog. */
  reply: boolean;
  type: number;
  id: number;
  methodId: bigint;
  bytes: Uint8Array;
}

export interface OutboxOptions {
  segment: Segment;
  tx: BipBuffer;
  isHost: boolean;
  peerId: number;
  /** Queued bytes above which `writable()` makes senders wait. */
  highWaterMark: number;
  /** Queued bytes that fail the link. */
  maxQueuedBytes: number;
  stats: { framesSent: number; slotFramesSent: number; queuedFrames: number; queuedHighWater: number };
}

/** What the outbox needs from the transport. */
export interface OutboxPorts {
  stopped(): boolean;
  /** The link cannot go on (a frame that can never be sent, a peer that does not consume): stop it. */
  fail(cause: Error): void;
  /** The outgoing ring's header is corrupt: the peer broke a rule. */
  violate(rule: string, detail: string): void;
}

/** Why a payload of `len` bytes cannot be sent on a segment without a usable VarSlotPool. */
export function noSlotsReason(len: number, inline: number): string {
  return (
    `a frame payload of ${len} bytes needs a VarSlotPool slot (inline_threshold ${inline}), and this segment's host ` +
    `places no size-class count, so its pool cannot be used (a spec-only host; docs/shm-compat.md)`
  );
}

const STAGE_SIZE = 64 * 1024;
const stage = new Uint8Array(STAGE_SIZE + 8);

export class Outbox {
  /** The message being sent is a reply (set by the transport per message; counted in the reply backlog if queued). */
  replying = false;
  /** The last slot allocation failed: the pool is full (the idle loop polls it). */
  slotBlocked = false;
  readonly replies = new ReplyBacklog();
  private readonly seg: Segment;
  private readonly tx: BipBuffer;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly isHost: boolean;
  private readonly owner: number;
  private readonly peerId: number;
  private readonly inline: number;
  private readonly maxFramePayload: number;
  private readonly poolless: boolean;
  private readonly hwm: number;
  private readonly hardCap: number;
  private readonly stats: OutboxOptions["stats"];
  private queue: Queued[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private writableWaiters: (() => void)[] = [];
  /** Host: slots we sent, to reclaim if the guest dies before freeing them. */
  private sentSlots: SlotRef[] = [];
  private readonly connIdCache = new Map<number, Uint8Array>();
  private txFaulted = false;

  constructor(
    options: OutboxOptions,
    private readonly bell: PeerBell,
    private readonly ports: OutboxPorts,
  ) {
    const seg = options.segment;
    this.seg = seg;
    this.tx = options.tx;
    this.u8 = seg.u8;
    this.dv = seg.dv;
    this.isHost = options.isHost;
    this.peerId = options.peerId;
    this.owner = this.isHost ? 0 : options.peerId;
    this.inline = seg.inlineThreshold;
    const classes = seg.layout.classes;
    this.poolless = classes.length === 0;
    this.maxFramePayload = this.poolless ? this.inline - FRAME_HEADER_SIZE : classes[classes.length - 1]!.slotSize;
    this.hwm = options.highWaterMark;
    this.hardCap = options.maxQueuedBytes;
    this.stats = options.stats;
  }

  /** Frames wait in the queue. */
  get queued(): boolean {
    return this.queueHead < this.queue.length;
  }

  /** Resolves once the queue fell below half the high-water mark; undefined when below it now. */
  writable(): Promise<void> | undefined {
    if (this.ports.stopped() || this.queuedBytes < this.hwm) return undefined;
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  /** The 8-byte little-endian conn_id prefix (cached: it is written for every Data frame). */
  connBytes(connId: number): Uint8Array {
    let b = this.connIdCache.get(connId);
    if (b === undefined) {
      b = connIdBytes(connId);
      if (this.connIdCache.size > 1024) this.connIdCache.clear();
      this.connIdCache.set(connId, b);
    }
    return b;
  }

  /** Host: slots sent to the peer that it may not have freed (crash recovery). */
  takeSentSlots(): SlotRef[] {
    const s = this.sentSlots;
    this.sentSlots = [];
    return s;
  }

  /** Sends a frame whose payload is a ++ b ++ c (copied before returning). */
  emit(type: number, id: number, methodId: bigint, a: Uint8Array, b: Uint8Array | null, c: Uint8Array | null): void {
    if (this.ports.stopped()) return;
    const len = a.length + (b === null ? 0 : b.length) + (c === null ? 0 : c.length);
    if (this.poolless && FRAME_HEADER_SIZE + len > this.inline) {
      this.ports.fail(new Error(`shm: cannot send a ${MSG_TYPE_NAMES[type]} frame: ${noSlotsReason(len, this.inline)}`));
      return;
    }
    if (this.queueHead >= this.queue.length && this.write(type, id, methodId, a, b, c, len)) return;
    // Keep order: everything after a blocked frame waits behind it.
    const bytes = new Uint8Array(len);
    bytes.set(a, 0);
    if (b !== null) bytes.set(b, a.length);
    if (c !== null) bytes.set(c, len - c.length);
    this.queue.push({ reply: this.replying, type, id, methodId, bytes });
    this.queuedBytes += len;
    if (this.replying) this.replies.add(len);
    this.stats.queuedFrames++;
    if (this.queuedBytes > this.stats.queuedHighWater) this.stats.queuedHighWater = this.queuedBytes;
    if (this.queuedBytes > this.hardCap) {
      this.ports.fail(new Error(`shm: ${this.queuedBytes} bytes queued for peer ${this.peerId}, which does not consume them (limit ${this.hardCap})`));
    }
  }

  /** Writes queued frames while they fit; returns true if any went out. */
  flush(): boolean {
    let any = false;
    while (this.queueHead < this.queue.length && !this.ports.stopped()) {
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

  /** The transport stopped: release the senders waiting for room, drop the queue. */
  stop(): void {
    const ws = this.writableWaiters;
    this.writableWaiters = [];
    for (const w of ws) w();
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.replies.release();
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
    this.bell.ring(WANTS_FRAMES);
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

  /**
   * The outgoing ring's header is corrupt (the peer wrote into it): nothing
   * more can be written to it. Reported outside the send path that found it.
   */
  private txFault(): void {
    if (this.txFaulted) return;
    this.txFaulted = true;
    const f = this.tx.fault;
    queueMicrotask(() => this.ports.violate(f.slice(0, f.indexOf(":")), f.slice(f.indexOf(":") + 2)));
  }
}
