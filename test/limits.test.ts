/**
 * One limits path for every transport (issue 11, item 3): with both sides
 * allowing them, calls and channel elements of 4 MiB and 16 MiB succeed over
 * TCP, a Unix socket and WebSocket (Node); one byte over the negotiated limit
 * gets the rule-id Goodbye on each. (WebSocket in the browser:
 * test/browser-limits.test.ts; SHM: test/shm-limits.test.ts.)
 *
 * The over-limit peer is raw: the transport class itself, driven without a
 * session, so it can send what a session would refuse to encode.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, test } from "node:test";
import { WebSocket } from "ws";
import { channel } from "../src/session/channel/pair.js";
import { client, serve } from "../src/session/serve.js";
import type { Link } from "../src/session/link.js";
import type { MessageTransport } from "../src/session/transport.js";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { connectTcp, connectUnix, connectWebSocket, listenTcp, listenUnix, listenWebSocket, type RoamServer } from "../src/transport/node.js";
import { resolveLimits } from "../src/transport/limits.js";
import { StreamTransport } from "../src/transport/stream.js";
import { WebSocketTransport, type WebSocketLike } from "../src/transport/websocket.js";
import type { Message } from "../src/wire/message.js";

const MiB = 1024 * 1024;
/** Both sides allow a 16 MiB bytes value (+ its length prefix) as payload and as channel window. */
const BIG = 16 * MiB + 1024;

export const Big = defineService("Big", {
  echo: method([arg("data", t.bytes)], t.bytes),
  sink: method([arg("input", t.rx(t.bytes))], t.u64),
});
const bigImpl = serve(Big, {
  echo: (data) => data,
  sink: async (input) => {
    let n = 0n;
    for await (const v of input) n += BigInt(v.length);
    return n;
  },
});

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4096) b[i] = (i / 4096) & 0xff;
  b[n - 1] = 0xab;
  return b;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "roam-limits-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Kind {
  name: string;
  listen(o: { maxPayloadSize: number; initialChannelCredit: number }): Promise<RoamServer>;
  connect(s: RoamServer, o: { maxPayloadSize: number; initialChannelCredit: number }): Promise<Link>;
  /** A raw transport to the server (no session). */
  raw(s: RoamServer, maxPayloadSize: number): Promise<MessageTransport>;
}

let unixN = 0;
const kinds: Kind[] = [
  {
    name: "TCP",
    listen: (o) => listenTcp({ port: 0, dispatcher: bigImpl, ...o }),
    connect: (s, o) => connectTcp({ port: s.port!, ...o }),
    raw: async (s, max) => {
      const sock = net.connect(s.port!, "127.0.0.1");
      await new Promise((r, j) => sock.once("connect", r).once("error", j));
      return new StreamTransport(sock, { maxFrameBytes: resolveLimits({ maxPayloadSize: max }).maxFrameBytes });
    },
  },
  {
    name: "Unix",
    listen: (o) => listenUnix({ path: path.join(tmp, `s${unixN++}.sock`), dispatcher: bigImpl, ...o }),
    connect: (s, o) => connectUnix({ path: s.path!, ...o }),
    raw: async (s, max) => {
      const sock = net.connect(s.path!);
      await new Promise((r, j) => sock.once("connect", r).once("error", j));
      return new StreamTransport(sock, { maxFrameBytes: resolveLimits({ maxPayloadSize: max }).maxFrameBytes });
    },
  },
  {
    name: "WebSocket (Node)",
    listen: (o) => listenWebSocket({ port: 0, dispatcher: bigImpl, ...o }),
    connect: (s, o) => connectWebSocket(`ws://127.0.0.1:${s.port}/`, o),
    raw: async (s, max) => {
      const lim = resolveLimits({ maxPayloadSize: max });
      const ws = new WebSocket(`ws://127.0.0.1:${s.port}/`, { maxPayload: lim.maxMessageBytes });
      const tr = new WebSocketTransport(ws as unknown as WebSocketLike, { maxMessageBytes: lim.maxMessageBytes });
      await new Promise((r, j) => ws.once("open", r).once("error", j));
      return tr;
    },
  },
];

