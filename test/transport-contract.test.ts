/**
 * The MessageTransport contract (src/session/transport.ts), enforced on the
 * real transports: each pair runs under test/helpers/contract-transport.ts
 * (bytes scribbled over as soon as `send` returns, what arrives checked
 * byte for byte and in order against what was sent, the sink's callbacks
 * checked) through the session's core scenarios: calls, channels with
 * credit both ways, close.
 */
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { after, describe, test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { channel } from "../src/session/channel/pair.js";
import type { Rx } from "../src/session/channel/rx.js";
import type { Tx } from "../src/session/channel/tx.js";
import { ConnectionClosedError } from "../src/session/errors.js";
import type { Link } from "../src/session/link.js";
import { client, serve, ServiceDispatcher } from "../src/session/serve.js";
import type { MessageTransport, TransportSink } from "../src/session/transport.js";
import { resolveLinkOptions, type PeerOptions } from "../src/transport/link-options.js";
import { openLink } from "../src/transport/open-link.js";
import { StreamTransport } from "../src/transport/stream.js";
import { WebSocketTransport, type WebSocketLike } from "../src/transport/websocket.js";
import { WsFrameWriter } from "../src/transport/ws-frames.js";
import { decodeMessage, encodeMessage, type Message } from "../src/wire/message.js";
import { Writer } from "../src/codec/writer.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { contractEnd, contractPair, type ContractTransport } from "./helpers/contract-transport.js";
import { exerciseTestbed, GUEST_SCRIPT } from "./helpers/shm-harness.js";
import { ShmHandshake } from "../src/transport/shm/driver.js";
import { ShmHost } from "../src/transport/shm/host.js";
import { memoryTransportPair } from "./helpers/memory-transport.js";
import { within } from "./helpers/testbed-server.js";

/** Bulk `bytes` both ways over channels (large elements take the payloadHead path). */
const Bulk = defineService("Bulk", {
  /** Checks every element is `size` bytes of its index's pattern; returns the bytes seen. */
  drain: method([arg("size", t.u32), arg("input", t.rx(t.bytes))], t.u64),
  /** Sends `n` elements of `size` bytes, element i filled with (i & 0xff). */
  fill: method([arg("n", t.u32), arg("size", t.u32), arg("output", t.tx(t.bytes))], t.unit),
  /** Returns `data` reversed. */
  reverse: method([arg("data", t.bytes)], t.bytes),
});

function pattern(i: number, size: number): Uint8Array {
  return new Uint8Array(size).fill(i & 0xff);
}

const bulkImpl = {
  drain: async (size: number, input: Rx<Uint8Array>) => {
    let total = 0n;
    let i = 0;
    for await (const v of input) {
      if (v.length !== size || v.some((b) => b !== (i & 0xff))) throw new Error(`element ${i} is damaged`);
      total += BigInt(v.length);
      i++;
    }
    return total;
  },
  fill: async (n: number, size: number, output: Tx<Uint8Array>) => {
    for (let i = 0; i < n; i++) await output.send(pattern(i, size));
    output.close();
  },
  reverse: (data: Uint8Array) => data.slice().reverse(),
};

/** Small credit so the channels run on Credit messages, not on the initial window. */
const PEER: PeerOptions = { initialChannelCredit: 32 * 1024, maxPayloadSize: 4 * 1024 * 1024 };
const ELEMENT = 20_000;

function once(f: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= f());
}

interface RawPair {
  a: MessageTransport;
  b: MessageTransport;
  cleanup(): Promise<void>;
}

async function tcpPair(): Promise<RawPair> {
  const limits = resolveLinkOptions(PEER).limits;
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const socket = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const peer = await accepted;
  return {
    a: new StreamTransport(socket, { maxFrameBytes: limits.maxFrameBytes, description: "tcp client" }),
    b: new StreamTransport(peer, { maxFrameBytes: limits.maxFrameBytes, description: "tcp server" }),
    cleanup: once(() => new Promise((resolve) => server.close(() => resolve()))),
  };
}

