/**
 * Segment format v2 of the SHM hub (shm-spec at 3e673433): sizes, offsets,
 * configuration and defaults. Pure arithmetic — no memory is touched here.
 *
 *   [0, 128)                  segment header                  r[shm.segment.header]
 *   [128, ...)                peer table, 64 B per guest      r[shm.segment.peer-table]
 *   align64                   VarSlotPool: class headers (64 B each), then per
 *                             class: SlotMeta[count] (16 B each), slot data
 *   align64                   guest areas, one per guest:     r[shm.bipbuf.layout]
 *                               G→H BipBuffer (128 B header + capacity)
 *                               H→G BipBuffer (128 B header + capacity)
 *                               align64: channel table (max_channels × 16 B)
 *   page-aligned end          extents appended by growth      r[shm.varslot.extents]
 *
 * Where the spec leaves the layout open, this follows the reference's facts:
 * the header's reserved area holds guest_areas_offset (u64 @96) and the number
 * of size classes (u32 @104); a size class header holds one free-list head per
 * extent and at most 3 extents per class. A host written from the spec alone
 * leaves the reserved area zero: a guest then reads only what the spec places
 * (Segment.readConfig, docs/shm-compat.md rows 7 and 8).
 */

export const MAGIC = new Uint8Array([0x52, 0x41, 0x50, 0x41, 0x48, 0x55, 0x42, 0x01]); // "RAPAHUB\x01"
export const EXTENT_MAGIC = new Uint8Array([0x52, 0x4f, 0x41, 0x50, 0x45, 0x58, 0x54, 0x01]); // "ROAPEXT\x01"
export const VERSION = 2;
export const HEADER_SIZE = 128;
export const PEER_ENTRY_SIZE = 64;
export const CHANNEL_ENTRY_SIZE = 16;
export const BIPBUF_HEADER_SIZE = 128;
export const CLASS_HEADER_SIZE = 64;
export const SLOT_META_SIZE = 16;
export const EXTENT_HEADER_SIZE = 64;
/** Extent 0 (in the initial segment) plus two appended ones. */
export const MAX_EXTENTS_PER_CLASS = 3;
export const DEFAULT_INLINE_THRESHOLD = 256;
export const FRAME_HEADER_SIZE = 24;
export const SLOT_REF_SIZE = 12;
/** Growth appends whole pages so every mapping step is page-aligned. */
export const PAGE = 4096;

/** Header field offsets (r[shm.segment.header]). */
export const H = {
  magic: 0,
  version: 8,
  headerSize: 12,
  totalSize: 16,
  maxPayloadSize: 24,
  initialCredit: 28,
  maxGuests: 32,
  bipbufCapacity: 36,
  peerTableOffset: 40,
  slotRegionOffset: 48,
  slotSize: 56,
  inlineThreshold: 60,
  maxChannels: 64,
  hostGoodbye: 68,
  heartbeatInterval: 72,
  varSlotPoolOffset: 80,
  currentSize: 88,
  // reserved area, as the reference uses it:
  guestAreasOffset: 96,
  numClasses: 104,
  // reserved area, roam-ts extensions (see EXT):
  extMagic: 112,
  extensions: 116,
  // Host liveness (this implementation; the spec leaves it open): the host's
  // pid (u32 @108) and its heartbeat (u64 @120, monotonic ns; 0 = none yet),
  // so guests attached by path, which have no doorbell, notice a dead host.
  hostPid: 108,
  hostHeartbeat: 120,
} as const;
/** Whether header byte `i` is one the host's monitor rewrites on each tick (not restored from its copy). */
export function isHostLivenessByte(i: number): boolean {
  return (i >= H.hostPid && i < H.hostPid + 4) || (i >= H.hostHeartbeat && i < H.hostHeartbeat + 8);
}

