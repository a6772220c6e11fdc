/**
 * The bridge's roam-bridge.v1 WebSocket (bridge.ws.*): sum/generate/transform
 * with credit both ways, seen as raw frames and through the typed client; a
 * slow WebSocket consumer bounds the backend producer; protocol violations end
 * with a Goodbye citing the rule.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";

import { listenBridge, bridgeClient, type BridgeServer } from "../src/bridge/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { serve } from "../src/session/serve.js";
import { channel } from "../src/session/channel/pair.js";
import { CancelledError, UserError } from "../src/session/errors.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { sleep, within } from "./helpers/testbed-server.js";

/** A producer that counts what it managed to send, and a consumer that never reads. */
const Flow = defineService("Flow", {
  flood: method([arg("chunk", t.u32), arg("out", t.tx(t.bytes))], t.unit),
  hold: method([arg("input", t.rx(t.string))], t.unit),
});
const flow = { produced: 0, floodError: "" };
const ROAM_WINDOW = 16 * 1024;

const servers: BridgeServer[] = [];

/** Waits until the producer stops advancing (300 ms without progress, 6 s at most); returns its count. */
async function settled(): Promise<number> {
  let prev = -1;
  for (let i = 0; i < 20 && flow.produced !== prev; i++) {
    prev = flow.produced;
    await sleep(300);
  }
  return flow.produced;
}
after(async () => {
  for (const s of servers) await s.close();
});

const bridge = await listenBridge({
  services: [Testbed, Flow],
  backend: serve(Testbed, testbedImpl).add(Flow, {
    flood: async (chunk, out) => {
      try {
        for (;;) {
          await out.send(new Uint8Array(chunk));
          flow.produced++;
        }
      } catch (e) {
        flow.floodError = (e as Error).name;
      }
    },
    hold: async (_input, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  }),
  // A small roam window makes the bound on the backend easy to see.
  localLink: { initialChannelCredit: ROAM_WINDOW },
  onError: () => {},
});
servers.push(bridge);
const WS_URL = bridge.url.replace("http:", "ws:") + "@ws";

/** A raw roam-bridge.v1 client: every frame it gets, in order. */
class Raw {
  readonly ws: WebSocket;
  readonly frames: any[] = [];
  private waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | null = null;
  constructor(protocol: string | null = "roam-bridge.v1", headers?: Record<string, string>) {
    this.ws = new WebSocket(WS_URL, protocol ? [protocol] : [], { headers });
    this.ws.on("message", (d) => {
      this.frames.push(JSON.parse(String(d)));
      this.wake();
    });
    this.ws.on("close", (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.wake();
    });
    this.ws.on("error", () => {});
  }
  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
  open(): Promise<void> {
    return within(new Promise((resolve, reject) => (this.ws.once("open", () => resolve()), this.ws.once("error", reject))), 5000, "open");
  }
  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }
  /** Waits for the first frame (after `from`) matching `pred`. */
  async next(pred: (f: any) => boolean, what = "frame", ms = 5000): Promise<any> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.closed) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${what}; got ${JSON.stringify(this.frames).slice(0, 500)}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(this.frames).slice(0, 500)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
  close(): void {
    this.ws.close();
  }
}

test("bridge.ws.request / bridge.ws.data / bridge.ws.close / bridge.ws.credit: sum over raw frames, the bridge returns credit as values are taken", async () => {
  const c = new Raw();
  await c.open();
  c.send({ type: "request", id: 1, service: "Testbed", method: "sum", args: [1] });
  // 1500 frames of ~40 bytes: about 60 KiB, just inside the initial 64 KiB window.
  let expected = 0n;
  let sentBytes = 0;
  for (let i = 0; i < 1500; i++) {
    const f = JSON.stringify({ type: "data", channel: 1, value: i - 700 });
    sentBytes += Buffer.byteLength(f);
    c.send(f);
    expected += BigInt(i - 700);
  }
  assert.ok(sentBytes < 64 * 1024);
  c.send({ type: "close", channel: 1 });
  const resp = await c.next((f) => f.type === "response", "response");
  assert.deepEqual(resp, { type: "response", id: 1, result: Number(expected) });
  const credits = c.frames.filter((f) => f.type === "credit" && f.channel === 1);
  assert.ok(credits.length >= 1, "the bridge granted credit back");
  const granted = credits.reduce((n, f) => n + f.bytes, 0);
  assert.ok(granted <= sentBytes && granted >= 16 * 1024, `granted ${granted} of ${sentBytes}`);
  c.close();
});

