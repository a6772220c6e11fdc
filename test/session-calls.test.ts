/**
 * Typed calls over every transport: results, typed errors, cancellation,
 * timeouts, metadata, handler failures, pipelining and clean shutdown.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { defineService, method, arg } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import {
  CancelledError,
  ConnectionClosedError,
  EncodeFailedError,
  RemoteHandlerError,
  TimeoutError,
  UnknownMethodError,
  UserError,
} from "../src/session/errors.js";
import { client, serve, ServiceDispatcher } from "../src/session/serve.js";
import type { CallContext } from "../src/session/connection.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { startServer, sleep, TRANSPORTS, within } from "./helpers/testbed-server.js";

/** A second service used for slow calls, metadata and failures. */
const Probe = defineService("Probe", {
  sleep: method([arg("ms", t.u32)], t.string),
  whoami: method([], t.list(t.tuple(t.string, t.string))),
  boom: method([arg("message", t.string)], t.string),
  badResult: method([], t.u8),
});

for (const kind of TRANSPORTS) {
  describe(`calls over ${kind}`, () => {
    let env: Awaited<ReturnType<typeof startServer>>;
    const aborted: string[] = [];
    const handlerErrors: { error: unknown; method: string }[] = [];
    before(async () => {
      const d = new ServiceDispatcher().add(Testbed, testbedImpl).add(Probe, {
        sleep: async (ms: number, ctx: CallContext) => {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, ms);
            ctx.signal.addEventListener("abort", () => {
              clearTimeout(timer);
              aborted.push(`sleep(${ms})`);
              resolve();
            });
          });
          return ctx.signal.aborted ? "aborted" : `slept ${ms}`;
        },
        whoami: (ctx: CallContext) => {
          ctx.responseMetadata.push(["x-served-by", "probe"]);
          return ctx.metadata.map(([k, v]) => [k, typeof v === "string" ? v : String(v)] as [string, string]);
        },
        boom: (message: string) => {
          throw new Error(message);
        },
        badResult: () => 300 as number,
      });
      env = await startServer(kind, { dispatcher: d, onHandlerError: (error, info) => handlerErrors.push({ error, method: info.method }) });
    });
    after(async () => {
      await env.cleanup();
    });

    test("every non-streaming Testbed method returns the reference result", async () => {
      const link = await env.connect();
      const tb = client(Testbed, link.root);
      assert.equal(await tb.echo("hello"), "hello");
      assert.equal(await tb.reverse("héllo 🦀"), "🦀 olléh");
      assert.equal(await tb.divide(7n, 2n), 3n);
      assert.equal(await tb.divide(-7n, 2n), -3n);
      assert.deepEqual(await tb.lookup(1), { name: "Alice", age: 30, email: "alice@example.com" });
      assert.deepEqual(await tb.lookup(2), { name: "Bob", age: 25, email: null });
      assert.deepEqual(await tb.echoPoint({ x: -5, y: 7 }), { x: -5, y: 7 });
      assert.deepEqual(await tb.createPerson("Dee", 41, null), { name: "Dee", age: 41, email: null });
      assert.equal(await tb.rectangleArea({ top_left: { x: 0, y: 0 }, bottom_right: { x: 3, y: -4 }, label: "r" }), 12);
      assert.equal(await tb.parseColor("GREEN"), "Green");
      assert.equal(await tb.parseColor("purple"), null);
      assert.equal(await tb.shapeArea({ tag: "Rectangle", value: { width: 2, height: 3.5 } }), 7);
      assert.equal(await tb.shapeArea({ tag: "Point" }), 0);
      const canvas = await tb.createCanvas("c", [{ tag: "Circle", value: { radius: 1 } }, { tag: "Point" }], "Blue");
      assert.deepEqual(canvas, { name: "c", shapes: [{ tag: "Circle", value: { radius: 1 } }, { tag: "Point" }], background: "Blue" });
      assert.deepEqual(await tb.processMessage({ tag: "Text", value: "hi" }), { tag: "Text", value: "processed: hi" });
      assert.deepEqual(await tb.processMessage({ tag: "Number", value: 21n }), { tag: "Number", value: 42n });
      assert.deepEqual(await tb.processMessage({ tag: "Data", value: Uint8Array.of(1, 2, 3) }), { tag: "Data", value: Uint8Array.of(3, 2, 1) });
      assert.deepEqual(await tb.getPoints(3), [{ x: 0, y: 0 }, { x: 1, y: 2 }, { x: 2, y: 4 }]);
      assert.deepEqual(await tb.swapPair([7, "seven"]), ["seven", 7]);
      link.close();
    });

    test("user errors surface as UserError with the typed value", async () => {
      const link = await env.connect();
      const tb = client(Testbed, link.root);
      const e1 = await tb.divide(1n, 0n).catch((e: unknown) => e);
      assert.ok(e1 instanceof UserError);
      assert.equal(e1.error, "DivisionByZero");
      assert.ok(Testbed.methods.divide.fallible);
      const e2 = await tb.lookup(99).catch((e: unknown) => e);
      assert.ok(e2 instanceof UserError);
      assert.equal(e2.error, "NotFound");
      link.close();
    });

    test("a method the peer does not serve gives UnknownMethodError and the link stays up", async () => {
      const Other = defineService("Other", { ping: method([], t.unit) });
      const link = await env.connect();
      const e = await client(Other, link.root).ping().catch((x: unknown) => x);
      assert.ok(e instanceof UnknownMethodError, String(e));
      assert.equal(await client(Testbed, link.root).echo("still up"), "still up");
      link.close();
    });

    test("AbortSignal cancels: rejects at once, the handler sees the abort, the link keeps working", async () => {
      const link = await env.connect();
      const probe = client(Probe, link.root);
      const ac = new AbortController();
      const started = Date.now();
      const p = probe.sleep(10_000, { signal: ac.signal });
      await sleep(50);
      ac.abort();
      const e = await p.catch((x: unknown) => x);
      assert.ok(e instanceof CancelledError, String(e));
      assert.equal(e.by, "local");
      assert.ok(Date.now() - started < 2000);
      // The server saw the Cancel through ctx.signal.
      for (let i = 0; i < 100 && !aborted.includes("sleep(10000)"); i++) await sleep(10);
      assert.ok(aborted.includes("sleep(10000)"));
      assert.equal(await probe.sleep(1), "slept 1");
      // Already-aborted signal: rejected without sending.
      const e2 = await probe.sleep(1, { signal: AbortSignal.abort() }).catch((x: unknown) => x);
      assert.ok(e2 instanceof CancelledError);
      link.close();
    });

    test("timeout rejects with TimeoutError and cancels the call", async () => {
      const link = await env.connect();
      const probe = client(Probe, link.root);
      const e = await probe.sleep(5000, { timeout: 50 }).catch((x: unknown) => x);
      assert.ok(e instanceof TimeoutError, String(e));
      assert.equal(e.timeoutMs, 50);
      for (let i = 0; i < 100 && !aborted.includes("sleep(5000)"); i++) await sleep(10);
      assert.ok(aborted.includes("sleep(5000)"), "handler was cancelled");
      link.close();
    });

    test("request and response metadata round-trip", async () => {
      const link = await env.connect();
      const probe = client(Probe, link.root);
      const got = await probe.whoami({ metadata: [["authorization", "Bearer t"], ["x-trace", "abc"], ["x-trace", "def"]] });
      assert.deepEqual(got, [["authorization", "Bearer t"], ["x-trace", "abc"], ["x-trace", "def"]]);
      link.close();
    });

    test("metadata over the limits is refused before sending (typed error)", async () => {
      const link = await env.connect();
      const probe = client(Probe, link.root);
      const tooMany = Array.from({ length: 129 }, (_, i) => [`k${i}`, "v"] as [string, string]);
      const e1 = await probe.whoami({ metadata: tooMany }).catch((x: unknown) => x);
      assert.ok(e1 instanceof EncodeFailedError && /call\.metadata\.limits/.test(e1.message), String(e1));
      const e2 = await probe.whoami({ metadata: [["k".repeat(257), "v"]] }).catch((x: unknown) => x);
      assert.ok(e2 instanceof EncodeFailedError);
      const e3 = await probe.whoami({ metadata: [["k", "v".repeat(16 * 1024 + 1)]] }).catch((x: unknown) => x);
      assert.ok(e3 instanceof EncodeFailedError);
      const e4 = await probe
        .whoami({ metadata: Array.from({ length: 5 }, (_, i) => [`k${i}`, "v".repeat(15_000)] as [string, string]) })
        .catch((x: unknown) => x);
      assert.ok(e4 instanceof EncodeFailedError, "total over 64 KiB");
      assert.equal(await client(Testbed, link.root).echo("ok"), "ok");
      link.close();
    });

    test("arguments that do not fit the schema give EncodeFailedError and nothing is sent", async () => {
      const link = await env.connect();
      const tb = client(Testbed, link.root);
      const e = await tb.createPerson("x", 300, null).catch((x: unknown) => x);
      assert.ok(e instanceof EncodeFailedError, String(e));
      assert.match(e.message, /u8/);
      const e2 = await (tb.echo as (...a: unknown[]) => Promise<string>)(42).catch((x: unknown) => x);
      assert.ok(e2 instanceof EncodeFailedError);
      const e3 = await (tb.echo as (...a: unknown[]) => Promise<string>)().catch((x: unknown) => x);
      assert.ok(e3 instanceof TypeError, "wrong arity");
      assert.equal(await tb.echo("fine"), "fine");
      link.close();
    });

    test("a handler that throws: the caller gets RemoteHandlerError, the hook reports it, the link survives", async () => {
      const link = await env.connect();
      const probe = client(Probe, link.root);
      const e = await probe.boom("kaput").catch((x: unknown) => x);
      assert.ok(e instanceof RemoteHandlerError, String(e));
      assert.match(e.message, /kaput/);
      assert.ok(handlerErrors.some((h) => h.method === "Probe.boom" && (h.error as Error).message === "kaput"));
      const e2 = await probe.badResult().catch((x: unknown) => x);
      assert.ok(e2 instanceof RemoteHandlerError, "a result that does not fit its schema");
      assert.equal(await probe.sleep(1), "slept 1");
      link.close();
    });

    test("many calls in flight complete and correlate by request id", async () => {
      const link = await env.connect();
      const tb = client(Testbed, link.root);
      const probe = client(Probe, link.root);
      // Slow ones first so responses come back out of order.
      const slow = [probe.sleep(60), probe.sleep(30), probe.sleep(1)];
      const fast = Array.from({ length: 500 }, (_, i) => tb.echo(`m${i}`));
      const results = await within(Promise.all(fast), 10_000, "500 pipelined calls");
      results.forEach((r, i) => assert.equal(r, `m${i}`));
      assert.deepEqual(await Promise.all(slow), ["slept 60", "slept 30", "slept 1"]);
      link.close();
    });

    test("closing the link rejects pending calls with ConnectionClosedError", async () => {
      const link = await env.connect();
      const probe = client(Probe, link.root);
      const p = probe.sleep(10_000);
      await sleep(20);
      link.close();
      const e = await within(p.catch((x: unknown) => x), 2000, "pending call rejection");
      assert.ok(e instanceof ConnectionClosedError, String(e));
      const e2 = await probe.sleep(1).catch((x: unknown) => x);
      assert.ok(e2 instanceof ConnectionClosedError);
    });

    test("the server closing sends Goodbye; the client sees the reason", async () => {
      const other = await startServer(kind, { dispatcher: serve(Probe, { sleep: (ms: number) => sleep(ms).then(() => "done"), whoami: () => [], boom: () => "", badResult: () => 1 }) });
      const link = await other.connect();
      const p = client(Probe, link.root).sleep(10_000);
      await sleep(20);
      for (const l of other.server.links) l.close("maintenance window");
      const e = await within(p.catch((x: unknown) => x), 3000, "rejection after remote Goodbye");
      assert.ok(e instanceof ConnectionClosedError, String(e));
      if (kind !== "ws" || e.by === "remote") {
        assert.equal(e.by, "remote");
        assert.equal(e.reason, "maintenance window");
      }
      await other.cleanup();
    });
  });
}
