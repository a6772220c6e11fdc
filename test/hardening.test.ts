/**
 * Hostile and broken peers (issue 12): a peer that never reads cannot make
 * the server buffer replies without bound (TCP and WebSocket); a reset link
 * with 1,000 waiting senders closes at once without freezing the event loop;
 * a 12-byte request cannot make the Testbed allocate gigabytes.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { WebSocket } from "ws";
import { Testbed } from "../apps/testbed/testbed.js";
import { Writer } from "../src/codec/writer.js";
import type { Dispatcher, IncomingCall } from "../src/session/connection.js";
import { RemoteHandlerError } from "../src/session/errors.js";
import { Link } from "../src/session/link.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { client } from "../src/session/serve.js";
import { listenTcp, listenWebSocket } from "../src/transport/node.js";
import { StreamTransport } from "../src/transport/stream.js";
import { messageToBytes, type Message } from "../src/wire/message.js";
import { establishHostPeer, MsgType, PeerState, ShmHost, type ShmTransport } from "../src/transport/shm/index.js";
import { writeCallPrefix } from "../src/transport/shm/frame.js";
import { rawConnect } from "./helpers/raw-peer.js";
import { sleep, testbedDispatcher, within } from "./helpers/testbed-server.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Counts the requests the server took up (dispatched to a handler). */
function counting(inner: Dispatcher): Dispatcher & { count: number } {
  const d = {
    count: 0,
    dispatch(call: IncomingCall) {
      d.count++;
      inner.dispatch(call);
    },
  };
  return d;
}

function u32Payload(...values: number[]): Uint8Array {
  const w = new Writer(32);
  for (const v of values) w.varint(v);
  return w.finish();
}

function getPointsRequest(requestId: number, count: number): Message {
  return { type: "Request", connId: 0, requestId, methodId: Testbed.methods.getPoints.id, metadata: [], channels: [], payload: u32Payload(count) };
}

/**
 * Event-loop lag caused by this process's own work: the CPU time spent
 * between two ticks of a 10 ms timer, minus the 10 ms. Wall-clock gaps would
 * also count the time the OS ran other processes (this machine is shared and
 * loaded), which says nothing about our code; CPU time between two timer
 * firings is what a stretch of work that never yields shows up as.
 */
function lagMonitor(): { stop(): number } {
  let worst = 0;
  let last = process.cpuUsage();
  const t = setInterval(() => {
    const now = process.cpuUsage();
    const ms = (now.user - last.user + now.system - last.system) / 1000;
    worst = Math.max(worst, ms - 10);
    last = now;
  }, 10);
  return {
    stop() {
      clearInterval(t);
      return worst;
    },
  };
}

describe("a peer that never reads", () => {
  // 100 getPoints(60,000): ~350 KB of response each, 35 MB if the server
  // kept serving a client that reads nothing.
  const CALLS = 100;
  const COUNT = 60_000;

  test("TCP: the server stops reading requests once replies back up", async () => {
    const d = counting(testbedDispatcher());
    const server = await listenTcp({ port: 0, dispatcher: d });
    const peer = await rawConnect(server.port!);
    try {
      peer.socket.pause(); // never read
      peer.hello();
      for (let i = 1; i <= CALLS; i++) peer.send(getPointsRequest(i, COUNT));
      await sleep(1500);
      // With a pause at the reply high-water mark, only a few responses are
      // produced (a few MiB); without it all 400 were served and queued.
      assert.ok(d.count < 40, `the server served ${d.count} of ${CALLS} calls for a client that reads nothing`);
      assert.ok(d.count > 0, "the server served nothing at all");
      // Reading again drains the backlog and the server serves the rest (the
      // bytes are discarded: decoding 100 MB in the test is not the point).
      peer.socket.removeAllListeners("data");
      peer.socket.on("data", () => {});
      peer.socket.resume();
      const deadline = Date.now() + 20_000;
      while (d.count < CALLS && Date.now() < deadline) await sleep(50);
      assert.equal(d.count, CALLS, "once the client reads, every call is served");
    } finally {
      peer.destroy();
      await server.close();
    }
  });

  test("WebSocket: the server stops reading requests once replies back up", async () => {
    const d = counting(testbedDispatcher());
    const server = await listenWebSocket({ port: 0, dispatcher: d });
    const ws = new WebSocket(server.address);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      const sock = (ws as unknown as { _socket: net.Socket })._socket;
      sock.pause(); // never read
      ws.send(messageToBytes({ type: "Hello", version: 2, maxPayloadSize: 1024 * 1024, initialChannelCredit: 64 * 1024 }));
      for (let i = 1; i <= CALLS; i++) ws.send(messageToBytes(getPointsRequest(i, COUNT)));
      await sleep(1500);
      assert.ok(d.count < 40, `the server served ${d.count} of ${CALLS} calls for a client that reads nothing`);
      assert.ok(d.count > 0, "the server served nothing at all");
    } finally {
      ws.terminate();
      await server.close();
    }
  });

  test("SHM: the host stops draining a guest that does not read its replies", async () => {
    const host = ShmHost.create({ backing: "memory", maxGuests: 2 });
    try {
      const ticket = host.addPeer({ name: "no-reader" });
      const seg = host.segment;
      assert.ok(seg.casPeerState(ticket.peerId, PeerState.Reserved, PeerState.Attached));
      const d = counting(testbedDispatcher());
      const link = establishHostPeer(host, ticket.peerId, d, { spinMicros: 0 });
      const transport = link.transport as ShmTransport;
      // A guest that writes Requests into its ring and never reads the host's.
      const g2h = seg.guest(ticket.peerId).g2h;
      const w = new Writer(64);
      let sent = 0;
      let fullInARow = 0;
      const deadline = Date.now() + 5000;
      const payload = u32Payload(COUNT);
      w.reset();
      writeCallPrefix(w, 0, [], [], payload.length);
      const body = new Uint8Array([...w.view(), ...payload]);
      const total = (24 + body.length + 3) & ~3;
      // Write until the ring stays full although the host was woken 20 times.
      while (Date.now() < deadline && sent < 20_000 && fullInARow < 20) {
        const off = g2h.grant(total);
        if (off < 0) {
          fullInARow++;
          transport.wake();
          await sleep(5);
          continue;
        }
        fullInARow = 0;
        const base = g2h.data + off;
        seg.dv.setUint32(base, total, true);
        seg.dv.setUint32(base + 4, MsgType.Request, true);
        seg.dv.setUint32(base + 8, ++sent, true);
        seg.dv.setBigUint64(base + 12, Testbed.methods.getPoints.id, true);
        seg.dv.setUint32(base + 20, body.length, true);
        seg.u8.set(body, base + 24);
        g2h.commit(total);
      }
      // Unpaused, the host drains every Request and queues every Response
      // (~350 KB each) in memory; paused, the guest's ring fills and stays full.
      assert.equal(fullInARow, 20, `the guest's ring never stayed full (${sent} Requests written, ${d.count} served)`);
      assert.ok(d.count < 40, `the host served ${d.count} calls (${sent} written) for a guest that reads nothing`);
      link.close();
    } finally {
      await host.close();
    }
  });
});