test("generate over raw frames: data on the client's channel, then the response (bridge.ws.response)", async () => {
  const c = new Raw();
  await c.open();
  c.send({ type: "request", id: 7, service: "Testbed", method: "generate", args: [5, 3] });
  const resp = await c.next((f) => f.type === "response", "response");
  assert.deepEqual(resp, { type: "response", id: 7, result: null });
  const idx = c.frames.indexOf(resp);
  const data = c.frames.slice(0, idx).filter((f) => f.type === "data");
  assert.deepEqual(data, [0, 1, 2, 3, 4].map((value) => ({ type: "data", channel: 3, value })));
  // Unary calls work on the socket too, with the same error shapes as HTTP.
  c.send({ type: "request", id: 8, service: "Testbed", method: "divide", args: [1, 0] });
  c.send({ type: "request", id: 9, service: "Testbed", method: "nope", args: [] });
  c.send({ type: "request", id: 10, service: "Testbed", method: "echo", args: [5] });
  assert.deepEqual(await c.next((f) => f.id === 8), { type: "response", id: 8, error: "user", value: "DivisionByZero" });
  assert.deepEqual(await c.next((f) => f.id === 9), { type: "response", id: 9, error: "unknown_method" });
  const bad = await c.next((f) => f.id === 10);
  assert.equal(bad.error, "bridge");
  assert.match(bad.message, /args\[0\]: expected string/);
  c.close();
});

test("transform over raw frames: strings in, the same strings out", async () => {
  const c = new Raw();
  await c.open();
  c.send({ type: "request", id: 2, service: "Testbed", method: "transform", args: [11, 12] });
  for (const s of ["a", "ü", "😀"]) c.send({ type: "data", channel: 11, value: s });
  c.send({ type: "close", channel: 11 });
  const resp = await c.next((f) => f.type === "response", "response");
  assert.deepEqual(resp, { type: "response", id: 2, result: null });
  assert.deepEqual(
    c.frames.filter((f) => f.type === "data").map((f) => [f.channel, f.value]),
    [[12, "a"], [12, "ü"], [12, "😀"]],
  );
  c.close();
});

test("the typed client streams far past one window both ways (credit flows back), and cancels", async () => {
  const api = bridgeClient(Testbed, { baseUrl: bridge.url, WebSocket: WebSocket as any });
  try {
    // sum: ~20000 frames ≈ 700 KiB, ten windows: the client must wait for the bridge's credit.
    const [tx, rx] = channel<number>();
    const total = api.sum(rx);
    let expected = 0n;
    for (let i = 0; i < 20000; i++) {
      await tx.send(i);
      expected += BigInt(i);
    }
    await tx.close();
    assert.equal(await within(total, 20000, "sum"), expected);
    // generate: the bridge must wait for the client's credit.
    const [gtx, grx] = channel<number>();
    const gen = api.generate(20000, gtx);
    let n = 0;
    for await (const v of grx) assert.equal(v, n++);
    await gen;
    assert.equal(n, 20000);
    // transform both ways at once.
    const [itx, irx] = channel<string>();
    const [otx, orx] = channel<string>();
    const tr = api.transform(irx, otx);
    const got = orx.collect();
    for (let i = 0; i < 3000; i++) await itx.send(`s${i}`);
    await itx.close();
    await tr;
    assert.deepEqual(await got, Array.from({ length: 3000 }, (_, i) => `s${i}`));
    // Errors and cancellation are typed as with a native client.
    await assert.rejects(api.divide(1n, 0n), UserError);
    const ac = new AbortController();
    const [ctx, crx] = channel<number>();
    const pending = api.sum(crx, { signal: ac.signal });
    await ctx.send(1);
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(pending, CancelledError);
    assert.equal(await api.echo("still fine"), "still fine");
  } finally {
    api.close();
  }
});

