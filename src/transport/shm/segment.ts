/**
 * A segment: the backing memory seen through the v2 layout — header, peer
 * table, VarSlotPool, and per guest its two BipBuffers and channel table.
 * The host creates and initializes it (r[shm.file.create]: magic last);
 * guests attach and validate (r[shm.file.attach]).
 */
import { BipBuffer } from "./bipbuf.js";
import type { Backing } from "./backing.js";
import {
  C,
  CH,
  CHANNEL_ENTRY_SIZE,
  ChannelState,
  EXT,
  EXT_ALL,
  computeLayout,
  effectiveInlineThreshold,
  guestOffsets,
  H,
  HEADER_SIZE,
  MAGIC,
  P,
  PeerState,
  validateConfig,
  VERSION,
  type PeerStateValue,
  type SegmentConfig,
  type SegmentLayout,
} from "./layout.js";
import { VarSlotPool } from "./varslot.js";

export class SegmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SegmentError";
  }
}

/** The channel table of one guest (r[shm.flow.channel-table]). */
export class ChannelTable {
  constructor(
    private readonly i32: Int32Array,
    readonly offset: number,
    readonly size: number,
  ) {}
  private idx(id: number): number {
    return (this.offset + id * CHANNEL_ENTRY_SIZE) >> 2;
  }
  /** r[shm.flow.channel-activate]: granted_total = initial credit, then state = Active. */
  activate(id: number, initialCredit: number): void {
    const i = this.idx(id);
    Atomics.store(this.i32, i + (CH.grantedTotal >> 2), initialCredit | 0);
    Atomics.store(this.i32, i + (CH.state >> 2), ChannelState.Active);
  }
  free(id: number): void {
    Atomics.store(this.i32, this.idx(id) + (CH.state >> 2), ChannelState.Free);
  }
  state(id: number): number {
    return Atomics.load(this.i32, this.idx(id) + (CH.state >> 2));
  }
  /** Cumulative bytes the receiver authorized (u32, wrapping). */
  granted(id: number): number {
    return Atomics.load(this.i32, this.idx(id) + (CH.grantedTotal >> 2)) >>> 0;
  }
  /** Receiver: adds credit (Release) and returns the new total. */
  grant(id: number, bytes: number): number {
    const i = this.idx(id) + (CH.grantedTotal >> 2);
    const total = (Atomics.add(this.i32, i, bytes | 0) + bytes) >>> 0;
    // r[shm.wakeup.credit-wait]: wake a sender waiting on granted_total itself.
    Atomics.notify(this.i32, i);
    return total;
  }
  /** Index of granted_total in the Int32Array (to wait on it). */
  grantedIndex(id: number): number {
    return this.idx(id) + (CH.grantedTotal >> 2);
  }
  /** Every entry back to Free with zero credit (crash recovery step 5). */
  resetAll(): void {
    for (let id = 0; id < this.size; id++) {
      const i = this.idx(id);
      Atomics.store(this.i32, i, ChannelState.Free);
      Atomics.store(this.i32, i + 1, 0);
    }
  }
}

/** Everything of one guest in the segment. */
export interface GuestArea {
  peerId: number;
  /** Guest → host. */
  g2h: BipBuffer;
  /** Host → guest. */
  h2g: BipBuffer;
  channels: ChannelTable;
  /** Byte offset of the peer table entry. */
  entry: number;
}

export class Segment {
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly u64: BigUint64Array;
  readonly dv: DataView;
  readonly pool: VarSlotPool;
  readonly inlineThreshold: number;
  private readonly guests = new Map<number, GuestArea>();

  private constructor(
    readonly backing: Backing,
    readonly config: SegmentConfig,
    readonly layout: SegmentLayout,
  ) {
    const sab = backing.sab;
    this.u8 = new Uint8Array(sab);
    this.i32 = new Int32Array(sab);
    this.u64 = new BigUint64Array(sab);
    this.dv = new DataView(sab);
    this.pool = new VarSlotPool(backing, this.u8, this.i32, this.u64, layout.classes);
    this.inlineThreshold = effectiveInlineThreshold(config.inlineThreshold);
  }

