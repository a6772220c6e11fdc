/**
 * Interceptors (client and server, ordered chains, rejection with a typed
 * error, streaming calls seen once unless an interceptor opts in) and
 * routed dispatch (services by method id, a forwarder as the fallback).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { channel } from "../src/session/channel/pair.js";
import { RemoteHandlerError, UnknownMethodError, UserError, err } from "../src/session/errors.js";
import { intercept, type ClientInterceptor, type ServerInterceptor } from "../src/session/interceptor.js";
import { CallRejectedError } from "../src/session/rejected.js";
import { client, serve } from "../src/session/serve.js";
import { ForwardingDispatcher } from "../src/proxy/forward.js";
import { RoutedDispatcher } from "../src/routing/routed.js";
import { connectTcp, listenTcp, type RoamServer } from "../src/transport/node.js";
import type { Link } from "../src/session/link.js";

const servers: RoamServer[] = [];
const links: Link[] = [];
after(async () => {
  for (const l of links) l.close();
  await Promise.all(servers.map((s) => s.close()));
});

async function pair(dispatcher: Parameters<typeof listenTcp>[0]["dispatcher"]): Promise<Link> {
  const server = await listenTcp({ port: 0, dispatcher });
  servers.push(server);
  const link = await connectTcp({ port: server.port! });
  links.push(link);
  return link;
}

test("client and server chains run in order, around the call, and see metadata both ways", async () => {
  const log: string[] = [];
  const server = (tag: string): ServerInterceptor => (next) => async (req) => {
    log.push(`server ${tag} in ${req.name} args=${JSON.stringify(req.args)}`);
    req.responseMetadata.push([`x-${tag}`, "1"]);
    const r = await next(req);
    log.push(`server ${tag} out ${r.outcome} ${String(r.value)}`);
    return r;
  };
  const clientI = (tag: string): ClientInterceptor => (next) => async (req) => {
    log.push(`client ${tag} in`);
    req.metadata.push(["x-client", tag]);
    const r = await next(req);
    log.push(`client ${tag} out ${String(r.value)} ${r.metadata.map(([k]) => k).join(",")}`);
    return r;
  };
  const impl = {
    ...testbedImpl,
    echo: (m: string, ctx: { metadata: readonly (readonly [string, unknown])[] }) => {
      log.push(`handler sees ${ctx.metadata.map(([k, v]) => `${k}=${String(v)}`).join(",")}`);
      return m;
    },
  };
  const link = await pair(serve(Testbed, impl as typeof testbedImpl, { interceptors: [server("A"), server("B")] }));
  const tb = client(Testbed, link.root, { interceptors: [clientI("1"), clientI("2")] });
  assert.equal(await tb.echo("hi"), "hi");
  assert.deepEqual(log, [
    "client 1 in",
    "client 2 in",
    'server A in Testbed.echo args=["hi"]',
    'server B in Testbed.echo args=["hi"]',
    "handler sees x-client=1,x-client=2",
    "server B out ok hi",
    "server A out ok hi",
    "client 2 out hi x-A,x-B",
    "client 1 out hi x-A,x-B",
  ]);
});

test("a server interceptor rejects with a typed error; the handler never runs; user errors pass as results", async () => {
  let ran = 0;
  const auth: ServerInterceptor = (next) => (req) => {
    const token = req.metadata.find(([k]) => k === "authorization")?.[1];
    if (token !== "Bearer ok") throw new CallRejectedError("unauthenticated", "missing or bad token");
    return next(req);
  };
  const outcomes: string[] = [];
  const seen: ServerInterceptor = (next) => async (req) => {
    const r = await next(req);
    outcomes.push(r.outcome);
    return r;
  };
  const link = await pair(
    serve(Testbed, { ...testbedImpl, echo: (m: string) => (ran++, m) }, { interceptors: [auth, seen] }),
  );
  const tb = client(Testbed, link.root);
  await assert.rejects(tb.echo("x"), (e: unknown) => {
    assert.ok(e instanceof CallRejectedError, `got ${String(e)}`);
    assert.equal(e.reason, "unauthenticated");
    assert.equal(e.detail, "missing or bad token");
    assert.equal(e.method, "Testbed.echo");
    return true;
  });
  assert.equal(ran, 0, "the handler did not run");
  assert.equal(await tb.echo("y", { metadata: [["authorization", "Bearer ok"]] }), "y");
  await assert.rejects(tb.divide(1n, 0n, { metadata: [["authorization", "Bearer ok"]] }), (e: unknown) => e instanceof UserError && e.error === "DivisionByZero");
  assert.deepEqual(outcomes, ["ok", "user-error"]);

  // A fallible method may be refused with its own error type.
  const deny: ServerInterceptor = () => () => {
    throw err("Overflow");
  };
  const link2 = await pair(serve(Testbed, testbedImpl, { interceptors: [deny] }));
  await assert.rejects(client(Testbed, link2.root).divide(4n, 2n), (e: unknown) => e instanceof UserError && e.error === "Overflow");
  // A handler that throws still reads as a handler failure, not a rejection.
  const link3 = await pair(serve(Testbed, { ...testbedImpl, echo: () => { throw new Error("boom"); } }, { interceptors: [seen] }));
  const quiet = console.error;
  console.error = () => {};
  try {
    await assert.rejects(client(Testbed, link3.root).echo("z"), (e: unknown) => e instanceof RemoteHandlerError && /boom/.test(e.message));
  } finally {
    console.error = quiet;
  }
  assert.equal(outcomes.at(-1), "handler-error");
});

test("a client interceptor sees failures as rejections and may short-circuit", async () => {
  const link = await pair(serve(Testbed, testbedImpl));
  const errors: string[] = [];
  const watch: ClientInterceptor = (next) => async (req) => {
    try {
      return await next(req);
    } catch (e) {
      errors.push(`${req.name}: ${(e as Error).name}`);
      throw e;
    }
  };
  const cache: ClientInterceptor = (next) => (req) => (req.name === "Testbed.reverse" ? Promise.resolve({ value: "cached", metadata: [] }) : next(req));
  const tb = client(Testbed, link.root, { interceptors: [watch, cache] });
  await assert.rejects(tb.divide(1n, 0n), UserError);
  assert.equal(await tb.reverse("abc"), "cached");
  assert.deepEqual(errors, ["Testbed.divide: UserError"]);
});

test("streaming calls pass through once; an interceptor that opts in sees every element", async () => {
  const calls: string[] = [];
  const elements: string[] = [];
  const serverSide: ServerInterceptor = (next) => (req) => {
    calls.push(`server ${req.name} streaming=${req.streaming}`);
    if (req.name === "Testbed.transform") req.observeChannels((e) => elements.push(`server ${e.direction} ${String(e.value)}`));
    return next(req);
  };
  const clientSide: ClientInterceptor = (next) => (req) => {
    calls.push(`client ${req.name}`);
    if (req.name === "Testbed.transform") req.observeChannels((e) => elements.push(`client ${e.direction} ${String(e.value)}`));
    return next(req);
  };
  const link = await pair(serve(Testbed, testbedImpl, { interceptors: [serverSide] }));
  const tb = client(Testbed, link.root, { interceptors: [clientSide] });
  // sum: the interceptor sees one call, not five elements.
  const [tx, rx] = channel<number>();
  const total = tb.sum(rx);
  for (let i = 1; i <= 5; i++) await tx.send(i);
  await tx.close();
  assert.equal(await total, 15n);
  // transform with observation
  const [inTx, inRx] = channel<string>();
  const [outTx, outRx] = channel<string>();
  const done = tb.transform(inRx, outTx);
  const got: string[] = [];
  const reader = (async () => {
    for await (const s of outRx) got.push(s);
  })();
  await inTx.send("a");
  await inTx.send("b");
  await inTx.close();
  await done;
  await reader;
  assert.deepEqual(got, ["a", "b"]);
  assert.deepEqual(calls, ["client Testbed.sum", "server Testbed.sum streaming=true", "client Testbed.transform", "server Testbed.transform streaming=true"]);
  for (const e of ["client send a", "client send b", "client receive a", "client receive b", "server receive a", "server receive b", "server send a", "server send b"]) {
    assert.ok(elements.includes(e), `saw ${e} (saw ${elements.join("; ")})`);
  }
  assert.equal(elements.length, 8);
});

const Extra = defineService("Extra", {
  double: method([arg("n", t.u32)], t.u32),
});

test("routed dispatch: services by method id, unknown methods to a forwarder; no fallback means UnknownMethod", async () => {
  // Upstream serves Testbed; the front serves Extra itself and forwards the rest.
  const upstreamLink = await pair(serve(Testbed, testbedImpl));
  const forwarded: string[] = [];
  const front = new RoutedDispatcher(
    [serve(Extra, { double: (n) => n * 2 })],
    intercept(new ForwardingDispatcher(upstreamLink.root), [
      (next) => async (req) => {
        const r = await next(req);
        forwarded.push(`${req.name} ${r.outcome}`);
        return r;
      },
    ]),
  );
  const link = await pair(front);
  assert.equal(await client(Extra, link.root).double(21), 42);
  const tb = client(Testbed, link.root);
  assert.equal(await tb.echo("via proxy"), "via proxy");
  await assert.rejects(tb.divide(1n, 0n), (e: unknown) => e instanceof UserError && e.error === "DivisionByZero");
  assert.deepEqual(await tb.getPoints(2), [{ x: 0, y: 0 }, { x: 1, y: 2 }]);
  assert.deepEqual(forwarded, [
    `method ${Testbed.methods.echo.idHex} ok`,
    `method ${Testbed.methods.divide.idHex} user-error`,
    `method ${Testbed.methods.getPoints.idHex} ok`,
  ]);
  assert.equal(front.routeOf(Extra.methods.double.id) !== front.fallback, true);
  assert.equal(front.describe(Extra.methods.double.id), Extra.methods.double);

  const noFallback = await pair(new RoutedDispatcher(serve(Extra, { double: (n) => n * 2 })));
  await assert.rejects(client(Testbed, noFallback.root).echo("x"), UnknownMethodError);
  assert.throws(() => new RoutedDispatcher([serve(Extra, { double: (n) => n }), serve(Extra, { double: (n) => n })]), /served by two routes/);
});

test("an interceptor wrapped around a forwarder can reject, and the rejection is typed at the caller", async () => {
  const upstreamLink = await pair(serve(Testbed, testbedImpl));
  const link = await pair(
    intercept(new ForwardingDispatcher(upstreamLink.root), [
      (next) => (req) => {
        if (req.metadata.some(([k]) => k === "deny")) throw new CallRejectedError("permission-denied", "not for you");
        return next(req);
      },
    ]),
  );
  const tb = client(Testbed, link.root);
  assert.equal(await tb.echo("ok"), "ok");
  await assert.rejects(tb.echo("no", { metadata: [["deny", "1"]] }), (e: unknown) => e instanceof CallRejectedError && e.reason === "permission-denied");
});
