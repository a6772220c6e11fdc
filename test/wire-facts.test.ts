/**
 * Wire facts the golden vectors do not pin, each checked against a fixed byte
 * sequence or a raw peer, so a change that stays self-consistent (encoder and
 * decoder changed together) still fails:
 *   - MetadataValue tags: String = 0, Bytes = 1, U64 = 2 (call.metadata.*);
 *   - the limits in force are the minimum of both Hellos, in both directions
 *     (message.hello.negotiation), and the smaller payload limit is enforced;
 *   - a peer that never sends Hello is dropped after the handshake timeout
 *     (message.hello.timing), on the accepting and on the connecting side;
 *   - Data is checked against the credit left, not the window
 *     (flow.channel.credit-overrun), over several messages.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import { describe, test } from "node:test";
import { Reader } from "../src/codec/reader.js";
import { Writer } from "../src/codec/writer.js";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { Link } from "../src/session/link.js";
import { ConnectionClosedError } from "../src/session/errors.js";
import { serve } from "../src/session/serve.js";
import { StreamTransport } from "../src/transport/stream.js";
import { listenTcp } from "../src/transport/node.js";
import { decodeMessage, messageToBytes, readMetadata, writeMetadata, type Metadata } from "../src/wire/message.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { rawConnect, rawListen } from "./helpers/raw-peer.js";
import { within } from "./helpers/testbed-server.js";

const enc = (s: string) => [...new TextEncoder().encode(s)];

describe("MetadataValue variant tags (String 0, Bytes 1, U64 2), as the Rust enum declares them", () => {
  const md: Metadata = [
    ["s", "hi"],
    ["b", Uint8Array.of(0xde, 0xad)],
    ["n", 300n],
  ];
  // Vec len 3; each entry: key (len + UTF-8), variant tag, value.
  const bytes = [3, 1, ...enc("s"), 0, 2, ...enc("hi"), 1, ...enc("b"), 1, 2, 0xde, 0xad, 1, ...enc("n"), 2, 0xac, 0x02];

  test("encoding", () => {
    const w = new Writer();
    writeMetadata(w, md);
    assert.deepEqual([...w.finish()], bytes);
  });

  test("decoding", () => {
    const got = readMetadata(new Reader(Uint8Array.from(bytes)));
    assert.deepEqual(got, md);
    assert.ok(got[1]![1] instanceof Uint8Array, "tag 1 is Bytes");
    assert.equal(typeof got[2]![1], "bigint", "tag 2 is U64");
  });

  test("inside a whole Request, byte for byte", () => {
    const m = { type: "Request" as const, connId: 0, requestId: 5, methodId: 100n, metadata: [["k", Uint8Array.of(7)], ["u", 1n]] as Metadata, channels: [], payload: new Uint8Array() };
    const raw = messageToBytes(m);
    // Message::Request is variant 5: conn_id, request_id, method_id (u64 varint), metadata, channels, payload.
    assert.deepEqual([...raw], [5, 0, 5, 100, 2, 1, ...enc("k"), 1, 1, 7, 1, ...enc("u"), 2, 1, 0, 0]);
    assert.deepEqual(decodeMessage(raw), m);
  });
});

describe("Hello negotiation: the minimum of both sides, whichever side is smaller", () => {
  const cases: { name: string; server: [number, number]; peer: [number, number] }[] = [
    { name: "the peer advertises less", server: [64 * 1024, 32 * 1024], peer: [4096, 512] },
    { name: "the server advertises less", server: [2048, 256], peer: [1024 * 1024, 1024 * 1024] },
    { name: "mixed: smaller payload here, smaller credit there", server: [2048, 1024 * 1024], peer: [1024 * 1024, 300] },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const links: Link[] = [];
      const server = await listenTcp({
        port: 0,
        maxPayloadSize: c.server[0],
        initialChannelCredit: c.server[1],
        dispatcher: serve(Testbed, testbedImpl),
        onLink: (l) => links.push(l),
      });
      try {
        const p = await rawConnect(server.port!);
        await p.next();
        p.hello(c.peer[0], c.peer[1]);
        const maxPayloadSize = Math.min(c.server[0], c.peer[0]);
        // A call proves the handshake is done; then an oversized one breaks the negotiated limit.
        const payload = (s: string) => {
          const w = new Writer();
          t.tuple(t.string).encode(w, [s]);
          return w.finish();
        };
        p.send({ type: "Request", connId: 0, requestId: 1, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: payload("x") });
        await p.expect("Response");
        assert.deepEqual(links[0]!.limits, { maxPayloadSize, initialChannelCredit: Math.min(c.server[1], c.peer[1]) });
        p.send({ type: "Request", connId: 0, requestId: 2, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: payload("y".repeat(maxPayloadSize + 10)) });
        const g = await p.expectGoodbyeAndClose();
        assert.ok(g.reason.startsWith("message.hello.enforcement"), g.reason);
      } finally {
        await server.close();
      }
    });
  }
});

describe("Hello timeout (message.hello.timing)", () => {
  test("the accepting side drops a peer that never sends Hello", async () => {
    const server = await listenTcp({ port: 0, handshakeTimeoutMs: 200, dispatcher: serve(Testbed, testbedImpl) });
    try {
      const p = await rawConnect(server.port!);
      assert.equal((await p.next())?.type, "Hello");
      // Silent peer: the server must give up by itself (generous bound: the timeout is 200 ms).
      await within(p.closed, 10_000, "server closing a silent peer");
    } finally {
      await server.close();
    }
  });

  test("the connecting side gives up on a server that never sends Hello, with a typed error naming the rule", async () => {
    const raw = await rawListen();
    try {
      const sock = net.connect(raw.port, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      const link = new Link(new StreamTransport(sock), {
        initiator: true,
        handshakeTimeoutMs: 200,
        handshake: new HelloHandshake({ maxPayloadSize: 1024, initialChannelCredit: 1024 }),
      });
      const ready = link.start();
      const peer = await raw.accept();
      assert.equal((await peer.next())?.type, "Hello");
      const e = await within(ready.then(() => null, (x: unknown) => x), 10_000, "handshake timeout");
      assert.ok(e instanceof ConnectionClosedError, String(e));
      assert.match(e.message, /message\.hello\.timing/);
      await within(peer.closed, 10_000, "the socket closed");
    } finally {
      raw.close();
    }
  });
});

describe("credit overrun is counted over several Data messages (flow.channel.credit-overrun)", () => {
  // The handler never reads its channel, so no credit comes back meanwhile.
  const Hold = defineService("Hold", { hold: method([arg("input", t.rx(t.bytes))], t.unit) });

  test("two Data of 40 B on a 64 B window: the second is an overrun", async () => {
    const server = await listenTcp({
      port: 0,
      initialChannelCredit: 64,
      dispatcher: serve(Hold, { hold: (_input, ctx) => new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r())) }),
    });
    try {
      const p = await rawConnect(server.port!);
      await p.next();
      p.hello(1024 * 1024, 64);
      p.send({ type: "Request", connId: 0, requestId: 1, methodId: Hold.methods.hold.id, metadata: [], channels: [1], payload: Uint8Array.of(1) });
      const forty = Uint8Array.from([39, ...new Array<number>(39).fill(9)]); // bytes: len 39 + 39 B = 40 B
      p.send({ type: "Data", connId: 0, channelId: 1, payload: forty });
      p.send({ type: "Data", connId: 0, channelId: 1, payload: forty });
      const g = await p.expectGoodbyeAndClose();
      assert.equal(g.connId, 0);
      assert.ok(g.reason.startsWith("flow.channel.credit-overrun"), g.reason);
    } finally {
      await server.close();
    }
  });

  test("exactly the window in several Data messages is fine", async () => {
    const server = await listenTcp({
      port: 0,
      initialChannelCredit: 64,
      dispatcher: serve(Hold, { hold: (_input, ctx) => new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r())) }),
    });
    try {
      const p = await rawConnect(server.port!);
      await p.next();
      p.hello(1024 * 1024, 64);
      p.send({ type: "Request", connId: 0, requestId: 1, methodId: Hold.methods.hold.id, metadata: [], channels: [1], payload: Uint8Array.of(1) });
      const sixteen = Uint8Array.from([15, ...new Array<number>(15).fill(9)]);
      for (let i = 0; i < 4; i++) p.send({ type: "Data", connId: 0, channelId: 1, payload: sixteen });
      // Still alive: an unknown method gets its Err(UnknownMethod) Response.
      p.send({ type: "Request", connId: 0, requestId: 2, methodId: 0xdeadn, metadata: [], channels: [], payload: new Uint8Array() });
      const r = await p.expect("Response");
      assert.equal(r.requestId, 2);
      p.destroy();
    } finally {
      await server.close();
    }
  });
});