  /** Initializes a zeroed backing as a fresh segment; the magic is written last. */
  static create(backing: Backing, config: SegmentConfig): Segment {
    validateConfig(config);
    const layout = computeLayout(config);
    if (backing.accessible < layout.totalSize) throw new SegmentError(`backing of ${backing.accessible} B is smaller than the segment (${layout.totalSize} B)`);
    const s = new Segment(backing, config, layout);
    const { dv, u8 } = s;
    u8.fill(0, 0, HEADER_SIZE);
    dv.setUint32(H.version, VERSION, true);
    dv.setUint32(H.headerSize, HEADER_SIZE, true);
    dv.setBigUint64(H.totalSize, BigInt(layout.totalSize), true);
    dv.setUint32(H.maxPayloadSize, config.maxPayloadSize, true);
    dv.setUint32(H.initialCredit, config.initialCredit, true);
    dv.setUint32(H.maxGuests, config.maxGuests, true);
    dv.setUint32(H.bipbufCapacity, config.bipbufCapacity, true);
    dv.setBigUint64(H.peerTableOffset, BigInt(layout.peerTableOffset), true);
    dv.setBigUint64(H.slotRegionOffset, 0n, true);
    dv.setUint32(H.slotSize, 0, true);
    dv.setUint32(H.inlineThreshold, config.inlineThreshold, true);
    dv.setUint32(H.maxChannels, config.maxChannels, true);
    dv.setUint32(H.hostGoodbye, 0, true);
    dv.setBigUint64(H.heartbeatInterval, BigInt(Math.round(config.heartbeatIntervalMs * 1e6)), true);
    dv.setBigUint64(H.varSlotPoolOffset, BigInt(layout.varSlotPoolOffset), true);
    dv.setBigUint64(H.currentSize, BigInt(layout.totalSize), true);
    dv.setBigUint64(H.guestAreasOffset, BigInt(layout.guestAreasOffset), true);
    dv.setUint32(H.numClasses, config.sizeClasses.length, true);
    dv.setUint32(H.extMagic, EXT.magic, true);
    dv.setUint32(H.extensions, EXT_ALL, true);
    for (let p = 1; p <= config.maxGuests; p++) {
      const o = guestOffsets(layout, p);
      u8.fill(0, o.peerEntry, o.peerEntry + 64);
      dv.setBigUint64(o.peerEntry + P.ringOffset, BigInt(o.area), true);
      dv.setBigUint64(o.peerEntry + P.channelTableOffset, BigInt(o.channelTable), true);
      const g = s.guest(p);
      g.g2h.reset();
      g.h2g.reset();
      g.channels.resetAll();
    }
    s.pool.init();
    Atomics.store(s.i32, H.version >> 2, VERSION);
    u8.set(MAGIC, 0);
    return s;
  }

