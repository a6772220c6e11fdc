/**
 * A dedup store in Redis, shared by every server process that serves the
 * same service behind one address: a retry that lands on another process
 * finds the first execution's response (or waits for it).
 *
 * It takes a connected client rather than importing one, so roam-ts does not
 * depend on a Redis package: pass node-redis's client as it is
 * (`createClient()` from `redis`; it has `sendCommand(string[])`), or adapt
 * another client in one line, e.g. ioredis:
 * `{ sendCommand: (a) => ioredis.call(a[0], ...a.slice(1)) }`.
 *
 * Keys: `<prefix><scope>/<partition>/<nonce hex>`. Pending claims carry a
 * lease (PX) renewed while the handler runs, so a crashed process's claim
 * lapses; answered keys expire after the retention window (PX).
 * core.nonce.storage: responses may be sensitive. Keep Redis private
 * (ACLs/AUTH, TLS, no public port) and, where others can read it, pass
 * `encryptionKey`: values are then AES-256-GCM encrypted, bound to their key.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from "node:crypto";
import type { Metadata, MetadataEntry } from "../wire/message.js";
import type { CachedResponse, ClaimResult, DedupStore } from "./store.js";

/** The one method the store uses: run a Redis command, get its reply. */
export interface RedisCommandClient {
  sendCommand(args: string[]): Promise<unknown>;
}

export interface RedisDedupStoreOptions {
  /** Key prefix (default "roam:nonce:"). */
  prefix?: string;
  /** How often a waiting duplicate looks for the first execution's result (default 25 ms). */
  pollMs?: number;
  /** 32 bytes: encrypt stored responses with AES-256-GCM (default: stored in clear). */
  encryptionKey?: Uint8Array;
}

const RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

export class RedisDedupStore implements DedupStore {
  private readonly prefix: string;
  private readonly pollMs: number;
  private readonly encryptionKey: Buffer | null;

  constructor(
    private readonly redis: RedisCommandClient,
    options: RedisDedupStoreOptions = {},
  ) {
    if (typeof redis?.sendCommand !== "function") throw new TypeError("RedisDedupStore needs a client with sendCommand(args: string[]) (node-redis's createClient() has it)");
    this.prefix = options.prefix ?? "roam:nonce:";
    this.pollMs = options.pollMs ?? 25;
    if (options.encryptionKey !== undefined && options.encryptionKey.length !== 32) throw new RangeError("RedisDedupStore: encryptionKey must be 32 bytes (AES-256)");
    this.encryptionKey = options.encryptionKey ? Buffer.from(options.encryptionKey) : null;
  }

  async claim(key: string, leaseMs: number): Promise<ClaimResult> {
    const k = this.prefix + key;
    // SET NX either claims, or the key exists: read it. It can expire in
    // between (a lapsed lease): then try again.
    for (let i = 0; i < 4; i++) {
      const token = "P" + randomUUID();
      const r = await this.redis.sendCommand(["SET", k, token, "NX", "PX", String(Math.max(1, Math.ceil(leaseMs)))]);
      if (r === "OK") return { kind: "claimed", token };
      const v = await this.get(k);
      if (v === null) continue;
      if (v.startsWith("P")) return { kind: "pending" };
      return { kind: "done", response: this.decode(k, v) };
    }
    throw new Error(`RedisDedupStore: ${k} kept changing under a claim`);
  }

  async complete(key: string, _token: string, response: CachedResponse, retentionMs: number): Promise<void> {
    const k = this.prefix + key;
    await this.redis.sendCommand(["SET", k, this.encode(k, response), "PX", String(Math.ceil(retentionMs))]);
  }

  async release(key: string, token: string): Promise<void> {
    await this.redis.sendCommand(["EVAL", RELEASE, "1", this.prefix + key, token]);
  }

  async renew(key: string, token: string, leaseMs: number): Promise<boolean> {
    const r = await this.redis.sendCommand(["EVAL", RENEW, "1", this.prefix + key, token, String(Math.max(1, Math.ceil(leaseMs)))]);
    return Number(r) === 1;
  }

  async wait(key: string, signal: AbortSignal, maxWaitMs: number): Promise<CachedResponse | null> {
    const k = this.prefix + key;
    const deadline = Date.now() + maxWaitMs;
    while (!signal.aborted && Date.now() < deadline) {
      const v = await this.get(k);
      if (v === null) return null; // released or lapsed: claim again
      if (!v.startsWith("P")) return this.decode(k, v);
      await sleep(this.pollMs, signal);
    }
    return null;
  }

  private async get(k: string): Promise<string | null> {
    const v = await this.redis.sendCommand(["GET", k]);
    if (v === null || v === undefined) return null;
    return typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  }

  private encode(k: string, r: CachedResponse): string {
    const json = JSON.stringify({
      f: r.fingerprint,
      p: Buffer.from(r.payload).toString("base64"),
      m: r.metadata.map(([name, v]) => [name, typeof v === "string" ? { s: v } : typeof v === "bigint" ? { u: v.toString() } : { b: Buffer.from(v).toString("base64") }]),
    });
    if (!this.encryptionKey) return "D" + json;
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.encryptionKey, iv);
    c.setAAD(Buffer.from(k, "utf8"));
    const body = Buffer.concat([c.update(json, "utf8"), c.final()]);
    return "E" + Buffer.concat([iv, c.getAuthTag(), body]).toString("base64");
  }

  private decode(k: string, v: string): CachedResponse {
    let json: string;
    if (v.startsWith("D")) {
      if (this.encryptionKey) throw new Error(`RedisDedupStore: ${k} holds an unencrypted response but this store requires encryption`);
      json = v.slice(1);
    } else if (v.startsWith("E")) {
      if (!this.encryptionKey) throw new Error(`RedisDedupStore: ${k} holds an encrypted response; configure encryptionKey`);
      const raw = Buffer.from(v.slice(1), "base64");
      const d = createDecipheriv("aes-256-gcm", this.encryptionKey, raw.subarray(0, 12));
      d.setAAD(Buffer.from(k, "utf8"));
      d.setAuthTag(raw.subarray(12, 28));
      json = Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
    } else {
      throw new Error(`RedisDedupStore: ${k} holds a value this store did not write`);
    }
    const o = JSON.parse(json) as { f: string; p: string; m: [string, { s?: string; u?: string; b?: string }][] };
    const metadata: Metadata = o.m.map(([name, v]): MetadataEntry => [name, v.s !== undefined ? v.s : v.u !== undefined ? BigInt(v.u) : new Uint8Array(Buffer.from(v.b ?? "", "base64"))]);
    return { fingerprint: o.f, payload: new Uint8Array(Buffer.from(o.p, "base64")), metadata };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
