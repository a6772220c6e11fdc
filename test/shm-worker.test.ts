/**
 * The SHM transport with worker-thread guests (SharedArrayBuffer backing,
 * Atomics.waitAsync/notify wake-ups): the whole Testbed, calls both ways,
 * virtual connections, payloads from 0 bytes to 16 MiB with extent growth, a
 * channel carrying 100x its credit window, and a tiny segment where a full
 * buffer and exhausted slots make senders wait rather than fail.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { channel } from "../src/session/channel/pair.js";
import type { Link } from "../src/session/link.js";
import { client, serve } from "../src/session/serve.js";
import { establishHostPeer, ShmHost, type ShmHostOptions, type ShmTransport } from "../src/transport/shm/index.js";
import { GuestTest } from "./helpers/shm-api.js";
import { exerciseTestbed, GUEST_SCRIPT, within } from "./helpers/shm-harness.js";

interface Env {
  host: ShmHost;
  link: Link;
  worker: Worker;
  peerId: number;
}

const hosts: ShmHost[] = [];
after(async () => {
  await Promise.all(hosts.map((h) => h.close()));
});

async function startWorkerGuest(options: ShmHostOptions = {}): Promise<Env> {
  const host = ShmHost.create({ backing: "memory", ...options });
  hosts.push(host);
  const ticket = host.addPeer({ name: "worker" });
  const worker = ticket.spawnWorker(GUEST_SCRIPT);
  const d = serve(Testbed, testbedImpl);
  const link = establishHostPeer(host, ticket.peerId, d, { acceptConnections: () => d });
  await host.waitAttached(ticket.peerId, 10_000);
  return { host, link, worker, peerId: ticket.peerId };
}

describe("SHM with a worker-thread guest", () => {
  test("the whole Testbed, guest → host calls and virtual connections both ways", async () => {
    const env = await startWorkerGuest();
    const tb = client(Testbed, env.link.root);
    await within(exerciseTestbed(tb), 20_000, "Testbed over SHM");
    const gt = client(GuestTest, env.link.root);
    assert.equal(await gt.callHost("ping from the host"), "ping from the host", "the guest called back into the host");
    assert.equal(await gt.viaVirtual("over a virtual connection"), "over a virtual connection");
    const vc = await env.link.connect({ metadata: [["who", "host"]] });
    assert.equal(await client(Testbed, vc).reverse("abc"), "cba");
    vc.close();
    // Every channel table entry the calls used came back.
    assert.equal((env.link.transport as ShmTransport).stats.channelsOpen, 0);
    assert.equal(await gt.openChannels(), 0);
    assert.ok(env.host.segment.guest(env.peerId).channels.state(1) === 0);
  });

  test("payloads from 0 bytes to 16 MiB: inline, slots and extent growth", async () => {
    // The guest's event loop is blocked for 1.5 s on purpose below: a long heartbeat.
    const env = await startWorkerGuest({ heartbeatIntervalMs: 10_000 });
    const tb = client(Testbed, env.link.root);
    const sizes = [0, 1, 200, 219, 220, 221, 256, 1000, 1024, 16 * 1024, 64 * 1024 + 3, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024];
    for (const n of sizes) {
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i += 4093) data[i] = (i / 4093) & 0xff;
      if (n > 0) data[n - 1] = 0x5a;
      const r = await within(tb.processMessage({ tag: "Data", value: data }), 20_000, `${n} bytes`);
      assert.equal(r.tag, "Data");
      const back = r.value as Uint8Array;
      assert.equal(back.length, n, `${n} bytes came back`);
      if (n > 0) {
        assert.equal(back[0], 0x5a);
        assert.equal(back[n - 1], data[0]);
      }
    }
    const stats = (env.link.transport as ShmTransport).stats;
    assert.ok(stats.slotFramesSent > 0 && stats.framesSent > stats.slotFramesSent, "both inline and slot frames were used");
    // Three 16 MiB calls while the guest reads nothing: the largest class has
    // 2 slots, so the host appends an extent (and the guest maps it).
    const big = new Uint8Array(16 * 1024 * 1024).fill(1);
    const before = env.host.segment.pool.extentCount(4);
    const paused = client(GuestTest, env.link.root).pause(1500);
    await new Promise((r) => setTimeout(r, 200));
    const rs = await within(Promise.all([0, 1, 2].map(() => tb.processMessage({ tag: "Data", value: big }))), 30_000, "3 x 16 MiB");
    await paused;
    for (const r of rs) assert.equal((r.value as Uint8Array).length, big.length);
    assert.ok(env.host.segment.pool.extentCount(4) > before, "an extent was appended to the 16 MiB class");
    assert.ok(env.host.segment.currentSize > env.host.segment.layout.totalSize, "the segment grew");
  });

  test("a channel carrying 100x its initial credit, in both directions", async () => {
    const credit = 16 * 1024;
    const env = await startWorkerGuest({ initialCredit: credit });
    const gt = client(GuestTest, env.link.root);
    const block = new Uint8Array(1024).fill(3);
    const count = 100 * (credit / block.length) + 7;
    // Host → guest.
    const [tx, rx] = channel<Uint8Array>();
    const total = gt.drain(rx);
    for (let i = 0; i < count; i++) await tx.send(block);
    await tx.close();
    assert.equal(await within(total, 20_000, "drain"), BigInt(count * block.length));
    // Guest → host.
    const [otx, orx] = channel<Uint8Array>();
    const done = gt.blocks(count, 4000, otx);
    let got = 0;
    for await (const b of orx) got += b.length;
    await done;
    assert.equal(got, count * 4000);
    assert.equal((env.link.transport as ShmTransport).stats.channelsOpen, 0);
  });

  test("a tiny segment: a full buffer and exhausted slots make senders wait, never fail", async () => {
    const env = await startWorkerGuest({
      bipbufCapacity: 1024,
      maxPayloadSize: 64 * 1024,
      initialCredit: 64 * 1024,
      sizeClasses: [
        { slotSize: 1024, count: 2 },
        { slotSize: 16 * 1024, count: 2 },
        { slotSize: 144 * 1024, count: 1 },
      ],
    });
    const tb = client(Testbed, env.link.root);
    const mid = new Uint8Array(10_000).fill(9);
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) calls.push(tb.echo(`small call ${i} `.repeat(8)));
    for (let i = 0; i < 60; i++) calls.push(tb.processMessage({ tag: "Data", value: mid }));
    for (let i = 0; i < 6; i++) calls.push(tb.processMessage({ tag: "Data", value: new Uint8Array(60_000) }));
    const results = await within(Promise.all(calls), 30_000, "366 concurrent calls through a 1 KiB buffer");
    assert.equal(results.length, 366);
    const stats = (env.link.transport as ShmTransport).stats;
    assert.ok(stats.queuedHighWater > 0, "frames had to wait for room");
    assert.ok(env.host.segment.pool.grown > 0, "the host grew a dry class instead of failing");
    // And it still works afterwards.
    assert.equal(await tb.echo("after"), "after");
  });

  test("channel table entries: a full table refuses the call with a clear error; closed channels are reused", async () => {
    const env = await startWorkerGuest({ maxChannels: 8 });
    const tb = client(Testbed, env.link.root);
    // The host allocates even entries: 2, 4, 6.
    const open = [0, 1, 2].map(() => {
      const [tx, rx] = channel<number>();
      return { tx, total: tb.sum(rx) };
    });
    for (const o of open) await o.tx.send(1);
    const [tx4, rx4] = channel<number>();
    await assert.rejects(tb.sum(rx4), (e: Error) => e.name === "RemoteHandlerError" && /shm\.flow\.channel-table-indexing/.test(e.message));
    void tx4;
    await open[0]!.tx.close();
    assert.equal(await open[0]!.total, 1n);
    // The entry came back once both sides sent their last frame for it.
    const [tx5, rx5] = channel<number>();
    const total5 = tb.sum(rx5);
    await tx5.send(41);
    await tx5.close();
    assert.equal(await total5, 41n);
    for (const o of open.slice(1)) {
      await o.tx.close();
      assert.equal(await o.total, 1n);
    }
    for (let i = 0; i < 50; i++) {
      const [t, r] = channel<number>();
      const p = tb.sum(r);
      await t.send(i);
      await t.close();
      assert.equal(await p, BigInt(i), "entries are reused call after call");
    }
    assert.equal((env.link.transport as ShmTransport).stats.channelsOpen, 0);
  });

  test("the worker exiting is detected: calls fail with the typed error, the peer id is reused", async () => {
    const env = await startWorkerGuest();
    const gt = client(GuestTest, env.link.root);
    const hanging = gt.hang();
    await env.worker.terminate();
    await assert.rejects(within(hanging, 5000, "hanging call"), (e: Error) => e.name === "ConnectionClosedError" && (e.cause as Error)?.name === "ShmPeerGoneError");
    await within(env.host.whenReclaimed(env.peerId), 5000, "reclaim");
    const t2 = env.host.addPeer();
    assert.equal(t2.peerId, env.peerId, "the same peer id again");
    t2.spawnWorker(GUEST_SCRIPT);
    const l2 = establishHostPeer(env.host, t2.peerId, null);
    assert.equal(await client(Testbed, l2.root).echo("again"), "again");
  });
});
