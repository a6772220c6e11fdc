/**
 * Where a server keeps nonce → response mappings (core.nonce.dedup).
 *
 * A store is an interface so dedup can span processes: the in-memory store
 * serves one process; `RedisDedupStore` (roam-ts/node) lets N server
 * processes behind one address share one table.
 *
 * A key moves through two states: *pending* (claimed by the one execution
 * that runs the handler) and *done* (holding the response, kept for the
 * retention window). A claim that is neither completed nor renewed lapses
 * after its lease, so a crashed process does not block a retry forever.
 */
import type { Metadata } from "../wire/message.js";

/** A response kept for replay. */
export interface CachedResponse {
  /** Fingerprint of the request it answers (method id + arguments). */
  readonly fingerprint: string;
  readonly payload: Uint8Array;
  readonly metadata: Metadata;
}

export type ClaimResult =
  /** This caller runs the handler; pass `token` to complete/release/renew. */
  | { kind: "claimed"; token: string }
  /** Already answered within the retention window. */
  | { kind: "done"; response: CachedResponse }
  /** Another execution holds the claim: `wait` for its result. */
  | { kind: "pending" }
  /** The store is full of running calls: run without dedup (counted by the dispatcher). */
  | { kind: "untracked" };

export interface DedupStore {
  /** Atomically claims `key` for one execution, or reports its state. */
  claim(key: string, leaseMs: number): Promise<ClaimResult>;
  /** Stores the response of a claimed key for `retentionMs`; waiters get it. */
  complete(key: string, token: string, response: CachedResponse, retentionMs: number): Promise<void>;
  /** Gives a claim up without a response (the caller cancelled): the next duplicate runs the handler. */
  release(key: string, token: string): Promise<void>;
  /** Extends a claim's lease while its handler still runs; false if it was lost. */
  renew(key: string, token: string, leaseMs: number): Promise<boolean>;
  /**
   * Waits while `key` is pending. Resolves with the response once done, or
   * null when it is no longer pending without one (released, lapsed), when
   * `signal` aborts, or after `maxWaitMs`.
   */
  wait(key: string, signal: AbortSignal, maxWaitMs: number): Promise<CachedResponse | null>;
}

/** Retention the spec requires at least (core.nonce.retention): 5 minutes. */
export const MIN_RETENTION_MS = 5 * 60_000;

export interface MemoryDedupStoreOptions {
  /** Most keys kept, pending ones included (default 100 000). */
  maxEntries?: number;
  /** Most bytes of cached responses kept (payload + metadata + key; default 64 MiB). */
  maxBytes?: number;
  /** Clock for expiry (tests); default Date.now. */
  now?: () => number;
}

interface Entry {
  state: "pending" | "done";
  token: string;
  response: CachedResponse | null;
  bytes: number;
  /** Done: end of retention. Pending: not used (the process that claims it is this one). */
  expiresAt: number;
  waiters: Set<(r: CachedResponse | null) => void>;
}

/** Counters of a memory store. */
export interface MemoryDedupStoreStats {
  entries: number;
  bytes: number;
  /** Done entries dropped before their retention ended because a bound was reached. */
  evictedEarly: number;
  /** Done entries dropped after their retention ended. */
  expired: number;
}

/**
 * One process's dedup table. Bounded in entries and bytes: when a bound is
 * reached the oldest answered entries go first (counted in
 * `stats.evictedEarly`, which means the bounds are too small for the load
 * to honour the retention window); running calls are never evicted.
 */
export class MemoryDedupStore implements DedupStore {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private nextToken = 1;
  private evictedEarly = 0;
  private expired = 0;
  readonly maxEntries: number;
  readonly maxBytes: number;
  private readonly now: () => number;

