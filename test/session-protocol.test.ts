/**
 * Protocol rules checked with a hand-driven raw peer: handshake, request
 * ids, limits, routing and every connection-level violation (each must get a
 * Goodbye whose reason starts with the violated rule id, then a close).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Writer } from "../src/codec/writer.js";
import { t } from "../src/schema/index.js";
import { client, serve } from "../src/session/serve.js";
import { Link } from "../src/session/link.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { StreamTransport } from "../src/transport/stream.js";
import { connectTcp, listenTcp, type RoamServer } from "../src/transport/node.js";
import { CancelledError, ConnectionClosedError } from "../src/session/errors.js";
import { messageToBytes } from "../src/wire/message.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { rawConnect, rawListen, type RawPeer } from "./helpers/raw-peer.js";
import { sleep, within } from "./helpers/testbed-server.js";
import * as net from "node:net";
import { slowForMutation } from "./helpers/mutation.js";

const M = Testbed.methods;

function payloadOf<T>(schema: { encode(w: Writer, v: T): void }, v: T): Uint8Array {
  const w = new Writer();
  schema.encode(w, v);
  return w.finish();
}
const echoPayload = (s: string) => payloadOf(t.tuple(t.string), [s]);

describe("protocol rules against a server", () => {
  let server: RoamServer;
  const links: Link[] = [];
  before(async () => {
    server = await listenTcp({ port: 0, dispatcher: serve(Testbed, testbedImpl), onLink: (l) => links.push(l) });
  });
  after(async () => {
    await server.close();
  });

  async function handshaken(maxPayloadSize = 1024 * 1024, credit = 64 * 1024): Promise<RawPeer> {
    const p = await rawConnect(server.port!);
    const hello = await p.next();
    assert.equal(hello?.type, "Hello");
    p.hello(maxPayloadSize, credit);
    return p;
  }

  async function expectViolation(p: RawPeer, rule: string): Promise<void> {
    const g = await p.expectGoodbyeAndClose();
    assert.equal(g.connId, 0);
    assert.ok(g.reason.startsWith(rule), `Goodbye reason ${JSON.stringify(g.reason)} should start with ${rule}`);
  }

  test("the server sends Hello V2 immediately, before receiving anything", async () => {
    const p = await rawConnect(server.port!);
    const m = await p.next();
    assert.deepEqual(m, { type: "Hello", version: 2, maxPayloadSize: 1024 * 1024, initialChannelCredit: 1024 * 1024 });
    p.destroy();
  });

  test("limits are negotiated as the minimum of both Hellos", async () => {
    const before = links.length;
    const p = await handshaken(4096, 512);
    p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("x") });
    await p.expect("Response");
    const link = links[before]!;
    assert.deepEqual(link.limits, { maxPayloadSize: 4096, initialChannelCredit: 512 });
    p.destroy();
  });

  test("Hello V1 is refused: message.hello.unknown-version", async () => {
    const p = await rawConnect(server.port!);
    await p.next();
    p.send({ type: "Hello", version: 1, maxPayloadSize: 1024, initialChannelCredit: 64 });
    await expectViolation(p, "message.hello.unknown-version");
  });

  test("an unknown Hello variant is refused: message.hello.unknown-version", async () => {
    const p = await rawConnect(server.port!);
    await p.next();
    p.sendFrame(Uint8Array.of(0, 7, 1, 2));
    await expectViolation(p, "message.hello.unknown-version");
  });

  test("anything before Hello: message.hello.ordering", async () => {
    const p = await rawConnect(server.port!);
    await p.next();
    p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("x") });
    await expectViolation(p, "message.hello.ordering");
  });

  test("a second Hello after the handshake: message.hello.ordering", async () => {
    const p = await handshaken();
    p.hello();
    await expectViolation(p, "message.hello.ordering");
  });

  test("unknown method → Response Err(UnknownMethod); bad payload → Err(InvalidPayload); link stays", async () => {
    const p = await handshaken();
    p.send({ type: "Request", connId: 0, requestId: 1, methodId: 0xdeadn, metadata: [], channels: [], payload: new Uint8Array() });
    const r1 = await p.expect("Response");
    assert.equal(r1.requestId, 1);
    assert.deepEqual([...r1.payload], [1, 1]);
    p.send({ type: "Request", connId: 0, requestId: 2, methodId: M.echo.id, metadata: [], channels: [], payload: Uint8Array.of(5, 0x61) });
    const r2 = await p.expect("Response");
    assert.deepEqual([...r2.payload], [1, 2]);
    p.send({ type: "Request", connId: 0, requestId: 3, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("ok") });
    const r3 = await p.expect("Response");
    assert.equal(r3.requestId, 3);
    assert.deepEqual([...r3.payload], [0, 2, 0x6f, 0x6b]);
    p.destroy();
  });

  test("duplicate in-flight request id: call.request-id.duplicate-detection", async () => {
    const p = await handshaken();
    // sum() stays in flight until its channel closes.
    const req = { type: "Request" as const, connId: 0, requestId: 7, methodId: M.sum.id, metadata: [], channels: [1], payload: Uint8Array.of(1) };
    p.send(req);
    p.send(req);
    await expectViolation(p, "call.request-id.duplicate-detection");
  });

  test("payload over max_payload_size: message.hello.enforcement", async () => {
    const p = await handshaken(1024);
    p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("x".repeat(2000)) });
    await expectViolation(p, "message.hello.enforcement");
  });

  test("unknown conn_id: message.conn-id (Goodbye on connection 0, link closed)", async () => {
    const p = await handshaken();
    p.send({ type: "Request", connId: 42, requestId: 1, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("x") });
    await expectViolation(p, "message.conn-id");
  });

  test("undecodable frame: message.decode-error", async () => {
    const p = await handshaken();
    p.sendFrame(Uint8Array.of(5, 0, 1)); // truncated Request
    await expectViolation(p, "message.decode-error");
  });

  test("invalid COBS: message.decode-error", async () => {
    const p = await handshaken();
    p.sendBytes(Uint8Array.of(9, 1, 2, 0)); // block claims 8 bytes, frame has 2
    await expectViolation(p, "message.decode-error");
  });

  test("unknown Message variant: message.unknown-variant", async () => {
    const p = await handshaken();
    p.sendFrame(Uint8Array.of(12, 0, 0));
    await expectViolation(p, "message.unknown-variant");
  });

  test("received metadata over the limits: call.metadata.limits", async () => {
    const p = await handshaken();
    const metadata = Array.from({ length: 129 }, (_, i) => [`k${i}`, "v"] as const);
    p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.echo.id, metadata, channels: [], payload: echoPayload("x") });
    await expectViolation(p, "call.metadata.limits");
  });

  test("an unterminated frame larger than the limit is cut off, not buffered", async () => {
    const p = await handshaken();
    const chunk = new Uint8Array(256 * 1024).fill(7);
    for (let i = 0; i < 12 && !p.socket.destroyed; i++) p.sendBytes(chunk);
    await expectViolation(p, "message.decode-error");
  });

  test("channel messages on unknown ids / id 0 / after close / over credit / undecodable", async () => {
    const cases: [string, (p: RawPeer) => void][] = [
      ["channeling.unknown", (p) => p.send({ type: "Data", connId: 0, channelId: 99, payload: Uint8Array.of(2) })],
      ["channeling.id.zero-reserved", (p) => p.send({ type: "Data", connId: 0, channelId: 0, payload: Uint8Array.of(2) })],
      ["channeling.unknown", (p) => p.send({ type: "Credit", connId: 0, channelId: 5, bytes: 10 })],
      ["channeling.unknown", (p) => p.send({ type: "Close", connId: 0, channelId: 5 })],
      [
        "channeling.data-after-close",
        (p) => {
          p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.sum.id, metadata: [], channels: [1], payload: Uint8Array.of(1) });
          p.send({ type: "Data", connId: 0, channelId: 1, payload: Uint8Array.of(2) });
          p.send({ type: "Close", connId: 0, channelId: 1 });
          p.send({ type: "Data", connId: 0, channelId: 1, payload: Uint8Array.of(2) });
        },
      ],
      [
        "flow.channel.credit-overrun",
        (p) => {
          p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.transform.id, metadata: [], channels: [1, 3], payload: Uint8Array.of(1, 3) });
          // credit is 64 bytes (negotiated below); send 100 bytes of string
          p.send({ type: "Data", connId: 0, channelId: 1, payload: payloadOf(t.string, "x".repeat(99)) });
        },
      ],
      [
        "channeling.data.invalid",
        (p) => {
          p.send({ type: "Request", connId: 0, requestId: 1, methodId: M.sum.id, metadata: [], channels: [1], payload: Uint8Array.of(1) });
          p.send({ type: "Data", connId: 0, channelId: 1, payload: Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff) });
        },
      ],
    ];
    for (const [rule, act] of cases) {
      const p = await handshaken(1024 * 1024, 64);
      act(p);
      await expectViolation(p, rule);
    }
  });

  test("virtual connections: Reject when not listening", async () => {
    const p = await handshaken();
    p.send({ type: "Connect", requestId: 1, metadata: [] });
    const r = await p.expect("Reject");
    assert.equal(r.requestId, 1);
    assert.equal(r.reason, "not listening");
    p.destroy();
  });
});

describe("virtual connections against a listening server", () => {
  let server: RoamServer;
  before(async () => {
    server = await listenTcp({ port: 0, dispatcher: serve(Testbed, testbedImpl), acceptConnections: () => serve(Testbed, testbedImpl) });
  });
  after(async () => {
    await server.close();
  });

  test("Accept allocates a non-zero id; each connection has its own request ids; Goodbye closes only it", async () => {
    const p = await rawConnect(server.port!);
    await p.next();
    p.hello();
    p.send({ type: "Connect", requestId: 1, metadata: [["tenant", "a"]] });
    const a1 = await p.expect("Accept");
    p.send({ type: "Connect", requestId: 2, metadata: [] });
    const a2 = await p.expect("Accept");
    assert.notEqual(a1.connId, 0);
    assert.notEqual(a2.connId, 0);
    assert.notEqual(a1.connId, a2.connId);
    // The same request id on three connections is fine: separate id spaces.
    for (const connId of [0, a1.connId, a2.connId]) {
      p.send({ type: "Request", connId, requestId: 1, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload(`c${connId}`) });
    }
    const seen = new Map<number, Uint8Array>();
    for (let i = 0; i < 3; i++) {
      const r = await p.expect("Response");
      seen.set(r.connId, r.payload);
    }
    assert.deepEqual([...seen.keys()].sort(), [0, a1.connId, a2.connId].sort());
    // Goodbye on a1: only a1 ends.
    p.send({ type: "Goodbye", connId: a1.connId, reason: "" });
    p.send({ type: "Request", connId: a2.connId, requestId: 2, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("still") });
    const r = await p.expect("Response");
    assert.equal(r.connId, a2.connId);
    // A violation on a2 closes a2 with a Goodbye on a2, the link stays.
    p.send({ type: "Data", connId: a2.connId, channelId: 77, payload: Uint8Array.of(1) });
    const g = await p.expect("Goodbye");
    assert.equal(g.connId, a2.connId);
    assert.ok(g.reason.startsWith("channeling.unknown"));
    p.send({ type: "Request", connId: 0, requestId: 2, methodId: M.echo.id, metadata: [], channels: [], payload: echoPayload("root") });
    assert.equal((await p.expect("Response")).connId, 0);
    // Goodbye on connection 0 ends the link.
    p.send({ type: "Goodbye", connId: 0, reason: "" });
    await within(p.closed, 3000, "link close after Goodbye on conn 0");
  });
});

describe("client-side rules against a raw server", () => {
  test("Hello first, nothing else before both Hellos; request ids 1,2,3; responses in any order; unknown responses ignored", async () => {
    const raw = await rawListen();
    try {
      const sock = net.connect(raw.port, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      const link = new Link(new StreamTransport(sock), { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 65536, initialChannelCredit: 4096 }) });
      const ready = link.start();
      const tb = client(Testbed, link.root);
      const peer = await raw.accept();
      const first = await peer.next();
      assert.equal(first?.type, "Hello");
      // Calls made before the handshake completed must wait for it.
      const calls = [tb.echo("a"), tb.echo("b"), tb.echo("c")];
      await assert.rejects(peer.next(150), /no message/);
      peer.hello();
      await ready;
      const reqs = [await peer.expect("Request"), await peer.expect("Request"), await peer.expect("Request")];
      assert.deepEqual(reqs.map((r) => r.requestId), [1, 2, 3]);
      // Unknown response id: ignored.
      peer.send({ type: "Response", connId: 0, requestId: 999, metadata: [], channels: [], payload: Uint8Array.of(0, 1, 0x7a) });
      for (const r of [...reqs].reverse()) {
        const s = new TextDecoder().decode(r.payload.subarray(1));
        peer.send({ type: "Response", connId: 0, requestId: r.requestId, metadata: [], channels: [], payload: payloadOf(t.result(t.string, t.unit), { ok: true, value: s.toUpperCase() }) });
      }
      assert.deepEqual(await within(Promise.all(calls), 3000, "responses"), ["A", "B", "C"]);

      // Cancel: the call rejects at once, Cancel goes out, the late Response is ignored.
      const ac = new AbortController();
      const p = tb.echo("slow", { signal: ac.signal });
      const req = await peer.expect("Request");
      ac.abort();
      const e = await p.catch((x: unknown) => x);
      assert.ok(e instanceof CancelledError);
      const cancel = await peer.expect("Cancel");
      assert.equal(cancel.requestId, req.requestId);
      peer.send({ type: "Response", connId: 0, requestId: req.requestId, metadata: [], channels: [], payload: Uint8Array.of(1, 3) });
      const q = tb.echo("after");
      const req2 = await peer.expect("Request");
      assert.equal(req2.requestId, req.requestId + 1);
      peer.send({ type: "Response", connId: 0, requestId: req2.requestId, metadata: [], channels: [], payload: payloadOf(t.result(t.string, t.unit), { ok: true, value: "fine" }) });
      assert.equal(await q, "fine");

      // A server that answers a Response with a bad payload: typed error, link stays.
      const bad = tb.echo("bad");
      const req3 = await peer.expect("Request");
      peer.send({ type: "Response", connId: 0, requestId: req3.requestId, metadata: [], channels: [], payload: Uint8Array.of(0, 200) });
      await assert.rejects(bad, (x: unknown) => (x as Error).name === "ResponseDecodeError");

      // Peer Goodbye: pending calls fail with its reason.
      const pending = tb.echo("never");
      await peer.expect("Request");
      peer.send({ type: "Goodbye", connId: 0, reason: "bye now" });
      const ce = await pending.catch((x: unknown) => x);
      assert.ok(ce instanceof ConnectionClosedError);
      assert.equal(ce.reason, "bye now");
      assert.equal(ce.by, "remote");
      peer.destroy();
    } finally {
      raw.close();
    }
  });

  test("a link closes cleanly: no handle stays open (the process can exit by itself)", { skip: slowForMutation }, async () => {
    const script = `
      import { listenTcp, connectTcp, serve, client, listenWebSocket, connectWebSocket } from ${JSON.stringify(new URL("../src/node.js", import.meta.url).href)};
      import { Testbed } from ${JSON.stringify(new URL("../apps/testbed/testbed.js", import.meta.url).href)};
      import { testbedImpl } from ${JSON.stringify(new URL("../apps/testbed/impl.js", import.meta.url).href)};
      const s = await listenTcp({ port: 0, dispatcher: serve(Testbed, testbedImpl) });
      const l = await connectTcp({ port: s.port });
      await client(Testbed, l.root).echo("x");
      const w = await listenWebSocket({ port: 0, dispatcher: serve(Testbed, testbedImpl) });
      const wl = await connectWebSocket(w.address);
      await client(Testbed, wl.root).echo("x");
      const pending = client(Testbed, l.root).getPoints(1);
      l.close(); wl.close();
      await pending.catch(() => {});
      await s.close(); await w.close();
      console.log("done");
    `;
    const { spawn } = await import("node:child_process");
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const code = await within(
      new Promise<number | null>((resolve) => child.on("exit", resolve)),
      10_000,
      "child exiting by itself",
    ).catch((e) => {
      child.kill("SIGKILL");
      throw e;
    });
    assert.equal(code, 0);
    assert.match(out, /done/);
  });
});

test("connectTcp to a link that never sends Hello fails within a bound, no hang", async () => {
  const raw = await rawListen();
  try {
    const sock = net.connect(raw.port, "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    const link = new Link(new StreamTransport(sock), { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 1024, initialChannelCredit: 1024 }) });
    const ready = link.start();
    const peer = await raw.accept();
    await peer.next();
    peer.destroy();
    await assert.rejects(within(ready, 3000, "handshake"), ConnectionClosedError);
  } finally {
    raw.close();
  }
});

void sleep;
void connectTcp;
void messageToBytes;
