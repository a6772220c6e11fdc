/**
 * Dedup across processes: Ledger servers in separate Node processes share a
 * RedisDedupStore (a private redis-server this test starts and stops), and a
 * server is killed mid-call and restarted on the same address. Executions are
 * counted in a journal file the server processes append to.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createClient } from "redis";
import { client, ReconnectingClient, generateNonce, type Link } from "../src/index.js";
import { connectTcp, RedisDedupStore } from "../src/node.js";
import { MIN_RETENTION_MS } from "../src/nonce/store.js";
import { Ledger } from "./helpers/ledger.js";
import { startLedgerServer, startRedis, type Proc } from "./helpers/procs.js";
import { tempDir } from "./helpers/testbed-server.js";
import { until } from "./helpers/reconnect-fixture.js";

let redis: Awaited<ReturnType<typeof startRedis>> | null = null;
const procs: Proc[] = [];
const dir = tempDir("roam-ledger-");

before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const p of procs) await p.stop("SIGKILL");
  await redis?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function journal(name: string) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, "");
  return {
    file,
    lines: () =>
      fs
        .readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ") as [string, string, string]),
  };
}

async function ledger(cfg: Parameters<typeof startLedgerServer>[0]) {
  const s = await startLedgerServer(cfg);
  procs.push(s.proc);
  return s;
}

/** Connects to `ports` in turn: each reconnect lands on the next process (a load balancer's round robin). */
function roundRobin(ports: number[]) {
  let i = 0;
  const landed: number[] = [];
  return {
    landed,
    connect: (): Promise<Link> => {
      const port = ports[i++ % ports.length]!;
      landed.push(port);
      return connectTcp({ port, timeoutMs: 2_000 });
    },
  };
}

test("two server processes sharing the Redis store dedupe a retried call that lands on the other process", { timeout: 90_000 }, async () => {
  const j = journal("shared.log");
  const [a, b] = await Promise.all([
    ledger({ journal: j.file, redisPort: redis!.port, scope: "ledger", leaseMs: 600 }),
    ledger({ journal: j.file, redisPort: redis!.port, scope: "ledger", leaseMs: 600 }),
  ]);
  const rr = roundRobin([a.port, b.port]);
  const rc = new ReconnectingClient(rr.connect, { policy: { maxAttempts: 10, initialBackoffMs: 20 } });
  try {
    const api = client(Ledger, rc);
    // A runs it, then loses the link before answering; the retry lands on B,
    // which finds A's response in Redis.
    const r1 = await api.pay("drop-1", 100);
    assert.equal(r1, `paid drop-1 100 by ${a.proc.pid}`);
    assert.deepEqual(rr.landed, [a.port, b.port]);
    assert.deepEqual(j.lines().filter((l) => l[1] === "drop-1"), [
      ["start", "drop-1", String(a.proc.pid)],
      ["done", "drop-1", String(a.proc.pid)],
    ]);
    // B drops the link at once and keeps working for 400 ms; the retry lands
    // on A while B still runs and waits for B's result.
    const r2 = await api.pay("drop-slow-2", 200);
    assert.equal(r2, `paid drop-slow-2 200 by ${b.proc.pid}`);
    assert.deepEqual(rr.landed, [a.port, b.port, a.port]);
    assert.deepEqual(j.lines().filter((l) => l[1] === "drop-slow-2"), [
      ["start", "drop-slow-2", String(b.proc.pid)],
      ["done", "drop-slow-2", String(b.proc.pid)],
    ]);
    // A crashes mid-call: its claim in Redis lapses after the 600 ms lease,
    // and the retry on B runs it, once.
    const call = api.pay("slow-5", 5);
    await until(() => j.lines().some((l) => l[0] === "start" && l[1] === "slow-5"), 5_000, "A to start");
    await a.proc.stop("SIGKILL");
    assert.equal(await call, `paid slow-5 5 by ${b.proc.pid}`);
    assert.deepEqual(
      j.lines().filter((l) => l[1] === "slow-5"),
      [
        ["start", "slow-5", String(a.proc.pid)],
        ["start", "slow-5", String(b.proc.pid)],
        ["done", "slow-5", String(b.proc.pid)],
      ],
    );
  } finally {
    rc.close();
    await a.proc.stop();
    await b.proc.stop();
  }
});

