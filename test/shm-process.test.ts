/**
 * The SHM transport across processes (file-backed segment in /dev/shm,
 * socketpair doorbells): the whole Testbed and calls back into the host;
 * SIGKILL of a guest with calls and channels in flight (onDeath within 1 s,
 * everything fails with the typed error, the peer id is reused); a stopped
 * guest found by its stale heartbeat; a malformed frame ending one guest while
 * the host keeps serving the others; host goodbye; a guest that attached by
 * path; no segment file left behind.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { after, describe, test } from "node:test";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { channel } from "../src/session/channel/pair.js";
import { ConnectionClosedError } from "../src/session/errors.js";
import type { Link } from "../src/session/link.js";
import { client, serve } from "../src/session/serve.js";
import { establishHostPeer, nativeShm, ShmHost, ShmPeerGoneError, type DeathInfo, type ShmTransport } from "../src/transport/shm/index.js";
import { GuestTest } from "./helpers/shm-api.js";
import { requireOrOptOut } from "./helpers/requirements.js";
import { exerciseTestbed, GUEST_SCRIPT, leftoverSegments, NATIVE_SHM, nativeSkip, segmentPath, sleep, within } from "./helpers/shm-harness.js";

const skip = nativeSkip;

test("the native SHM addon loads", (t) => {
  if (!requireOrOptOut(t, NATIVE_SHM)) return;
  assert.equal(typeof nativeShm()!.map, "function");
});
const hosts: ShmHost[] = [];
const children: ChildProcess[] = [];

after(async () => {
  await Promise.all(hosts.map((h) => h.close()));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  assert.deepEqual(leftoverSegments(), [], "no segment file is left behind");
});

function isPeerGone(e: unknown): boolean {
  return e instanceof ConnectionClosedError && e.cause instanceof ShmPeerGoneError;
}

function spawnGuest(host: ShmHost, name: string, onDeath?: (id: number, info: DeathInfo) => void, onDetach?: (id: number) => void) {
  const ticket = host.addPeer({ name, onDeath, onDetach });
  const child = ticket.spawn(process.execPath, [GUEST_SCRIPT], { stdio: ["ignore", "inherit", "inherit"] });
  children.push(child);
  return { ticket, child, peerId: ticket.peerId };
}

function newHost(tag: string, o: Parameters<typeof ShmHost.create>[0] = {}): ShmHost {
  const host = ShmHost.create({ path: segmentPath(tag), ...o });
  hosts.push(host);
  return host;
}

describe("SHM across processes", { skip }, () => {
  test("the whole Testbed, calls back into the host, virtual connections, 0 B to 16 MiB", async () => {
    // This test blocks the guest's event loop for 1.5 s on purpose: a long heartbeat.
    const host = newHost("testbed", { heartbeatIntervalMs: 10_000 });
    const { peerId, child } = spawnGuest(host, "testbed guest");
    const d = serve(Testbed, testbedImpl);
    const link = establishHostPeer(host, peerId, d, { acceptConnections: () => d });
    await host.waitAttached(peerId);
    assert.ok(fs.existsSync(host.path!), "the segment file exists while the hub runs");
    const tb = client(Testbed, link.root);
    await within(exerciseTestbed(tb), 20_000, "Testbed");
    const gt = client(GuestTest, link.root);
    assert.equal(await gt.pid(), child.pid);
    assert.equal(await gt.callHost("back into the host"), "back into the host");
    assert.equal(await gt.viaVirtual("virtual"), "virtual");
    for (const n of [0, 300, 70_000, 1024 * 1024, 16 * 1024 * 1024]) {
      const data = new Uint8Array(n).fill(n & 0xff);
      if (n > 0) data[0] = 1;
      const r = await within(tb.processMessage({ tag: "Data", value: data }), 20_000, `${n} bytes`);
      assert.equal((r.value as Uint8Array).length, n);
      if (n > 0) assert.equal((r.value as Uint8Array)[n - 1], 1);
    }
    // Three 16 MiB calls while the guest reads nothing: the host appends an
    // extent to the largest class; the guest process maps it when it meets it.
    const before = host.segment.pool.extentCount(4);
    const paused = gt.pause(1500);
    await sleep(200);
    const big = new Uint8Array(16 * 1024 * 1024).fill(2);
    const rs = await within(Promise.all([0, 1, 2].map(() => tb.processMessage({ tag: "Data", value: big }))), 30_000, "3 x 16 MiB");
    await paused;
    for (const r of rs) assert.equal((r.value as Uint8Array).length, big.length);
    assert.ok(host.segment.pool.extentCount(4) > before, "an extent was appended");
    assert.equal(fs.statSync(host.path!).size, host.segment.currentSize, "the file grew with it");
    assert.equal((link.transport as ShmTransport).stats.channelsOpen, 0);
    assert.equal(await gt.openChannels(), 0);
    const exited = new Promise((r) => child.once("exit", r));
    await host.close();
    await within(exited, 5000, "guest exit after host goodbye");
    assert.equal(fs.existsSync(host.path!), false, "the host deleted its segment file");
  });

  test("SIGKILL with calls and channels in flight: onDeath within 1 s, typed errors, the peer id is reused", async () => {
    const host = newHost("kill");
    let killedAt = 0;
    let deathAt = 0;
    let death: DeathInfo | null = null;
    const died = new Promise<void>((resolve) => {
      const g = spawnGuest(host, "victim", (_id, info) => {
        deathAt = performance.now();
        death = info;
        resolve();
      });
      (globalThis as Record<string, unknown>).__victim = g;
    });
    const { peerId, child } = (globalThis as Record<string, unknown>).__victim as ReturnType<typeof spawnGuest>;
    const link = establishHostPeer(host, peerId, serve(Testbed, testbedImpl));
    await host.waitAttached(peerId);
    const tb = client(Testbed, link.root);
    const gt = client(GuestTest, link.root);
    // In flight: a call that never answers, a stream to the guest, a stream from it.
    const hanging = gt.hang();
    const [tx, rx] = channel<number>();
    const summing = tb.sum(rx);
    let sent = 0;
    const sending = (async () => {
      for (let i = 0; i < 100_000_000; i++) {
        await tx.send(i);
        sent++;
      }
    })();
    const [gtx, grx] = channel<number>();
    const generating = tb.generate(4_000_000_000, gtx);
    let received = 0;
    const receiving = (async () => {
      for await (const _ of grx) received++;
    })();
    const [btx, brx] = channel<Uint8Array>();
    const blocking = gt.blocks(1_000_000, 100_000, btx);
    const bulk = (async () => {
      for await (const _ of brx) {
        // keep reading
      }
    })();
    // Wait for the channels to flow (counted, not a fixed sleep: a loaded machine may need longer).
    for (let i = 0; i < 2000 && !(sent > 0 && received > 0); i++) await sleep(5);
    assert.ok(sent > 0 && received > 0, "the channels were flowing");
    const inFlight = { hanging, summing, sending, generating, receiving, blocking, bulk };
    // Observe every outcome from now on (they all fail once the guest dies).
    const outcomes = Object.entries(inFlight).map(([what, p]) =>
      within(
        (p as Promise<unknown>).then(
          () => ({ what, error: null as unknown }),
          (error: unknown) => ({ what, error }),
        ),
        3000,
        what,
      ),
    );
    killedAt = performance.now();
    child.kill("SIGKILL");
    await within(died, 1000, "onDeath");
    assert.ok(deathAt - killedAt < 1000, `death detected after ${(deathAt - killedAt).toFixed(1)} ms`);
    assert.ok(death !== null && ["doorbell", "exit"].includes((death as DeathInfo).cause), `cause ${(death as DeathInfo | null)?.cause}`);
    for (const { what, error } of await Promise.all(outcomes)) {
      assert.ok(isPeerGone(error), `${what} fails with ConnectionClosedError caused by ShmPeerGoneError (got ${String(error)})`);
    }
    await within(host.whenReclaimed(peerId), 4000, "reclaim");
    assert.equal(host.segment.peerState(peerId), 0, "the entry is Empty again");
    assert.equal(host.segment.pool.freeCount(2), host.segment.layout.classes[2]!.count, "every slot of the bulk class came back");
    // A new guest gets the same peer id and works.
    const again = spawnGuest(host, "replacement");
    assert.equal(again.peerId, peerId);
    const l2 = establishHostPeer(host, again.peerId, null);
    assert.equal(await client(Testbed, l2.root).echo("replaced"), "replaced");
    assert.equal(host.segment.epoch(peerId), 2, "the epoch counts attaches");
    await host.close();
  });

  test("a stopped guest is found by its stale heartbeat, killed and reclaimed", async () => {
    const host = newHost("heartbeat", { heartbeatIntervalMs: 100 });
    let info: DeathInfo | null = null;
    const died = new Promise<void>((resolve) => {
      const g = spawnGuest(host, "sleeper", (_id, i) => {
        info = i;
        resolve();
      });
      (globalThis as Record<string, unknown>).__sleeper = g;
    });
    const { peerId, child } = (globalThis as Record<string, unknown>).__sleeper as ReturnType<typeof spawnGuest>;
    const link = establishHostPeer(host, peerId, null);
    await host.waitAttached(peerId);
    assert.equal(await client(Testbed, link.root).echo("awake"), "awake");
    // While it runs, its heartbeat advances and the host leaves it alone: several beats
    // (counted, not timed), and no death. This catches a detector that fires too early.
    const beats = new Set<bigint>();
    for (let i = 0; i < 4000 && beats.size < 5; i++) {
      beats.add(host.segment.heartbeat(peerId));
      await sleep(5);
    }
    assert.ok(beats.size >= 5, `the guest's heartbeat advanced (${beats.size} distinct values)`);
    assert.equal(info, null, "a guest whose heartbeat advances is not declared dead");
    const pending = client(GuestTest, link.root).hang();
    child.kill("SIGSTOP");
    // Stopped: found by the stale heartbeat (generous bound; the rule is 2 x 100 ms).
    await within(died, 10_000, "heartbeat death");
    assert.equal((info as DeathInfo | null)?.cause, "heartbeat");
    assert.match((info as DeathInfo | null)?.detail ?? "", /no heartbeat for \d+ ms \(interval 100 ms\)/);
    const staleMs = Number(/no heartbeat for (\d+) ms/.exec((info as DeathInfo | null)?.detail ?? "")?.[1]);
    assert.ok(staleMs >= 200, `declared dead only once its heartbeat was older than 2 intervals (${staleMs} ms)`);
    await assert.rejects(pending, isPeerGone);
    await within(host.whenReclaimed(peerId), 4000, "reclaim after the kill");
    assert.ok(child.signalCode === "SIGKILL", "the host killed the hung guest");
    await host.close();
  });

  test("a malformed frame ends that guest with a Goodbye; the host keeps serving the others", async () => {
    const host = newHost("malformed");
    const detached: number[] = [];
    const deaths: number[] = [];
    const guests = [0, 1, 2].map((i) =>
      spawnGuest(
        host,
        `guest ${i}`,
        (id) => deaths.push(id),
        (id) => detached.push(id),
      ),
    );
    const violations: { peer: number; rule: string; direction: string }[] = [];
    const links = guests.map((g) =>
      establishHostPeer(host, g.peerId, serve(Testbed, testbedImpl), {
        onProtocolError: (info) => violations.push({ peer: g.peerId, rule: info.rule, direction: info.direction }),
      }),
    );
    for (const g of guests) await host.waitAttached(g.peerId);
    const healthy = client(Testbed, links[2]!.root);
    assert.equal(await healthy.echo("before"), "before");
    for (const [i, kind, rule] of [
      [0, 0, "shm.desc.msg-type"],
      [1, 1, "shm.frame.header"],
    ] as const) {
      const g = guests[i]!;
      const closed = links[i]!.closed();
      await assert.rejects(client(GuestTest, links[i]!.root).writeMalformed(kind), ConnectionClosedError);
      const why = await within(closed, 2000, "link close");
      assert.match(why.message, new RegExp(rule.replace(/\./g, "\\.")));
      assert.deepEqual(violations.at(-1), { peer: g.peerId, rule, direction: "sent" });
      // The guest got the Goodbye, detached, and its peer entry was reclaimed.
      await within(host.whenReclaimed(g.peerId), 3000, `reclaim of guest ${i}`);
      assert.equal(await healthy.echo(`still serving after guest ${i}`), `still serving after guest ${i}`);
    }
    assert.deepEqual(detached.sort(), [guests[0]!.peerId, guests[1]!.peerId]);
    assert.deepEqual(deaths, []);
    const gt = client(GuestTest, links[2]!.root);
    assert.equal(await gt.callHost("the third guest"), "the third guest");
    await host.close();
  });

  test("host goodbye: every guest detaches and exits; the file is deleted; a stale file is replaced", async () => {
    const path = segmentPath("goodbye");
    fs.writeFileSync(path, "stale segment of a crashed host");
    const host = ShmHost.create({ path });
    hosts.push(host);
    const deaths: number[] = [];
    const gs = [0, 1].map((i) => spawnGuest(host, `g${i}`, (id) => deaths.push(id)));
    const links: Link[] = gs.map((g) => establishHostPeer(host, g.peerId, null));
    for (const g of gs) await host.waitAttached(g.peerId);
    for (const l of links) assert.equal(await client(Testbed, l.root).echo("hi"), "hi");
    const exits = gs.map((g) => new Promise<number | null>((r) => g.child.once("exit", (code) => r(code))));
    await host.close();
    assert.deepEqual(await within(Promise.all(exits), 5000, "guest exits"), [0, 0], "guests detached and exited cleanly");
    assert.deepEqual(deaths, []);
    assert.equal(fs.existsSync(path), false);
  });

  test("a guest that attached by path (no ticket, no doorbell) is served through polling", async () => {
    const links = new Map<number, Link>();
    const host = newHost("path", {
      heartbeatIntervalMs: 200,
      onAttach: (id) => links.set(id, establishHostPeer(host, id, serve(Testbed, testbedImpl))),
    });
    const child = spawn(process.execPath, [GUEST_SCRIPT, `--attach=${host.path}`], { stdio: ["ignore", "inherit", "inherit"] });
    children.push(child);
    const t0 = Date.now();
    while (links.size === 0 && Date.now() - t0 < 10_000) await sleep(20);
    const [id, link] = [...links][0]!;
    assert.equal(id, 1);
    assert.equal(await client(GuestTest, link.root).callHost("polled"), "polled");
    assert.equal(await client(Testbed, link.root).echo("x".repeat(5000)), "x".repeat(5000));
    const exited = new Promise((r) => child.once("exit", r));
    await host.close();
    await within(exited, 5000, "exit");
  });
});