  constructor(options: MemoryDedupStoreOptions = {}) {
    this.maxEntries = options.maxEntries ?? 100_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!(this.maxEntries >= 1) || !(this.maxBytes >= 1)) throw new RangeError("MemoryDedupStore: maxEntries and maxBytes must be at least 1");
    this.now = options.now ?? Date.now;
  }

  get stats(): MemoryDedupStoreStats {
    return { entries: this.entries.size, bytes: this.bytes, evictedEarly: this.evictedEarly, expired: this.expired };
  }

  async claim(key: string, _leaseMs: number): Promise<ClaimResult> {
    this.sweep();
    const e = this.entries.get(key);
    if (e !== undefined) {
      if (e.state === "pending") return { kind: "pending" };
      if (e.expiresAt > this.now()) return { kind: "done", response: e.response! };
      this.drop(key, e);
      this.expired++;
    }
    if (this.entries.size >= this.maxEntries && !this.evictOldestDone()) return { kind: "untracked" };
    const token = String(this.nextToken++);
    const bytes = key.length * 2 + 64;
    this.entries.set(key, { state: "pending", token, response: null, bytes, expiresAt: Infinity, waiters: new Set() });
    this.bytes += bytes;
    return { kind: "claimed", token };
  }

  async complete(key: string, token: string, response: CachedResponse, retentionMs: number): Promise<void> {
    const e = this.entries.get(key);
    if (e === undefined || e.token !== token || e.state !== "pending") return;
    const bytes = key.length * 2 + 64 + response.payload.length + response.fingerprint.length * 2 + metadataBytes(response.metadata);
    this.drop(key, e);
    // Re-inserted at the end: the map stays in completion order, so expiry
    // and eviction work from the front.
    const done: Entry = { state: "done", token, response, bytes, expiresAt: this.now() + retentionMs, waiters: new Set() };
    if (bytes <= this.maxBytes) {
      while (this.bytes + bytes > this.maxBytes && this.evictOldestDone());
      if (this.bytes + bytes <= this.maxBytes) {
        this.entries.set(key, done);
        this.bytes += bytes;
      } else {
        this.evictedEarly++;
      }
    } else {
      this.evictedEarly++;
    }
    for (const w of e.waiters) w(response);
  }

  async release(key: string, token: string): Promise<void> {
    const e = this.entries.get(key);
    if (e === undefined || e.token !== token || e.state !== "pending") return;
    this.drop(key, e);
    for (const w of e.waiters) w(null);
  }

  async renew(key: string, token: string, _leaseMs: number): Promise<boolean> {
    const e = this.entries.get(key);
    return e !== undefined && e.token === token && e.state === "pending";
  }

  wait(key: string, signal: AbortSignal, maxWaitMs: number): Promise<CachedResponse | null> {
    const e = this.entries.get(key);
    if (e === undefined) return Promise.resolve(null);
    if (e.state === "done") return Promise.resolve(e.expiresAt > this.now() ? e.response : null);
    if (signal.aborted) return Promise.resolve(null);
    return new Promise((resolve) => {
      const finish = (r: CachedResponse | null) => {
        e.waiters.delete(finish);
        signal.removeEventListener("abort", onAbort);
        clearTimeout(timer);
        resolve(r);
      };
      const onAbort = () => finish(null);
      const timer = setTimeout(() => finish(null), maxWaitMs);
      timer.unref?.();
      signal.addEventListener("abort", onAbort, { once: true });
      e.waiters.add(finish);
    });
  }

  /** Drops done entries whose retention ended (oldest first; they are in completion order). */
  private sweep(): void {
    const now = this.now();
    for (const [key, e] of this.entries) {
      if (e.state === "pending") continue;
      if (e.expiresAt > now) break;
      this.drop(key, e);
      this.expired++;
    }
  }

  private evictOldestDone(): boolean {
    for (const [key, e] of this.entries) {
      if (e.state !== "done") continue;
      this.drop(key, e);
      this.evictedEarly++;
      return true;
    }
    return false;
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.bytes;
  }
}

function metadataBytes(md: Metadata): number {
  let n = 0;
  for (const [k, v] of md) n += k.length * 2 + (typeof v === "string" ? v.length * 2 : v instanceof Uint8Array ? v.length : 16) + 16;
  return n;
}