test("the same round robin without a shared store runs the call on both processes (what the Redis store prevents)", { timeout: 60_000 }, async () => {
  const j = journal("separate.log");
  const [a, b] = await Promise.all([ledger({ journal: j.file }), ledger({ journal: j.file })]);
  const rr = roundRobin([a.port, b.port]);
  const rc = new ReconnectingClient(rr.connect, { policy: { maxAttempts: 10, initialBackoffMs: 20 } });
  try {
    // A runs it and drops the link; B, knowing nothing of A, runs it again
    // (and drops too; the third try lands on A, which replays from its own memory).
    await client(Ledger, rc).pay("drop-3", 1);
    const done = j.lines().filter((l) => l[0] === "done" && l[1] === "drop-3");
    assert.deepEqual(done.map((l) => l[2]).sort(), [String(a.proc.pid), String(b.proc.pid)].sort());
  } finally {
    rc.close();
    await a.proc.stop();
    await b.proc.stop();
  }
});

test("a server killed mid-call and restarted on the same address completes the call exactly once; restart→first success measured", { timeout: 60_000 }, async (t) => {
  const j = journal("restart.log");
  const first = await ledger({ journal: j.file });
  const port = first.port;
  // Backoff capped at 250 ms: the restarted server is found within 250 ms of listening.
  const rc = new ReconnectingClient(() => connectTcp({ port, timeoutMs: 2_000 }), { policy: { maxAttempts: Infinity, maxBackoffMs: 250 } });
  try {
    const api = client(Ledger, rc);
    await api.pay("warm-up", 0);
    const call = api.pay("slow-4", 400);
    await until(() => j.lines().some((l) => l[0] === "start" && l[1] === "slow-4"), 5_000, "the handler to start");
    await first.proc.stop("SIGKILL"); // mid-call: started, not done
    const killedAt = performance.now();
    const second = await ledger({ journal: j.file, port });
    const listeningAt = performance.now();
    const r = await call;
    const okAt = performance.now();
    assert.equal(r, `paid slow-4 400 by ${second.proc.pid}`);
    const done = j.lines().filter((l) => l[0] === "done" && l[1] === "slow-4");
    assert.deepEqual(done, [["done", "slow-4", String(second.proc.pid)]], "completed exactly once, by the restarted server");
    t.diagnostic(
      `kill→success ${(okAt - killedAt).toFixed(0)} ms (includes starting a Node process and the 400 ms handler); ` +
        `restarted server listening→call completed ${(okAt - listeningAt).toFixed(0)} ms (includes the 400 ms handler); backoff 100, 200, then 250 ms`,
    );
    await second.proc.stop();
  } finally {
    rc.close();
  }
});

test("Redis store: encrypted values are bound to their key and kept for the retention window (core.nonce.storage, core.nonce.retention)", async () => {
  // core.nonce.storage: with encryptionKey the stored value is ciphertext bound to its key.
  const rcl = createClient({ url: `redis://127.0.0.1:${redis!.port}` });
  await rcl.connect();
  try {
    const key = new Uint8Array(32).fill(7);
    const store = new RedisDedupStore(rcl, { encryptionKey: key, prefix: "enc:" });
    const c = await store.claim("k", 1_000);
    assert.equal(c.kind, "claimed");
    const payload = new TextEncoder().encode("secret-balance-1234");
    await store.complete("k", (c as { token: string }).token, { fingerprint: "fp", payload, metadata: [["m", "v"], ["n", 5n], ["b", Uint8Array.of(1)]] }, MIN_RETENTION_MS);
    const raw = String(await rcl.sendCommand(["GET", "enc:k"]));
    assert.ok(!raw.includes("secret") && !raw.includes(Buffer.from(payload).toString("base64")), "no plaintext in Redis");
    const ttl = Number(await rcl.sendCommand(["PTTL", "enc:k"]));
    assert.ok(ttl > MIN_RETENTION_MS - 5_000 && ttl <= MIN_RETENTION_MS, `retention TTL ${ttl}`);
    const back = await store.claim("k", 1_000);
    assert.equal(back.kind, "done");
    const resp = (back as { response: { payload: Uint8Array; metadata: unknown } }).response;
    assert.deepEqual(resp.payload, payload);
    assert.deepEqual(resp.metadata, [["m", "v"], ["n", 5n], ["b", Uint8Array.of(1)]]);
    // Moved to another key, the ciphertext does not decrypt (bound to its key).
    await rcl.sendCommand(["SET", "enc:other", raw]);
    await assert.rejects(store.claim("other", 1_000));
    const plain = new RedisDedupStore(rcl, { prefix: "enc:" });
    await assert.rejects(plain.claim("k", 1_000), /encrypted/);
    void generateNonce;
  } finally {
    await rcl.quit();
  }
});
