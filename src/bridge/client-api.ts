/**
 * The public face of the bridge client (options, call options, the client
 * type, BridgeError) and what its HTTP and WebSocket halves share: turning
 * an outcome into the value or the typed error, and the nonce's encoding.
 */
import type { ClientArgs, ClientResult, MethodSpecs, ServiceDescriptor } from "../service/define.js";
import type { CallOptions } from "../session/connection.js";
import {
  CancelledError,
  InvalidPayloadError,
  RemoteHandlerError,
  ResponseDecodeError,
  RoamError,
  UnknownMethodError,
  UserError,
} from "../session/errors.js";
import { JsonDecodeError } from "../json/errors.js";
import { type BridgeMethod } from "./registry.js";

/** The bridge itself failed (bridge.response.bridge-error): not the service, not the call. */
export class BridgeError extends RoamError {
  override readonly name = "BridgeError";
  readonly code = "bridge";
  constructor(
    /** HTTP status (502 backend unreachable, 504 timeout, 400 bad request, …); 0 over WebSocket. */
    readonly status: number,
    /** The bridge's message. */
    readonly detail: string,
    /** The spec rule the bridge cited, when it did. */
    readonly rule?: string,
  ) {
    super(`the roam bridge answered ${status || "over WebSocket"}: ${detail}${rule ? ` (${rule})` : ""}`);
  }
}

/** The subset of the WebSocket API the client uses (browser WebSocket, or `ws` in Node). */
export interface BridgeWebSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type BridgeWebSocketCtor = new (url: string, protocols: string | string[]) => BridgeWebSocket;

export interface BridgeClientOptions {
  /** Where the bridge is mounted: `http://127.0.0.1:8080/`, or relative (`/api/roam/`) in a browser. */
  baseUrl: string | URL;
  /** Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** For calls with channels. Default: the global `WebSocket` (browsers, Node ≥ 22); in Node 20 pass `WebSocket` from "ws". */
  WebSocket?: BridgeWebSocketCtor;
  /** Extra headers on every HTTP call (e.g. authorization). */
  headers?: Record<string, string>;
  /** Default per-call timeout in ms (none by default). */
  timeout?: number;
  /** `fetch` credentials mode (default "same-origin"). */
  credentials?: "omit" | "same-origin" | "include";
  /** How often a call with a nonce is retried after a network failure, 502 or 504 (default 2). */
  retries?: number;
}

export interface BridgeCallOptions extends CallOptions {
  /**
   * `Roam-Nonce` (bridge.request.nonce): 16 bytes, or `true` for a random one.
   * With a nonce, a call that failed at the HTTP level is retried with the
   * same nonce (bridge.nonce.retry-safe); a backend with deduplication runs it once.
   */
  nonce?: Uint8Array | true;
}

export type BridgeClient<S extends MethodSpecs> = {
  [K in keyof ServiceDescriptor<S>["methods"]]: (
    ...args: [...ClientArgs<ServiceDescriptor<S>["methods"][K]>, options?: BridgeCallOptions]
  ) => Promise<ClientResult<ServiceDescriptor<S>["methods"][K]>>;
} & {
  /** Closes the streaming WebSocket, if one is open. */
  close(): void;
};

/** Base64 of the nonce (Roam-Nonce header, and the WebSocket request's metadata). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function randomNonce(): Uint8Array {
  const n = new Uint8Array(16);
  globalThis.crypto.getRandomValues(n);
  return n;
}

/** Turns a response outcome into the value or the typed error. */
export function settle(bm: BridgeMethod, outcome: string, body: unknown): unknown {
  const q = bm.qualified;
  try {
    switch (outcome) {
      case "ok":
        return bm.ok.decode(body);
      case "user":
        if (!bm.err) throw new JsonDecodeError(`a user error for the infallible ${q}`);
        throw new UserError(bm.err.decode((body as { value?: unknown }).value));
      case "unknown_method":
        throw new UnknownMethodError(q);
      case "invalid_payload":
        throw new InvalidPayloadError(q);
      case "cancelled": {
        const m = (body as { message?: unknown }).message;
        throw typeof m === "string" ? new RemoteHandlerError(q, m) : new CancelledError(q, "remote");
      }
      default: {
        const m = (body as { message?: unknown }).message;
        throw new BridgeError(0, typeof m === "string" ? m : `unexpected outcome ${outcome}`);
      }
    }
  } catch (e) {
    if (e instanceof JsonDecodeError) throw new ResponseDecodeError(q, e);
    throw e;
  }
}
