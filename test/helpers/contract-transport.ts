/**
 * A MessageTransport that enforces the contract written on the interface
 * (src/session/transport.ts) around a real transport:
 *
 *   - `send` consumes the bytes before it returns: the message handed to the
 *     real transport is a copy lent for the call, and its bytes are
 *     scribbled over (0xEE) as soon as `send` returns, as the session's
 *     shared scratch writers would be. A transport that keeps a view (or the
 *     message object) and encodes later puts garbage on the wire.
 *   - what arrives is what was sent, in order: the two ends of a pair share
 *     a log, and each delivered message must be, byte for byte, the next one
 *     its peer sent;
 *   - the sink's callbacks: none before `start`, none from inside
 *     `send`/`flush`/`writable`, `message`/`malformed` never after `closed`
 *     nor after our `close()` returned, `closed` exactly once;
 *   - `close` is idempotent and `closed` follows it.
 *
 * Violations are collected (`violations`), not thrown: a throw inside a
 * transport's event handler would end up somewhere else entirely.
 */
import type { MessageTransport, TransportSink } from "../../src/session/transport.js";
import { messageToBytes, type Message } from "../../src/wire/message.js";

/** One direction of a pair: the bytes of every message sent, not yet delivered. */
class Wire {
  readonly inFlight: Uint8Array[] = [];
  sent = 0;
  delivered = 0;
}

const SCRIBBLE = 0xee;

/** Every byte array a message carries (payloads, metadata byte values). */
function byteFields(m: Message): Uint8Array[] {
  const out: Uint8Array[] = [];
  const rec = m as unknown as Record<string, unknown>;
  for (const v of Object.values(rec)) {
    if (v instanceof Uint8Array) out.push(v);
    else if (Array.isArray(v)) {
      for (const entry of v) {
        if (Array.isArray(entry)) for (const x of entry) if (x instanceof Uint8Array) out.push(x);
      }
    } else if (v !== null && typeof v === "object") {
      for (const x of Object.values(v as Record<string, unknown>)) if (x instanceof Uint8Array) out.push(x);
    }
  }
  return out;
}

/** A deep copy of `m` whose byte arrays live in buffers only this copy uses. */
function lend(m: Message): Message {
  const copy = (v: unknown): unknown => {
    if (v instanceof Uint8Array) return v.slice();
    if (Array.isArray(v)) return v.map(copy);
    if (v !== null && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = copy(x);
      return o;
    }
    return v;
  };
  return copy(m) as Message;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class ContractTransport implements MessageTransport {
  readonly violations: string[];
  private sink: TransportSink | null = null;
  private inside: string | null = null;
  private closeCalled = false;
  private closedFired = 0;
  private closedWaiters: (() => void)[] = [];
  /** Messages delivered to the sink. */
  received = 0;

  constructor(
    private readonly inner: MessageTransport,
    private readonly name: string,
    private readonly outgoing: Wire,
    /** null: the peer is not under the contract (another thread), deliveries are not compared. */
    private readonly incoming: Wire | null,
    violations: string[],
  ) {
    this.violations = violations;
  }

  get description(): string {
    return this.inner.description;
  }

  private violation(what: string): void {
    this.violations.push(`${this.name} (${this.inner.description}): ${what}`);
  }

  private callback(kind: string): boolean {
    if (this.sink === null) this.violation(`sink.${kind} before start()`);
    if (this.inside !== null) this.violation(`sink.${kind} from inside ${this.inside}()`);
    if (kind !== "closed" && this.closedFired > 0) this.violation(`sink.${kind} after sink.closed`);
    if (kind === "message" && this.closeCalled) this.violation(`sink.message after close() returned`);
    return this.sink !== null;
  }

  start(sink: TransportSink): void {
    if (this.sink !== null) this.violation("start() called twice");
    this.sink = sink;
    this.inner.start({
      message: (m) => {
        if (!this.callback("message")) return;
        const wire = this.incoming;
        if (wire !== null) {
          const expected = wire.inFlight.shift();
          const n = wire.delivered++;
          if (expected === undefined) this.violation(`message #${n} (${m.type}) arrived but the peer sent only ${wire.sent}`);
          else if (!equalBytes(messageToBytes(m), expected)) this.violation(`message #${n} (${m.type}) is not what the peer sent (bytes differ: a view kept past send, or reordered)`);
        }
        this.received++;
        sink.message(m);
      },
      malformed: (rule, detail) => {
        if (!this.callback("malformed")) return;
        this.violation(`sink.malformed(${rule}): ${detail} (the peer sent only well-formed messages)`);
        sink.malformed(rule, detail);
      },
      closed: (cause) => {
        this.callback("closed");
        this.closedFired++;
        if (this.closedFired > 1) this.violation(`sink.closed fired ${this.closedFired} times`);
        else sink.closed(cause);
        const ws = this.closedWaiters;
        this.closedWaiters = [];
        for (const w of ws) w();
      },
    });
  }

  send(message: Message): void {
    // What the peer must receive: the bytes as they are now.
    const bytes = messageToBytes(message).slice();
    const lent = lend(message);
    this.inside = "send";
    try {
      this.inner.send(lent);
    } finally {
      this.inside = null;
    }
    // The transport takes nothing after a close; what it took must arrive.
    if (!this.closeCalled) {
      this.outgoing.inFlight.push(bytes);
      this.outgoing.sent++;
    }
    // The session reuses its scratch writers once send returned.
    for (const b of byteFields(lent)) b.fill(SCRIBBLE);
  }

  flush(): void {
    this.inside = "flush";
    try {
      this.inner.flush();
    } finally {
      this.inside = null;
    }
  }

  writable(): Promise<void> | undefined {
    this.inside = "writable";
    try {
      return this.inner.writable();
    } finally {
      this.inside = null;
    }
  }

  close(): void {
    this.inner.close();
    this.closeCalled = true;
  }

  /** Resolves once sink.closed fired (after our close or the peer's). */
  whenClosed(): Promise<void> {
    if (this.closedFired > 0) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  /** Messages the peer sent that did not reach this end's sink (yet). */
  get undelivered(): number {
    return this.incoming?.inFlight.length ?? 0;
  }

  get closedCount(): number {
    return this.closedFired;
  }

  replyBacklog(): number {
    return this.inner.replyBacklog?.() ?? 0;
  }
  onReplyDrain(bytes: number, cb: () => void): void {
    if (this.inner.onReplyDrain) this.inner.onReplyDrain(bytes, cb);
    else queueMicrotask(cb);
  }
  pauseReading(): void {
    this.inner.pauseReading?.();
  }
  resumeReading(): void {
    this.inner.resumeReading?.();
  }
}

/** Wraps both ends of a transport pair; `violations` collects what either end broke. */
export function contractPair(a: MessageTransport, b: MessageTransport): { a: ContractTransport; b: ContractTransport; violations: string[] } {
  const violations: string[] = [];
  const ab = new Wire();
  const ba = new Wire();
  return {
    a: new ContractTransport(a, "a", ab, ba, violations),
    b: new ContractTransport(b, "b", ba, ab, violations),
    violations,
  };
}

/**
 * One end under the contract whose peer is elsewhere (an SHM guest in a
 * worker thread): its bytes are scribbled after `send` and its callbacks
 * checked; what it receives is not compared (the peer's log is not here).
 */
export function contractEnd(inner: MessageTransport, name: string): ContractTransport {
  return new ContractTransport(inner, name, new Wire(), null, []);
}
