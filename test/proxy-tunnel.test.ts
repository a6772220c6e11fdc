/**
 * Forwarding proxy (schema-less, channel ids remapped, backpressure end to
 * end, late-bound upstream) and byte tunnels (a TCP connection through a call).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as net from "node:net";
import { after, before, describe, test } from "node:test";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { channel } from "../src/session/channel/pair.js";
import { client, serve, ServiceDispatcher, type ImplementationOf } from "../src/session/serve.js";
import { CancelledError, ChannelResetError } from "../src/session/errors.js";
import { ForwardingDispatcher, LateBoundForwarder } from "../src/proxy/forward.js";
import { connectTcp, listenTcp, type RoamServer } from "../src/transport/node.js";
import type { Link } from "../src/session/link.js";
import { pumpDuplex, tunnel } from "../src/tunnel/tunnel.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { sleep, within } from "./helpers/testbed-server.js";

const Flow = defineService("Flow", {
  blob: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.u64),
  drain: method([arg("input", t.rx(t.bytes))], t.u64),
  hold: method([], t.unit),
});
const produced = { count: 0 };
/** The backend's `hold` handlers: started, and their signal aborted (the Cancel arrived). */
const holds = { started: [] as (() => void)[], cancelled: [] as (() => void)[] };
const flowImpl: ImplementationOf<typeof Flow> = {
  blob: async (count, size, out) => {
    produced.count = 0;
    for (let i = 0; i < count; i++) {
      await out.send(new Uint8Array(size).fill(i & 0xff));
      produced.count++;
    }
    return BigInt(count) * BigInt(size);
  },
  drain: async (input) => {
    let n = 0n;
    for await (const b of input) n += BigInt(b.length);
    return n;
  },
  hold: (ctx) =>
    new Promise<void>((resolve) => {
      holds.started.shift()?.();
      ctx.signal.addEventListener("abort", () => {
        holds.cancelled.shift()?.();
        resolve();
      });
    }),
};

