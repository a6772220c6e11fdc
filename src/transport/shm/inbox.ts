/**
 * The read path of one side: frames out of the incoming BipBuffer, each one
 * checked against the peer's memory before it is trusted (the peer may be
 * hostile or crashed mid-write). Payloads are copied out, so a slot is freed
 * at once, and handed on as (type, id, method id, payload).
 */
import { FAULT, type BipBuffer } from "./bipbuf.js";
import { FLAG_SLOT_REF, MsgType } from "./frame.js";
import { align, FRAME_HEADER_SIZE, SLOT_REF_SIZE } from "./layout.js";
import type { Segment } from "./segment.js";
import { SegmentFault, type SlotRef } from "./varslot.js";

export interface InboxPorts {
  /** Whether to go on reading (not stopped, failed or paused); asked before every frame. */
  reading(): boolean;
  /** The peer broke a rule: fail the link (reading stops). */
  violate(rule: string, detail: string): void;
  /** One frame, read and released. */
  frame(type: number, id: number, methodId: bigint, payload: Uint8Array): void;
}

const EMPTY: Uint8Array = new Uint8Array(0);
/** Arena for payloads up to ARENA_PIECE_MAX; both below the allocator's mmap threshold (see copyOut). */
const ARENA_SIZE = 64 * 1024;
const ARENA_PIECE_MAX = 8 * 1024;
/** Bounds of one drain (frames, bytes), so timers — the heartbeat among them — keep running. */
const MAX_FRAMES = 8192;
const MAX_BYTES = 64 * 1024 * 1024;

export class Inbox {
  private readonly seg: Segment;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly inline: number;
  private readonly maxFramePayload: number;
  /** The segment places no size classes we can use (a spec-only host): inline frames only. */
  private readonly poolless: boolean;
  private draining = false;
  private arena: ArrayBuffer | null = null;
  private arenaPos = 0;

  constructor(
    segment: Segment,
    private readonly rx: BipBuffer,
    private readonly stats: { framesReceived: number },
    private readonly ports: InboxPorts,
  ) {
    this.seg = segment;
    this.u8 = segment.u8;
    this.dv = segment.dv;
    this.inline = segment.inlineThreshold;
    const classes = segment.layout.classes;
    this.poolless = classes.length === 0;
    this.maxFramePayload = this.poolless ? this.inline - FRAME_HEADER_SIZE : classes[classes.length - 1]!.slotSize;
  }

  /** The incoming ring holds a frame. */
  hasFrames(): boolean {
    return this.rx.hasData();
  }

  /** Reads frames (a bounded batch); returns how many were consumed. Re-entrant calls read nothing. */
  drain(): number {
    if (this.draining) return 0;
    this.draining = true;
    let consumed = 0;
    const u8 = this.u8;
    const dv = this.dv;
    const rx = this.rx;
    const ports = this.ports;
    try {
      let bytes = 0;
      while (consumed < MAX_FRAMES && bytes < MAX_BYTES && ports.reading()) {
        const start = rx.readable();
        if (start === FAULT) {
          ports.violate(rx.fault.slice(0, rx.fault.indexOf(":")), rx.fault.slice(rx.fault.indexOf(":") + 2));
          break;
        }
        if (start < 0) break;
        const avail = rx.readableLength;
        const base = rx.data + start;
        const total = avail >= 4 ? dv.getUint32(base, true) : 0;
        if (total < FRAME_HEADER_SIZE || (total & 3) !== 0 || total > avail) {
          ports.violate("shm.frame.header", `frame length ${total} with ${avail} readable bytes`);
          break;
        }
        const type = u8[base + 4]!;
        const flags = u8[base + 5]!;
        const id = dv.getUint32(base + 8, true);
        const plen = dv.getUint32(base + 20, true);
        let payload: Uint8Array;
        if ((flags & ~FLAG_SLOT_REF) !== 0) {
          ports.violate("shm.frame.header", `unknown frame flags 0x${flags.toString(16)}`);
          break;
        }
        if (flags & FLAG_SLOT_REF) {
          if (total !== FRAME_HEADER_SIZE + SLOT_REF_SIZE) {
            ports.violate("shm.frame.slot-ref", `slot frame of ${total} bytes (must be 36)`);
            break;
          }
          if (this.poolless) {
            // Not the host's fault (large payloads MUST use slots): we cannot find the slot.
            ports.violate("shm.handshake.no-negotiation", `a slot-referenced frame arrived, but this segment places no size-class count, so its VarSlotPool cannot be read`);
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
            ports.violate("shm.frame.slot-ref", problem);
            break;
          }
          payload = this.copyOut(this.seg.pool.dataOffset(ref), plen);
          this.seg.pool.free(ref);
        } else {
          if (align(FRAME_HEADER_SIZE + plen, 4) !== total) {
            ports.violate("shm.frame.inline", `inline frame of ${total} bytes declares payload_len ${plen}`);
            break;
          }
          if (FRAME_HEADER_SIZE + plen > this.inline) {
            ports.violate("shm.payload.slot", `inline payload of ${plen} bytes exceeds the inline threshold ${this.inline}`);
            break;
          }
          payload = this.copyOut(base + 24, plen);
        }
        const methodId = type === MsgType.Request ? dv.getBigUint64(base + 12, true) : 0n;
        rx.release(total);
        consumed++;
        bytes += plen;
        this.stats.framesReceived++;
        ports.frame(type, id, methodId, payload);
      }
    } catch (e) {
      // Every offset above is checked; this is the last line of defence: a
      // fault reading the peer's memory ends this link, never the process.
      const msg = String((e as Error)?.message ?? e);
      if (e instanceof SegmentFault) ports.violate(msg.slice(0, msg.indexOf(":")), msg.slice(msg.indexOf(":") + 2));
      else ports.violate("shm.segment.header", `reading the peer's frames failed: ${msg}`);
    } finally {
      this.draining = false;
    }
    return consumed;
  }

  /**
   * Copies a payload out of the segment into memory the session core may keep
   * (it lends views of received payloads to the application). Small payloads
   * are carved out of shared arenas (one allocation for many frames); larger
   * ones get their own buffer, not zero-filled first (every byte is
   * overwritten). Arenas and pieces stay below the C allocator's mmap
   * threshold (128 KiB by default): memory under it is reused from the heap,
   * while every allocation above it is fresh pages, each of which faults on
   * first write — measured on this project's VM at ~150 faults and ~4 ms of
   * CPU per MiB, 16x the cost of heap memory (docs/benchmarks.md). Payloads
   * larger than the threshold pay it; nothing can hand the application memory
   * it owns without a fresh allocation.
   */
  private copyOut(at: number, len: number): Uint8Array {
    if (len === 0) return EMPTY;
    const src = this.u8.subarray(at, at + len);
    if (len <= 64) return src.slice();
    if (len > ARENA_PIECE_MAX) {
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
}
