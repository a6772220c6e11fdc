/**
 * ReconnectingClient over real sockets (reconnecting-client spec, reconnect.*;
 * client side of core.nonce.*). Servers are stopped and restarted on the same
 * address under running calls; handler executions are counted.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { t, defineService, method, arg, serve, client, err, channel } from "../src/index.js";
import {
  ReconnectingClient,
  RetriesExhaustedError,
  ConnectFailedError,
  OutcomeUnknownError,
  DEFAULT_RETRY_POLICY,
  backoffDelay,
  dedup,
  ConnectionClosedError,
  UnknownMethodError,
  UserError,
  TimeoutError,
  CancelledError,
  RoamError,
  type ReconnectEvent,
  type Clock,
  type Dispatcher,
  type Link,
} from "../src/index.js";
import { connectTcp, linkOverStream } from "../src/node.js";
import { nonceHex, readNonce, NONCE_BYTES } from "../src/nonce/nonce.js";
import { resolvePolicy } from "../src/reconnect/policy.js";
import { RestartableServer, until, gate } from "./helpers/reconnect-fixture.js";
import { TRANSPORTS } from "./helpers/testbed-server.js";

const Svc = defineService("ReconnectTest", {
  add: method([arg("a", t.i32), arg("b", t.i32)], t.i64),
  hold: method([arg("id", t.string)], t.string),
  read: method([arg("key", t.string)], t.string, { idempotent: true }),
  check: method([arg("n", t.u32)], t.result(t.u32, t.literals(["Odd"]))),
  sum: method([arg("numbers", t.rx(t.i32))], t.i64),
});
const Other = defineService("SomethingElse", { ping: method([], t.unit) });

/** Handler state shared by every (re)started server of a test. */
function makeService() {
  const started = new Map<string, number>();
  const completed = new Map<string, number>();
  const gates = new Map<string, ReturnType<typeof gate>>();
  const arrivals: { method: string; nonce: string }[] = [];
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const gateFor = (id: string) => {
    let g = gates.get(id);
    if (!g) gates.set(id, (g = gate()));
    return g;
  };
  const inner = serve(Svc, {
    add: (a, b) => BigInt(a + b),
    hold: async (id) => {
      bump(started, id);
      await gateFor(id).promise;
      bump(completed, id);
      return `done:${id}`;
    },
    read: (key) => {
      bump(started, `read:${key}`);
      return `value:${key}`;
    },
    check: (n) => (n % 2 === 1 ? err("Odd" as const) : n),
    sum: async (numbers) => {
      bump(started, "sum");
      let s = 0n;
      for await (const n of numbers) s += BigInt(n);
      return s;
    },
  });
  /** Records what arrives (method, nonce) before the dedup layer sees it. */
  const recorder = (d: Dispatcher): Dispatcher => ({
    dispatch(call) {
      const n = readNonce(call.request.metadata);
      const m = [...Object.values(Svc.methods)].find((x) => x.id === call.request.methodId);
      arrivals.push({ method: m?.name ?? "?", nonce: n.kind === "ok" ? nonceHex(n.nonce) : n.kind });
      d.dispatch(call);
    },
    connectionClosed: (c, e) => d.connectionClosed?.(c, e),
  });
  return { started, completed, gateFor, arrivals, plain: recorder(inner), deduped: recorder(dedup(inner)) };
}

const fast = { maxAttempts: 40, initialBackoffMs: 10, maxBackoffMs: 50 };

function track(rc: ReconnectingClient): ReconnectEvent[] {
  const events: ReconnectEvent[] = [];
  rc.on((e) => events.push(e));
  return events;
}