/** Starts a raw transport, exchanges Hello (advertising `max`), returns a reader of the peer's messages. */
function rawSession(tr: MessageTransport, max: number) {
  const inbox: Message[] = [];
  let closed = false;
  let wake: (() => void) | null = null;
  tr.start({
    message: (m) => {
      inbox.push(m);
      wake?.();
    },
    malformed: () => {},
    closed: () => {
      closed = true;
      wake?.();
    },
  });
  tr.send({ type: "Hello", version: 2, maxPayloadSize: max, initialChannelCredit: BIG });
  tr.flush();
  return {
    async next(ms = 20_000): Promise<Message | null> {
      const deadline = Date.now() + ms;
      while (inbox.length === 0 && !closed && Date.now() < deadline) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return inbox.shift() ?? null;
    },
    async goodbye(): Promise<string> {
      for (let i = 0; i < 20; i++) {
        const m = await this.next();
        if (m === null) break;
        if (m.type === "Goodbye") return m.reason;
      }
      throw new Error("no Goodbye");
    },
  };
}

for (const k of kinds) {
  describe(`limits over ${k.name}`, { timeout: 120_000 }, () => {
    test("4 MiB and 16 MiB calls and channel elements succeed when both sides allow them", async () => {
      const o = { maxPayloadSize: BIG, initialChannelCredit: BIG };
      const server = await k.listen(o);
      try {
        const link = await k.connect(server, o);
        const big = client(Big, link.root);
        for (const n of [4 * MiB, 16 * MiB]) {
          const data = pattern(n);
          const back = await big.echo(data);
          assert.equal(back.length, n, `${n} byte call`);
          assert.ok(Buffer.from(back).equals(Buffer.from(data)), `${n} byte call returned the same bytes`);
        }
        const [tx, rx] = channel<Uint8Array>();
        const total = big.sink(rx);
        await tx.send(pattern(4 * MiB));
        await tx.send(pattern(16 * MiB));
        await tx.close();
        assert.equal(await total, BigInt(20 * MiB));
        link.close();
      } finally {
        await server.close();
      }
    });

    test("one byte over the negotiated limit: Goodbye naming the rule", async () => {
      // The server allows 4 MiB; the raw client advertises 16 MiB, so 4 MiB is negotiated.
      const limit = 4 * MiB;
      const server = await k.listen({ maxPayloadSize: limit, initialChannelCredit: BIG });
      try {
        // A call one byte over.
        {
          const tr = await k.raw(server, BIG);
          const s = rawSession(tr, BIG);
          assert.equal((await s.next())?.type, "Hello");
          tr.send({ type: "Request", connId: 0, requestId: 1, methodId: Big.methods.echo.id, metadata: [], channels: [], payload: new Uint8Array(limit + 1) });
          tr.flush();
          const reason = await s.goodbye();
          assert.ok(reason.startsWith("message.hello.enforcement"), reason);
          tr.close();
        }
        // A channel element one byte over.
        {
          const tr = await k.raw(server, BIG);
          const s = rawSession(tr, BIG);
          assert.equal((await s.next())?.type, "Hello");
          tr.send({ type: "Request", connId: 0, requestId: 1, methodId: Big.methods.sink.id, metadata: [], channels: [1], payload: Uint8Array.of(1) });
          tr.send({ type: "Data", connId: 0, channelId: 1, payload: new Uint8Array(limit + 1) });
          tr.flush();
          const reason = await s.goodbye();
          assert.ok(reason.startsWith("channeling.data.size-limit"), reason);
          tr.close();
        }
        // Exactly at the limit is fine.
        {
          const link = await k.connect(server, { maxPayloadSize: BIG, initialChannelCredit: BIG });
          const back = await client(Big, link.root).echo(new Uint8Array(limit - 8));
          assert.equal(back.length, limit - 8);
          link.close();
        }
      } finally {
        await server.close();
      }
    });
  });
}