/** Peer entry field offsets (r[shm.segment.peer-table]). */
export const P = {
  state: 0,
  epoch: 4,
  lastHeartbeat: 24,
  ringOffset: 32,
  slotPoolOffset: 40,
  channelTableOffset: 48,
  // reserved [u8; 8], roam-ts extensions of the guest (see EXT):
  extMagic: 56,
  extensions: 60,
} as const;

/**
 * roam-ts extensions of the pinned SHM spec (docs/shm-compat.md). Each side
 * advertises the ones it speaks in bytes the spec reserves (zero in a
 * spec-only segment): the host in the header (H.extMagic/H.extensions), a
 * guest in its peer entry (P.extMagic/P.extensions), each as the magic word
 * followed by a bit set. A side uses an extension towards its peer only when
 * the peer advertised it, and otherwise follows the spec.
 */
export const EXT = {
  /** "RTSX", little-endian: the bits next to it are roam-ts extension bits. */
  magic: 0x58535452,
  /**
   * The consumer of a BipBuffer publishes what it sleeps on in B.sleeping and
   * the producer rings only when that says so. Without it (spec): signal the
   * doorbell after every commit, every release and every credit grant.
   */
  sleeping: 1,
  /**
   * Channel end: each side sends one terminal frame per channel (the data
   * receiver answers Close with Reset) and the allocator frees its entry
   * once both passed. Without it (spec, r[shm.flow.channel-id-reuse]): the
   * receiver sets the entry Free when the channel ends for it, nobody
   * answers a terminal frame, and the allocator reuses an entry once Free.
   */
  closeReply: 2,
} as const;
export const EXT_ALL = EXT.sleeping | EXT.closeReply;

/** r[shm.segment.peer-state] */
export const PeerState = { Empty: 0, Attached: 1, Goodbye: 2, Reserved: 3 } as const;
export type PeerStateValue = (typeof PeerState)[keyof typeof PeerState];

/**
 * BipBuffer header offsets (r[shm.bipbuf.header]). `sleeping` lives in the
 * consumer's cache-line padding: the consumer of this buffer sets it before it
 * sleeps so that the other side knows a doorbell is needed — 0 awake, else
 * bits: 1 waits for frames, 4 for room or slots, 8 for credit; 2 = already
 * rung. The spec leaves this padding unused.
 */
export const B = { write: 0, watermark: 4, capacity: 8, read: 64, sleeping: 68 } as const;

/** Size class header offsets. */
export const C = { slotSize: 0, slotsPerExtent: 4, extentCount: 8, freeHeads: 16, extentOffsets: 40 } as const;

/** SlotMeta offsets (r[shm.varslot.ownership]). */
export const M = { generation: 0, state: 4, owner: 8, nextFree: 12 } as const;
export const SlotState = { Free: 0, Allocated: 1, InFlight: 2 } as const;

/** ChannelEntry (r[shm.flow.channel-table]). */
export const CH = { state: 0, grantedTotal: 4 } as const;
export const ChannelState = { Free: 0, Active: 1, Closed: 2 } as const;

export interface SizeClass {
  /** Bytes per slot (>= 16). */
  slotSize: number;
  /** Slots in the initial extent (and in each appended one). */
  count: number;
}

/** What the host puts in the segment header. */
export interface SegmentConfig {
  /** Largest Request/Response payload or channel element (`max_payload_size`). */
  maxPayloadSize: number;
  /** Bytes of credit each channel starts with (`initial_credit`). */
  initialCredit: number;
  /** Guests the hub can hold at once, 1..255. */
  maxGuests: number;
  /** Data bytes of each BipBuffer (one per direction per guest). */
  bipbufCapacity: number;
  /** Largest inline frame (header + payload); 0 means 256. */
  inlineThreshold: number;
  /** Channel table entries per guest (ids 1..max_channels-1 are usable). */
  maxChannels: number;
  /** Guests write a heartbeat at least this often; 0 disables heartbeats. */
  heartbeatIntervalMs: number;
  /** VarSlotPool size classes, ascending slot size. */
  sizeClasses: SizeClass[];
}