for (const kind of TRANSPORTS) {
  test(`${kind}: the server drops mid-call and restarts on the same address; the call completes exactly once (reconnect.test.basic)`, async () => {
    const svc = makeService();
    const srv = new RestartableServer(kind, svc.deduped);
    await srv.start();
    const rc = new ReconnectingClient(srv.connector(), { policy: fast });
    const events = track(rc);
    try {
      const api = client(Svc, rc);
      assert.equal(await api.add(1, 2), 3n);
      const firstLink = rc.link!;
      const call = api.hold("payment-1");
      await until(() => svc.started.get("payment-1") === 1, 5_000, "the handler to start");
      await srv.restart("drop", 50);
      // The retry reached the restarted server while the first execution still runs.
      await until(() => svc.arrivals.filter((a) => a.method === "hold").length === 2, 5_000, "the retry");
      svc.gateFor("payment-1").open();
      assert.equal(await call, "done:payment-1");
      assert.equal(svc.started.get("payment-1"), 1, "the handler ran once");
      assert.equal(svc.completed.get("payment-1"), 1);
      const holds = svc.arrivals.filter((a) => a.method === "hold");
      assert.equal(holds[0]!.nonce, holds[1]!.nonce, "the retry reused the nonce (core.nonce.retry)");
      assert.equal(holds[0]!.nonce.length, NONCE_BYTES * 2);
      // reconnect.driver.cleanup: the old link is closed, the server holds only the new one.
      assert.equal(firstLink.isClosed, true);
      assert.notEqual(rc.link, firstLink);
      await until(() => srv.server!.links.size === 1, 2_000, "one server link");
      assert.equal(rc.connects, 2);
      const kinds = events.map((e) => e.type);
      assert.deepEqual(kinds.slice(0, 2), ["connecting", "connected"]);
      assert.ok(kinds.includes("disconnected"));
      assert.equal(kinds.at(-1), "connected");
    } finally {
      rc.close();
      await srv.dispose();
    }
  });
}

