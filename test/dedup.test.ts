/**
 * Server-side nonce deduplication (core.nonce.dedup, retention, scope,
 * storage, optional, server-support) with the in-memory store, over TCP.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { t, defineService, method, arg, serve, client, channel } from "../src/index.js";
import { dedup, MemoryDedupStore, MIN_RETENTION_MS, RemoteHandlerError, CancelledError, type DedupStore, type Metadata } from "../src/index.js";
import { connectTcp, listenTcp } from "../src/node.js";
import { generateNonce } from "../src/nonce/nonce.js";
import { until, gate } from "./helpers/reconnect-fixture.js";

const Bank = defineService("Bank", {
  pay: method([arg("to", t.string), arg("cents", t.u32)], t.u64),
  slowPay: method([arg("to", t.string)], t.u64),
  sum: method([arg("numbers", t.rx(t.i32))], t.i64),
});
const Shop = defineService("Shop", { buy: method([arg("item", t.string)], t.string) });

function bank() {
  let executions = 0;
  let g = gate();
  const impl = {
    pay: (to: string, cents: number) => BigInt(++executions * 1000 + cents + to.length * 0),
    slowPay: async (_to: string) => {
      const n = ++executions;
      await g.promise;
      return BigInt(n);
    },
    sum: async (numbers: AsyncIterable<number>) => {
      executions++;
      let s = 0n;
      for await (const n of numbers) s += BigInt(n);
      return s;
    },
  };
  return {
    impl,
    get executions() {
      return executions;
    },
    release() {
      g.open();
      g = gate();
    },
  };
}

const nonceMd = (n: Uint8Array): Metadata => [["roam-nonce", n]];

async function setup(dispatcher: Parameters<typeof listenTcp>[0]["dispatcher"]) {
  const server = await listenTcp({ port: 0, dispatcher });
  const links = [await connectTcp({ port: server.port! }), await connectTcp({ port: server.port! })];
  return {
    server,
    a: client(Bank, links[0]!.root),
    b: client(Bank, links[1]!.root),
    async close() {
      for (const l of links) l.close();
      await server.close();
    },
  };
}

test("a duplicate nonce gets the cached response without running the handler again (core.nonce.dedup)", async () => {
  const b = bank();
  const d = dedup(serve(Bank, b.impl));
  const s = await setup(d);
  try {
    const n = generateNonce();
    const first = await s.a.pay("alice", 5, { metadata: nonceMd(n) });
    // Same nonce from another connection (a retry after a reconnect).
    const again = await s.b.pay("alice", 5, { metadata: nonceMd(n) });
    assert.equal(again, first);
    assert.equal(b.executions, 1);
    assert.equal(d.stats.replayed, 1);
    // A new nonce is a new call.
    const other = await s.a.pay("alice", 5, { metadata: nonceMd(generateNonce()) });
    assert.notEqual(other, first);
    assert.equal(b.executions, 2);
  } finally {
    await s.close();
  }
});

test("a duplicate arriving while the first still runs waits for its result; the first survives its caller's disconnect", async () => {
  const b = bank();
  const d = dedup(serve(Bank, b.impl));
  const server = await listenTcp({ port: 0, dispatcher: d });
  const l1 = await connectTcp({ port: server.port! });
  const l2 = await connectTcp({ port: server.port! });
  try {
    const n = generateNonce();
    const lost = client(Bank, l1.root).slowPay("bob", { metadata: nonceMd(n) }).catch((e: unknown) => e);
    await until(() => b.executions === 1);
    l1.transport.close(); // the first caller vanishes mid-call
    assert.ok(await lost instanceof Error);
    const retry = client(Bank, l2.root).slowPay("bob", { metadata: nonceMd(n) });
    await until(() => d.stats.waited === 1);
    b.release();
    assert.equal(await retry, 1n);
    assert.equal(b.executions, 1);
  } finally {
    l2.close();
    await server.close();
  }
});

test("an explicit Cancel ends the execution and caches nothing: the next duplicate runs", async () => {
  const b = bank();
  const d = dedup(serve(Bank, b.impl));
  const s = await setup(d);
  try {
    const n = generateNonce();
    const ac = new AbortController();
    const p = s.a.slowPay("c", { metadata: nonceMd(n), signal: ac.signal }).catch((e: unknown) => e);
    await until(() => b.executions === 1);
    ac.abort();
    assert.ok((await p) instanceof CancelledError);
    // The Cancel reached the server: the claim is given up, nothing cached.
    await until(() => (d.store as MemoryDedupStore).stats.entries === 0, 2_000, "the claim to be released");
    b.release();
    const second = s.b.slowPay("c", { metadata: nonceMd(n) });
    await until(() => b.executions === 2, 2000, `second execution; ${JSON.stringify(d.stats)} ${JSON.stringify((d.store as MemoryDedupStore).stats)}`);
    b.release();
    assert.equal(await second, 2n);
  } finally {
    await s.close();
  }
});

test("requests without a nonce, with a malformed one, or with channels run every time (core.nonce.optional, core.nonce.channels)", async () => {
  const b = bank();
  const d = dedup(serve(Bank, b.impl));
  const s = await setup(d);
  try {
    await s.a.pay("x", 1);
    await s.a.pay("x", 1);
    assert.equal(b.executions, 2);
    await s.a.pay("x", 1, { metadata: [["roam-nonce", "not bytes"]] });
    await s.a.pay("x", 1, { metadata: [["roam-nonce", new Uint8Array(8)]] });
    assert.equal(b.executions, 4);
    assert.equal(d.stats.malformed, 2);
    const n = generateNonce();
    for (let i = 0; i < 2; i++) {
      const [tx, rx] = channel<number>();
      const call = s.a.sum(rx, { metadata: nonceMd(n) });
      await tx.send(i);
      await tx.close();
      assert.equal(await call, BigInt(i));
    }
    assert.equal(b.executions, 6);
    assert.equal(d.stats.passedThrough, 4);
  } finally {
    await s.close();
  }
});

test("a server without dedup ignores roam-nonce (core.nonce.server-support)", async () => {
  const b = bank();
  const s = await setup(serve(Bank, b.impl));
  try {
    const n = generateNonce();
    await s.a.pay("x", 1, { metadata: nonceMd(n) });
    await s.a.pay("x", 1, { metadata: nonceMd(n) });
    assert.equal(b.executions, 2);
  } finally {
    await s.close();
  }
});

test("responses are kept at least 5 minutes, then forgotten (core.nonce.retention)", async () => {
  let now = 1_000_000;
  const store = new MemoryDedupStore({ now: () => now });
  const b = bank();
  const d = dedup(serve(Bank, b.impl), { store, scope: "bank" });
  assert.throws(() => dedup(serve(Bank, b.impl), { retentionMs: MIN_RETENTION_MS - 1 }), /at least 300000/);
  assert.equal(d.retentionMs, 5 * 60_000);
  const s = await setup(d);
  try {
    const n = generateNonce();
    const first = await s.a.pay("r", 1, { metadata: nonceMd(n) });
    now += MIN_RETENTION_MS - 1;
    assert.equal(await s.a.pay("r", 1, { metadata: nonceMd(n) }), first);
    assert.equal(b.executions, 1);
    now += 2;
    await s.a.pay("r", 1, { metadata: nonceMd(n) });
    assert.equal(b.executions, 2, "after the window the nonce is new again");
    assert.equal(store.stats.expired, 1);
  } finally {
    await s.close();
  }
});

test("cached responses never cross scopes or partitions (core.nonce.scope, core.nonce.storage)", async () => {
  const store = new MemoryDedupStore();
  const b1 = bank();
  const b2 = bank();
  let shopRuns = 0;
  const bankA = dedup(serve(Bank, b1.impl), { store, scope: "bank-a" });
  const bankB = dedup(serve(Bank, b2.impl), { store, scope: "bank-b" });
  const shop = dedup(serve(Shop, { buy: (item) => `bought ${item} #${++shopRuns}` }), { store, scope: "bank-a" });
  assert.throws(() => dedup(serve(Bank, b1.impl), { store }), /explicit `scope`/);
  const sa = await setup(bankA);
  const sb = await setup(bankB);
  const shopServer = await listenTcp({ port: 0, dispatcher: shop });
  const shopLink = await connectTcp({ port: shopServer.port! });
  try {
    const n = generateNonce();
    await sa.a.pay("x", 1, { metadata: nonceMd(n) });
    await sb.a.pay("x", 1, { metadata: nonceMd(n) });
    assert.equal(b1.executions, 1);
    assert.equal(b2.executions, 1, "the same nonce on another service instance is not deduplicated");
    // Same scope, different request under the same nonce: refused, never the other's response.
    const e = await client(Shop, shopLink.root).buy("hat", { metadata: nonceMd(n) }).catch((x: unknown) => x);
    assert.ok(e instanceof RemoteHandlerError, String(e));
    assert.match(e.message, /core\.nonce\.uniqueness/);
    assert.equal(shopRuns, 0);
    assert.equal(shop.stats.conflicts, 1);
    // Different arguments under one nonce in one scope: also refused.
    const e2 = await sa.a.pay("x", 2, { metadata: nonceMd(n) }).catch((x: unknown) => x);
    assert.ok(e2 instanceof RemoteHandlerError);
  } finally {
    shopLink.close();
    await shopServer.close();
    await sa.close();
    await sb.close();
  }
  // partition: one principal's nonce never reaches another principal's response.
  const b3 = bank();
  const byPrincipal = dedup(serve(Bank, b3.impl), { partition: (call) => String(call.connection.state.get("user")) });
  const server = await listenTcp({ port: 0, dispatcher: byPrincipal, onLink: (l) => l.root.state.set("user", server.links.size) });
  const u1 = await connectTcp({ port: server.port! });
  const u2 = await connectTcp({ port: server.port! });
  try {
    const n = generateNonce();
    await client(Bank, u1.root).pay("y", 1, { metadata: nonceMd(n) });
    await client(Bank, u2.root).pay("y", 1, { metadata: nonceMd(n) });
    assert.equal(b3.executions, 2);
    await client(Bank, u1.root).pay("y", 1, { metadata: nonceMd(n) });
    assert.equal(b3.executions, 2);
  } finally {
    u1.close();
    u2.close();
    await server.close();
  }
});

test("the memory store is bounded in entries and bytes; running calls are never evicted", async () => {
  const store = new MemoryDedupStore({ maxEntries: 3, maxBytes: 10_000 });
  const resp = (n: number) => ({ fingerprint: "f", payload: new Uint8Array(n), metadata: [] as Metadata });
  const keys = ["a", "b", "c", "d"];
  for (const k of keys.slice(0, 3)) {
    const c = await store.claim(k, 1000);
    assert.equal(c.kind, "claimed");
    if (k !== "c") await store.complete(k, (c as { token: string }).token, resp(100), MIN_RETENTION_MS);
  }
  // Full: claiming "d" evicts the oldest answered entry ("a"), never the running "c".
  assert.equal((await store.claim("d", 1000)).kind, "claimed");
  assert.equal(store.stats.entries, 3);
  assert.equal(store.stats.evictedEarly, 1);
  assert.equal((await store.claim("a", 1000)).kind, "claimed", "a was evicted");
  assert.equal((await store.claim("c", 1000)).kind, "pending");
  // Only running calls left: a new key runs untracked rather than evicting them.
  const full = new MemoryDedupStore({ maxEntries: 1 });
  await full.claim("x", 1000);
  assert.equal((await full.claim("y", 1000)).kind, "untracked");
  // Bytes: a response larger than the budget is not kept.
  const small = new MemoryDedupStore({ maxBytes: 500 });
  const c = await small.claim("big", 1000);
  await small.complete("big", (c as { token: string }).token, resp(1000), MIN_RETENTION_MS);
  assert.equal(small.stats.entries, 0);
  assert.equal(small.stats.bytes, 0);
  // Many responses within the byte budget: older ones go first.
  const mid = new MemoryDedupStore({ maxBytes: 2_000 });
  for (let i = 0; i < 10; i++) {
    const k = `k${i}`;
    const cl = await mid.claim(k, 1000);
    await mid.complete(k, (cl as { token: string }).token, resp(400), MIN_RETENTION_MS);
  }
  assert.ok(mid.stats.bytes <= 2_000, `bytes ${mid.stats.bytes}`);
  assert.equal((await mid.claim("k9", 1000)).kind, "done");
  assert.equal((await mid.claim("k0", 1000)).kind, "claimed");
});

test("a failing store refuses the call instead of risking a second execution (onStoreError: fail)", async () => {
  const broken: DedupStore = {
    claim: () => Promise.reject(new Error("connection refused")),
    complete: () => Promise.reject(new Error("x")),
    release: () => Promise.reject(new Error("x")),
    renew: () => Promise.reject(new Error("x")),
    wait: () => Promise.reject(new Error("x")),
  };
  const b = bank();
  const errors: unknown[] = [];
  const d = dedup(serve(Bank, b.impl), { store: broken, scope: "s", onError: (e) => errors.push(e) });
  const s = await setup(d);
  try {
    const e = await s.a.pay("x", 1, { metadata: nonceMd(generateNonce()) }).catch((x: unknown) => x);
    assert.ok(e instanceof RemoteHandlerError);
    assert.match(e.message, /dedup store is unavailable/);
    assert.equal(b.executions, 0);
    assert.equal(errors.length, 1);
  } finally {
    await s.close();
  }
  const run = dedup(serve(Bank, b.impl), { store: broken, scope: "s", onStoreError: "run", onError: () => undefined });
  const s2 = await setup(run);
  try {
    await s2.a.pay("x", 1, { metadata: nonceMd(generateNonce()) });
    assert.equal(b.executions, 1);
  } finally {
    await s2.close();
  }
});
