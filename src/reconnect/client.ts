/**
 * ReconnectingClient (reconnecting-client spec, reconnect.*): a call target
 * that survives the loss of its link. It connects lazily through a
 * connector, shares one reconnect between every caller that needs it, and
 * re-sends a call after a transport failure when that is safe: the call
 * carries a roam-nonce (attached by default, core.nonce.reconnect) or its
 * method is declared idempotent. Typed clients work on it unchanged:
 *
 *   const rc = new ReconnectingClient(tcpConnector({ port }));
 *   const calc = client(Calc, rc);
 *   await calc.divide(7n, 2n, { timeout: 5_000 });   // the timeout covers every retry
 *
 * Transport-agnostic: a connector is any function that yields a started Link
 * (TCP, Unix, WebSocket in Node or a browser, or anything else).
 */
import type { MethodDescriptor } from "../service/define.js";
import { qualified } from "../session/call-common.js";
import type { CallOptions, Connection } from "../session/connection.js";
import { CancelledError, ConnectionClosedError, TimeoutError, type RoamError } from "../session/errors.js";
import type { Link } from "../session/link.js";
import type { CallTarget } from "../session/serve.js";
import type { Metadata } from "../wire/message.js";
import { generateNonce, readNonce, withNonce } from "../nonce/nonce.js";
import { ConnectFailedError, OutcomeUnknownError, RetriesExhaustedError } from "./errors.js";
import { backoffDelay, realClock, resolvePolicy, type Clock, type RetryPolicy } from "./policy.js";

/**
 * Makes new connections on demand (reconnect.connector): called for the
 * first connection and after each loss. It returns a Link whose Hello
 * exchange completed; the Hello parameters are the ones the connector was
 * built with (reconnect.connector.hello), the transport any roam transport
 * (reconnect.connector.transport).
 */
export interface Connector {
  connect(): Promise<Link>;
  /** For messages ("tcp 127.0.0.1:4000"). */
  readonly description?: string;
}
export type ConnectorLike = Connector | (() => Promise<Link>);

export type ReconnectState = "idle" | "connecting" | "connected" | "disconnected" | "gave-up" | "closed";

export type ReconnectEvent =
  /** A connection attempt starts (1 = first of this (re)connect). */
  | { type: "connecting"; attempt: number }
  /** An attempt failed; the next one follows after `delayMs`. */
  | { type: "attempt-failed"; attempt: number; error: unknown; delayMs: number }
  /** A link is up; calls flow again. */
  | { type: "connected"; attempt: number; link: Link }
  /** The link was lost (transport loss, Goodbye); the next call (or `eager`) reconnects. */
  | { type: "disconnected"; cause: RoamError }
  /** A (re)connect used up its attempts; the next call starts a new one. */
  | { type: "gave-up"; error: RetriesExhaustedError | ConnectFailedError }
  | { type: "closed" };

export interface ReconnectingClientOptions {
  /** Retry policy (reconnect.policy); defaults per reconnect.policy.defaults. */
  policy?: Partial<RetryPolicy>;
  /**
   * Attach a fresh roam-nonce to every call and reuse it on each re-send
   * (default true, core.nonce.reconnect). Off: only calls of idempotent
   * methods, or calls whose metadata already carries a roam-nonce, are re-sent.
   */
  nonces?: boolean;
  /** Reconnect as soon as the link is lost, not at the next call (default false). */
  eager?: boolean;
  /**
   * Whether a connector failure is worth another attempt (default: always).
   * Returning false ends the (re)connect at once with ConnectFailedError.
   */
  retryConnectError?: (error: unknown) => boolean;
  /** Told about every state change (also available through `on`). */
  onEvent?: (event: ReconnectEvent) => void;
  /** Time source for backoff (tests use a fake one). */
  clock?: Clock;
  /** Random source for jitter, in [0, 1). */
  random?: () => number;
}

type Listener = (event: ReconnectEvent) => void;

export class ReconnectingClient implements CallTarget {
  readonly policy: RetryPolicy;
  private readonly connector: Connector;
  private readonly nonces: boolean;
  private readonly eager: boolean;
  private readonly retryConnectError: (error: unknown) => boolean;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly listeners = new Set<Listener>();
  private current: Link | null = null;
  private cycle: Promise<Link> | null = null;
  /** What broke the last link, until a new one is up. */
  private lostCause: RoamError | null = null;
  private closedFlag = false;
  private readonly closeController = new AbortController();
  private stateValue: ReconnectState = "idle";
  private connectsValue = 0;