test("without server-side dedup the same drop runs the handler twice (what the nonce layer prevents)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector(), { policy: fast });
  try {
    const call = client(Svc, rc).hold("p");
    await until(() => svc.started.get("p") === 1);
    await srv.restart("drop", 20);
    await until(() => svc.started.get("p") === 2, 5_000, "the re-run");
    svc.gateFor("p").open();
    assert.equal(await call, "done:p");
    assert.equal(svc.started.get("p"), 2);
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("no connection before the first call (reconnect.test.lazy, reconnect.construction.lazy)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  let connects = 0;
  const base = srv.connector();
  const rc = new ReconnectingClient(() => {
    connects++;
    return base.connect();
  });
  try {
    assert.equal(rc.state, "idle");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(connects, 0);
    assert.equal(srv.server!.links.size, 0);
    assert.equal(await client(Svc, rc).add(2, 3), 5n);
    assert.equal(connects, 1);
    assert.equal(rc.state, "connected");
    await client(Svc, rc).add(2, 3);
    assert.equal(connects, 1, "a healthy link is reused");
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("callers during one outage share one reconnect and all succeed after it (reconnect.test.concurrent)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.deduped);
  await srv.start();
  let connectorCalls = 0;
  const base = srv.connector();
  const rc = new ReconnectingClient(
    () => {
      connectorCalls++;
      return base.connect();
    },
    { policy: { maxAttempts: 100, initialBackoffMs: 20, maxBackoffMs: 20 } },
  );
  const events = track(rc);
  try {
    const api = client(Svc, rc);
    await api.add(0, 0);
    await srv.stop("drop");
    await until(() => rc.state === "disconnected", 2_000, "the client to see the drop");
    const calls = Array.from({ length: 8 }, (_, i) => api.add(i, 100));
    await new Promise((r) => setTimeout(r, 150));
    const cyclesDuringOutage = events.filter((e) => e.type === "connecting" && e.attempt === 1).length;
    assert.equal(cyclesDuringOutage, 2, "one cycle for the first connect, one shared reconnect");
    await srv.start();
    assert.deepEqual(await Promise.all(calls), Array.from({ length: 8 }, (_, i) => BigInt(i + 100)));
    assert.equal(rc.connects, 2, "one new link for all eight callers");
    assert.equal(events.filter((e) => e.type === "connected").length, 2);
    // Every failed attempt belonged to that one cycle: attempts are numbered 1..n without restarts.
    const attempts = events.filter((e) => e.type === "connecting").map((e) => (e as { attempt: number }).attempt);
    assert.deepEqual(attempts.slice(1), Array.from({ length: attempts.length - 1 }, (_, i) => i + 1));
    assert.equal(connectorCalls, attempts.length);
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("the server stays down: RetriesExhausted after maxAttempts (reconnect.test.exhaustion)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  let connectorCalls = 0;
  const base = srv.connector();
  const rc = new ReconnectingClient(() => {
    connectorCalls++;
    return base.connect();
  });
  const events = track(rc);
  try {
    const api = client(Svc, rc);
    await api.add(1, 1);
    await srv.stop("drop");
    await until(() => rc.state === "disconnected");
    const e = await api.add(1, 1).then(
      () => assert.fail("the call succeeded with the server down"),
      (x: unknown) => x,
    );
    assert.ok(e instanceof RetriesExhaustedError, String(e));
    assert.equal(e.attempts, DEFAULT_RETRY_POLICY.maxAttempts);
    assert.ok(e.original instanceof ConnectionClosedError, "original: what broke the link");
    assert.equal((e.original as ConnectionClosedError).by, "transport");
    assert.match(String((e.cause as Error).message), /ECONNREFUSED/);
    assert.equal(connectorCalls, 1 + 3);
    assert.equal(rc.state, "gave-up");
    assert.equal(events.at(-1)!.type, "gave-up");
    // After giving up, the next call starts a new cycle (and succeeds once the server is back).
    await srv.start();
    assert.equal(await api.add(2, 2), 4n);
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("connector failures: ConnectFailed for the first connection, and at once for a non-retryable error (reconnect.error.connect-failed)", async () => {
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
  const port = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const rc = new ReconnectingClient(() => connectTcp({ port }), { policy: { initialBackoffMs: 1 } });
  const e = await client(Svc, rc).add(1, 1).catch((x: unknown) => x);
  assert.ok(e instanceof ConnectFailedError, String(e));
  assert.equal(e.attempts, 3);
  assert.match(e.message, /could not connect after 3/);
  let calls = 0;
  const rc2 = new ReconnectingClient(
    () => {
      calls++;
      return Promise.reject(new Error("bad certificate"));
    },
    { retryConnectError: (x) => !/certificate/.test(String(x)) },
  );
  const e2 = await client(Svc, rc2).add(1, 1).catch((x: unknown) => x);
  assert.ok(e2 instanceof ConnectFailedError);
  assert.equal(e2.attempts, 1);
  assert.equal(calls, 1);
});

test("backoff: min(initial * multiplier^(n-1), max) between attempts, defaults per spec (reconnect.test.backoff)", async () => {
  // reconnect.policy.defaults
  assert.deepEqual({ ...DEFAULT_RETRY_POLICY }, { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 5_000, backoffMultiplier: 2, jitter: 0 });
  const p = resolvePolicy({ maxAttempts: 8, initialBackoffMs: 100, maxBackoffMs: 1_000 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(p, n)), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([1, 2, 3].map((n) => backoffDelay(resolvePolicy({ backoffMultiplier: 3, initialBackoffMs: 10 }), n)), [10, 30, 90]);
  // jitter takes up to its fraction off each delay.
  const j = resolvePolicy({ jitter: 0.5 });
  assert.equal(backoffDelay(j, 2, () => 0), 200);
  assert.equal(backoffDelay(j, 2, () => 0.5), 150);
  assert.equal(backoffDelay(j, 2, () => 0.999999) > 100, true);
  assert.throws(() => resolvePolicy({ maxAttempts: 0 }), RangeError);
  assert.throws(() => resolvePolicy({ jitter: 2 }), RangeError);

  // The client waits exactly those delays between failed attempts (fake clock).
  const sleeps: number[] = [];
  let now = 0;
  const clock: Clock = {
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
  const attemptsAt: number[] = [];
  const rc = new ReconnectingClient(
    () => {
      attemptsAt.push(now);
      return Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
    },
    { clock, policy: { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 300 } },
  );
  const e = await client(Svc, rc).add(1, 1).catch((x: unknown) => x);
  assert.ok(e instanceof ConnectFailedError);
  assert.deepEqual(sleeps, [100, 200, 300, 300], "no wait after the last attempt");
  assert.deepEqual(attemptsAt, [0, 100, 300, 600, 900]);

  // And in real time, over a real refused port: attempts are at least that far apart.
  const dead = net.createServer();
  await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
  const port = (dead.address() as net.AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  const times: number[] = [];
  const real = new ReconnectingClient(
    () => {
      times.push(performance.now());
      return connectTcp({ port });
    },
    { policy: { maxAttempts: 3, initialBackoffMs: 40, backoffMultiplier: 2 } },
  );
  await client(Svc, real).add(1, 1).catch(() => undefined);
  assert.equal(times.length, 3);
  assert.ok(times[1]! - times[0]! >= 39, `first gap ${times[1]! - times[0]!} ms`);
  assert.ok(times[2]! - times[1]! >= 79, `second gap ${times[2]! - times[1]!} ms`);
});

test("RPC errors pass through without a reconnect (reconnect.test.rpc-passthrough)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector());
  const events = track(rc);
  try {
    const api = client(Svc, rc);
    const first = await api.add(1, 1);
    assert.equal(first, 2n);
    const link = rc.link;
    const unknown = await client(Other, rc).ping().catch((x: unknown) => x);
    assert.ok(unknown instanceof UnknownMethodError, String(unknown));
    const user = await api.check(3).catch((x: unknown) => x);
    assert.ok(user instanceof UserError);
    assert.equal((user as UserError).error, "Odd");
    assert.equal(rc.link, link, "same link");
    assert.equal(rc.connects, 1);
    assert.equal(events.filter((e) => e.type === "disconnected").length, 0);
    assert.equal(await api.check(4), 4);
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("a Goodbye from the server triggers a reconnect (reconnect.test.goodbye)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.deduped);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector(), { policy: fast });
  const events = track(rc);
  try {
    const api = client(Svc, rc);
    await api.add(1, 1);
    const inFlight = api.hold("g");
    await until(() => svc.started.get("g") === 1);
    await srv.stop("goodbye", "maintenance");
    const disc = events.find((e) => e.type === "disconnected") as Extract<ReconnectEvent, { type: "disconnected" }>;
    assert.ok(disc, "disconnected event");
    assert.ok(disc.cause instanceof ConnectionClosedError);
    assert.equal((disc.cause as ConnectionClosedError).by, "remote");
    assert.equal((disc.cause as ConnectionClosedError).reason, "maintenance");
    await srv.start();
    svc.gateFor("g").open();
    assert.equal(await inFlight, "done:g");
    assert.equal(svc.started.get("g"), 1);
    assert.equal(await api.add(5, 5), 10n);
    assert.equal(rc.connects, 2);
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("nonces: a fresh 16-byte roam-nonce per logical call, from crypto.getRandomValues (core.nonce, core.nonce.generation, core.nonce.new-request)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector());
  const original = globalThis.crypto.getRandomValues.bind(globalThis.crypto);
  let randomCalls = 0;
  const spy = <T extends ArrayBufferView | null>(a: T): T => {
    randomCalls++;
    return original(a as unknown as Uint8Array) as unknown as T;
  };
  (globalThis.crypto as { getRandomValues: unknown }).getRandomValues = spy;
  try {
    const api = client(Svc, rc);
    for (let i = 0; i < 20; i++) await api.add(i, i);
    assert.equal(randomCalls, 20);
    const nonces = svc.arrivals.map((a) => a.nonce);
    assert.equal(nonces.length, 20);
    for (const n of nonces) assert.match(n, /^[0-9a-f]{32}$/);
    assert.equal(new Set(nonces).size, 20, "every logical call has its own nonce");
    // A nonce the caller chose is kept as it is (e.g. to retry across client restarts).
    const mine = Uint8Array.from({ length: 16 }, (_, i) => i);
    await api.add(1, 1, { metadata: [["roam-nonce", mine]] });
    assert.equal(svc.arrivals.at(-1)!.nonce, nonceHex(mine));
    assert.equal(svc.arrivals.filter((a) => a.nonce === nonceHex(mine)).length, 1);
  } finally {
    (globalThis.crypto as { getRandomValues: unknown }).getRandomValues = original;
    rc.close();
    await srv.dispose();
  }
});

test("without a nonce only idempotent methods are re-sent; others fail with OutcomeUnknownError", async () => {
  const svc = makeService();
  // read() is idempotent; hold() is not.
  let dropNext = false;
  const dropping: Dispatcher = {
    dispatch(call) {
      if (dropNext) {
        dropNext = false;
        // The link dies after the request arrived and the handler ran; the
        // response is lost: the caller cannot know whether it ran.
        srv.accepted.find((l) => l.root === call.connection)!.transport.close();
        svc.plain.dispatch(call);
        return;
      }
      svc.plain.dispatch(call);
    },
  };
  const srv = new RestartableServer("tcp", dropping);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector(), { nonces: false, policy: fast });
  try {
    const api = client(Svc, rc);
    dropNext = true;
    assert.equal(await api.read("k"), "value:k");
    assert.equal(svc.started.get("read:k"), 2, "re-sent once after the drop");
    assert.equal(svc.arrivals.at(-1)!.nonce, "none");
    dropNext = true;
    const e = await api.hold("x").catch((x: unknown) => x);
    assert.ok(e instanceof OutcomeUnknownError, String(e));
    assert.equal(e.why, "no-nonce");
    assert.match(e.message, /may or may not have run/);
    assert.ok(e.cause instanceof ConnectionClosedError);
    assert.equal(svc.started.get("x"), 1, "not re-sent");
    // The client is healthy again for the next call.
    assert.equal(await api.add(1, 2), 3n);
    svc.gateFor("x").open();
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("calls with channels are not re-sent: their channels fail and the caller gets OutcomeUnknownError (core.nonce.channels)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.deduped);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector(), { policy: fast });
  try {
    const api = client(Svc, rc);
    const [tx, rx] = channel<number>();
    const call = api.sum(rx).catch((x: unknown) => x);
    await tx.send(1);
    await until(() => svc.started.get("sum") === 1);
    await srv.restart("drop", 20);
    const e = await call;
    assert.ok(e instanceof OutcomeUnknownError, String(e));
    assert.equal(e.why, "channels");
    const sendErr = await tx.send(2).catch((x: unknown) => x);
    assert.ok(sendErr instanceof RoamError, `the channel failed with a typed error: ${String(sendErr)}`);
    assert.equal(svc.arrivals.filter((a) => a.method === "sum").length, 1, "never re-sent");
    assert.equal(await api.add(2, 2), 4n, "the next call reconnects");
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("timeout and AbortSignal cover the whole retried call, waits for reconnects included", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector(), { policy: { maxAttempts: 1000, initialBackoffMs: 20, maxBackoffMs: 20 } });
  try {
    const api = client(Svc, rc);
    await api.add(1, 1);
    await srv.stop("drop");
    const t0 = performance.now();
    const e = await api.add(1, 1, { timeout: 300 }).catch((x: unknown) => x);
    const took = performance.now() - t0;
    assert.ok(e instanceof TimeoutError, String(e));
    assert.equal(e.timeoutMs, 300);
    assert.ok(took >= 295 && took < 3_000, `took ${took} ms`);
    const ac = new AbortController();
    setTimeout(() => ac.abort("user gave up"), 100);
    const c = await api.add(1, 1, { signal: ac.signal }).catch((x: unknown) => x);
    assert.ok(c instanceof CancelledError);
    assert.equal(c.cause, "user gave up");
    // A hung call on a live link times out too (the timer is the call's, not the link's).
    await srv.start();
    const h = await api.hold("never", { timeout: 200 }).catch((x: unknown) => x);
    assert.ok(h instanceof TimeoutError);
    svc.gateFor("never").open();
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("handle() gives the current connection; the connector's Hello parameters and transport are used for every link (reconnect.handle, reconnect.connector.*)", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  // A connector over an arbitrary stream: any roam transport works.
  let built = 0;
  const rc = new ReconnectingClient(
    async () => {
      built++;
      const sock = net.connect({ port: srv.port, host: "127.0.0.1" });
      await new Promise<void>((ok, fail) => sock.once("connect", ok).once("error", fail));
      return linkOverStream(sock, { initiator: true, maxPayloadSize: 8192, initialChannelCredit: 4096 });
    },
    { policy: fast },
  );
  try {
    const conn = await rc.handle();
    assert.equal(await client(Svc, conn).add(3, 4), 7n);
    await until(() => srv.accepted.length === 1);
    assert.equal(srv.accepted[0]!.limits.maxPayloadSize, 8192);
    assert.equal(srv.accepted[0]!.limits.initialChannelCredit, 4096);
    await srv.restart("drop", 10);
    await until(() => conn.isClosed, 2_000, "the old handle to die");
    const conn2 = await rc.handle();
    assert.notEqual(conn2, conn);
    assert.equal(await client(Svc, conn2).add(1, 1), 2n);
    await until(() => srv.accepted.length === 2);
    assert.equal(srv.accepted[1]!.limits.maxPayloadSize, 8192);
    assert.equal(built, 2);
  } finally {
    rc.close();
    await srv.dispose();
  }
});

test("close() fails waiting callers and stops reconnecting; eager mode reconnects without a call", async () => {
  const svc = makeService();
  const srv = new RestartableServer("tcp", svc.plain);
  await srv.start();
  const rc = new ReconnectingClient(srv.connector(), { eager: true, policy: { maxAttempts: 1000, initialBackoffMs: 10, maxBackoffMs: 10 } });
  const events = track(rc);
  try {
    await client(Svc, rc).add(1, 1);
    await srv.restart("drop", 50);
    await until(() => rc.connects === 2, 5_000, "the eager reconnect");
    assert.equal(rc.state, "connected");
    await srv.stop("drop");
    const waiting = client(Svc, rc).add(1, 1).catch((x: unknown) => x);
    await new Promise((r) => setTimeout(r, 50));
    rc.close();
    const e = await waiting;
    assert.ok(e instanceof ConnectionClosedError, String(e));
    assert.equal(rc.state, "closed");
    const n = events.length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(events.length, n, "no attempts after close");
    const after = await client(Svc, rc).add(1, 1).catch((x: unknown) => x);
    assert.ok(after instanceof ConnectionClosedError);
  } finally {
    rc.close();
    await srv.dispose();
  }
});