async function wsPair(): Promise<RawPair> {
  const limits = resolveLinkOptions(PEER).limits;
  const httpServer = http.createServer();
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const wss = new WebSocketServer({ server: httpServer, maxPayload: limits.maxMessageBytes, perMessageDeflate: false });
  const accepted = new Promise<MessageTransport>((resolve) =>
    wss.once("connection", (ws, req) =>
      resolve(
        new WebSocketTransport(ws as unknown as WebSocketLike, {
          maxMessageBytes: limits.maxMessageBytes,
          description: "ws server",
          frames: new WsFrameWriter(req.socket, false),
        }),
      ),
    ),
  );
  const ws = new WebSocket(`ws://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}/`, { maxPayload: limits.maxMessageBytes, perMessageDeflate: false });
  let frames: WsFrameWriter | undefined;
  ws.once("upgrade", (res) => {
    frames = new WsFrameWriter(res.socket, true);
  });
  const a = await new Promise<MessageTransport>((resolve, reject) => {
    ws.once("open", () => resolve(new WebSocketTransport(ws as unknown as WebSocketLike, { maxMessageBytes: limits.maxMessageBytes, description: "ws client", frames })));
    ws.once("error", reject);
  });
  const b = await accepted;
  return {
    a,
    b,
    cleanup: once(async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    }),
  };
}

async function memoryPair(): Promise<RawPair> {
  const { a, b } = memoryTransportPair();
  return { a, b, cleanup: async () => {} };
}

interface Env {
  client: Link;
  server: Link;
  a: ContractTransport;
  b: ContractTransport;
  violations: string[];
  cleanup(): Promise<void>;
}

/** Opens a link over each end of `raw`, both under the contract. */
async function open(raw: RawPair, peer: PeerOptions = PEER): Promise<Env> {
  const { a, b, violations } = contractPair(raw.a, raw.b);
  const dispatcher = new ServiceDispatcher().add(Testbed, testbedImpl).add(Bulk, bulkImpl);
  const server = openLink(b, { ...resolveLinkOptions({ ...peer, dispatcher }), initiator: false });
  const clientLink = openLink(a, { ...resolveLinkOptions(peer), initiator: true });
  await within(Promise.all([clientLink.ready(), server.ready()]), 10_000, "handshake");
  return { client: clientLink, server, a, b, violations, cleanup: raw.cleanup };
}

/** Closes the client link and checks the close half of the contract. */
async function closeAndCheck(env: Env): Promise<void> {
  env.client.close();
  // close() is idempotent on the transport too.
  env.a.close();
  await within(Promise.all([env.a.whenClosed(), env.b.whenClosed()]), 10_000, "both ends report closed");
  const reason = await within(env.server.closed(), 5000, "server link closed");
  assert.ok(reason instanceof ConnectionClosedError);
  // close() flushed: everything the client sent, its Goodbye last, reached the server's sink.
  assert.equal(env.b.undelivered, 0, "messages the client sent that never reached the server");
  assert.equal(env.a.closedCount, 1);
  assert.equal(env.b.closedCount, 1);
  await env.cleanup();
  assert.deepEqual(env.violations, []);
}

/** Runs `body`; a failure that follows a contract violation is reported as that violation. */
async function underContract(env: Env, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (env.violations.length > 0) assert.fail(`MessageTransport contract violated: ${env.violations.slice(0, 5).join("; ")} (then: ${String(e)})`);
    throw e;
  }
}

const KINDS: [string, () => Promise<RawPair>][] = [
  ["memory", memoryPair],
  ["tcp", tcpPair],
  ["ws", wsPair],
];

