/**
 * Small facts shared by the outgoing and incoming halves of a connection:
 * how received payloads are read, how a method is named in errors, and the
 * shared empty values.
 */
import { Reader } from "../codec/reader.js";
import type { MethodDescriptor } from "../service/define.js";
import type { Metadata } from "../wire/message.js";

/**
 * Bytes values at least this large in a received Request or Response are
 * views into the received payload rather than copies (a transport never
 * reuses a payload it handed over). 64 KiB: bulk values skip a second copy
 * into fresh memory; a view pins at most its transport's receive buffer
 * (256 KiB stream slab, 1 MiB SHM arena), a small multiple of itself.
 */
export const BORROW_RECEIVED_BYTES_AT_LEAST = 64 * 1024;

export function receivedPayloadReader(payload: Uint8Array): Reader {
  const r = new Reader(payload);
  r.borrowAtLeast = BORROW_RECEIVED_BYTES_AT_LEAST;
  return r;
}

/** `Service.method`, for error messages and diagnostics. */
export function qualified(m: MethodDescriptor): string {
  return `${m.service}.${m.name}`;
}

export const EMPTY_METADATA: Metadata = [];
export const NO_IDS: number[] = [];
