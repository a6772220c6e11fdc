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
  BIPBUF_HEADER_SIZE,
  effectiveInlineThreshold,
  FRAME_HEADER_SIZE,
  guestOffsets,
  H,
  HEADER_SIZE,
  isHostLivenessByte,
  MAGIC,
  P,
  PEER_ENTRY_SIZE,
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
    /**
     * How the guest areas are found: "computed" from the layout (a segment
     * this process created, or one whose host placed its size-class count),
     * or read from each peer entry's ring_offset / channel_table_offset, the
     * only placement the spec itself gives (a host that placed no class
     * count: see readConfig).
     */
    readonly placement: "computed" | "peer-entries" = "computed",
  ) {
    const sab = backing.sab;
    this.u8 = new Uint8Array(sab);
    this.i32 = new Int32Array(sab);
    this.u64 = new BigUint64Array(sab);
    this.dv = new DataView(sab);
    this.pool = new VarSlotPool(backing, this.u8, this.i32, this.u64, layout.classes, layout.maxSize, layout.totalSize);
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
    s.headerCopy = u8.slice(0, HEADER_SIZE);
    return s;
  }

  /**
   * Reads the configuration from the first bytes of a segment (the header and
   * the size-class headers), validating magic and version.
   *
   * The spec (3e673433) does not place the VarSlotPool's class count, nor
   * where the guest areas start: the reference and roam-ts write them into
   * the header's reserved area (guest_areas_offset u64 @96, class count u32
   * @104). A host written from the spec alone leaves that area zero; see
   * readSpecPlaced for what a guest then does.
   */
  static readConfig(bytes: Uint8Array): { config: SegmentConfig; layout: SegmentLayout; placement: "computed" | "peer-entries" } {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < HEADER_SIZE) throw new SegmentError("segment is smaller than its header");
    for (let i = 0; i < 8; i++) if (bytes[i] !== MAGIC[i]) throw new SegmentError("not a roam SHM segment (bad magic; r[shm.segment.magic])");
    const version = dv.getUint32(H.version, true);
    if (version !== VERSION) throw new SegmentError(`segment version ${version} is not supported (this side speaks v${VERSION})`);
    if (dv.getUint32(H.headerSize, true) !== HEADER_SIZE) throw new SegmentError("segment header size is not 128");
    if (dv.getUint32(H.slotSize, true) !== 0) throw new SegmentError("v2 segments must have slot_size = 0");
    const poolOffset = dv.getBigUint64(H.varSlotPoolOffset, true);
    if (poolOffset === 0n) throw new SegmentError("v2 segments must have a VarSlotPool");
    const numClasses = dv.getUint32(H.numClasses, true);
    if (numClasses === 0) return Segment.readSpecPlaced(dv);
    if (numClasses > 255 || poolOffset > BigInt(bytes.length) || Number(poolOffset) + numClasses * 64 > bytes.length) throw new SegmentError("bad size-class count");
    const sizeClasses = [];
    for (let c = 0; c < numClasses; c++) {
      const h = Number(poolOffset) + c * 64;
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
      layout.varSlotPoolOffset !== Number(poolOffset) ||
      layout.guestAreasOffset !== Number(dv.getBigUint64(H.guestAreasOffset, true)) ||
      layout.totalSize !== Number(dv.getBigUint64(H.totalSize, true))
    ) {
      throw new SegmentError("segment layout does not match its header (written by an incompatible implementation?)");
    }
    return { config, layout, placement: "computed" };
  }

  /**
   * A header with no size-class count (a host that follows only the spec):
   * the configuration is what the spec's header fields say, the peer table is
   * at peer_table_offset, and each guest finds its BipBuffers and channel
   * table through its own peer entry (ring_offset, channel_table_offset).
   *
   * The VarSlotPool cannot be used: the spec gives var_slot_pool_offset and
   * the first three fields of a size-class header, but not how many classes
   * there are, where a class's free-list head is, or where its first extent
   * lies. Such a guest sends and receives inline frames only. The spec's rule
   * for a guest that cannot work within the host's limits is not to attach
   * (r[shm.handshake.no-negotiation]): it attaches only when a payload of
   * max_payload_size goes inline by the spec's own threshold rule
   * (24 + max_payload_size <= inline_threshold, r[shm.frame.threshold]).
   * Every value is bounds-checked: the segment is not trusted.
   */
  private static readSpecPlaced(dv: DataView): { config: SegmentConfig; layout: SegmentLayout; placement: "peer-entries" } {
    const bad = (msg: string): never => {
      throw new SegmentError(`segment without a size-class count (a spec-only host): ${msg}`);
    };
    const maxGuests = dv.getUint32(H.maxGuests, true);
    const bipbufCapacity = dv.getUint32(H.bipbufCapacity, true);
    const rawInline = dv.getUint32(H.inlineThreshold, true);
    const inline = effectiveInlineThreshold(rawInline);
    const maxChannels = dv.getUint32(H.maxChannels, true);
    const maxPayloadSize = dv.getUint32(H.maxPayloadSize, true);
    const initialCredit = dv.getUint32(H.initialCredit, true);
    const heartbeatNs = dv.getBigUint64(H.heartbeatInterval, true);
    const totalSize = dv.getBigUint64(H.totalSize, true);
    const peerTable = dv.getBigUint64(H.peerTableOffset, true);
    // var_slot_pool_offset is only recorded: this guest never reads the pool.
    const poolOffset = dv.getBigUint64(H.varSlotPoolOffset, true);
    // 1 TiB: far beyond any real segment, small enough for exact arithmetic in a double.
    const LIMIT = 1n << 40n;
    if (maxGuests < 1 || maxGuests > 255) bad(`max_guests ${maxGuests} is outside 1..255 (r[shm.topology.max-guests])`);
    if (bipbufCapacity < 64 || bipbufCapacity % 4 !== 0 || bipbufCapacity > 1 << 30) bad(`bipbuf_capacity ${bipbufCapacity} is not a multiple of 4 in 64..2^30`);
    if (inline < FRAME_HEADER_SIZE || inline > bipbufCapacity) bad(`inline_threshold ${inline} is outside ${FRAME_HEADER_SIZE}..bipbuf_capacity`);
    if (maxChannels < 2 || maxChannels > 1 << 20) bad(`max_channels ${maxChannels} is outside 2..2^20`);
    if (maxPayloadSize < 1 || maxPayloadSize > 0x7fffffff) bad(`max_payload_size ${maxPayloadSize} is outside 1..2^31-1`);
    if (initialCredit < 1 || initialCredit > 0x7fffffff) bad(`initial_credit ${initialCredit} is outside 1..2^31-1`);
    if (totalSize < BigInt(HEADER_SIZE) || totalSize > LIMIT) bad(`total_size ${totalSize} is implausible`);
    if (peerTable < BigInt(HEADER_SIZE) || peerTable % 8n !== 0n || peerTable + BigInt(maxGuests * PEER_ENTRY_SIZE) > totalSize) {
      bad(`peer_table_offset ${peerTable} does not place ${maxGuests} entries of 64 bytes, 8-aligned, after the header and inside total_size ${totalSize}`);
    }
    if (FRAME_HEADER_SIZE + maxPayloadSize > inline) {
      throw new SegmentError(
        `shm.handshake.no-negotiation: this guest cannot operate within the host's limits: the host places no size-class count, so its VarSlotPool ` +
          `cannot be used, and a payload of max_payload_size ${maxPayloadSize} does not go inline (inline_threshold ${inline}); not attaching`,
      );
    }
    const config: SegmentConfig = {
      maxPayloadSize,
      initialCredit,
      maxGuests,
      bipbufCapacity,
      inlineThreshold: rawInline,
      maxChannels,
      heartbeatIntervalMs: Number(heartbeatNs) / 1e6,
      sizeClasses: [],
    };
    const total = Number(totalSize);
    const layout: SegmentLayout = {
      peerTableOffset: Number(peerTable),
      varSlotPoolOffset: Number(poolOffset),
      guestAreasOffset: 0,
      guestAreaSize: 0,
      bipbufSize: BIPBUF_HEADER_SIZE + bipbufCapacity,
      classes: [],
      totalSize: total,
      // Extents appended later (current_size) are never read: this guest uses no slots.
      maxSize: total,
    };
    return { config, layout, placement: "peer-entries" };
  }

  /** Attaches to an initialized backing (validates the header). */
  static attach(backing: Backing): Segment {
    const { config, layout, placement } = Segment.readConfig(new Uint8Array(backing.sab, 0, Math.min(backing.accessible, 1 << 16)));
    if (backing.accessible < layout.totalSize) throw new SegmentError(`the segment is ${backing.accessible} B, smaller than its total_size ${layout.totalSize}`);
    const s = new Segment(backing, config, layout, placement);
    if (placement === "computed") backing.ensure(Number(Atomics.load(s.u64, H.currentSize >> 3)));
    return s;
  }

  // --- header ----------------------------------------------------------------

  get hostGoodbye(): number {
    return Atomics.load(this.i32, H.hostGoodbye >> 2);
  }
  setHostGoodbye(v: number): void {
    this.headerCopy?.set(new Uint8Array(Int32Array.of(v).buffer), H.hostGoodbye);
    Atomics.store(this.i32, H.hostGoodbye >> 2, v);
  }

  /** Host: the header as it wrote it (null in a guest). */
  private headerCopy: Uint8Array | null = null;

  /**
   * Host: restores the segment header and the pool's class headers from its
   * own copies. Guests can write anywhere in the segment; these fields are
   * the host's, and every guest reads them (host_goodbye, current_size,
   * extent offsets). Cheap: compares before it writes.
   */
  repairHeaders(): void {
    const copy = this.headerCopy;
    if (!copy) return;
    const u8 = this.u8;
    for (let i = 0; i < HEADER_SIZE; i++) {
      if (i >= H.currentSize && i < H.currentSize + 8) continue; // kept by the pool
      if (isHostLivenessByte(i)) continue; // written by the host's monitor
      if (u8[i] !== copy[i]) u8[i] = copy[i]!;
    }
    this.pool.repairHeaders();
  }
  get currentSize(): number {
    return Number(Atomics.load(this.u64, H.currentSize >> 3));
  }
  get heartbeatIntervalNs(): bigint {
    return Atomics.load(this.u64, H.heartbeatInterval >> 3);
  }

  /** Host: its pid and heartbeat (monotonic ns) for guests that have no doorbell. */
  writeHostLiveness(pid: number, nowNs: bigint): void {
    Atomics.store(this.i32, H.hostPid >> 2, pid);
    Atomics.store(this.u64, H.hostHeartbeat >> 3, nowNs);
  }
  get hostPid(): number {
    return Atomics.load(this.i32, H.hostPid >> 2) >>> 0;
  }
  get hostHeartbeat(): bigint {
    return Atomics.load(this.u64, H.hostHeartbeat >> 3);
  }

  // --- peers -------------------------------------------------------------------

  guest(peerId: number): GuestArea {
    let g = this.guests.get(peerId);
    if (g) return g;
    if (!Number.isInteger(peerId) || peerId < 1 || peerId > this.config.maxGuests) {
      throw new SegmentError(`peer id ${peerId} is outside 1..${this.config.maxGuests}`);
    }
    const o = this.placement === "computed" ? guestOffsets(this.layout, peerId) : this.entryOffsets(peerId);
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

  /**
   * A guest's area as its peer entry places it (r[shm.segment.peer-table],
   * r[shm.bipbuf.layout]): G→H BipBuffer at ring_offset, H→G right after it,
   * the channel table at channel_table_offset. Checked against the segment
   * before anything is read through them.
   */
  private entryOffsets(peerId: number): ReturnType<typeof guestOffsets> {
    const entry = this.layout.peerTableOffset + (peerId - 1) * PEER_ENTRY_SIZE;
    const ring = this.dv.getBigUint64(entry + P.ringOffset, true);
    const table = this.dv.getBigUint64(entry + P.channelTableOffset, true);
    const end = BigInt(Math.min(this.layout.totalSize, this.backing.accessible));
    const rings = BigInt(2 * this.layout.bipbufSize);
    const tableSize = BigInt(this.config.maxChannels * CHANNEL_ENTRY_SIZE);
    const peerTableEnd = BigInt(this.layout.peerTableOffset + this.config.maxGuests * PEER_ENTRY_SIZE);
    const overlapsPeerTable = (at: bigint, size: bigint) => at < peerTableEnd && at + size > BigInt(this.layout.peerTableOffset);
    const bad = (msg: string): never => {
      throw new SegmentError(`peer ${peerId}'s entry: ${msg}`);
    };
    // BipBufHeader is align(64) (r[shm.bipbuf.header]); channel entries hold atomics (4-byte aligned).
    if (ring % 64n !== 0n || ring < BigInt(HEADER_SIZE) || ring + rings > end || overlapsPeerTable(ring, rings)) {
      bad(`ring_offset ${ring} does not place two BipBuffers of ${this.layout.bipbufSize} bytes inside the segment (${end} B)`);
    }
    if (table % 4n !== 0n || table < BigInt(HEADER_SIZE) || table + tableSize > end || overlapsPeerTable(table, tableSize) || (table < ring + rings && table + tableSize > ring)) {
      bad(`channel_table_offset ${table} does not place ${this.config.maxChannels} entries inside the segment, clear of the BipBuffers`);
    }
    const area = Number(ring);
    return { peerEntry: entry, area, g2h: area, h2g: area + this.layout.bipbufSize, channelTable: Number(table) };
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
