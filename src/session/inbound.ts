/**
 * Pacing of what a link reads: a per-turn time budget (a read can hold
 * thousands of messages, each starting a handler) and backpressure from our
 * own replies (a peer that sends but never reads stops being read until they
 * drain). Messages that arrive while paused are held in order. Driven by its
 * link: `receive` per message, `clear` once the link closed.
 */
import type { Message } from "../wire/message.js";
import type { MessageTransport } from "./transport.js";

/**
 * Messages held while reading is paused: what was already read when the
 * pause began (the rest of one read). A transport that cannot pause reading
 * (a browser WebSocket) ends the link instead of holding more than this.
 */
export const MAX_DEFERRED_MESSAGES = 65_536;
/**
 * Time one link may spend handling received messages in one turn of the
 * event loop: a read can hold thousands of messages, each starting a
 * handler, and the rest waits for the next turn (timers, other links).
 */
const TURN_BUDGET_MS = 10;
/** Runs `f` in a later turn of the event loop (browsers have no setImmediate). */
// mutation: equivalent — the condition and the setTimeout arrow: Node always has setImmediate;
// the fallback is for browsers, which the mutation run does not use.
const nextTurn: (f: () => void) => void = typeof setImmediate === "function" ? (f) => void setImmediate(f) : (f) => void setTimeout(f, 0);

/** What pacing needs from its link. */
export interface InboundPort {
  /** Reply backlog, pause/resume and drain notification (each optional on a transport). */
  readonly transport: Pick<MessageTransport, "replyBacklog" | "onReplyDrain" | "pauseReading" | "resumeReading">;
  /** Reply bytes queued above which reading pauses until they drain to half. */
  readonly replyMark: number;
  /** Handles one message. */
  handle(m: Message): void;
  /** True once the link closed. */
  isClosed(): boolean;
  /** More than MAX_DEFERRED_MESSAGES arrived while paused: the link closes with this reason. */
  overflow(reason: string): void;
}

export class InboundPacer {
  /** Reading is paused: replies back up, or this turn's budget is spent. */
  #paused = false;
  #deferred: Message[] = [];
  #deferredHead = 0;
  /** performance.now() when this turn's first message was handled (0: none yet). */
  #turnStart = 0;

  constructor(private readonly port: InboundPort) {}

  /** Whether reading is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** One message read from the peer, at `now` (performance.now()). */
  receive(m: Message, now: number): void {
    if (this.#paused) {
      // The rest of a read that arrived as the pause began: keep the order.
      if (this.#deferred.length - this.#deferredHead >= MAX_DEFERRED_MESSAGES) {
        this.port.overflow(`flow.backpressure: the peer sent more than ${MAX_DEFERRED_MESSAGES} messages without reading our replies`);
        return;
      }
      this.#deferred.push(m);
      return;
    }
    if (this.#turnStart === 0) {
      this.#turnStart = now;
      nextTurn(this.#endTurn);
    }
    this.port.handle(m);
    const t = this.port.transport;
    if (t.replyBacklog !== undefined && t.replyBacklog() > this.port.replyMark) this.#pause();
    else if (performance.now() - this.#turnStart > TURN_BUDGET_MS) this.#yield();
  }

  /** The link closed: drop what is held. */
  clear(): void {
    this.#deferred = [];
    this.#deferredHead = 0;
  }

  readonly #endTurn = (): void => {
    this.#turnStart = 0;
  };

  /** This turn's budget is spent: hold what else arrives and go on in the next turn. */
  #yield(): void {
    // mutation: equivalent — `this.#paused ||`: receive() only gets here when not paused.
    if (this.#paused || this.port.isClosed()) return;
    this.#paused = true;
    this.port.transport.pauseReading?.();
    nextTurn(this.#resume);
  }

  /** Replies back up: stop reading until they drained to half the mark. */
  #pause(): void {
    const t = this.port.transport;
    // mutation: equivalent — `this.#paused ||`: receive() calls this only when not paused, and
    // #resume clears the flag before handling anything.
    if (this.#paused || this.port.isClosed() || t.onReplyDrain === undefined) return;
    this.#paused = true;
    t.pauseReading?.();
    // Resume in a later turn: the drain can be reported from the write's
    // own callback, and resuming there would chain turn-less work.
    t.onReplyDrain(this.port.replyMark / 2, () => nextTurn(this.#resume));
  }

  readonly #resume = (): void => {
    this.#paused = false;
    const port = this.port;
    // mutation: equivalent — (-> false) the loop and the resumeReading below test isClosed() again.
    if (port.isClosed()) return;
    const t = port.transport;
    const start = performance.now();
    while (this.#deferredHead < this.#deferred.length && !port.isClosed()) {
      const m = this.#deferred[this.#deferredHead]!;
      this.#deferred[this.#deferredHead++] = undefined as never;
      port.handle(m);
      if (t.replyBacklog !== undefined && t.replyBacklog() > port.replyMark) {
        this.#pause();
        return;
      }
      if (performance.now() - start > TURN_BUDGET_MS && this.#deferredHead < this.#deferred.length) {
        this.#paused = true;
        nextTurn(this.#resume);
        return;
      }
    }
    this.#deferred = [];
    this.#deferredHead = 0;
    if (!port.isClosed()) t.resumeReading?.();
  };
}