describe("forwarding proxy", () => {
  let backend: RoamServer;
  let proxy: RoamServer;
  let upstream: Link;
  let forwarder: ForwardingDispatcher;
  before(async () => {
    backend = await listenTcp({ port: 0, dispatcher: new ServiceDispatcher().add(Testbed, testbedImpl).add(Flow, flowImpl), initialChannelCredit: 8192 });
    upstream = await connectTcp({ port: backend.port!, initialChannelCredit: 8192 });
    forwarder = new ForwardingDispatcher(upstream.root);
    // The proxy's downstream window (16 KiB) is larger than upstream's (8 KiB):
    // the relay must mediate, not pass credit through blindly.
    proxy = await listenTcp({ port: 0, dispatcher: forwarder, initialChannelCredit: 16384 });
  });
  after(async () => {
    upstream.close();
    await proxy.close();
    await backend.close();
  });

  test("every Testbed method works through the proxy, which knows no schema", async () => {
    const link = await connectTcp({ port: proxy.port! });
    const tb = client(Testbed, link.root);
    assert.equal(await tb.echo("via proxy"), "via proxy");
    await assert.rejects(tb.divide(1n, 0n), (e: unknown) => (e as { error?: unknown }).error === "DivisionByZero");
    assert.deepEqual(await tb.createCanvas("c", [{ tag: "Point" }], "Red"), { name: "c", shapes: [{ tag: "Point" }], background: "Red" });
    const [tx, rx] = channel<number>();
    const sum = tb.sum(rx);
    for (let i = 1; i <= 10; i++) await tx.send(i);
    await tx.close();
    assert.equal(await sum, 55n);
    const [gtx, grx] = channel<number>();
    const gen = tb.generate(500, gtx);
    const got = await grx.collect();
    await gen;
    assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i));
    const [itx, irx] = channel<string>();
    const [otx, orx] = channel<string>();
    const tr = tb.transform(irx, otx);
    const out = orx.collect();
    for (const w of ["x", "y", "z"]) await itx.send(w);
    await itx.close();
    await tr;
    assert.deepEqual(await out, ["x", "y", "z"]);
    link.close();
  });

  test("ids are remapped: two clients using the same channel ids at once do not collide upstream", async () => {
    const a = await connectTcp({ port: proxy.port! });
    const b = await connectTcp({ port: proxy.port! });
    const ta = client(Testbed, a.root);
    const tb = client(Testbed, b.root);
    const [atx, arx] = channel<number>();
    const [btx, brx] = channel<number>();
    const pa = ta.sum(arx);
    const pb = tb.sum(brx);
    assert.equal(atx.id, btx.id, "both clients allocated the same id");
    for (let i = 0; i < 100; i++) {
      await atx.send(1);
      await btx.send(2);
    }
    await atx.close();
    await btx.close();
    assert.deepEqual(await Promise.all([pa, pb]), [100n, 200n]);
    a.close();
    b.close();
  });

  test("backpressure crosses the proxy: a slow final consumer stalls the producer; the proxy holds at most a window", async () => {
    const link = await connectTcp({ port: proxy.port!, initialChannelCredit: 16384 });
    const f = client(Flow, link.root);
    const [tx, rx] = channel<Uint8Array>();
    const total = 4000;
    const p = f.blob(total, 1024, tx);
    await sleep(300);
    const stalledAt = produced.count;
    // Read while the relay is live (it is released, and its peak gone, once the call ends).
    const peak = forwarder.peakQueuedBytes();
    assert.ok(peak > 0 && peak <= 16384, `proxy peak queue ${peak} B while the consumer is stalled: within the window`);
    assert.ok(stalledAt < total, "producer did not run ahead");
    // Windows: client 16 KiB + proxy relay 8..16 KiB + socket buffers; the producer is
    // bounded by credit, far below the 4 MiB it wants to send.
    assert.ok(stalledAt * 1024 <= 16384 + 16384 + 8192 + 1024, `producer sent ${stalledAt} KiB while nobody read`);
    const st = forwarder.stats();
    assert.ok(st.queuedBytes <= 16384, `proxy queue ${st.queuedBytes} within the downstream window`);
    await sleep(200);
    assert.equal(produced.count, stalledAt, "still stalled");
    let n = 0;
    for await (const b of rx) {
      assert.equal(b[0], n & 0xff, "in order");
      n++;
    }
    assert.equal(n, total);
    assert.equal(await p, BigInt(total * 1024));
    assert.ok(forwarder.peakQueuedBytes() <= 16384);
    // The other direction: caller → callee through the proxy.
    const [dtx, drx] = channel<Uint8Array>();
    const d = f.drain(drx);
    for (let i = 0; i < 300; i++) await dtx.send(new Uint8Array(1000).fill(1));
    await dtx.close();
    assert.equal(await d, 300_000n);
    link.close();
  });

  test("cancelling through the proxy reaches the backend", async () => {
    const link = await connectTcp({ port: proxy.port! });
    const f = client(Flow, link.root);
    const [tx, rx] = channel<Uint8Array>();
    const ac = new AbortController();
    const p = f.drain(rx, { signal: ac.signal });
    await tx.send(new Uint8Array(10));
    ac.abort();
    await assert.rejects(p, CancelledError);
    assert.equal(await client(Testbed, link.root).echo("after"), "after");
    await sleep(50);
    assert.equal(forwarder.stats().inFlight, 0);
    link.close();
  });

  test("a Cancel from the caller is forwarded upstream: the backend handler's signal aborts", async () => {
    const link = await connectTcp({ port: proxy.port! });
    try {
      const started = new Promise<void>((r) => holds.started.push(r));
      const cancelled = new Promise<void>((r) => holds.cancelled.push(r));
      const ac = new AbortController();
      const p = client(Flow, link.root).hold({ signal: ac.signal });
      await within(started, 5000, "backend handler started");
      ac.abort();
      await assert.rejects(p, CancelledError);
      await within(cancelled, 5000, "the backend saw the Cancel");
    } finally {
      link.close();
    }
  });

  test("late-bound forwarder: Cancelled before an upstream is set, forwards after", async () => {
    const late = new LateBoundForwarder();
    const front = await listenTcp({ port: 0, dispatcher: late });
    try {
      const link = await connectTcp({ port: front.port! });
      const tb = client(Testbed, link.root);
      await assert.rejects(tb.echo("too early"), CancelledError);
      late.setUpstream(upstream.root);
      assert.equal(await tb.echo("now"), "now");
      link.close();
    } finally {
      await front.close();
    }
  });
});

const Tunnels = defineService("Tunnels", {
  open: method([arg("port", t.u16), arg("input", t.rx(t.bytes)), arg("output", t.tx(t.bytes))], t.u64),
});

