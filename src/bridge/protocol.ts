/**
 * The `roam-bridge.v1` WebSocket protocol and the HTTP body shapes, shared by
 * the bridge (Node) and its client (browsers and Node). Browser-safe.
 *
 * Flow control (bridge.ws.credit). Credit is counted in bytes of `data`
 * frames: the UTF-8 length of the whole text frame, which both ends know
 * exactly (no re-serialisation can change it). Every channel starts with
 * BRIDGE_CHANNEL_WINDOW bytes of credit in its direction — the Rust bridge's
 * default, so a client written for it (data right after the request) works.
 * A sender may send a `data` frame while its credit is above zero; the frame's
 * size is then taken (credit may go below zero, so one value larger than the
 * window still passes). The receiver returns credit with `credit` frames as
 * its consumer takes values, so a consumer that stops reading stops the
 * sender after at most one window plus one frame. A `data` frame that arrives
 * when the sender had no credit left is a protocol violation (Goodbye).
 */

export const BRIDGE_SUBPROTOCOL = "roam-bridge.v1";
/** `{base}/@ws` (bridge.url.websocket). */
export const BRIDGE_WS_SEGMENT = "@ws";
/** Initial credit of every channel, each direction (bytes of data frames). */
export const BRIDGE_CHANNEL_WINDOW = 64 * 1024;
/** A receiver grants credit once this much was consumed (or its buffer ran empty). */
export const BRIDGE_GRANT_THRESHOLD = BRIDGE_CHANNEL_WINDOW / 4;
/**
 * Response header with the outcome of an HTTP call (`ok`, `user`,
 * `unknown_method`, `invalid_payload`, `cancelled`): a success value that is an
 * object with an "error" key cannot be mistaken for an error body. Not a
 * `Roam-` header, so it never collides with response metadata.
 */
export const OUTCOME_HEADER = "x-roam-outcome";

export type ProtocolErrorCode = "unknown_method" | "invalid_payload" | "cancelled";
export const PROTOCOL_ERROR_CODES: readonly ProtocolErrorCode[] = ["unknown_method", "invalid_payload", "cancelled"];

/** UTF-8 length of a string, without allocating (browser-safe). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * The sending side of one channel's credit. `ready()` is undefined while
 * credit is above zero, else a promise for the next grant.
 */
export class SendWindow {
  private credit = BRIDGE_CHANNEL_WINDOW;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private failure: unknown = null;

  get available(): number {
    return Math.max(0, this.credit);
  }
  ready(): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.credit > 0) return undefined;
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  spend(frameBytes: number): void {
    this.credit -= frameBytes;
  }
  grant(bytes: number): void {
    this.credit += bytes;
    if (this.credit <= 0) return;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.resolve();
  }
  fail(e: unknown): void {
    if (this.failure) return;
    this.failure = e;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w.reject(e);
  }
}

/**
 * The receiving side of one channel's credit: checks that the peer stays
 * within what it was granted and decides when to grant more.
 */
export class ReceiveWindow {
  /** What the sender may still send, as far as we know. */
  private senderCredit = BRIDGE_CHANNEL_WINDOW;
  private pending = 0;

  /** A data frame of `frameBytes` arrived; false when the sender had no credit. */
  onData(frameBytes: number): boolean {
    if (this.senderCredit <= 0) return false;
    this.senderCredit -= frameBytes;
    return true;
  }
  /**
   * The consumer took a value that came in `frameBytes`. Returns the bytes
   * to grant now (0: keep accumulating). `idle`: nothing else is buffered.
   */
  consumed(frameBytes: number, idle: boolean): number {
    this.pending += frameBytes;
    if (this.pending >= BRIDGE_GRANT_THRESHOLD || (idle && this.pending > 0)) {
      const g = this.pending;
      this.pending = 0;
      this.senderCredit += g;
      return g;
    }
    return 0;
  }
}

/** Client → bridge frames (bridge.ws.message-format). */
export type ClientFrame =
  | { type: "request"; id: number; service: string; method: string; args: unknown; metadata?: Record<string, unknown> }
  | { type: "data"; channel: number; value: unknown }
  | { type: "close"; channel: number }
  | { type: "reset"; channel: number }
  | { type: "credit"; channel: number; bytes: number }
  | { type: "cancel"; id: number }
  | { type: "goodbye"; reason: string };

/** Bridge → client frames. */
export type ServerFrame =
  | { type: "response"; id: number; result?: unknown; error?: string; value?: unknown; message?: string }
  | { type: "data"; channel: number; value: unknown }
  | { type: "close"; channel: number }
  | { type: "reset"; channel: number }
  | { type: "credit"; channel: number; bytes: number }
  | { type: "goodbye"; reason: string };

/** snake_case of a kebab name: the method name as the Rust trait spells it. */
export function snakeFromKebab(kebab: string): string {
  return kebab.replace(/-/g, "_");
}
