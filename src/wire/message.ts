/**
 * The wire v2 `Message` enum (roam-wire at the pinned commit) and its
 * postcard codec, written out by hand for the hot path.
 *
 * Discriminants: Hello=0, Connect=1, Accept=2, Reject=3, Goodbye=4,
 * Request=5, Response=6, Cancel=7, Data=8, Close=9, Reset=10, Credit=11.
 * Ids (conn, request, channel) are JS numbers (safe integers; a peer sending
 * ids above 2^53-1 gets a decode error). Method ids are full u64 bigints.
 */
import { DecodeError } from "../codec/errors.js";
import { Reader } from "../codec/reader.js";
import { Writer, checkU64 } from "../codec/writer.js";

/** A metadata value: String (JS string), Bytes (Uint8Array) or U64 (bigint). */
export type MetadataValue = string | Uint8Array | bigint;
export type MetadataEntry = readonly [key: string, value: MetadataValue];
export type Metadata = readonly MetadataEntry[];

export type HelloMessage = {
  type: "Hello";
  /** 2 for Hello::V2; 1 is the deprecated V1; anything else is unknown. */
  version: number;
  maxPayloadSize: number;
  initialChannelCredit: number;
};
export type ConnectMessage = { type: "Connect"; requestId: number; metadata: Metadata };
export type AcceptMessage = { type: "Accept"; requestId: number; connId: number; metadata: Metadata };
export type RejectMessage = { type: "Reject"; requestId: number; reason: string; metadata: Metadata };
export type GoodbyeMessage = { type: "Goodbye"; connId: number; reason: string };
export type RequestMessage = {
  type: "Request";
  connId: number;
  requestId: number;
  methodId: bigint;
  metadata: Metadata;
  channels: number[];
  payload: Uint8Array;
};
export type ResponseMessage = {
  type: "Response";
  connId: number;
  requestId: number;
  metadata: Metadata;
  channels: number[];
  payload: Uint8Array;
};
export type CancelMessage = { type: "Cancel"; connId: number; requestId: number };
export type DataMessage = {
  type: "Data";
  connId: number;
  channelId: number;
  payload: Uint8Array;
  /**
   * Sending side only: when present, the element's bytes are
   * `payloadHead ++ payload` (lets a large `bytes` element go out without
   * being copied into one buffer first). Decoded messages never have it.
   */
  payloadHead?: Uint8Array;
};
export type CloseMessage = { type: "Close"; connId: number; channelId: number };
export type ResetMessage = { type: "Reset"; connId: number; channelId: number };
export type CreditMessage = { type: "Credit"; connId: number; channelId: number; bytes: number };

export type Message =
  | HelloMessage
  | ConnectMessage
  | AcceptMessage
  | RejectMessage
  | GoodbyeMessage
  | RequestMessage
  | ResponseMessage
  | CancelMessage
  | DataMessage
  | CloseMessage
  | ResetMessage
  | CreditMessage;

export type MessageType = Message["type"];

const DISCRIMINANT: Record<MessageType, number> = {
  Hello: 0,
  Connect: 1,
  Accept: 2,
  Reject: 3,
  Goodbye: 4,
  Request: 5,
  Response: 6,
  Cancel: 7,
  Data: 8,
  Close: 9,
  Reset: 10,
  Credit: 11,
};

