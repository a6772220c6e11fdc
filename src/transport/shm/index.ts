/**
 * The shared-memory transport (SHM hub, segment format v2): a host process
 * and its guests — other processes (file-backed segment, doorbells) or worker
 * threads (SharedArrayBuffer) — running the same session core as the stream
 * transports.
 */
export { SpawnTicket, WORKER_DATA_KEY } from "./spawn.js";
export { ShmHost, type ShmHostOptions, type AddPeerOptions, type DeathInfo, type ShmHostStats } from "./host.js";
export { ShmGuest, parseSpawnArgs, type SpawnArgs, type ShmGuestOptions } from "./guest.js";
export { establishHostPeer, establishGuest, ShmHandshake, type ShmLinkOptions } from "./driver.js";
export { ShmPeerGoneError, type DeathCause } from "./errors.js";
export { ShmTransport, type ShmTransportOptions, type ShmTransportStats } from "./transport.js";
export { ShmFlowControl } from "./flow.js";
export { Segment, SegmentError, ChannelTable, type GuestArea } from "./segment.js";
export { BipBuffer } from "./bipbuf.js";
export { VarSlotPool, type SlotRef } from "./varslot.js";
export { MemoryBacking, FileBacking, type Backing } from "./backing.js";
export { nativeShm } from "./native.js";
export { DEFAULT_SEGMENT_CONFIG, PeerState, computeLayout, type SegmentConfig, type SizeClass, type SegmentLayout } from "./layout.js";
export { MsgType, FLAG_SLOT_REF } from "./frame.js";