/**
 * Defaults for a plugin host: a handful of guests, calls carrying up to
 * 16 MiB of data (the payload limit leaves 64 KiB for the rest of the
 * arguments), chatty small calls inline. The pool is sparse until used (tmpfs and
 * SharedArrayBuffer pages are committed on first touch), so the large classes
 * cost address space, not memory.
 */
export const DEFAULT_SEGMENT_CONFIG: Readonly<SegmentConfig> = Object.freeze({
  maxPayloadSize: 16 * 1024 * 1024 + 64 * 1024,
  initialCredit: 1024 * 1024,
  maxGuests: 16,
  bipbufCapacity: 64 * 1024,
  inlineThreshold: 0,
  maxChannels: 1024,
  heartbeatIntervalMs: 2000,
  sizeClasses: Object.freeze([
    { slotSize: 1024, count: 512 },
    { slotSize: 16 * 1024, count: 128 },
    { slotSize: 256 * 1024, count: 32 },
    { slotSize: 2 * 1024 * 1024, count: 8 },
    { slotSize: 16 * 1024 * 1024 + 192 * 1024, count: 2 },
  ]) as SizeClass[],
});

/**
 * Room a Request/Response frame needs besides the call payload: conn id,
 * metadata (at most 64 KiB by call.metadata.limits), channel ids, lengths.
 */
export const FRAME_PAYLOAD_OVERHEAD = 64 * 1024 + 8 * 1024;