for (const [kind, make] of KINDS) {
  describe(`MessageTransport contract over ${kind}`, () => {
    const envs: Env[] = [];
    after(async () => {
      // What a failed test left open (cleanup is idempotent).
      for (const e of envs) {
        e.client.close();
        e.server.close();
        await e.cleanup();
      }
    });

    test("calls: pipelined, small and bulk, results intact", { timeout: 60_000 }, async () => {
      const env = await open(await make());
      envs.push(env);
      await underContract(env, async () => {
        const tb = client(Testbed, env.client.root);
        const bulk = client(Bulk, env.client.root);
        const words = Array.from({ length: 300 }, (_, i) => "x".repeat(i * 7) + i);
        const echoes = await within(Promise.all(words.map((w) => tb.echo(w))), 30_000, "echo calls");
        assert.deepEqual(echoes, words);
        const big = Uint8Array.from({ length: 1_000_000 }, (_, i) => (i * 31) & 0xff);
        const reversed = await within(bulk.reverse(big), 30_000, "bulk call");
        assert.deepEqual(reversed, big.slice().reverse());
        const points = await tb.getPoints(3000);
        assert.equal(points.length, 3000);
        assert.deepEqual(points[2999], { x: 2999, y: 2999 * 2 });
        assert.deepEqual(env.violations, []);
        await closeAndCheck(env);
      });
    });

    test("channels with credit both ways: numbers, strings and bulk bytes", { timeout: 60_000 }, async () => {
      const env = await open(await make());
      envs.push(env);
      await underContract(env, async () => {
        const tb = client(Testbed, env.client.root);
        const bulk = client(Bulk, env.client.root);

        const [tx, rx] = channel<number>();
        const sum = tb.sum(rx);
        for (let i = 1; i <= 20_000; i++) await tx.send(i);
        tx.close();
        assert.equal(await within(sum, 30_000, "sum"), BigInt((20_000 * 20_001) / 2));

        const [gtx, grx] = channel<number>();
        const gen = tb.generate(20_000, gtx);
        const got: number[] = [];
        for await (const v of grx) got.push(v);
        await gen;
        assert.deepEqual(got, Array.from({ length: 20_000 }, (_, i) => i));

        const [itx, irx] = channel<string>();
        const [otx, orx] = channel<string>();
        const tr = tb.transform(irx, otx);
        const lines = Array.from({ length: 200 }, (_, i) => `line ${i} `.repeat(i % 13));
        const out: string[] = [];
        const reading = (async () => {
          for await (const v of orx) out.push(v);
        })();
        for (const l of lines) await itx.send(l);
        itx.close();
        await within(Promise.all([tr, reading]), 30_000, "transform");
        assert.equal(out.length, lines.length);

        // Bulk elements (the payloadHead path), many credit windows' worth.
        const [btx, brx] = channel<Uint8Array>();
        const drained = bulk.drain(ELEMENT, brx);
        for (let i = 0; i < 40; i++) await btx.send(pattern(i, ELEMENT));
        btx.close();
        assert.equal(await within(drained, 30_000, "drain"), BigInt(40 * ELEMENT));

        const [ftx, frx] = channel<Uint8Array>();
        const filled = bulk.fill(40, ELEMENT, ftx);
        let i = 0;
        for await (const v of frx) {
          assert.deepEqual(v, pattern(i, ELEMENT), `element ${i}`);
          i++;
        }
        await filled;
        assert.equal(i, 40);
        assert.deepEqual(env.violations, []);
        await closeAndCheck(env);
      });
    });

    test("close: pending calls fail, both ends report closed once, nothing after", { timeout: 60_000 }, async () => {
      const env = await open(await make());
      envs.push(env);
      await underContract(env, async () => {
        const tb = client(Testbed, env.client.root);
        const [tx, rx] = channel<number>();
        const pending = assert.rejects(tb.sum(rx), ConnectionClosedError);
        await tx.send(1);
        await closeAndCheck(env);
        await pending;
      });
    });
  });
}

