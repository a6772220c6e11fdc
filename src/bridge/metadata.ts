/**
 * HTTP headers ↔ roam call metadata (bridge.request.metadata*,
 * bridge.request.nonce, bridge.nonce.passthrough, bridge.response.metadata).
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Metadata, MetadataEntry } from "../wire/message.js";
import { BridgeHttpError } from "./errors.js";

/** Headers that keep their own name as the metadata key (bridge.request.metadata.wellknown). */
const WELL_KNOWN = ["traceparent", "tracestate", "authorization"] as const;
const PREFIX = "roam-";
export const NONCE_HEADER = "roam-nonce";
export const NONCE_KEY = "roam-nonce";
const NONCE_BYTES = 16;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes a `Roam-Nonce` value: standard base64 with padding, exactly 16 bytes. */
export function decodeNonce(value: string): Uint8Array {
  if (!BASE64.test(value)) {
    throw new BridgeHttpError(400, "bridge.request.nonce", "Roam-Nonce must be standard base64 with padding");
  }
  const bytes = new Uint8Array(Buffer.from(value, "base64"));
  if (bytes.length !== NONCE_BYTES) {
    throw new BridgeHttpError(400, "bridge.request.nonce", `Roam-Nonce must decode to ${NONCE_BYTES} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/** Request headers → request metadata. Keys are lower case (HTTP header names are case-insensitive). */
export function headersToMetadata(headers: IncomingHttpHeaders): MetadataEntry[] {
  const out: MetadataEntry[] = [];
  for (const key of WELL_KNOWN) {
    const v = headers[key];
    if (typeof v === "string") out.push([key, v]);
  }
  for (const name of Object.keys(headers)) {
    if (!name.startsWith(PREFIX) || name.length === PREFIX.length) continue;
    const raw = headers[name];
    const v = Array.isArray(raw) ? raw.join(", ") : raw;
    if (v === undefined) continue;
    if (name === NONCE_HEADER) {
      // bridge.nonce.passthrough: the decoded nonce goes on as `roam-nonce`;
      // deduplication is the backend's job (bridge.nonce.backend).
      out.push([NONCE_KEY, decodeNonce(v)]);
      continue;
    }
    out.push([name.slice(PREFIX.length), v]);
  }
  return out;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Response metadata → `Roam-{key}` headers. Bytes go base64 (as the nonce
 * does), integers in decimal; a key or value that cannot be an HTTP header is
 * left out rather than breaking the response.
 */
export function metadataToHeaders(md: Metadata): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of md) {
    if (!TOKEN.test(k)) continue;
    const value = typeof v === "string" ? v : typeof v === "bigint" ? v.toString() : Buffer.from(v).toString("base64");
    if (!HEADER_VALUE.test(value)) continue;
    out.push([`Roam-${k}`, value]);
  }
  return out;
}

/** WebSocket `request.metadata` (a JSON object) → request metadata; `roam-nonce` as in the header. */
export function jsonToMetadata(obj: unknown): MetadataEntry[] {
  if (obj === undefined || obj === null) return [];
  if (typeof obj !== "object" || Array.isArray(obj)) throw new BridgeHttpError(400, "bridge.ws.request", "metadata must be an object of strings");
  const out: MetadataEntry[] = [];
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    if (typeof v !== "string") throw new BridgeHttpError(400, "bridge.ws.request", `metadata "${k}" must be a string`);
    out.push(k.toLowerCase() === NONCE_KEY ? [NONCE_KEY, decodeNonce(v)] : [k, v]);
  }
  return out;
}