export function align(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

export function effectiveInlineThreshold(t: number): number {
  return t === 0 ? DEFAULT_INLINE_THRESHOLD : t;
}

export function validateConfig(c: SegmentConfig): void {
  const bad = (msg: string): never => {
    throw new RangeError(`invalid SHM segment config: ${msg}`);
  };
  if (!Number.isInteger(c.maxGuests) || c.maxGuests < 1 || c.maxGuests > 255) bad("maxGuests must be 1..255 (shm.topology.max-guests)");
  if (!Number.isInteger(c.maxChannels) || c.maxChannels < 4 || c.maxChannels > 1 << 20 || c.maxChannels % 2 !== 0) {
    bad("maxChannels must be an even number in 4..2^20");
  }
  if (!Number.isInteger(c.bipbufCapacity) || c.bipbufCapacity < 1024 || c.bipbufCapacity % 4 !== 0 || c.bipbufCapacity > 1 << 30) {
    bad("bipbufCapacity must be a multiple of 4 in 1 KiB..1 GiB");
  }
  const it = effectiveInlineThreshold(c.inlineThreshold);
  if (it < FRAME_HEADER_SIZE + SLOT_REF_SIZE + 8 || it % 4 !== 0 || it > c.bipbufCapacity / 4) {
    bad("inlineThreshold must be a multiple of 4, at least 44 and at most bipbufCapacity/4");
  }
  if (!(c.maxPayloadSize > 0) || c.maxPayloadSize > 0x7fffffff) bad("maxPayloadSize must be in 1..2^31-1");
  if (!(c.initialCredit > 0) || c.initialCredit > 0x7fffffff) bad("initialCredit must be in 1..2^31-1");
  if (!(c.heartbeatIntervalMs >= 0)) bad("heartbeatIntervalMs must be >= 0");
  if (c.sizeClasses.length < 1 || c.sizeClasses.length > 255) bad("sizeClasses must have 1..255 classes");
  let prev = 0;
  for (const k of c.sizeClasses) {
    if (!Number.isInteger(k.slotSize) || k.slotSize < 16 || k.slotSize % 16 !== 0) bad("slotSize must be a multiple of 16, at least 16");
    if (!Number.isInteger(k.count) || k.count < 1 || k.count > 0x3fffff) bad("count must be 1..2^22-1");
    if (k.slotSize <= prev) bad("sizeClasses must be sorted by ascending slotSize");
    prev = k.slotSize;
  }
  if (c.maxPayloadSize + FRAME_PAYLOAD_OVERHEAD > prev) {
    bad(`the largest slot (${prev} B) must hold maxPayloadSize + ${FRAME_PAYLOAD_OVERHEAD} B of frame overhead`);
  }
}

/** Bytes of one appended extent (header, metas, data). */
export function extentSize(k: SizeClass): number {
  return align(align(EXTENT_HEADER_SIZE + k.count * SLOT_META_SIZE, 64) + k.count * k.slotSize, 64);
}
/** Offset of the slot data inside an appended extent. */
export function extentDataOffset(k: SizeClass): number {
  return align(EXTENT_HEADER_SIZE + k.count * SLOT_META_SIZE, 64);
}

export interface ClassLayout extends SizeClass {
  /** Offset of the class header. */
  header: number;
  /** Extent 0: offset of its SlotMeta array and of its data. */
  meta0: number;
  data0: number;
}

export interface SegmentLayout {
  peerTableOffset: number;
  varSlotPoolOffset: number;
  guestAreasOffset: number;
  guestAreaSize: number;
  bipbufSize: number;
  classes: ClassLayout[];
  /** Initial size (page-aligned). */
  totalSize: number;
  /** Size once every class has all its extents: the address range to reserve. */
  maxSize: number;
}

export function poolSize(classes: readonly SizeClass[]): number {
  let size = classes.length * CLASS_HEADER_SIZE;
  for (const k of classes) {
    size = align(size, 16) + k.count * SLOT_META_SIZE;
    size = align(size, 64) + k.count * k.slotSize;
  }
  return align(size, 64);
}

export function computeLayout(c: {
  maxGuests: number;
  bipbufCapacity: number;
  maxChannels: number;
  sizeClasses: readonly SizeClass[];
}): SegmentLayout {
  const peerTableOffset = HEADER_SIZE;
  const varSlotPoolOffset = align(peerTableOffset + c.maxGuests * PEER_ENTRY_SIZE, 64);
  const classes: ClassLayout[] = [];
  let off = varSlotPoolOffset + c.sizeClasses.length * CLASS_HEADER_SIZE;
  c.sizeClasses.forEach((k, i) => {
    off = align(off, 16);
    const meta0 = off;
    off += k.count * SLOT_META_SIZE;
    off = align(off, 64);
    const data0 = off;
    off += k.count * k.slotSize;
    classes.push({ slotSize: k.slotSize, count: k.count, header: varSlotPoolOffset + i * CLASS_HEADER_SIZE, meta0, data0 });
  });
  const guestAreasOffset = align(varSlotPoolOffset + poolSize(c.sizeClasses), 64);
  const bipbufSize = BIPBUF_HEADER_SIZE + c.bipbufCapacity;
  const guestAreaSize = align(2 * bipbufSize, 64) + align(c.maxChannels * CHANNEL_ENTRY_SIZE, 64);
  const totalSize = align(guestAreasOffset + c.maxGuests * guestAreaSize, PAGE);
  let maxSize = totalSize;
  for (const k of c.sizeClasses) maxSize += (MAX_EXTENTS_PER_CLASS - 1) * align(extentSize(k), PAGE);
  return { peerTableOffset, varSlotPoolOffset, guestAreasOffset, guestAreaSize, bipbufSize, classes, totalSize, maxSize };
}

/** Offsets inside the segment for one guest (peer ids are 1-based). */
export function guestOffsets(layout: SegmentLayout, peerId: number) {
  const area = layout.guestAreasOffset + (peerId - 1) * layout.guestAreaSize;
  return {
    peerEntry: layout.peerTableOffset + (peerId - 1) * PEER_ENTRY_SIZE,
    area,
    g2h: area,
    h2g: area + layout.bipbufSize,
    channelTable: area + align(2 * layout.bipbufSize, 64),
  };
}
