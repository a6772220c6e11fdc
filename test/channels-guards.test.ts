/**
 * Channel behaviour whose checks used to be loose enough to pass with the
 * code broken (issue 19, item 8): a remote Reset is a typed
 * ChannelResetError("remote") on both ends; an aborted send that waits for
 * credit rejects with the abort reason and sends nothing; the default
 * pressure thresholds and their hysteresis are the documented ones.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { channel } from "../src/session/channel/pair.js";
import { ChannelResetError } from "../src/session/errors.js";
import { DEFAULT_THRESHOLDS, PressureGauge, type LevelChange } from "../src/session/pressure.js";
import { client, serve } from "../src/session/serve.js";
import { connectTcp, listenTcp } from "../src/transport/node.js";
import { within } from "./helpers/testbed-server.js";

const Resets = defineService("Resets", {
  /** Sends `n` values, then resets its Tx. */
  sendThenReset: method([arg("n", t.u32), arg("out", t.tx(t.u32))], t.unit),
  /** Takes `n` values, then resets its Rx; returns what it took. */
  takeThenReset: method([arg("n", t.u32), arg("input", t.rx(t.u32))], t.u32),
  /** Reads nothing until told to (a consumer that has stopped). */
  holdThenDrain: method([arg("input", t.rx(t.bytes))], t.u64),
});

let releaseHold: (() => void) | null = null as (() => void) | null;
const impl = serve(Resets, {
  sendThenReset: async (n, out) => {
    for (let i = 0; i < n; i++) await out.send(i);
    out.reset();
  },
  takeThenReset: async (n, input) => {
    let k = 0;
    while (k < n) {
      const r = await input.next();
      if (r.done) break;
      k++;
    }
    input.reset();
    return k;
  },
  holdThenDrain: async (input) => {
    await new Promise<void>((r) => (releaseHold = r));
    let total = 0n;
    for await (const b of input) total += BigInt(b.length);
    return total;
  },
});

describe("remote Reset and aborted sends", () => {
  test("a Reset from the sender surfaces on our Rx as ChannelResetError('remote')", async () => {
    const server = await listenTcp({ port: 0, dispatcher: impl });
    try {
      const link = await connectTcp({ port: server.port! });
      const [tx, rx] = channel<number>();
      const call = client(Resets, link.root).sendThenReset(3, tx);
      const got: number[] = [];
      const e = await within(
        (async () => {
          for await (const v of rx) got.push(v);
        })().then(() => null, (x: unknown) => x),
        5000,
        "reset to arrive",
      );
      assert.ok(e instanceof ChannelResetError, `expected ChannelResetError, got ${String(e)}`);
      assert.equal(e.by, "remote");
      // Reset is abortive: values still buffered may be dropped, but none is invented or reordered.
      assert.deepEqual(got, [0, 1, 2].slice(0, got.length));
      await call;
      link.close();
    } finally {
      await server.close();
    }
  });

  test("a Reset from the receiver surfaces on our Tx as ChannelResetError('remote')", async () => {
    const server = await listenTcp({ port: 0, dispatcher: impl });
    try {
      const link = await connectTcp({ port: server.port! });
      const [tx, rx] = channel<number>();
      const call = client(Resets, link.root).takeThenReset(2, rx);
      await tx.send(1);
      await tx.send(2);
      assert.equal(await call, 2);
      // The Reset crossed (or follows) the Response: a later send must fail, typed.
      const e = await within(
        (async () => {
          for (let i = 0; i < 1000; i++) await tx.send(i);
          return null;
        })().catch((x: unknown) => x),
        5000,
        "send after the peer's Reset",
      );
      assert.ok(e instanceof ChannelResetError, `expected ChannelResetError, got ${String(e)}`);
      assert.equal(e.by, "remote");
      link.close();
    } finally {
      await server.close();
    }
  });

  test("a send waiting for credit rejects with the abort reason and sends nothing", async () => {
    const server = await listenTcp({ port: 0, dispatcher: impl, initialChannelCredit: 4096 });
    try {
      const link = await connectTcp({ port: server.port!, initialChannelCredit: 4096 });
      const [tx, rx] = channel<Uint8Array>();
      const call = client(Resets, link.root).holdThenDrain(rx);
      await tx.send(new Uint8Array(4000)); // the window is nearly used up; nobody reads
      const ac = new AbortController();
      const pending = tx.send(new Uint8Array(4000), { signal: ac.signal });
      const state = await Promise.race([pending.then(() => "sent", () => "failed"), new Promise((r) => setImmediate(() => r("waiting")))]);
      assert.equal(state, "waiting", "the second send waits for credit");
      ac.abort(new Error("gave up"));
      await assert.rejects(within(pending, 5000, "the aborted send"), /gave up/);
      assert.ok(tx.stats().bufferedBytes === 0, "the aborted value is not queued");
      await tx.send(new Uint8Array(10));
      await tx.close();
      // Let the handler start reading (it has been waiting for this since its call arrived).
      await within(
        new Promise<void>((r) => {
          const check = () => (releaseHold ? r() : setTimeout(check, 5));
          check();
        }),
        5000,
        "the handler to start",
      );
      releaseHold!();
      assert.equal(await within(call, 5000, "drain"), 4010n, "only what was not aborted arrived");
      link.close();
    } finally {
      await server.close();
    }
  });
});

describe("pressure levels", () => {
  test("the documented defaults: yellow 0.5, red 0.9, hysteresis 0.1", () => {
    assert.deepEqual(DEFAULT_THRESHOLDS, { yellow: 0.5, red: 0.9, hysteresis: 0.1 });
  });

  test("transitions with the default thresholds, up and down, with hysteresis", () => {
    const g = new PressureGauge();
    const seen: string[] = [];
    g.on((c: LevelChange) => seen.push(`${c.from}->${c.to}@${c.fill}`));
    const steps: [number, string][] = [
      [0.49, "green"],
      [0.5, "yellow"],
      [0.89, "yellow"],
      [0.9, "red"],
      [0.81, "red"], // within the hysteresis below red
      [0.8, "red"], // exactly red - hysteresis: still red
      [0.79, "yellow"],
      [0.41, "yellow"], // within the hysteresis below yellow
      [0.4, "yellow"], // exactly yellow - hysteresis: still yellow
      [0.39, "green"],
      [0.95, "red"],
      [0.45, "yellow"], // straight down from red: still within yellow's hysteresis
      [0.2, "green"],
    ];
    for (const [fill, level] of steps) {
      g.update(fill, 1, "receive");
      assert.equal(g.level, level, `fill ${fill}`);
    }
    assert.deepEqual(seen, ["green->yellow@0.5", "yellow->red@0.9", "red->yellow@0.79", "yellow->green@0.39", "green->red@0.95", "red->yellow@0.45", "yellow->green@0.2"]);
  });

  test("a link without thresholds uses the defaults", async () => {
    const server = await listenTcp({ port: 0, dispatcher: impl });
    try {
      const link = await connectTcp({ port: server.port! });
      assert.deepEqual(link.thresholds, DEFAULT_THRESHOLDS);
      link.close();
    } finally {
      await server.close();
    }
  });
});
