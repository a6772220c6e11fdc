/**
 * Server-side nonce deduplication (core.nonce.dedup) as a layer around any
 * dispatcher:
 *
 *   serve: dedup(serve(Payments, impl), { store })
 *
 * A Request carrying a `roam-nonce` is executed at most once per scope within
 * the retention window: a duplicate gets the cached Response, and a duplicate
 * that arrives while the first execution still runs waits for its result.
 * Requests without a nonce (core.nonce.optional), with a malformed one, or
 * that open channels (core.nonce.channels: channel state cannot be replayed)
 * go straight to the wrapped dispatcher.
 *
 * A deduplicated handler keeps running when its caller's connection drops:
 * its result is what the caller's retry is answered with. An explicit Cancel
 * from the caller still cancels it, and then nothing is cached.
 */
import { blake3 } from "@noble/hashes/blake3.js";
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED } from "../wire/envelope.js";
import { detachedCall, type Connection, type Dispatcher, type IncomingCall } from "../session/connection.js";
import { CancelledError, type RoamError } from "../session/errors.js";
import type { Metadata, MetadataEntry } from "../wire/message.js";
import { nonceHex, readNonce } from "./nonce.js";
import { MemoryDedupStore, MIN_RETENTION_MS, type CachedResponse, type DedupStore } from "./store.js";

export interface DedupOptions {
  /**
   * Where nonce → response mappings live (default: a new MemoryDedupStore,
   * for this dispatcher alone). Share a RedisDedupStore between processes to
   * dedupe across them.
   */
  store?: DedupStore;
  /**
   * Name of the logical service instance (core.nonce.scope): nonces are
   * unique only within a scope, and a cached response is only ever replayed
   * in the scope that produced it. Required with a shared `store`; every
   * process serving the same service must use the same scope. Default with
   * the built-in store: private to this dispatcher.
   */
  scope?: string;
  /**
   * Further narrows the scope per call, e.g. to the authenticated principal
   * from the connection's metadata, so a nonce learned by one tenant can never
   * fetch another tenant's response (core.nonce.storage). Default: none.
   */
  partition?: (call: IncomingCall) => string;
  /** How long a response is kept (default and minimum: 5 minutes, core.nonce.retention). */
  retentionMs?: number;
  /** Lease on a running execution, renewed while it runs (default 30 s). A crashed process's claim lapses after it. */
  leaseMs?: number;
  /** Longest a duplicate waits for the first execution (default 5 minutes). */
  maxWaitMs?: number;
  /**
   * When the store fails (e.g. Redis is unreachable): "fail" answers the call
   * with an error and does not run the handler (default: exactly-once is
   * kept); "run" runs it without dedup.
   */
  onStoreError?: "fail" | "run";
  /** Told about store failures (default: console.error). */
  onError?: (error: unknown, info: { key: string; stage: string }) => void;
}

/** Counters of a dedup layer. */
export interface DedupStats {
  /** Handler executions for requests with a nonce. */
  executed: number;
  /** Duplicates answered from the store (including those that waited). */
  replayed: number;
  /** Duplicates that had to wait for a running execution. */
  waited: number;
  /** Requests without a nonce, or with channels, passed through. */
  passedThrough: number;
  /** Requests whose roam-nonce is not 16 bytes of type Bytes (passed through, not deduplicated). */
  malformed: number;
  /** A nonce reused for a different request in the same scope (answered with an error). */
  conflicts: number;
  /** Requests run without dedup because the store was full of running calls. */
  untracked: number;
  /** Store operations that failed. */
  storeErrors: number;
}

export class DedupDispatcher implements Dispatcher {
  readonly store: DedupStore;
  readonly scope: string;
  readonly retentionMs: number;
  readonly leaseMs: number;
  readonly maxWaitMs: number;
  readonly stats: DedupStats = { executed: 0, replayed: 0, waited: 0, passedThrough: 0, malformed: 0, conflicts: 0, untracked: 0, storeErrors: 0 };
  private readonly partition: ((call: IncomingCall) => string) | undefined;
  private readonly onStoreError: "fail" | "run";
  private readonly onError: (error: unknown, info: { key: string; stage: string }) => void;

  constructor(
    readonly inner: Dispatcher,
    options: DedupOptions = {},
  ) {
    if (options.store && options.scope === undefined) {
      throw new TypeError("dedup: a shared store needs an explicit `scope` naming the service instance (core.nonce.scope)");
    }
    this.store = options.store ?? new MemoryDedupStore();
    this.scope = options.scope ?? `local-${nonceHex(randomBytes(8))}`;
    this.retentionMs = options.retentionMs ?? MIN_RETENTION_MS;
    if (!(this.retentionMs >= MIN_RETENTION_MS)) {
      throw new RangeError(`dedup: retentionMs must be at least ${MIN_RETENTION_MS} (5 minutes, core.nonce.retention), got ${options.retentionMs}`);
    }
    this.leaseMs = options.leaseMs ?? 30_000;
    this.maxWaitMs = options.maxWaitMs ?? 5 * 60_000;
    if (!(this.leaseMs > 0) || !(this.maxWaitMs > 0)) throw new RangeError("dedup: leaseMs and maxWaitMs must be positive");
    this.partition = options.partition;
    this.onStoreError = options.onStoreError ?? "fail";
    this.onError = options.onError ?? ((e, info) => console.error(`roam dedup: store ${info.stage} failed for ${info.key}:`, e));
  }

