/**
 * Message ↔ SHM frame mapping (r[shm.frame.*], r[shm.desc.msg-type],
 * r[shm.metadata.in-payload]).
 *
 * Frame header (24 bytes, little-endian): total_len u32, msg_type u8,
 * flags u8 (bit 0: payload in a VarSlotPool slot), reserved u16, id u32,
 * method_id u64, payload_len u32. Inline payloads follow the header; slot
 * references are 12 bytes (class u8, extent u8, pad u16, slot u32,
 * generation u32).
 *
 * Payloads, where the spec leaves them open, follow the reference's mapping:
 *   Request/Response  postcard { conn_id: u64, metadata, channels: Vec<u64>, payload: bytes }
 *   Cancel/Close/Reset 8-byte little-endian conn_id
 *   Data              8-byte little-endian conn_id, then the element bytes
 *   Goodbye           a postcard String (r[shm.goodbye.payload]); raw UTF-8,
 *                     as the reference writes it, is accepted too; the id
 *                     field carries the conn_id so that closing a virtual
 *                     connection does not read as closing the link
 *   Connect           postcard(metadata)
 *   Accept            postcard((conn_id, metadata))
 *   Reject            postcard((reason, metadata))
 * Request and channel ids are u32 on the wire (r[shm.id.*]).
 */
import { DecodeError } from "../../codec/errors.js";
import { Reader } from "../../codec/reader.js";
import { Writer } from "../../codec/writer.js";
import { readMetadata, writeMetadata, type Message, type Metadata } from "../../wire/message.js";

export const MsgType = {
  Request: 1,
  Response: 2,
  Cancel: 3,
  Data: 4,
  Close: 5,
  Reset: 6,
  Goodbye: 7,
  Connect: 8,
  Accept: 9,
  Reject: 10,
} as const;

export const FLAG_SLOT_REF = 1;

export const MSG_TYPE_NAMES = ["?", "Request", "Response", "Cancel", "Data", "Close", "Reset", "Goodbye", "Connect", "Accept", "Reject"];

export { writeMetadata, readMetadata };

const EMPTY_MD: Metadata = [];
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Writes the postcard prefix of a Request/Response payload (everything up to the payload bytes). */
export function writeCallPrefix(w: Writer, connId: number, metadata: Metadata, channels: readonly number[], payloadLength: number): void {
  w.varint(connId);
  writeMetadata(w, metadata);
  w.varint(channels.length);
  for (const c of channels) w.varint(c);
  w.varint(payloadLength);
}

export function connIdBytes(connId: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(connId), true);
  return b;
}

/** The payload of a non-call, non-Data frame. */
export function controlPayload(m: Message): Uint8Array {
  switch (m.type) {
    case "Cancel":
    case "Close":
    case "Reset":
      return connIdBytes(m.connId);
    case "Goodbye": {
      // r[shm.goodbye.payload]: a postcard String.
      // mutation: equivalent — `m.reason.length / 3`: the capacity is only a first guess (the
      // Writer grows as it writes); what must hold is that it is never negative.
      const w = new Writer(16 + m.reason.length * 3);
      w.string(m.reason);
      return w.finish();
    }
    case "Connect": {
      const w = new Writer(64);
      writeMetadata(w, m.metadata);
      return w.finish();
    }
    case "Accept": {
      const w = new Writer(64);
      w.varint(m.connId);
      writeMetadata(w, m.metadata);
      return w.finish();
    }
    case "Reject": {
      const w = new Writer(64);
      w.string(m.reason);
      writeMetadata(w, m.metadata);
      return w.finish();
    }
    default:
      throw new Error(`${m.type} has no control payload`);
  }
}

/**
 * r[shm.goodbye.payload]: a postcard String. The reference writes the raw
 * UTF-8 bytes instead; a payload that is not exactly one postcard String is
 * read that way (what the peer sent must still be shown to the user).
 */
function goodbyeReason(payload: Uint8Array): string {
  try {
    const r = new Reader(payload);
    const s = r.string();
    r.expectEnd();
    return s;
  } catch {
    // not a postcard String: raw UTF-8
  }
  try {
    return utf8Strict.decode(payload);
  } catch {
    throw new DecodeError("Goodbye reason is neither a postcard String nor UTF-8", 0);
  }
}

function readConnId(p: Uint8Array, what: string): number {
  if (p.length < 8) throw new DecodeError(`${what} payload of ${p.length} bytes is too short for its conn_id`, 0);
  const v = new DataView(p.buffer, p.byteOffset, 8).getBigUint64(0, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(`${what} conn_id ${v} is too large`, 0);
  return Number(v);
}

/**
 * Decodes a frame into a Message. `payload` must be a private copy (the
 * Message's byte fields are views into it). Channel ids are the raw ids of
 * the frame (the transport translates them). Throws DecodeError.
 */
export function decodeFrame(type: number, id: number, methodId: bigint, payload: Uint8Array): Message {
  switch (type) {
    case MsgType.Request:
    case MsgType.Response: {
      const r = new Reader(payload);
      const connId = r.varintSafe();
      const metadata = readMetadata(r);
      const n = r.length(1);
      // mutation: equivalent — `new Array()` instead of `new Array(n)` ends the same: every index
      // 0..n-1 is assigned below, in order (the size is only a preallocation hint).
      const channels: number[] = new Array(n);
      for (let i = 0; i < n; i++) channels[i] = r.varintSafe();
      const body = r.bytesView();
      r.expectEnd();
      return type === MsgType.Request
        ? { type: "Request", connId, requestId: id, methodId, metadata: metadata.length ? metadata : EMPTY_MD, channels, payload: body }
        : { type: "Response", connId, requestId: id, metadata: metadata.length ? metadata : EMPTY_MD, channels, payload: body };
    }
    case MsgType.Cancel:
      return { type: "Cancel", connId: readConnId(payload, "Cancel"), requestId: id };
    case MsgType.Data:
      return { type: "Data", connId: readConnId(payload, "Data"), channelId: id, payload: payload.subarray(8) };
    case MsgType.Close:
      return { type: "Close", connId: readConnId(payload, "Close"), channelId: id };
    case MsgType.Reset:
      return { type: "Reset", connId: readConnId(payload, "Reset"), channelId: id };
    case MsgType.Goodbye:
      return { type: "Goodbye", connId: id, reason: goodbyeReason(payload) };
    case MsgType.Connect: {
      const r = new Reader(payload);
      const metadata = readMetadata(r);
      r.expectEnd();
      return { type: "Connect", requestId: id, metadata };
    }
    case MsgType.Accept: {
      const r = new Reader(payload);
      const connId = r.varintSafe();
      const metadata = readMetadata(r);
      r.expectEnd();
      return { type: "Accept", requestId: id, connId, metadata };
    }
    case MsgType.Reject: {
      const r = new Reader(payload);
      const reason = r.string();
      const metadata = readMetadata(r);
      r.expectEnd();
      return { type: "Reject", requestId: id, reason, metadata };
    }
    default:
      throw new DecodeError(`unknown SHM msg_type ${type}`, 0);
  }
}
