/**
 * Tx/Rx channels and credit-based flow control: channel positions anywhere
 * in the arguments, id parity, large transfers with a small window, slow
 * consumers bounding memory without blocking the link, level events.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { channel } from "../src/session/channel/pair.js";
import type { Rx } from "../src/session/channel/rx.js";
import type { Tx } from "../src/session/channel/tx.js";
import { client, serve, ServiceDispatcher, type ImplementationOf } from "../src/session/serve.js";
import { ChannelResetError, CancelledError } from "../src/session/errors.js";
import type { LevelChange } from "../src/session/pressure.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { startServer, sleep, TRANSPORTS, within } from "./helpers/testbed-server.js";
import { slowForMutation } from "./helpers/mutation.js";

const Job = t.struct({ name: t.string, out: t.tx(t.string) });
const Pick = t.enum({ Numbers: t.rx(t.i32), Labelled: { label: t.string, out: t.tx(t.i32) }, Nothing: null });

const Chan = defineService("Chan", {
  optional: method([arg("input", t.option(t.rx(t.i32)))], t.i64),
  many: method([arg("inputs", t.list(t.rx(t.i32)))], t.i64),
  job: method([arg("job", Job)], t.u32),
  pick: method([arg("which", Pick)], t.i64),
  ids: method([arg("a", t.rx(t.u8)), arg("b", t.tx(t.u8))], t.list(t.u64)),
  blob: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.u64),
  drain: method([arg("input", t.rx(t.bytes))], t.u64),
  callBack: method([], t.list(t.u64)),
});

async function sumRx(rx: Rx<number>): Promise<bigint> {
  let s = 0n;
  for await (const n of rx) s += BigInt(n);
  return s;
}

const chanImpl: ImplementationOf<typeof Chan> = {
  optional: async (input) => (input === null ? -1n : sumRx(input)),
  many: async (inputs) => {
    const parts = await Promise.all(inputs.map(sumRx));
    return parts.reduce((a, b) => a + b, 0n);
  },
  job: async (job) => {
    for (let i = 0; i < 3; i++) await job.out.send(`${job.name}-${i}`);
    return 3;
  },
  pick: async (which) => {
    switch (which.tag) {
      case "Numbers":
        return sumRx(which.value);
      case "Labelled":
        for (let i = 0; i < which.value.label.length; i++) await which.value.out.send(i);
        return BigInt(which.value.label.length);
      case "Nothing":
        return 0n;
    }
  },
  ids: async (a, b) => [BigInt(a.id!), BigInt(b.id!)],
  blob: async (count, size, out) => {
    let total = 0n;
    for (let i = 0; i < count; i++) {
      const b = new Uint8Array(size).fill(i & 0xff);
      await out.send(b);
      total += BigInt(size);
    }
    return total;
  },
  drain: async (input) => {
    let n = 0n;
    for await (const b of input) n += BigInt(b.length);
    return n;
  },
  // The callee calls back into the caller on the same connection: it allocates even ids.
  callBack: async (ctx) => {
    const back = client(Chan, ctx.connection);
    const [, arx] = channel<number>();
    const [btx] = channel<number>();
    return back.ids(arx, btx);
  },
};

test("channel positions are computed once, at definition", () => {
  assert.deepEqual(
    Chan.methods.optional.channels.map((c) => [c.path, c.direction, c.conditional]),
    [["args[0].some", "rx", true]],
  );
  assert.deepEqual(Chan.methods.many.channels.map((c) => c.path), ["args[0][*]"]);
  assert.deepEqual(Chan.methods.job.channels.map((c) => [c.path, c.direction, c.conditional]), [["args[0].out", "tx", false]]);
  assert.deepEqual(Chan.methods.pick.channels.map((c) => c.path), ["args[0].Numbers", "args[0].Labelled.out"]);
  assert.equal(Testbed.methods.echo.hasChannels, false);
  assert.equal(Testbed.methods.transform.channels.length, 2);
});

for (const kind of TRANSPORTS) {
  describe(`channels over ${kind}`, () => {
    let env: Awaited<ReturnType<typeof startServer>>;
    before(async () => {
      env = await startServer(kind, {
        dispatcher: new ServiceDispatcher().add(Testbed, testbedImpl).add(Chan, chanImpl),
        initialChannelCredit: 4096,
        acceptConnections: () => new ServiceDispatcher().add(Chan, chanImpl),
      });
    });
    after(async () => {
      await env.cleanup();
    });

    test("Testbed sum / generate / transform", async () => {
      const link = await env.connect();
      const tb = client(Testbed, link.root);
      const [tx, rx] = channel<number>();
      const sum = tb.sum(rx);
      for (let i = 1; i <= 100; i++) await tx.send(i);
      await tx.close();
      assert.equal(await sum, 5050n);
      const [gtx, grx] = channel<number>();
      const gen = tb.generate(1000, gtx);
      const got = await grx.collect();
      await gen;
      assert.equal(got.length, 1000);
      assert.ok(got.every((v, i) => v === i), "in order, none lost");
      const [itx, irx] = channel<string>();
      const [otx, orx] = channel<string>();
      const tr = tb.transform(irx, otx);
      const collected = orx.collect();
      const words = Array.from({ length: 200 }, (_, i) => `w${i}`);
      for (const w of words) await itx.send(w);
      await itx.close();
      await tr;
      assert.deepEqual(await collected, words);
      link.close();
    });

    test("channels inside Option, List, struct and enum variants", async () => {
      const link = await env.connect();
      const c = client(Chan, link.root);
      const [tx, rx] = channel<number>();
      const p = c.optional(rx);
      await tx.send(5);
      await tx.send(6);
      await tx.close();
      assert.equal(await p, 11n);
      assert.equal(await c.optional(null), -1n);

      const pairs = [channel<number>(), channel<number>(), channel<number>()];
      const m = c.many(pairs.map(([, r]) => r));
      for (const [i, [ptx]] of pairs.entries()) {
        await ptx.send(i + 1);
        await ptx.close();
      }
      assert.equal(await m, 6n);

      const [jtx, jrx] = channel<string>();
      const j = c.job({ name: "build", out: jtx });
      assert.deepEqual(await jrx.collect(), ["build-0", "build-1", "build-2"]);
      assert.equal(await j, 3);

      const [ntx, nrx] = channel<number>();
      const pn = c.pick({ tag: "Numbers", value: nrx });
      await ntx.send(40);
      await ntx.send(2);
      await ntx.close();
      assert.equal(await pn, 42n);
      const [ltx, lrx] = channel<number>();
      const pl = c.pick({ tag: "Labelled", value: { label: "abcd", out: ltx } });
      assert.deepEqual(await lrx.collect(), [0, 1, 2, 3]);
      assert.equal(await pl, 4n);
      assert.equal(await c.pick({ tag: "Nothing" }), 0n);
      link.close();
    });

    test("ids: the link initiator allocates odd ids, the acceptor even, on virtual connections too", async () => {
      const link = await env.connect();
      for (const conn of [link.root, await link.connect()]) {
        const c = client(Chan, conn);
        const [atx, arx] = channel<number>();
        const [btx] = channel<number>();
        const ids = await c.ids(arx, btx);
        await atx.close();
        assert.ok(ids.every((id) => id % 2n === 1n), `initiator ids ${ids}`);
        assert.notEqual(ids[0], ids[1]);
      }
      // The server (link acceptor) calling back into us uses even ids.
      link.root.setDispatcher(serve(Chan, chanImpl));
      const back = await client(Chan, link.root).callBack();
      assert.ok(back.every((id) => id % 2n === 0n && id > 0n), `acceptor ids ${back}`);
      link.close();
    });

    test("a single channel carries more than 100x the initial credit without overrun", { skip: slowForMutation }, async () => {
      const link = await env.connect({ initialChannelCredit: 4096 });
      assert.equal(link.limits.initialChannelCredit, 4096);
      const c = client(Chan, link.root);
      // Callee → caller: 1,000 × 1 KiB = 250× the window.
      const [tx, rx] = channel<Uint8Array>();
      const p = c.blob(1000, 1024, tx);
      let n = 0;
      let bytes = 0;
      for await (const b of rx) {
        assert.equal(b[0], n & 0xff);
        n++;
        bytes += b.length;
      }
      assert.equal(await p, 1024_000n);
      assert.equal(bytes, 1024_000);
      // Caller → callee, same volume.
      const [dtx, drx] = channel<Uint8Array>();
      const d = c.drain(drx);
      const chunk = new Uint8Array(1000).fill(7);
      for (let i = 0; i < 500; i++) await dtx.send(chunk);
      await dtx.close();
      assert.equal(await d, 500_000n);
      link.close();
    });

    test("a paused consumer stalls its producer within the window; other calls and channels keep flowing", async () => {
      const link = await env.connect({ initialChannelCredit: 4096 });
      const c = client(Chan, link.root);
      const tb = client(Testbed, link.root);
      // Slow channel: callee sends 2,000 × 512 B; we do not read yet.
      const [stx, srx] = channel<Uint8Array>();
      const slow = c.blob(2000, 512, stx);
      await sleep(200);
      const st = srx.stats();
      assert.ok(st.bufferedBytes > 0, "some data arrived");
      assert.ok(st.bufferedBytes <= st.window, `receiver buffer ${st.bufferedBytes} within window ${st.window}`);
      assert.ok(st.bufferedBytes + st.creditOutstanding <= st.window, "buffer + outstanding credit within window");
      // The link is not blocked: echo calls keep their latency, another channel flows.
      const t0 = performance.now();
      for (let i = 0; i < 50; i++) assert.equal(await tb.echo(`e${i}`), `e${i}`);
      const echoMs = (performance.now() - t0) / 50;
      assert.ok(echoMs < 50, `echo round trip ${echoMs.toFixed(2)} ms while a consumer is paused`);
      const [ftx, frx] = channel<number>();
      const fast = tb.generate(3000, ftx);
      assert.equal((await within(frx.collect(), 10_000, "other channel")).length, 3000);
      await fast;
      // Still stalled: the producer has not finished.
      const state = await Promise.race([slow.then(() => "done"), sleep(100).then(() => "pending")]);
      assert.equal(state, "pending", "producer must wait for credit");
      assert.ok(srx.stats().bufferedBytes <= 4096);
      // Resume: everything arrives, in order.
      let k = 0;
      for await (const b of srx) {
        assert.equal(b[0], k & 0xff);
        k++;
      }
      assert.equal(k, 2000);
      assert.equal(await slow, 2000n * 512n);
      link.close();
    });

    test("level events fire at the thresholds and come back down, on both ends", async () => {
      const link = await env.connect({ initialChannelCredit: 4096, thresholds: { yellow: 0.5, red: 0.9 } });
      const c = client(Chan, link.root);
      const [tx, rx] = channel<Uint8Array>();
      const changes: LevelChange[] = [];
      rx.onLevel((ch) => changes.push(ch));
      const p = c.blob(64, 256, tx);
      await sleep(150);
      assert.ok(changes.some((ch) => ch.to === "red" && ch.side === "receive"), JSON.stringify(changes));
      assert.equal(rx.stats().level, "red");
      await rx.collect();
      await p;
      assert.equal(changes.at(-1)?.to, "green", JSON.stringify(changes));

      // Sender side: a Tx waiting for credit reports its level too.
      const [dtx, drx] = channel<Uint8Array>();
      const sendChanges: LevelChange[] = [];
      dtx.onLevel((ch) => sendChanges.push(ch));
      const d = c.drain(drx);
      for (let i = 0; i < 40; i++) await dtx.send(new Uint8Array(500));
      await dtx.close();
      await d;
      assert.ok(sendChanges.length > 0, "the Tx waiting for credit reported its level");
      assert.ok(sendChanges.every((ch) => ch.side === "send"), JSON.stringify(sendChanges));
      link.close();
    });

    test("Reset: a consumer that leaves early resets the channel; the producer sees ChannelResetError", async () => {
      const link = await env.connect();
      const c = client(Chan, link.root);
      const [tx, rx] = channel<Uint8Array>();
      const p = c.blob(100_000, 100, tx);
      let n = 0;
      for await (const _ of rx) {
        if (++n === 10) break; // leaving the loop sends Reset
      }
      const e = await within(p.catch((x: unknown) => x), 5000, "producer failure");
      assert.ok(e instanceof Error, String(e));
      // The handler's send failed with the typed remote Reset (its name reaches us in the error).
      assert.match(String(e), /ChannelResetError/, String(e));
      // Caller-side reset of a Tx: the handler's loop sees ChannelResetError.
      const [dtx, drx] = channel<Uint8Array>();
      const d = c.drain(drx);
      await dtx.send(new Uint8Array(10));
      dtx.reset();
      const e2 = await within(d.catch((x: unknown) => x), 5000, "drain failure");
      assert.ok(e2 instanceof Error);
      assert.match(String(e2), /ChannelResetError/, String(e2));
      await assert.rejects(dtx.send(new Uint8Array(1)), ChannelResetError);
      assert.equal(await client(Testbed, link.root).echo("alive"), "alive");
      link.close();
    });

    test("send and next honour an AbortSignal", async () => {
      const link = await env.connect({ initialChannelCredit: 4096 });
      const c = client(Chan, link.root);
      const [tx, rx] = channel<Uint8Array>();
      const p = c.drain(rx);
      // Fill the window, then a send that must wait gets aborted.
      await tx.send(new Uint8Array(4000));
      const ac = new AbortController();
      const pending = tx.send(new Uint8Array(4000), { signal: ac.signal });
      setTimeout(() => ac.abort(new Error("gave up")), 50);
      // The server consumes, so credit may come back: either outcome is legal,
      // but an abort before credit must reject with the reason.
      const r = await pending.then(() => "sent", (e: Error) => e.message);
      assert.ok(r === "sent" || r === "gave up", r);
      await tx.close();
      await p;
      const [gtx, grx] = channel<number>();
      const never = client(Testbed, link.root).generate(0, gtx);
      await never;
      assert.equal((await grx.next()).done, true);
      const [, idleRx] = channel<number>();
      const ac2 = new AbortController();
      setTimeout(() => ac2.abort(new Error("stop waiting")), 30);
      await assert.rejects(idleRx.next({ signal: ac2.signal }), /stop waiting/);
      link.close();
    });

    test("cancelling a streaming call fails its channels", async () => {
      const link = await env.connect();
      const c = client(Chan, link.root);
      const [tx, rx] = channel<Uint8Array>();
      const ac = new AbortController();
      const p = c.drain(rx, { signal: ac.signal });
      await tx.send(new Uint8Array(10));
      ac.abort();
      await assert.rejects(p, CancelledError);
      await assert.rejects(tx.send(new Uint8Array(1)));
      link.close();
    });
  });
}

void (null as unknown as Tx<number>);

test("an element larger than the credit left (but within the window) is delivered once the consumer caught up", async () => {
  const env = await startServer("tcp", { dispatcher: serve(Chan, chanImpl), initialChannelCredit: 32 * 1024 });
  try {
    const link = await env.connect({ initialChannelCredit: 32 * 1024 });
    const c = client(Chan, link.root);
    const [tx, rx] = channel<Uint8Array>();
    const total = c.drain(rx);
    await tx.send(new Uint8Array(4 * 1024));
    // 4 KiB + 30,000 B > 32 KiB: only possible after the receiver tops the window up.
    await within(tx.send(new Uint8Array(30_000)), 5000, "large send after a small one");
    await within(tx.send(new Uint8Array(32 * 1024 - 8)), 5000, "a nearly full-window element");
    await tx.close();
    assert.equal(await total, BigInt(4 * 1024 + 30_000 + 32 * 1024 - 8));
    link.close();
  } finally {
    await env.cleanup();
  }
});