  dispatch(call: IncomingCall): void {
    const found = readNonce(call.request.metadata);
    if (found.kind === "none" || call.request.channels.length > 0) {
      this.stats.passedThrough++;
      this.inner.dispatch(call);
      return;
    }
    if (found.kind === "malformed") {
      // core.nonce: the value MUST be 16 Bytes. Not a reason to refuse the
      // call (call.metadata.unknown lets servers ignore metadata), but it is
      // not a nonce either: run it plainly.
      this.stats.malformed++;
      this.inner.dispatch(call);
      return;
    }
    const part = this.partition ? this.partition(call) : "";
    const key = `${encodeURIComponent(this.scope)}/${encodeURIComponent(part)}/${nonceHex(found.nonce)}`;
    const fp = fingerprint(call.request.methodId, call.request.payload);
    this.settle(call, key, fp).catch((e) => {
      this.stats.storeErrors++;
      this.onError(e, { key, stage: "claim" });
      if (call.signal.aborted) return;
      if (this.onStoreError === "run") {
        this.stats.untracked++;
        this.inner.dispatch(call);
      } else {
        call.respond(RESPONSE_CANCELLED, [[HANDLER_ERROR_KEY, `the server's dedup store is unavailable, so the call was not run (retry later): ${(e as Error)?.message ?? e}`.slice(0, 1024)]]);
      }
    });
  }

  connectionClosed(connection: Connection, error: RoamError): void {
    this.inner.connectionClosed?.(connection, error);
  }

  private async settle(call: IncomingCall, key: string, fp: string): Promise<void> {
    // Bounded: a claim can be released (its caller cancelled) and re-taken by
    // another duplicate only so many times before this one gives up.
    for (let round = 0; round < 8; round++) {
      const r = await this.store.claim(key, this.leaseMs);
      switch (r.kind) {
        case "done":
          this.replay(call, r.response, fp);
          return;
        case "untracked":
          this.stats.untracked++;
          this.inner.dispatch(call);
          return;
        case "claimed":
          this.execute(call, key, r.token, fp);
          return;
        case "pending": {
          this.stats.waited++;
          const got = await this.store.wait(key, call.signal, this.maxWaitMs);
          if (call.signal.aborted) {
            if (isExplicitCancel(call.signal.reason)) call.respond(RESPONSE_CANCELLED);
            return;
          }
          if (got) {
            this.replay(call, got, fp);
            return;
          }
        }
      }
    }
    call.respond(RESPONSE_CANCELLED, [[HANDLER_ERROR_KEY, "core.nonce.dedup: the first execution of this nonce kept being abandoned; retry with a new call"]]);
  }

  private replay(call: IncomingCall, response: CachedResponse, fp: string): void {
    if (response.fingerprint !== fp) {
      // core.nonce.uniqueness: each logical request has its own nonce. Never
      // hand one request's cached response to a different request.
      this.stats.conflicts++;
      call.respond(RESPONSE_CANCELLED, [[HANDLER_ERROR_KEY, "core.nonce.uniqueness: this roam-nonce was already used for a different request; use a fresh nonce per logical call"]]);
      return;
    }
    this.stats.replayed++;
    call.respond(response.payload, response.metadata);
  }

  private execute(call: IncomingCall, key: string, token: string, fp: string): void {
    this.stats.executed++;
    let renewTimer: ReturnType<typeof setInterval> | undefined;
    const signal = call.signal;
    const onAbort = () => {
      // A Cancel from the caller ends the execution; losing the connection
      // does not (the retry will want the result).
      if (isExplicitCancel(signal.reason)) detached.cancel(signal.reason);
    };
    const detached = detachedCall(call.connection, call.request, (payload, metadata, channels) => {
      if (renewTimer !== undefined) clearInterval(renewTimer);
      signal.removeEventListener("abort", onAbort);
      // The payload may be a view of a shared buffer: copy before any await.
      const response: CachedResponse = { fingerprint: fp, payload: payload.slice(), metadata: copyMetadata(metadata) };
      const cancelled = detached.isCancelled;
      const stored = cancelled ? this.store.release(key, token) : this.store.complete(key, token, response, this.retentionMs);
      stored
        .catch((e) => {
          this.stats.storeErrors++;
          this.onError(e, { key, stage: cancelled ? "release" : "complete" });
        })
        .then(() => call.respond(response.payload, response.metadata, channels));
    });
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) onAbort();
    renewTimer = setInterval(() => {
      this.store.renew(key, token, this.leaseMs).catch((e) => {
        this.stats.storeErrors++;
        this.onError(e, { key, stage: "renew" });
      });
    }, Math.max(10, Math.floor(this.leaseMs / 3)));
    renewTimer.unref?.();
    this.inner.dispatch(detached);
  }
}

/** `dedup(serve(S, impl), options)`: wraps a dispatcher with nonce deduplication. */
export function dedup(inner: Dispatcher, options?: DedupOptions): DedupDispatcher {
  return new DedupDispatcher(inner, options);
}

function isExplicitCancel(reason: unknown): boolean {
  return reason instanceof CancelledError;
}

/** Identifies a request: method id and argument bytes (hex of 16 bytes of BLAKE3). */
export function fingerprint(methodId: bigint, payload: Uint8Array): string {
  const input = new Uint8Array(8 + payload.length);
  new DataView(input.buffer).setBigUint64(0, BigInt.asUintN(64, methodId), true);
  input.set(payload, 8);
  return nonceHex(blake3(input).subarray(0, 16));
}

function copyMetadata(md: Metadata): Metadata {
  return md.map(([k, v]): MetadataEntry => [k, v instanceof Uint8Array ? v.slice() : v]);
}

function randomBytes(n: number): Uint8Array {
  return (globalThis as unknown as { crypto: { getRandomValues(a: Uint8Array): Uint8Array } }).crypto.getRandomValues(new Uint8Array(n));
}
