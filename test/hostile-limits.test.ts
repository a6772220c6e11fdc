/**
 * Limits with documented defaults (issue 12; docs/limits.md): every resource
 * a peer can make grow has a bound, and going over it takes the spec's error
 * path (Reject, an error Response, a Goodbye citing the rule) or closes what
 * is idle — never silent growth.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { describe, test } from "node:test";
import { Testbed } from "../apps/testbed/testbed.js";
import { channel } from "../src/session/channel/pair.js";
import { ConnectionClosedError, ConnectionRejectedError, RemoteHandlerError } from "../src/session/errors.js";
import { client } from "../src/session/serve.js";
import { connectTcp, listenTcp, listenWebSocket } from "../src/transport/node.js";
import { PeerState, ShmHost } from "../src/transport/shm/index.js";
import { rawConnect } from "./helpers/raw-peer.js";
import { sleep, testbedDispatcher, within } from "./helpers/testbed-server.js";

describe("limits", () => {
  test("maxInFlightCalls: calls over the limit get an error Response; the others proceed", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher(), maxInFlightCalls: 4 });
    const link = await connectTcp({ port: server.port! });
    try {
      const tb = client(Testbed, link.root);
      const txs = [];
      const calls = [];
      for (let i = 0; i < 6; i++) {
        const [tx, rx] = channel<number>();
        txs.push(tx);
        calls.push(tb.sum(rx).then((v) => ({ ok: true as const, v }), (e: unknown) => ({ ok: false as const, e })));
      }
      await sleep(200);
      for (const tx of txs) {
        await tx.send(1).catch(() => {});
        await tx.close();
      }
      const results = await within(Promise.all(calls), 5000, "the calls");
      const refused = results.filter((r) => !r.ok);
      assert.equal(refused.length, 2, "two calls over the limit are refused");
      for (const r of refused) assert.ok(!r.ok && r.e instanceof RemoteHandlerError && /call\.limits/.test(r.e.message), String(!r.ok && r.e));
      assert.equal(results.filter((r) => r.ok).length, 4);
      assert.equal(await tb.echo("still fine"), "still fine", "the link survives");
    } finally {
      link.close();
      await server.close();
    }
  });

  test("maxChannels: a Request that would open too many channels gets an error Response", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher(), maxChannels: 2 });
    const link = await connectTcp({ port: server.port! });
    try {
      const tb = client(Testbed, link.root);
      const [inTx, inRx] = channel<string>();
      const [outTx, outRx] = channel<string>();
      const first = tb.transform(inRx, outTx); // 2 channels: at the limit
      await sleep(100);
      const [tx3, rx3] = channel<number>();
      await assert.rejects(tb.sum(rx3), (e: unknown) => e instanceof RemoteHandlerError && /maxChannels 2/.test(e.message));
      await tx3.close();
      await inTx.close();
      await outRx.collect();
      await first;
    } finally {
      link.close();
      await server.close();
    }
  });

  test("maxConnections: Connects over the limit are rejected", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher(), acceptConnections: () => testbedDispatcher(), maxConnections: 3 });
    const link = await connectTcp({ port: server.port! });
    try {
      for (let i = 0; i < 3; i++) await link.connect();
      await assert.rejects(link.connect(), (e: unknown) => e instanceof ConnectionRejectedError && /maxConnections/.test(e.message));
    } finally {
      link.close();
      await server.close();
    }
  });

  test("an unsolicited Accept is a protocol violation (no growing closed-id memory)", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher() });
    const peer = await rawConnect(server.port!);
    try {
      peer.hello();
      await peer.expect("Hello");
      for (let i = 1; i <= 1000; i++) peer.send({ type: "Accept", requestId: i, connId: i, metadata: [] });
      const g = await peer.expectGoodbyeAndClose();
      assert.match(g.reason, /^message\.accept\.response/);
    } finally {
      peer.destroy();
      await server.close();
    }
  });

  test("a cancelled call's state is freed at once (no timer keeps it)", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher() });
    const link = await connectTcp({ port: server.port! });
    try {
      const ac = new AbortController();
      const [, rx] = channel<number>();
      const p = client(Testbed, link.root).sum(rx, { signal: ac.signal });
      await sleep(50);
      assert.equal(link.root.pendingCalls, 1);
      ac.abort();
      await assert.rejects(p);
      assert.equal(link.root.pendingCalls, 0, "nothing of the cancelled call is kept");
      assert.equal(await client(Testbed, link.root).echo("x"), "x");
    } finally {
      link.close();
      await server.close();
    }
  });

  test("maxLinks and the handshake timeout bound connections that never say Hello", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher(), maxLinks: 2, handshakeTimeoutMs: 300 });
    const socks: net.Socket[] = [];
    try {
      const open = () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(server.port!, "127.0.0.1", () => resolve(s));
          s.resume(); // read (and drop) what the server sends, so its close is seen
          s.on("error", reject);
          socks.push(s);
        });
      const closedAt = (s: net.Socket) => new Promise<number>((r) => s.once("close", () => r(performance.now())));
      const t0 = performance.now();
      const a = await open();
      const aClosed = closedAt(a);
      const b = await open();
      const bClosed = closedAt(b);
      await sleep(50);
      const c = await open().catch(() => null);
      if (c) await within(closedAt(c), 1000, "the connection over maxLinks closing");
      assert.ok(server.links.size <= 2, `${server.links.size} links`);
      const [ta, tb] = await within(Promise.all([aClosed, bClosed]), 3000, "Hello-less connections closing");
      assert.ok(Math.max(ta, tb) - t0 < 2000, "closed by the handshake timeout");
    } finally {
      for (const s of socks) s.destroy();
      await server.close();
    }
  });

  test("idle timeout: an idle link is closed, one with an open channel is not", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher(), idleTimeoutMs: 300 });
    const idle = await connectTcp({ port: server.port! });
    const busy = await connectTcp({ port: server.port! });
    try {
      const [tx, rx] = channel<number>();
      const total = client(Testbed, busy.root).sum(rx);
      const e = await within(idle.closed(), 3000, "the idle link closing");
      assert.ok(e instanceof ConnectionClosedError && /idle/.test(e.message), String(e));
      await sleep(600);
      assert.equal(busy.isClosed, false, "a link with an open channel stays");
      await tx.send(5);
      await tx.close();
      assert.equal(await total, 5n);
    } finally {
      idle.close();
      busy.close();
      await server.close();
    }
  });

  test("WebSocket port: a request whose headers never finish is cut off (slowloris)", async () => {
    const server = await listenWebSocket({ port: 0, dispatcher: testbedDispatcher(), httpHeadersTimeoutMs: 300 });
    const s = net.connect(server.port!, "127.0.0.1");
    try {
      await new Promise<void>((r) => s.once("connect", () => r()));
      s.write("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"); // never finished
      s.on("data", () => {});
      s.on("error", () => {});
      await within(new Promise((r) => s.once("close", r)), 3000, "the unfinished request being closed");
    } finally {
      s.destroy();
      await server.close();
    }
  });

  test("SHM: a guest whose heartbeat stays 0 is found hung", async () => {
    const host = ShmHost.create({ backing: "memory", maxGuests: 2, heartbeatIntervalMs: 100, monitorIntervalMs: 20 });
    try {
      const deaths: string[] = [];
      const ticket = host.addPeer({ onDeath: (_id, info) => deaths.push(info.cause) });
      // Attached, but never writes a heartbeat (0).
      assert.ok(host.segment.casPeerState(ticket.peerId, PeerState.Reserved, PeerState.Attached));
      await within(host.whenReclaimed(ticket.peerId), 2000, "the silent guest being found");
      assert.deepEqual(deaths, ["heartbeat"]);
    } finally {
      await host.close();
    }
  });
});