describe("MessageTransport contract over SHM (host end; the guest is a worker thread)", () => {
  const hosts: ShmHost[] = [];
  after(async () => {
    await Promise.all(hosts.map((h) => h.close()));
  });

  test("calls, bulk payloads and channels with credit, then close", { timeout: 120_000 }, async () => {
    const host = ShmHost.create({ backing: "memory", initialCredit: 32 * 1024 });
    hosts.push(host);
    const ticket = host.addPeer({ name: "worker" });
    ticket.spawnWorker(GUEST_SCRIPT);
    // What establishHostPeer does, with the transport under the contract.
    const inner = host.openTransport(ticket.peerId, {});
    const end = contractEnd(inner, "shm host");
    const { maxPayloadSize, initialCredit: initialChannelCredit } = host.segment.config;
    const link = openLink(end, {
      ...resolveLinkOptions({ dispatcher: serve(Testbed, testbedImpl), maxPayloadSize, initialChannelCredit }),
      initiator: false,
      handshake: new ShmHandshake(host.segment),
      flowControl: () => inner.flow,
    });
    host.adoptLink(ticket.peerId, link);
    await host.waitAttached(ticket.peerId, 10_000);
    const check = async (body: () => Promise<void>) => {
      try {
        await body();
      } catch (e) {
        if (end.violations.length > 0) assert.fail(`MessageTransport contract violated: ${end.violations.slice(0, 5).join("; ")} (then: ${String(e)})`);
        throw e;
      }
    };
    await check(async () => {
      const tb = client(Testbed, link.root);
      await within(exerciseTestbed(tb), 30_000, "Testbed over SHM");
      for (const n of [100, 5000, 300_000]) {
        const data = Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);
        const r = await within(tb.processMessage({ tag: "Data", value: data }), 20_000, `${n} bytes`);
        assert.deepEqual(r.value, data.slice().reverse(), `${n} bytes came back reversed`);
      }
      const [tx, rx] = channel<number>();
      const sum = tb.sum(rx);
      for (let i = 1; i <= 20_000; i++) await tx.send(i);
      tx.close();
      assert.equal(await within(sum, 30_000, "sum"), BigInt((20_000 * 20_001) / 2));
      const [gtx, grx] = channel<number>();
      const gen = tb.generate(20_000, gtx);
      let k = 0;
      for await (const v of grx) assert.equal(v, k++);
      await gen;
      assert.equal(k, 20_000);
      link.close();
      await within(end.whenClosed(), 10_000, "sink.closed after close");
      assert.equal(end.closedCount, 1);
      assert.deepEqual(end.violations, []);
    });
  });
});

/**
 * A transport with the bug the contract forbids: it keeps the message and
 * encodes it on a later microtask (as if it queued a view of the bytes).
 */
class KeepsAView implements MessageTransport {
  sink: TransportSink | null = null;
  peer: KeepsAView | null = null;
  readonly description = "keeps a view";
  private readonly w = new Writer(1024);
  start(sink: TransportSink): void {
    this.sink = sink;
  }
  send(m: Message): void {
    queueMicrotask(() => {
      this.w.reset();
      encodeMessage(this.w, m);
      const bytes = this.w.finish().slice();
      this.peer!.sink?.message(decodeMessage(bytes));
    });
  }
  flush(): void {}
  writable(): undefined {
    return undefined;
  }
  close(): void {
    const p = this.peer!;
    queueMicrotask(() => {
      this.sink?.closed();
      p.sink?.closed();
    });
  }
}

test("the contract transport catches a transport that keeps a view of the bytes past send", { timeout: 30_000 }, async () => {
  const a = new KeepsAView();
  const b = new KeepsAView();
  a.peer = b;
  b.peer = a;
  const { a: ca, b: cb, violations } = contractPair(a, b);
  const server = openLink(cb, { ...resolveLinkOptions({ dispatcher: new ServiceDispatcher().add(Bulk, bulkImpl) }), initiator: false });
  const link = openLink(ca, { ...resolveLinkOptions({}), initiator: true });
  const outcome = (async () => {
    await link.ready();
    return client(Bulk, link.root).reverse(new Uint8Array([1, 2, 3, 4]));
  })();
  await outcome.catch(() => undefined);
  link.close();
  server.close();
  assert.ok(
    violations.some((v) => v.includes("is not what the peer sent")),
    `expected the contract transport to report scribbled bytes, got: ${JSON.stringify(violations)}`,
  );
});