  /** reconnect.construction.lazy: nothing connects until the first call. */
  constructor(connector: ConnectorLike, options: ReconnectingClientOptions = {}) {
    this.connector = typeof connector === "function" ? { connect: connector } : connector;
    this.policy = resolvePolicy(options.policy);
    this.nonces = options.nonces ?? true;
    this.eager = options.eager ?? false;
    this.retryConnectError = options.retryConnectError ?? (() => true);
    this.clock = options.clock ?? realClock;
    this.random = options.random ?? Math.random;
    if (options.onEvent) this.listeners.add(options.onEvent);
  }

  get state(): ReconnectState {
    return this.stateValue;
  }
  /** Links established so far (first connection included). */
  get connects(): number {
    return this.connectsValue;
  }
  /** The live link, if any (it may drop at any moment). */
  get link(): Link | null {
    return this.current && !this.current.isClosed ? this.current : null;
  }

  /** Subscribes to state events; returns the unsubscribe function. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Calls `method` (reconnect.call). Transport failures reconnect and re-send
   * when safe; RPC errors reach the caller untouched (reconnect.error.rpc).
   * `timeout` and `signal` cover the whole call, waits for reconnects included.
   */
  call<A extends any[], T, E>(method: MethodDescriptor<A, T, E>, args: A, options?: CallOptions): Promise<T> {
    return this.run(qualified(method), method.hasChannels, method.idempotent, options, (conn, metadata, signal) =>
      conn.call(method, args, options?.onResponseMetadata ? { metadata, signal, onResponseMetadata: options.onResponseMetadata } : { metadata, signal }),
    );
  }

  /**
   * The current connection, connecting first if needed (reconnect.handle).
   * It may become invalid when the link drops; prefer `call` or
   * `client(Service, reconnectingClient)`, which reconnect.
   */
  async handle(): Promise<Connection> {
    return (await this.acquire(undefined)).root;
  }