describe("teardown", () => {
  test("a reset link with 1,000 waiting senders closes in < 1 s without freezing the event loop", async () => {
    const server = await listenTcp({ port: 0, dispatcher: testbedDispatcher() });
    const peer = await rawConnect(server.port!);
    try {
      peer.socket.pause(); // never read: every sender ends up waiting
      peer.hello(1024 * 1024, 64 * 1024);
      for (let i = 0; i < 1000; i++) {
        // generate(4,000,000,000, tx): the handler sends on channel 2i+1 (caller-allocated, odd).
        peer.send({ type: "Request", connId: 0, requestId: i + 1, methodId: Testbed.methods.generate.id, metadata: [], channels: [2 * i + 1], payload: u32Payload(4_000_000_000, 2 * i + 1) });
      }
      const deadline = Date.now() + 10_000;
      while (server.links.size === 0 && Date.now() < deadline) await sleep(20);
      await sleep(1500); // senders run until their credit or the socket buffer is full
      const [link] = [...server.links];
      assert.ok(link, "the server has the link");
      const closed = link.closed();
      const tClose = closed.then(() => performance.now());
      const lag = lagMonitor();
      const t0 = performance.now();
      peer.socket.resetAndDestroy();
      await within(closed, 5000, "closing the reset link");
      const closeMs = (await tClose) - t0;
      await sleep(300); // senders resumed by the close must not hog the loop either
      const worst = lag.stop();
      assert.ok(closeMs < 1000, `the link closed ${closeMs.toFixed(0)} ms after the reset`);
      assert.ok(worst < 100, `event-loop lag reached ${worst.toFixed(0)} ms`);
    } finally {
      peer.destroy();
      await server.close();
    }
  });
});

describe("Testbed size checks", () => {
  test("getPoints(4294967295) fails fast instead of allocating (subject process survives)", async () => {
    // The subject is run as a conformance suite runs it, with a small heap so
    // an allocation-first implementation dies in seconds instead of minutes.
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const linkP = new Promise<Link>((resolve, reject) => {
      server.once("connection", (sock) => {
        const l = new Link(new StreamTransport(sock), {
          initiator: false,
          handshake: new HelloHandshake({ maxPayloadSize: 1024 * 1024, initialChannelCredit: 64 * 1024 }),
        });
        l.start().then(() => resolve(l), reject);
      });
    });
    const child = spawn(process.execPath, ["--max-old-space-size=256", "dist/apps/testbed/subject.js"], {
      cwd: repoRoot,
      env: { ...process.env, PEER_ADDR: `127.0.0.1:${port}` },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    try {
      const link = await within(linkP, 10_000, "the subject connecting");
      const tb = client(Testbed, link.root);
      const t0 = performance.now();
      await assert.rejects(
        within(tb.getPoints(4294967295), 10_000, "getPoints(4294967295)"),
        (e: unknown) => e instanceof RemoteHandlerError && /max_payload_size/.test(e.message),
      );
      assert.ok(performance.now() - t0 < 2000, "the oversized result is refused before any work");
      // The subject still serves.
      assert.deepEqual(await tb.getPoints(2), [
        { x: 0, y: 0 },
        { x: 1, y: 2 },
      ]);
      assert.equal(child.exitCode, null, `the subject is alive (stderr: ${stderr.slice(-500)})`);
      link.close();
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      server.close();
    }
  });
});