test("a slow WebSocket consumer bounds the backend producer (credit end to end), and granting resumes it", async () => {
  const c = new Raw();
  await c.open();
  flow.produced = 0;
  const CHUNK = 1024;
  c.send({ type: "request", id: 1, service: "Flow", method: "flood", args: [CHUNK, 5] });
  await c.next((f) => f.type === "data", "first data");
  // The client grants nothing: production must stop.
  const stalled = await settled();
  await sleep(300);
  assert.equal(flow.produced, stalled, "the producer is stopped, not slowed");
  const frames = c.frames.filter((f) => f.type === "data");
  const frameBytes = Buffer.byteLength(JSON.stringify(frames[0]));
  const bridgeWindowValues = Math.ceil((64 * 1024) / frameBytes) + 1;
  const roamWindowValues = Math.ceil(ROAM_WINDOW / (CHUNK + 3)) + 1;
  assert.ok(frames.length <= bridgeWindowValues, `${frames.length} frames sent on a ${bridgeWindowValues}-frame window`);
  assert.ok(stalled <= bridgeWindowValues + roamWindowValues + 2, `produced ${stalled}, bound ${bridgeWindowValues + roamWindowValues + 2}`);
  // Granting credit lets it continue.
  c.send({ type: "credit", channel: 5, bytes: 256 * 1024 });
  const more = frames.length + 20;
  await c.next(() => c.frames.filter((f) => f.type === "data").length >= more, "more data after credit");
  assert.ok(flow.produced > stalled);
  // Reset stops the producer.
  c.send({ type: "reset", channel: 5 });
  await c.next((f) => f.type === "response", "response after reset");
  assert.equal(flow.floodError, "ChannelResetError");
  c.close();
});

test("the typed client's unread Rx bounds the backend the same way", async () => {
  const api = bridgeClient(Flow, { baseUrl: bridge.url, WebSocket: WebSocket as any });
  try {
    flow.produced = 0;
    const [tx, rx] = channel<Uint8Array>();
    const call = api.flood(512, tx);
    await sleep(100);
    const stalled = await settled();
    await sleep(300);
    assert.equal(flow.produced, stalled);
    assert.ok(stalled > 10 && stalled < 200, `produced ${stalled}`);
    let read = 0;
    for await (const v of rx) {
      assert.equal(v.length, 512);
      if (++read === stalled + 50) break; // leaving the loop resets the channel
    }
    assert.ok(flow.produced >= stalled + 50);
    await call;
  } finally {
    api.close();
  }
});

test("protocol violations end the socket with a Goodbye citing the rule (bridge.ws.goodbye)", async () => {
  const expectGoodbye = async (send: (c: Raw) => void, rule: string) => {
    const c = new Raw();
    await c.open();
    send(c);
    const g = await c.next((f) => f.type === "goodbye", `goodbye ${rule}`);
    assert.ok(g.reason.startsWith(rule), `${g.reason} starts with ${rule}`);
    await within(
      (async () => {
        while (!c.closed) await sleep(10);
      })(),
      3000,
      "close after goodbye",
    );
  };
  await expectGoodbye((c) => c.send("{not json"), "bridge.ws.message-format");
  await expectGoodbye((c) => c.send({ kind: "request" }), "bridge.ws.message-format");
  await expectGoodbye((c) => c.ws.send(Buffer.from([1, 2, 3]), { binary: true }), "bridge.ws.text-frames");
  await expectGoodbye((c) => c.send({ type: "data", channel: 99, value: 1 }), "bridge.ws.data");
  await expectGoodbye((c) => {
    c.send({ type: "request", id: 1, service: "Testbed", method: "sum", args: [1] });
    c.send({ type: "data", channel: 1, value: "not a number" });
  }, "bridge.ws.data");
  await expectGoodbye((c) => {
    c.send({ type: "request", id: 1, service: "Testbed", method: "sum", args: [1] });
    c.send({ type: "request", id: 2, service: "Testbed", method: "sum", args: [1] });
  }, "bridge.ws.request");
  // Sending past the window while the backend does not take values: a credit overrun.
  await expectGoodbye((c) => {
    c.send({ type: "request", id: 1, service: "Flow", method: "hold", args: [1] });
    const s = "z".repeat(1000);
    for (let i = 0; i < 100; i++) c.send({ type: "data", channel: 1, value: s });
  }, "bridge.ws.credit");
});

test("the upgrade needs the roam-bridge.v1 subprotocol (bridge.ws.subprotocol) and an allowed origin", async () => {
  const none = new Raw(null);
  const err = await within(new Promise<Error>((resolve) => none.ws.once("error", resolve)), 5000, "refused upgrade");
  assert.match(err.message, /400/);
  const foreign = new Raw("roam-bridge.v1", { origin: "http://evil.example" });
  const err2 = await within(new Promise<Error>((resolve) => foreign.ws.once("error", resolve)), 5000, "refused upgrade");
  assert.match(err2.message, /403/);
  const ok = new Raw();
  await ok.open();
  assert.equal(ok.ws.protocol, "roam-bridge.v1");
  ok.close();
});