  /** Closes the current link and stops reconnecting; pending and later calls fail with ConnectionClosedError. */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.closeController.abort(new ConnectionClosedError("the ReconnectingClient was closed", "local"));
    const l = this.current;
    this.current = null;
    l?.close();
    this.setState("closed");
    this.emit({ type: "closed" });
  }

  // --- calls ------------------------------------------------------------------

  private async run<T>(
    name: string,
    hasChannels: boolean,
    idempotent: boolean,
    options: CallOptions | undefined,
    send: (conn: Connection, metadata: Metadata, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const userSignal = options?.signal;
    if (userSignal?.aborted) throw new CancelledError(name, "local", userSignal.reason);
    // One signal for the whole logical call: the caller's abort and the
    // call's timeout end it wherever it is (sending, or waiting for a reconnect).
    const ctl = new AbortController();
    const onUserAbort = () => ctl.abort(new CancelledError(name, "local", userSignal!.reason));
    userSignal?.addEventListener("abort", onUserAbort, { once: true });
    const timeout = options?.timeout;
    const timer = timeout !== undefined && Number.isFinite(timeout) ? setTimeout(() => ctl.abort(new TimeoutError(name, timeout)), Math.max(0, timeout)) : undefined;
    try {
      let metadata = options?.metadata ?? [];
      const given = readNonce(metadata);
      let hasNonce = given.kind === "ok";
      if (given.kind === "none" && this.nonces) {
        // core.nonce.new-request: one fresh nonce per logical call, kept for
        // every re-send of it (core.nonce.retry).
        metadata = withNonce(metadata, generateNonce());
        hasNonce = true;
      }
      const retryable = !hasChannels && (hasNonce || idempotent);
      for (let sends = 1; ; sends++) {
        const link = await this.acquire(ctl.signal);
        try {
          return await send(link.root, metadata, ctl.signal);
        } catch (e) {
          if (ctl.signal.aborted) throw ctl.signal.reason;
          // reconnect.trigger.not-rpc: only a lost link reconnects.
          if (!(e instanceof ConnectionClosedError) || this.closedFlag) throw e;
          this.linkFailed(link, e);
          if (hasChannels) throw new OutcomeUnknownError(name, "channels", e);
          if (!retryable) throw new OutcomeUnknownError(name, "no-nonce", e);
          // A call that loses every link it is sent on (say, one that crashes
          // the server) is not re-sent forever.
          if (sends >= this.policy.maxAttempts) throw new RetriesExhaustedError(e, sends, e);
        }
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      userSignal?.removeEventListener("abort", onUserAbort);
    }
  }

  // --- connection management ---------------------------------------------------------

  /** The live link, or the shared (re)connect every caller waits on (reconnect.concurrency.*). */
  private acquire(signal: AbortSignal | undefined): Promise<Link> {
    if (this.closedFlag) return Promise.reject(new ConnectionClosedError("the ReconnectingClient was closed", "local"));
    const l = this.current;
    if (l !== null && !l.isClosed) return Promise.resolve(l);
    const cycle = this.cycle ?? this.startCycle();
    if (!signal) return cycle;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Link>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      cycle.then(
        (v) => {
          signal.removeEventListener("abort", onAbort);
          resolve(v);
        },
        (e) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  }

  private startCycle(): Promise<Link> {
    const p = this.connectCycle();
    this.cycle = p;
    const clear = () => {
      if (this.cycle === p) this.cycle = null;
    };
    p.then(clear, clear);
    return p;
  }

  /** reconnect.flow: attempt, back off, attempt again, up to maxAttempts. */
  private async connectCycle(): Promise<Link> {
    // Let startCycle() publish this cycle before anything can settle it.
    await Promise.resolve();
    const original = this.lostCause;
    const closedError = () => new ConnectionClosedError("the ReconnectingClient was closed", "local");
    try {
      for (let attempt = 1; ; attempt++) {
        if (this.closedFlag) throw closedError();
        this.setState("connecting");
        this.emit({ type: "connecting", attempt });
        let link: Link;
        try {
          link = await this.connector.connect();
        } catch (e) {
          if (this.closedFlag) throw closedError();
          if (!this.retryConnectError(e)) throw new ConnectFailedError(attempt, e);
          if (attempt >= this.policy.maxAttempts) {
            throw original ? new RetriesExhaustedError(original, attempt, e) : new ConnectFailedError(attempt, e);
          }
          const delayMs = backoffDelay(this.policy, attempt, this.random);
          this.emit({ type: "attempt-failed", attempt, error: e, delayMs });
          await this.clock.sleep(delayMs, this.closeController.signal);
          continue;
        }
        if (this.closedFlag) {
          link.close();
          throw closedError();
        }
        this.adopt(link, attempt);
        return link;
      }
    } catch (e) {
      if (!this.closedFlag && (e instanceof RetriesExhaustedError || e instanceof ConnectFailedError)) {
        this.setState("gave-up");
        this.emit({ type: "gave-up", error: e });
      }
      throw e;
    }
  }

  private adopt(link: Link, attempt: number): void {
    this.current = link;
    this.lostCause = null;
    this.connectsValue++;
    link.onClose((cause) => this.linkClosed(link, cause));
    if (link.isClosed) return;
    this.setState("connected");
    this.emit({ type: "connected", attempt, link });
  }

  /** reconnect.lifecycle step 4: the link is dead; forget it (the next call reconnects). */
  private linkClosed(link: Link, cause: RoamError): void {
    if (this.current !== link) return;
    this.current = null;
    if (this.closedFlag) return;
    this.lostCause = cause;
    this.setState("disconnected");
    this.emit({ type: "disconnected", cause });
    if (this.eager && this.cycle === null) this.startCycle().catch(() => undefined);
  }

  /** A call saw the link fail: make sure it is fully closed (reconnect.driver.cleanup). */
  private linkFailed(link: Link, cause: RoamError): void {
    // Forget it first, so the cause reported is the call's, not the close's.
    if (this.current === link) this.linkClosed(link, cause);
    link.close(); // idempotent; closes the transport if the failure left it open
  }

  private setState(s: ReconnectState): void {
    this.stateValue = s;
  }

  private emit(event: ReconnectEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // a listener's failure must not break reconnection
      }
    }
  }
}