  /**
   * Reads the configuration from the first bytes of a segment (the header and
   * the size-class headers), validating magic and version.
   */
  static readConfig(bytes: Uint8Array): { config: SegmentConfig; layout: SegmentLayout } {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < HEADER_SIZE) throw new SegmentError("segment is smaller than its header");
    for (let i = 0; i < 8; i++) if (bytes[i] !== MAGIC[i]) throw new SegmentError("not a roam SHM segment (bad magic; r[shm.segment.magic])");
    const version = dv.getUint32(H.version, true);
    if (version !== VERSION) throw new SegmentError(`segment version ${version} is not supported (this side speaks v${VERSION})`);
    if (dv.getUint32(H.headerSize, true) !== HEADER_SIZE) throw new SegmentError("segment header size is not 128");
    if (dv.getUint32(H.slotSize, true) !== 0) throw new SegmentError("v2 segments must have slot_size = 0");
    const poolOffset = Number(dv.getBigUint64(H.varSlotPoolOffset, true));
    if (poolOffset === 0) throw new SegmentError("v2 segments must have a VarSlotPool");
    const numClasses = dv.getUint32(H.numClasses, true);
    if (numClasses < 1 || numClasses > 255 || poolOffset + numClasses * 64 > bytes.length) throw new SegmentError("bad size-class count");
    const sizeClasses = [];
    for (let c = 0; c < numClasses; c++) {
      const h = poolOffset + c * 64;
      sizeClasses.push({ slotSize: dv.getUint32(h + C.slotSize, true), count: dv.getUint32(h + C.slotsPerExtent, true) });
    }
    const config: SegmentConfig = {
      maxPayloadSize: dv.getUint32(H.maxPayloadSize, true),
      initialCredit: dv.getUint32(H.initialCredit, true),
      maxGuests: dv.getUint32(H.maxGuests, true),
      bipbufCapacity: dv.getUint32(H.bipbufCapacity, true),
      inlineThreshold: dv.getUint32(H.inlineThreshold, true),
      maxChannels: dv.getUint32(H.maxChannels, true),
      heartbeatIntervalMs: Number(dv.getBigUint64(H.heartbeatInterval, true)) / 1e6,
      sizeClasses,
    };
    try {
      validateConfig(config);
    } catch (e) {
      throw new SegmentError((e as Error).message);
    }
    const layout = computeLayout(config);
    if (
      layout.peerTableOffset !== Number(dv.getBigUint64(H.peerTableOffset, true)) ||
      layout.varSlotPoolOffset !== poolOffset ||
      layout.guestAreasOffset !== Number(dv.getBigUint64(H.guestAreasOffset, true)) ||
      layout.totalSize !== Number(dv.getBigUint64(H.totalSize, true))
    ) {
      throw new SegmentError("segment layout does not match its header (written by an incompatible implementation?)");
    }
    return { config, layout };
  }

  /** Attaches to an initialized backing (validates the header). */
  static attach(backing: Backing): Segment {
    const { config, layout } = Segment.readConfig(new Uint8Array(backing.sab, 0, Math.min(backing.accessible, 1 << 16)));
    const s = new Segment(backing, config, layout);
    backing.ensure(Number(Atomics.load(s.u64, H.currentSize >> 3)));
    return s;
  }

  // --- header ----------------------------------------------------------------

  get hostGoodbye(): number {
    return Atomics.load(this.i32, H.hostGoodbye >> 2);
  }
  setHostGoodbye(v: number): void {
    Atomics.store(this.i32, H.hostGoodbye >> 2, v);
  }
  get currentSize(): number {
    return Number(Atomics.load(this.u64, H.currentSize >> 3));
  }
  get heartbeatIntervalNs(): bigint {
    return Atomics.load(this.u64, H.heartbeatInterval >> 3);
  }

  // --- peers -------------------------------------------------------------------

  guest(peerId: number): GuestArea {
    let g = this.guests.get(peerId);
    if (g) return g;
    if (!Number.isInteger(peerId) || peerId < 1 || peerId > this.config.maxGuests) {
      throw new SegmentError(`peer id ${peerId} is outside 1..${this.config.maxGuests}`);
    }
    const o = guestOffsets(this.layout, peerId);
    g = {
      peerId,
      g2h: new BipBuffer(this.i32, o.g2h, this.config.bipbufCapacity),
      h2g: new BipBuffer(this.i32, o.h2g, this.config.bipbufCapacity),
      channels: new ChannelTable(this.i32, o.channelTable, this.config.maxChannels),
      entry: o.peerEntry,
    };
    this.guests.set(peerId, g);
    return g;
  }

  peerState(peerId: number): PeerStateValue {
    return Atomics.load(this.i32, (this.guest(peerId).entry + P.state) >> 2) as PeerStateValue;
  }
  setPeerState(peerId: number, s: PeerStateValue): void {
    Atomics.store(this.i32, (this.guest(peerId).entry + P.state) >> 2, s);
  }
  /** Compare-and-swap of a peer's state; true on success. */
  casPeerState(peerId: number, from: PeerStateValue, to: PeerStateValue): boolean {
    return Atomics.compareExchange(this.i32, (this.guest(peerId).entry + P.state) >> 2, from, to) === from;
  }
  /** Extension bits the host advertised (0 for a spec-only host; see layout.EXT). */
  hostExtensions(): number {
    return Atomics.load(this.i32, H.extMagic >> 2) === EXT.magic ? Atomics.load(this.i32, H.extensions >> 2) >>> 0 : 0;
  }

  /** Extension bits guest `peerId` advertised (0 for a spec-only guest). */
  peerExtensions(peerId: number): number {
    const e = this.guest(peerId).entry;
    return Atomics.load(this.i32, (e + P.extMagic) >> 2) === EXT.magic ? Atomics.load(this.i32, (e + P.extensions) >> 2) >>> 0 : 0;
  }

  /** A guest advertises its extensions (after attaching) or the host clears them (on reserve). */
  setPeerExtensions(peerId: number, bits: number): void {
    const e = this.guest(peerId).entry;
    Atomics.store(this.i32, (e + P.extensions) >> 2, bits | 0);
    Atomics.store(this.i32, (e + P.extMagic) >> 2, bits === 0 ? 0 : EXT.magic);
  }

  epoch(peerId: number): number {
    return Atomics.load(this.i32, (this.guest(peerId).entry + P.epoch) >> 2) >>> 0;
  }
  bumpEpoch(peerId: number): number {
    return (Atomics.add(this.i32, (this.guest(peerId).entry + P.epoch) >> 2, 1) + 1) >>> 0;
  }
  /** Monotonic nanoseconds (r[shm.crash.heartbeat-clock]). */
  heartbeat(peerId: number): bigint {
    return Atomics.load(this.u64, (this.guest(peerId).entry + P.lastHeartbeat) >> 3);
  }
  writeHeartbeat(peerId: number, now: bigint = process.hrtime.bigint()): void {
    Atomics.store(this.u64, (this.guest(peerId).entry + P.lastHeartbeat) >> 3, now);
  }
}

export { PeerState };