/** The received bytes named a Message variant this version does not know. */
export class UnknownMessageVariantError extends DecodeError {
  constructor(readonly discriminant: number) {
    super(`unknown Message variant ${discriminant}`, 0);
  }
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/** Appends `Vec<(String, MetadataValue)>` (shared with the SHM frame codec). */
export function writeMetadata(w: Writer, md: Metadata): void {
  w.varint(md.length);
  for (const [k, v] of md) {
    w.string(k);
    if (typeof v === "string") {
      w.u8(0);
      w.string(v);
    } else if (v instanceof Uint8Array) {
      w.u8(1);
      w.bytes(v);
    } else if (typeof v === "bigint") {
      checkU64(v);
      w.u8(2);
      w.varintBig(v);
    } else {
      throw new TypeError(`metadata value for ${JSON.stringify(k)} must be a string, Uint8Array or bigint`);
    }
  }
}

function writeIdList(w: Writer, ids: readonly number[]): void {
  w.varint(ids.length);
  for (const id of ids) w.varint(id);
}

// Method ids are full 64-bit hashes: cache their varint bytes (bounded).
const methodIdCache = new Map<bigint, Uint8Array>();
function writeMethodId(w: Writer, id: bigint): void {
  let b = methodIdCache.get(id);
  // mutation: equivalent — `true` re-encodes an id already cached: the same bytes (the cache only saves time).
  if (b === undefined) {
    checkU64(id);
    const tmp = new Writer(16);
    tmp.varintBig(id);
    b = tmp.finish();
    // mutation: equivalent — any bound, clearing always or never: a miss re-encodes the same bytes,
    // so only the cache's memory and hit rate change (not what is written).
    if (methodIdCache.size >= 4096) methodIdCache.clear();
    methodIdCache.set(id, b);
  }
  w.raw(b);
}

/** Appends the postcard encoding of `m` to `w`. */
export function encodeMessage(w: Writer, m: Message): void {
  w.u8(DISCRIMINANT[m.type]);
  switch (m.type) {
    case "Data":
      w.varint(m.connId);
      w.varint(m.channelId);
      if (m.payloadHead) {
        w.varint(m.payloadHead.length + m.payload.length);
        w.raw(m.payloadHead);
        w.raw(m.payload);
      } else {
        w.bytes(m.payload);
      }
      return;
    case "Credit":
      w.varint(m.connId);
      w.varint(m.channelId);
      w.varint(m.bytes);
      return;
    case "Request":
      w.varint(m.connId);
      w.varint(m.requestId);
      writeMethodId(w, m.methodId);
      writeMetadata(w, m.metadata);
      writeIdList(w, m.channels);
      w.bytes(m.payload);
      return;
    case "Response":
      w.varint(m.connId);
      w.varint(m.requestId);
      writeMetadata(w, m.metadata);
      writeIdList(w, m.channels);
      w.bytes(m.payload);
      return;
    case "Hello":
      // Hello::V1 = 0, Hello::V2 = 1.
      w.u8(m.version === 1 ? 0 : 1);
      w.varint(m.maxPayloadSize);
      w.varint(m.initialChannelCredit);
      return;
    case "Connect":
      w.varint(m.requestId);
      writeMetadata(w, m.metadata);
      return;
    case "Accept":
      w.varint(m.requestId);
      w.varint(m.connId);
      writeMetadata(w, m.metadata);
      return;
    case "Reject":
      w.varint(m.requestId);
      w.string(m.reason);
      writeMetadata(w, m.metadata);
      return;
    case "Goodbye":
      w.varint(m.connId);
      w.string(m.reason);
      return;
    case "Cancel":
      w.varint(m.connId);
      w.varint(m.requestId);
      return;
    case "Close":
    case "Reset":
      w.varint(m.connId);
      w.varint(m.channelId);
      return;
  }
}

const sharedWriter = new Writer(4096);
/** Encodes one message into a fresh byte array. */
export function messageToBytes(m: Message): Uint8Array {
  sharedWriter.reset();
  encodeMessage(sharedWriter, m);
  return sharedWriter.finish();
}

/** The full element bytes of a Data message (joins `payloadHead` if present). */
export function dataPayload(m: DataMessage): Uint8Array {
  if (!m.payloadHead) return m.payload;
  const out = new Uint8Array(m.payloadHead.length + m.payload.length);
  out.set(m.payloadHead);
  out.set(m.payload, m.payloadHead.length);
  return out;
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/** Reads `Vec<(String, MetadataValue)>` (shared with the SHM frame codec). */
export function readMetadata(r: Reader): MetadataEntry[] {
  // Each entry takes at least 3 bytes (key length, value tag, value length/varint).
  const n = r.length(3);
  const out: MetadataEntry[] = [];
  for (let i = 0; i < n; i++) {
    const k = r.string();
    const at = r.pos;
    const tag = r.varint32();
    let v: MetadataValue;
    if (tag === 0) v = r.string();
    else if (tag === 1) v = r.bytes();
    else if (tag === 2) v = r.varint64();
    else r.fail(`unknown MetadataValue variant ${tag}`, at);
    out.push([k, v]);
  }
  return out;
}

function readIdList(r: Reader): number[] {
  const n = r.length(1);
  // mutation: equivalent — `new Array()`: every index 0..n-1 is assigned in order below.
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = r.varintSafe();
  return out;
}

/**
 * Decodes one whole message. Payload fields are views into `bytes`
 * (zero-copy); keep `bytes` alive as long as they are used.
 * Throws DecodeError (UnknownMessageVariantError for an unknown variant).
 */
export function decodeMessage(bytes: Uint8Array): Message {
  const r = new Reader(bytes);
  const disc = r.varint32();
  let m: Message;
  switch (disc) {
    case 8:
      m = { type: "Data", connId: r.varintSafe(), channelId: r.varintSafe(), payload: r.bytesView() };
      break;
    case 11:
      m = { type: "Credit", connId: r.varintSafe(), channelId: r.varintSafe(), bytes: r.varint32() };
      break;
    case 5:
      m = {
        type: "Request",
        connId: r.varintSafe(),
        requestId: r.varintSafe(),
        methodId: r.varint64(),
        metadata: readMetadata(r),
        channels: readIdList(r),
        payload: r.bytesView(),
      };
      break;
    case 6:
      m = {
        type: "Response",
        connId: r.varintSafe(),
        requestId: r.varintSafe(),
        metadata: readMetadata(r),
        channels: readIdList(r),
        payload: r.bytesView(),
      };
      break;
    case 0: {
      const v = r.varint32();
      if (v > 1) {
        // An unknown Hello version: its fields are unknown too, stop here.
        return { type: "Hello", version: v + 1, maxPayloadSize: 0, initialChannelCredit: 0 };
      }
      m = { type: "Hello", version: v + 1, maxPayloadSize: r.varint32(), initialChannelCredit: r.varint32() };
      break;
    }
    case 1:
      m = { type: "Connect", requestId: r.varintSafe(), metadata: readMetadata(r) };
      break;
    case 2:
      m = { type: "Accept", requestId: r.varintSafe(), connId: r.varintSafe(), metadata: readMetadata(r) };
      break;
    case 3:
      m = { type: "Reject", requestId: r.varintSafe(), reason: r.string(), metadata: readMetadata(r) };
      break;
    case 4:
      m = { type: "Goodbye", connId: r.varintSafe(), reason: r.string() };
      break;
    case 7:
      m = { type: "Cancel", connId: r.varintSafe(), requestId: r.varintSafe() };
      break;
    case 9:
      m = { type: "Close", connId: r.varintSafe(), channelId: r.varintSafe() };
      break;
    case 10:
      m = { type: "Reset", connId: r.varintSafe(), channelId: r.varintSafe() };
      break;
    default:
      throw new UnknownMessageVariantError(disc);
  }
  r.expectEnd();
  return m;
}

// ---------------------------------------------------------------------------
// Metadata limits (call.metadata.limits)
// ---------------------------------------------------------------------------

export const METADATA_LIMITS = {
  maxEntries: 128,
  maxKeyBytes: 256,
  maxValueBytes: 16 * 1024,
  maxTotalBytes: 64 * 1024,
} as const;

const enc = new TextEncoder();
function utf8Len(s: string): number {
  // Fast path for ASCII.
  // mutation: equivalent — `ascii = false`, or the `>= 0x80` test made `true`: the slow path
  // (TextEncoder) measures an ASCII string as the same number of bytes.
  let ascii = true;
  // mutation: equivalent — `i <= s.length`: charCodeAt(s.length) is NaN, never >= 0x80.
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      ascii = false;
      break;
    }
  }
  return ascii ? s.length : enc.encode(s).length;
}

/**
 * Checks metadata against `call.metadata.limits`; returns a description of
 * the first violation, or undefined when it is within limits.
 * Sizes are counted as the reference does: key bytes + value bytes (a U64 counts 8).
 */
export function checkMetadataLimits(md: Metadata): string | undefined {
  if (md.length > METADATA_LIMITS.maxEntries) return `${md.length} entries (max ${METADATA_LIMITS.maxEntries})`;
  let total = 0;
  for (const [k, v] of md) {
    const kl = utf8Len(k);
    if (kl > METADATA_LIMITS.maxKeyBytes) return `key of ${kl} bytes (max ${METADATA_LIMITS.maxKeyBytes})`;
    const vl = typeof v === "string" ? utf8Len(v) : v instanceof Uint8Array ? v.length : 8;
    if (vl > METADATA_LIMITS.maxValueBytes) return `value of ${vl} bytes for key ${JSON.stringify(k)} (max ${METADATA_LIMITS.maxValueBytes})`;
    total += kl + vl;
  }
  if (total > METADATA_LIMITS.maxTotalBytes) return `${total} bytes in total (max ${METADATA_LIMITS.maxTotalBytes})`;
  return undefined;
}