describe("byte tunnels", () => {
  test("a TCP connection tunnelled through a call carries 100 MiB intact, both ways", { timeout: 120_000 }, async () => {
    // Target: echoes everything, like any TCP service would answer.
    const target = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    const targetPort = (target.address() as net.AddressInfo).port;
    const server = await listenTcp({
      port: 0,
      dispatcher: serve(Tunnels, {
        open: async (port, input, output) => {
          const sock = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
          await new Promise((r) => sock.once("connect", r));
          const r = await pumpDuplex(sock, { rx: input, tx: output });
          return BigInt(r.sent);
        },
      }),
    });
    // Local end: a socket pair; the application writes into `user`.
    const local = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => local.listen(0, "127.0.0.1", r));
    const accepted = new Promise<net.Socket>((r) => local.once("connection", r));
    const user = net.connect({ port: (local.address() as net.AddressInfo).port, host: "127.0.0.1", allowHalfOpen: true });
    const inner = await accepted;
    const link = await connectTcp({ port: server.port! });
    try {
      const tun = tunnel();
      const call = client(Tunnels, link.root).open(targetPort, tun.remote.input, tun.remote.output);
      const pump = pumpDuplex(inner, tun.local);

      const TOTAL = 100 * 1024 * 1024;
      const sentHash = createHash("sha256");
      const recvHash = createHash("sha256");
      let received = 0;
      const done = new Promise<void>((resolve, reject) => {
        user.on("data", (d: Buffer) => {
          received += d.length;
          recvHash.update(d);
        });
        user.on("end", () => resolve());
        user.on("error", reject);
      });
      const block = Buffer.alloc(256 * 1024);
      for (let off = 0; off < TOTAL; off += block.length) {
        for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((off + i) >>> 0, i);
        sentHash.update(block);
        if (!user.write(Buffer.from(block))) await new Promise((r) => user.once("drain", r));
      }
      user.end();
      await within(done, 100_000, "100 MiB echoed through the tunnel");
      assert.equal(received, TOTAL);
      assert.equal(recvHash.digest("hex"), sentHash.digest("hex"));
      const r = await within(pump, 10_000, "pump end");
      assert.equal(r.sent, TOTAL);
      assert.equal(r.received, TOTAL);
      assert.equal(await within(call, 10_000, "call end"), BigInt(TOTAL));
    } finally {
      user.destroy();
      link.close();
      await server.close();
      local.close();
      target.close();
    }
  });

  test("an error on one end resets the tunnel on the other", async () => {
    const server = await listenTcp({
      port: 0,
      dispatcher: serve(Tunnels, {
        open: async (_port, input, output) => {
          // The far service dies at once.
          const { PassThrough } = await import("node:stream");
          const d = new PassThrough();
          const p = pumpDuplex(d as unknown as net.Socket, { rx: input, tx: output });
          d.destroy(new Error("service crashed"));
          await p.catch(() => {});
          return 0n;
        },
      }),
    });
    const link = await connectTcp({ port: server.port! });
    try {
      const tun = tunnel();
      const call = client(Tunnels, link.root).open(1, tun.remote.input, tun.remote.output);
      const { PassThrough } = await import("node:stream");
      const localEnd = new PassThrough();
      const pump = pumpDuplex(localEnd as unknown as net.Socket, tun.local);
      localEnd.write(Buffer.from("hello"));
      // The far end failed: that must arrive as Reset (an error), never as Close (a clean EOF).
      const outcome = await within(pump.then(() => "ended", (e: unknown) => e), 5000, "local pump notices");
      assert.ok(outcome instanceof ChannelResetError, `the local pump fails with ChannelResetError, got ${String(outcome)}`);
      assert.equal(localEnd.destroyed, true, "the local stream is torn down");
      await within(call, 5000, "call returns");
    } finally {
      link.close();
      await server.close();
    }
  });
});

test("a stream that ends while its last chunk still waits for credit loses nothing", async () => {
  const { PassThrough } = await import("node:stream");
  // A tiny window forces every chunk to be split and to wait for credit.
  const server = await listenTcp({
    port: 0,
    initialChannelCredit: 1024,
    dispatcher: serve(Tunnels, {
      open: async (_port, input, output) => {
        let n = 0n;
        for await (const b of input) n += BigInt(b.length);
        await output.close();
        return n;
      },
    }),
  });
  const link = await connectTcp({ port: server.port!, initialChannelCredit: 1024 });
  try {
    const tun = tunnel();
    const call = client(Tunnels, link.root).open(1, tun.remote.input, tun.remote.output);
    const src = new PassThrough();
    const pump = pumpDuplex(src as unknown as net.Socket, tun.local);
    src.end(Buffer.alloc(50_000, 7)); // one chunk, then end at once
    const r = await within(pump, 10_000, "pump");
    assert.equal(r.sent, 50_000);
    assert.equal(await within(call, 10_000, "call"), 50_000n);
  } finally {
    link.close();
    await server.close();
  }
});
