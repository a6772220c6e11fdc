/**
 * The link itself (issue 19, session-core): a Link over a transport the test
 * drives by hand (test/helpers/script-transport.ts), so every message it
 * sends, every flush and the close are seen in order, and time is the test's
 * (mocked timers and performance.now where a rule depends on time): option
 * defaults, the handshake and what waits for it, Goodbye both ways,
 * violations, transport loss, idle close, virtual-connection limits and the
 * inbound pacer's turn budget.
 */
import assert from "node:assert/strict";
import { after, before, describe, test, type TestContext } from "node:test";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import type { Dispatcher } from "../src/session/connection.js";
import { ConnectionTable } from "../src/session/connection-table.js";
import type { Connection, ConnectionControl } from "../src/session/connection.js";
import { ConnectionClosedError, ConnectionRejectedError, EncodeFailedError, ProtocolViolation, type RoamError } from "../src/session/errors.js";
import { CreditMessageFlowControl } from "../src/session/flow.js";
import { HelloHandshake, ImplicitHandshake, type HandshakeBackend } from "../src/session/handshake.js";
import { InboundPacer } from "../src/session/inbound.js";
import { Link } from "../src/session/link.js";
import type { LinkOptions } from "../src/session/link-options.js";
import { DEFAULT_THRESHOLDS } from "../src/session/pressure.js";
import { serve } from "../src/session/serve.js";
import { channel } from "../src/session/channel/pair.js";
import { diagnosticsRegistry } from "../src/session/diagnostics.js";
import type { Message, Metadata } from "../src/wire/message.js";
import { ScriptTransport } from "./helpers/script-transport.js";

const turn = () => new Promise<void>((r) => setImmediate(r));
/** Lets timers due within `ms` fire first (timers fire in order of their due time). */
const timersUpTo = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** `p`, kept alive by a ref'd timer (the session's own timers are unref'd), failing after `ms`. */
function within<T>(p: Promise<T>, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
    }),
  ]);
}

// Time is the test's: performance.now is frozen (so the inbound pacer's 10 ms
// turn budget is never spent by a slow machine) and moved by the tests that
// depend on it.
let clockNow = 1000;
before(() => {
  performance.now = () => clockNow;
});
after(() => {
  delete (performance as { now?: unknown }).now;
});

type Report = { rule: string; reason: string; direction: "sent" | "received"; connId: number };

function makeLink(o: Partial<LinkOptions> = {}, tr = new ScriptTransport()) {
  const reports: Report[] = [];
  const link = new Link(tr, {
    initiator: true,
    handshake: new HelloHandshake({ maxPayloadSize: 4096, initialChannelCredit: 1024 }),
    onProtocolError: (r) => reports.push(r),
    ...o,
  });
  return { link, tr, reports };
}

/** A link whose handshake completed (peer Hello 2048 / 512). */
async function openLink(o: Partial<LinkOptions> = {}, tr = new ScriptTransport()) {
  const l = makeLink(o, tr);
  const ready = l.link.start();
  l.tr.hello(2048, 512);
  await ready;
  return l;
}

const Echo = defineService("CoreEcho", {
  echo: method([arg("s", t.string)], t.string),
});
const echoPayload = (s: string) => t.tuple(t.string).toBytes([s]);

/** Sets the frozen clock to `start`; `set` moves it. */
function fakeNow(_ctx: TestContext, start = 1000): { set(v: number): void } {
  clockNow = start;
  return { set: (v) => (clockNow = v) };
}

describe("Link: options and the handshake", () => {
  test("defaults of the per-link options, and options given override them", () => {
    const { link } = makeLink();
    assert.deepEqual(link.root.metadata, [], "connection 0 has no Connect metadata");
    assert.equal(link.root.connId, 0);
    assert.deepEqual(link.thresholds, DEFAULT_THRESHOLDS);
    assert.equal(link.exposeHandlerErrors, true);
    assert.equal(link.maxInFlightCalls, 1024);
    assert.equal(link.maxChannels, 4096);
    assert.ok(link.flow instanceof CreditMessageFlowControl);
    const custom = makeLink({ thresholds: { red: 0.95 }, exposeHandlerErrors: false, maxInFlightCalls: 3, maxChannels: 5 }).link;
    assert.deepEqual(custom.thresholds, { ...DEFAULT_THRESHOLDS, red: 0.95 });
    assert.equal(custom.exposeHandlerErrors, false);
    assert.equal(custom.maxInFlightCalls, 3);
    assert.equal(custom.maxChannels, 5);
  });

  test("a custom flow-control backend gets the link's send; the default one sends Credit and flushes it at once", async () => {
    let given: ((m: Message) => void) | null = null;
    const backend = new CreditMessageFlowControl(() => {});
    const { link, tr } = await openLink({
      flowControl: (send) => {
        given = send;
        return backend;
      },
    });
    assert.equal(link.flow, backend);
    given!({ type: "Close", connId: 0, channelId: 9 });
    assert.deepEqual(tr.last(), { type: "Close", connId: 0, channelId: 9 });

    const d = await openLink();
    const rc = d.link.flow.receiver(0, 3, 512, () => 0);
    assert.equal(rc.onData(512), true);
    rc.onConsumed(512);
    const credit = d.tr.sentOf("Credit");
    assert.equal(credit.length, 1);
    assert.deepEqual({ ...credit[0]! }, { type: "Credit", connId: 0, channelId: 3, bytes: credit[0]!.bytes });
    assert.ok(credit[0]!.bytes > 0);
    assert.deepEqual(d.tr.log.slice(-2), ["send:Credit", "flush"], "a Credit is flushed right away");
  });

  test("before the handshake: no limits yet; after it, the minimum of both Hellos, seen by the link and its connections", async () => {
    const { link, tr } = makeLink();
    assert.equal(link.maxPayloadSize, 0);
    assert.equal(link.initialCredit, 0);
    assert.equal(link.root.maxPayloadSize, 0);
    assert.equal(link.root.initialCredit, 0);
    assert.throws(() => link.limits, /handshake has not completed/);
    assert.notEqual(link.handshakePending(), undefined);
    const ready = link.start();
    assert.deepEqual(tr.sent, [{ type: "Hello", version: 2, maxPayloadSize: 4096, initialChannelCredit: 1024 }]);
    tr.hello(2048, 8192);
    await ready;
    assert.deepEqual(link.limits, { maxPayloadSize: 2048, initialChannelCredit: 1024 });
    assert.equal(link.maxPayloadSize, 2048);
    assert.equal(link.initialCredit, 1024);
    assert.equal(link.root.maxPayloadSize, 2048);
    assert.equal(link.root.initialCredit, 1024);
    assert.equal(link.handshakePending(), undefined);
    await link.ready();
    assert.equal(link.connectionCount, 1);
    assert.equal(link.initiator, true);
    assert.equal(link.diagnostics().maxPayloadSize, 2048);
  });

  test("an implicit handshake completes in start(); nothing is exchanged", async () => {
    const { link, tr } = makeLink({ handshake: new ImplicitHandshake({ maxPayloadSize: 100, initialChannelCredit: 10 }) });
    await link.start();
    assert.deepEqual(link.limits, { maxPayloadSize: 100, initialChannelCredit: 10 });
    assert.deepEqual(tr.sent, []);
  });

  test("what connections send before the handshake is held (bytes copied) and goes out after it, in order", async () => {
    const { link, tr } = makeLink();
    const ready = link.start();
    const raw = link.root.rawChannels();
    const buf = Uint8Array.of(1, 2, 3);
    raw.sendData(1, buf);
    raw.sendClose(1);
    buf.fill(9);
    assert.deepEqual(
      tr.sent.map((m) => m.type),
      ["Hello"],
    );
    tr.hello();
    await ready;
    assert.deepEqual(
      tr.sent.map((m) => m.type),
      ["Hello", "Data", "Close"],
    );
    const data = tr.sentOf("Data")[0]!;
    assert.deepEqual([...data.payload], [1, 2, 3], "the caller's buffer was reused; the held copy was sent");
  });

  test("a transport that ends during start: the handshake never starts and ready() rejects", async () => {
    const tr = new ScriptTransport();
    tr.onStart = (sink) => sink.closed(new Error("refused"));
    let started = 0;
    const hs: HandshakeBackend = {
      start: () => {
        started++;
        return undefined;
      },
      receive: () => ({ maxPayloadSize: 1, initialChannelCredit: 1 }),
    };
    const { link } = makeLink({ handshake: hs }, tr);
    await assert.rejects(link.start(), (e) => e instanceof ConnectionClosedError && e.by === "transport" && e.reason === "refused");
    assert.equal(started, 0);
    await assert.rejects(link.ready(), ConnectionClosedError);
  });

  test("the Hello timeout defaults to 10 s and ends the link with message.hello.timing", async (ctx) => {
    ctx.mock.timers.enable({ apis: ["setTimeout"] });
    const { link, tr } = makeLink();
    const ready = link.start();
    let failed: unknown = null;
    ready.catch((e: unknown) => (failed = e));
    ctx.mock.timers.tick(9_999);
    await turn();
    assert.equal(failed, null);
    assert.equal(link.isClosed, false);
    ctx.mock.timers.tick(1);
    await turn();
    assert.ok((failed as unknown) instanceof ConnectionClosedError);
    assert.match((failed as unknown as ConnectionClosedError).reason ?? "", /^message\.hello\.timing/);
    assert.equal((failed as unknown as ConnectionClosedError).by, "local");
    assert.equal(tr.closed, true);
    assert.deepEqual(
      tr.sent.map((m) => m.type),
      ["Hello"],
      "no Goodbye before the handshake",
    );
  });

  test("a given Hello timeout is used", async (ctx) => {
    ctx.mock.timers.enable({ apis: ["setTimeout"] });
    const { link } = makeLink({ handshakeTimeoutMs: 50 });
    const ready = link.start();
    ready.catch(() => {});
    ctx.mock.timers.tick(49);
    assert.equal(link.isClosed, false);
    ctx.mock.timers.tick(1);
    assert.equal(link.isClosed, true);
  });
});

describe("Link: closing", () => {
  test("close(): Goodbye on connection 0, flushed, then the transport closes; listeners and waiters learn why", async () => {
    const { link, tr } = await openLink();
    const seen: RoamError[] = [];
    link.onClose((e) => seen.push(e));
    link.onClose(() => {
      throw new Error("a failing listener");
    });
    link.onClose((e) => seen.push(e));
    const closed = link.closed();
    link.close("done here");
    assert.deepEqual(tr.log.slice(-3), ["send:Goodbye", "flush", "close"]);
    assert.deepEqual(tr.sentOf("Goodbye"), [{ type: "Goodbye", connId: 0, reason: "done here" }]);
    assert.equal(seen.length, 2, "a throwing listener does not stop the others");
    const e = await closed;
    assert.ok(e instanceof ConnectionClosedError);
    assert.equal(e.reason, "done here");
    assert.equal(e.by, "local");
    assert.equal(link.isClosed, true);
    let late: RoamError | null = null;
    link.onClose((x) => (late = x));
    assert.equal(late, e, "a listener added after the close is called at once");
    const before = tr.log.length;
    link.close("again");
    assert.equal(tr.sentOf("Goodbye").length, 1, "close is idempotent");
    assert.deepEqual(tr.log.slice(before), [], "a second close does not touch the transport");
  });

  test("a graceful close has no reason; closing before the handshake sends no Goodbye", async () => {
    const { link } = await openLink();
    link.close();
    assert.equal(((await link.closed()) as ConnectionClosedError).reason, undefined);
    const early = makeLink();
    const ready = early.link.start();
    early.link.close("early");
    await assert.rejects(ready, ConnectionClosedError);
    assert.deepEqual(
      early.tr.sent.map((m) => m.type),
      ["Hello"],
    );
    assert.equal(early.tr.closed, true);
  });

  test("link.root.close(reason) closes the whole link", async () => {
    const { link, tr } = await openLink();
    link.root.close("root gone");
    assert.equal(link.isClosed, true);
    assert.deepEqual(tr.sentOf("Goodbye"), [{ type: "Goodbye", connId: 0, reason: "root gone" }]);
  });

  test("a peer Goodbye on connection 0 ends the link (by the remote), reported with the rule its reason starts with", async () => {
    for (const [reason, rule] of [
      ["flow.rule: because", "flow.rule"],
      ["call.other because", "call.other"],
      ["", ""],
    ] as const) {
      const { link, tr, reports } = await openLink();
      const pending = link.root.callRaw(1n, new Uint8Array());
      tr.deliver({ type: "Goodbye", connId: 0, reason });
      assert.deepEqual(reports, [{ rule, reason, direction: "received", connId: 0 }]);
      assert.equal(tr.closed, true);
      const e = await link.closed();
      assert.ok(e instanceof ConnectionClosedError);
      assert.equal(e.by, "remote");
      assert.equal(e.reason, reason === "" ? undefined : reason);
      await assert.rejects(pending, (x) => x === e);
      assert.equal(tr.sentOf("Goodbye").length, 0, "no Goodbye in answer to one");
    }
  });

  test("the transport lost: the link closes with the cause; a later malformed frame is not reported", async () => {
    const { link, tr, reports } = await openLink();
    const cause = new Error("cable cut");
    tr.sink!.closed(cause);
    const e = await link.closed();
    assert.ok(e instanceof ConnectionClosedError);
    assert.equal(e.by, "transport");
    assert.equal(e.reason, "cable cut");
    assert.equal(e.cause, cause);
    tr.sink!.malformed("message.decode-error", "late");
    assert.deepEqual(reports, []);
    assert.equal(tr.sentOf("Goodbye").length, 0);
    tr.sink!.closed(new Error("twice"));
    assert.equal(((await link.closed()) as ConnectionClosedError).reason, "cable cut");
  });

  test("a hook that throws does not break the link's close", async () => {
    const { link, tr } = await openLink({
      onProtocolError: () => {
        throw new Error("hook bug");
      },
    });
    tr.sink!.malformed("message.decode-error", "garbage");
    assert.equal(link.isClosed, true);
    assert.deepEqual(tr.log.slice(-3), ["send:Goodbye", "flush", "close"]);
  });

  test("a malformed frame: Goodbye citing the rule (even before the handshake), then the transport closes", async () => {
    const { link, tr, reports } = makeLink();
    const ready = link.start();
    tr.sink!.malformed("message.decode-error", "bad bytes");
    await assert.rejects(ready, (e) => e instanceof ConnectionClosedError && e.cause instanceof ProtocolViolation && e.by === "local");
    assert.deepEqual(tr.sentOf("Goodbye"), [{ type: "Goodbye", connId: 0, reason: "message.decode-error: bad bytes" }]);
    assert.deepEqual(tr.log.slice(-3), ["send:Goodbye", "flush", "close"]);
    assert.deepEqual(reports, [{ rule: "message.decode-error", reason: "message.decode-error: bad bytes", direction: "sent", connId: 0 }]);
  });

  test("a message after the link closed is dropped", async () => {
    const { link, tr, reports } = await openLink({ dispatcher: serve(Echo, { echo: (s) => s }) });
    link.close();
    const before = tr.sent.length;
    tr.closed = false; // the transport still delivers (a broken one): the link must not react
    tr.deliver({ type: "Request", connId: 0, requestId: 1, methodId: Echo.methods.echo.id, metadata: [], channels: [], payload: echoPayload("x") });
    tr.deliver({ type: "Hello", version: 2, maxPayloadSize: 1, initialChannelCredit: 1 });
    tr.deliver({ type: "Goodbye", connId: 0, reason: "late: bye" });
    assert.equal(tr.sent.length, before);
    assert.deepEqual(reports, []);
  });
});

describe("Link: handling messages", () => {
  test("an internal error while handling closes the link with core.error.connection, whatever was thrown", async (ctx) => {
    ctx.mock.method(console, "error", () => {});
    for (const [thrown, text] of [
      [new Error("boom"), "boom"],
      [null, "null"],
    ] as const) {
      const bad: Dispatcher = {
        dispatch: () => {
          throw thrown;
        },
      };
      const { link, tr, reports } = await openLink({ dispatcher: bad });
      assert.doesNotThrow(() => tr.deliver({ type: "Request", connId: 0, requestId: 1, methodId: 1n, metadata: [], channels: [], payload: new Uint8Array() }));
      assert.equal(link.isClosed, true);
      assert.deepEqual(tr.sentOf("Goodbye"), [{ type: "Goodbye", connId: 0, reason: `core.error.connection: internal error: ${text}` }]);
      assert.equal(reports[0]!.rule, "core.error.connection");
    }
  });

  test("an internal error on a virtual connection closes the whole link, not only that connection", async (ctx) => {
    ctx.mock.method(console, "error", () => {});
    const { link, tr } = await openLink();
    link.acceptConnections(() => ({
      dispatch: () => {
        throw new Error("bug");
      },
    }));
    tr.deliver({ type: "Connect", requestId: 1, metadata: [] });
    const c = tr.sentOf("Accept")[0]!.connId;
    tr.deliver({ type: "Request", connId: c, requestId: 1, methodId: 1n, metadata: [], channels: [], payload: new Uint8Array() });
    assert.equal(link.isClosed, true);
    assert.deepEqual(tr.sentOf("Goodbye"), [{ type: "Goodbye", connId: 0, reason: "core.error.connection: internal error: bug" }]);
  });

  test("a Reject for our Connect rejects connect() with its reason and metadata; the link stays", async () => {
    const { link, tr } = await openLink();
    const p = link.connect();
    await turn();
    tr.deliver({ type: "Reject", requestId: tr.sentOf("Connect")[0]!.requestId, reason: "full", metadata: [["retry", "later"]] });
    await assert.rejects(p, (e) => e instanceof ConnectionRejectedError && e.reason === "full" && e.metadata.length === 1);
    assert.equal(link.isClosed, false);
  });

  test("a channel send over a link waits while the transport is not writable", async () => {
    const tr = new ScriptTransport();
    let release!: () => void;
    tr.writableResult = new Promise<void>((r) => (release = r));
    const { link } = await openLink({}, tr);
    const Feed = defineService("CoreFeed", { feed: method([arg("input", t.rx(t.u32))], t.u32) });
    const [tx, rx] = channel<number>();
    void link.root.call(Feed.methods.feed, [rx]).catch(() => {});
    let done = false;
    const s = tx.send(1).then(() => (done = true));
    await timersUpTo(5);
    assert.equal(tr.sentOf("Data").length, 1);
    assert.equal(done, false);
    release();
    await within(s);
    link.close();
  });

  test("a message for an unknown connection is message.conn-id; one that crossed our Goodbye is ignored", async () => {
    const { link, tr, reports } = await openLink();
    link.acceptConnections(() => null);
    tr.deliver({ type: "Connect", requestId: 1, metadata: [] });
    const c = tr.sentOf("Accept")[0]!.connId;
    assert.equal(link.connectionCount, 2);
    tr.deliver({ type: "Goodbye", connId: 999, reason: "" }); // unknown connection: ignored
    assert.equal(link.isClosed, false);
    tr.deliver({ type: "Goodbye", connId: c, reason: "peer done" });
    assert.equal(link.connectionCount, 1);
    tr.deliver({ type: "Request", connId: c, requestId: 1, methodId: 1n, metadata: [], channels: [], payload: new Uint8Array() });
    assert.equal(link.isClosed, false, "late message for a closed connection");
    tr.deliver({ type: "Request", connId: 77, requestId: 1, methodId: 1n, metadata: [], channels: [], payload: new Uint8Array() });
    assert.equal(link.isClosed, true);
    assert.equal(reports.at(-1)!.rule, "message.conn-id");
  });

  test("a peer Goodbye on a virtual connection ends it alone (by the remote, with its reason)", async () => {
    const { link, tr } = await openLink();
    const p = link.connect();
    await turn();
    const req = tr.sentOf("Connect")[0]!;
    tr.deliver({ type: "Accept", requestId: req.requestId, connId: 5, metadata: [] });
    const conn = await p;
    const pending = conn.callRaw(1n, new Uint8Array());
    tr.deliver({ type: "Goodbye", connId: 5, reason: "" });
    const e = await assert.rejects(pending, ConnectionClosedError).then(() => conn.closeReason as ConnectionClosedError);
    assert.equal(e.by, "remote");
    assert.equal(e.reason, undefined);
    assert.equal(link.isClosed, false);
    tr.deliver({ type: "Goodbye", connId: 6, reason: "x" });
    assert.equal(link.isClosed, false);
  });

  test("closing a virtual connection sends Goodbye on it; a violation on it ends only it, an oversized payload ends the link", async () => {
    const { link, tr, reports } = await openLink();
    link.acceptConnections(() => serve(Echo, { echo: (s) => s }));
    tr.deliver({ type: "Connect", requestId: 1, metadata: [] });
    tr.deliver({ type: "Connect", requestId: 2, metadata: [] });
    const [a, b] = tr.sentOf("Accept").map((m) => m.connId);
    // Data on channel 0 of `a`: a violation on that connection.
    const closeBefore = tr.sentOf("Goodbye").length;
    tr.deliver({ type: "Data", connId: a!, channelId: 0, payload: new Uint8Array(1) });
    const g = tr.sentOf("Goodbye").slice(closeBefore);
    assert.equal(g.length, 1);
    assert.equal(g[0]!.connId, a);
    assert.match(g[0]!.reason, /^channeling\.id\.zero-reserved/);
    assert.deepEqual(reports.at(-1), { rule: "channeling.id.zero-reserved", reason: g[0]!.reason, direction: "sent", connId: a });
    assert.equal(link.isClosed, false);
    assert.equal(link.connectionCount, 2);
    // An oversized Request payload on `b` is a link-level violation (message.hello.enforcement).
    tr.deliver({ type: "Request", connId: b!, requestId: 1, methodId: Echo.methods.echo.id, metadata: [], channels: [], payload: new Uint8Array(2049) });
    assert.equal(link.isClosed, true);
    assert.equal(tr.sentOf("Goodbye").at(-1)!.connId, 0);
    assert.match(tr.sentOf("Goodbye").at(-1)!.reason, /^message\.hello\.enforcement/);
  });

  test("a connection closed by us: Goodbye on it with the reason; the peer's late messages for it are ignored", async () => {
    const { link, tr } = await openLink();
    const p = link.connect();
    await turn();
    tr.deliver({ type: "Accept", requestId: tr.sentOf("Connect")[0]!.requestId, connId: 3, metadata: [] });
    const conn = await p;
    conn.close("finished");
    assert.deepEqual(tr.last(), { type: "Goodbye", connId: 3, reason: "finished" });
    const e = conn.closeReason as ConnectionClosedError;
    assert.equal(e.reason, "finished");
    assert.equal(e.by, "local");
    conn.close("twice");
    assert.equal(tr.sentOf("Goodbye").length, 1);
    tr.deliver({ type: "Data", connId: 3, channelId: 1, payload: new Uint8Array(1) });
    assert.equal(link.isClosed, false);
    // A graceful close has no reason.
    const q = link.connect();
    await turn();
    tr.deliver({ type: "Accept", requestId: tr.sentOf("Connect")[1]!.requestId, connId: 4, metadata: [] });
    const c2 = await q;
    c2.close();
    assert.equal((c2.closeReason as ConnectionClosedError).reason, undefined);
  });

  test("a Hello after the handshake is message.hello.ordering", async () => {
    const { link, tr, reports } = await openLink();
    tr.hello();
    assert.equal(link.isClosed, true);
    assert.equal(reports[0]!.rule, "message.hello.ordering");
  });

  test("handler errors go to onHandlerError (a throwing hook is ignored), else to console.error", async (ctx) => {
    const Fail = defineService("CoreFail", { boom: method([], t.u32) });
    const dispatcher = serve(Fail, {
      boom: () => {
        throw new Error("kaput");
      },
    });
    const seen: { method: string; connId: number; requestId: number }[] = [];
    const { tr } = await openLink({
      dispatcher,
      onHandlerError: (_e, info) => {
        seen.push(info);
        throw new Error("hook bug");
      },
    });
    tr.deliver({ type: "Request", connId: 0, requestId: 7, methodId: Fail.methods.boom.id, metadata: [], channels: [], payload: new Uint8Array() });
    assert.deepEqual(seen, [{ method: "CoreFail.boom", connId: 0, requestId: 7 }]);
    assert.equal(tr.sentOf("Response").length, 1);
    const logged = ctx.mock.method(console, "error", () => {});
    const d = await openLink({ dispatcher });
    d.tr.deliver({ type: "Request", connId: 0, requestId: 8, methodId: Fail.methods.boom.id, metadata: [], channels: [], payload: new Uint8Array() });
    assert.equal(logged.mock.callCount(), 1);
    assert.match(String(logged.mock.calls[0]!.arguments[0]), /CoreFail\.boom \(conn 0, request 8\)/);
  });

  test("the link is in the process-wide registry while open, and leaves it once closed", async () => {
    const { link } = await openLink();
    assert.equal(diagnosticsRegistry.links.has(link), true);
    link.close();
    assert.equal(diagnosticsRegistry.links.has(link), false);
  });
});

describe("Link: virtual connections", () => {
  test("connect() rejects when the link closes before the Connect went out", async () => {
    const { link, tr } = await openLink();
    const p = link.connect();
    link.close();
    await assert.rejects(p, ConnectionClosedError);
    assert.equal(tr.sentOf("Connect").length, 0);
  });

  test("connect() waits 30 s for Accept by default; a given timeout rejects with message.connect.timeout", async () => {
    const { link, tr } = await openLink();
    const p = link.connect({ metadata: [["k", "v"]] });
    await timersUpTo(20);
    const req = tr.sentOf("Connect")[0]!;
    assert.deepEqual(req.metadata, [["k", "v"]]);
    tr.deliver({ type: "Accept", requestId: req.requestId, connId: 2, metadata: [["a", "b"]] });
    const c = await p;
    assert.equal(c.connId, 2);
    assert.deepEqual(c.metadata, [["a", "b"]]);
    await assert.rejects(within(link.connect({ timeoutMs: 1 })), (e) => e instanceof ConnectionRejectedError && /message\.connect\.timeout/.test(e.reason));
  });

  test("Connect metadata over the limits is refused before anything is sent", async () => {
    const { link, tr } = await openLink();
    await assert.rejects(link.connect({ metadata: [["k".repeat(300), "v"]] }), (e) => e instanceof EncodeFailedError && /call\.metadata\.limits/.test(e.detail));
    assert.equal(tr.sentOf("Connect").length, 0);
  });

  test("the accept backlog defaults to 128 Connects; more are rejected", async () => {
    const { link, tr } = await openLink({ maxConnections: 10_000 });
    const it = link.incomingConnections();
    for (let i = 1; i <= 129; i++) tr.deliver({ type: "Connect", requestId: i, metadata: [] });
    const rejects = tr.sentOf("Reject");
    assert.deepEqual(
      rejects.map((r) => [r.requestId, r.reason]),
      [[129, "backlog full"]],
    );
    await it.return!();
    assert.equal(tr.sentOf("Reject").length, 129, "leaving the loop rejects what was queued");
  });

  test("at most 1024 virtual connections by default", async () => {
    const { link, tr } = await openLink();
    link.acceptConnections(() => null);
    for (let i = 1; i <= 1025; i++) tr.deliver({ type: "Connect", requestId: i, metadata: [] });
    assert.equal(tr.sentOf("Accept").length, 1024);
    assert.deepEqual(
      tr.sentOf("Reject").map((r) => r.requestId),
      [1025],
    );
    assert.equal(link.connectionCount, 1025);
    link.stopListening();
    tr.deliver({ type: "Connect", requestId: 2000, metadata: [] });
    assert.equal(tr.sentOf("Reject").at(-1)!.reason, "not listening");
  });
});

describe("Link: idle timeout (mocked time)", () => {
  async function idleLink(ctx: TestContext, idleTimeoutMs?: number) {
    ctx.mock.timers.enable({ apis: ["setInterval"] });
    const now = fakeNow(ctx, 1000);
    const l = await openLink(idleTimeoutMs === undefined ? {} : { idleTimeoutMs });
    return { ...l, now };
  }

  test("closes after idleTimeoutMs without a message, checked every idle/4 ms", async (ctx) => {
    const { link, now } = await idleLink(ctx, 40);
    now.set(1039);
    ctx.mock.timers.tick(10);
    assert.equal(link.isClosed, false, "39 ms idle");
    now.set(1040);
    ctx.mock.timers.tick(10);
    assert.equal(link.isClosed, true, "40 ms idle, at the next check");
    assert.match(((await link.closed()) as ConnectionClosedError).reason ?? "", /^idle: no message for 40 ms/);
  });

  test("a message resets the idle clock; a call in flight keeps the link open", async (ctx) => {
    const { link, tr, now } = await idleLink(ctx, 40);
    now.set(1030);
    tr.deliver({ type: "Cancel", connId: 0, requestId: 1 });
    now.set(1060);
    ctx.mock.timers.tick(10);
    assert.equal(link.isClosed, false);
    const p = link.root.callRaw(1n, new Uint8Array());
    now.set(5000);
    ctx.mock.timers.tick(10);
    assert.equal(link.isClosed, false, "a call is in flight");
    const req = tr.sentOf("Request")[0]!;
    tr.deliver({ type: "Response", connId: 0, requestId: req.requestId, metadata: [], channels: [], payload: Uint8Array.of(0) });
    await p;
    now.set(5040);
    ctx.mock.timers.tick(10);
    assert.equal(link.isClosed, true);
  });

  test("the check interval is at most 5 s (long timeouts) and at least 10 ms (short ones)", async (ctx) => {
    const { link, now } = await idleLink(ctx, 100_000);
    now.set(1000 + 100_000);
    ctx.mock.timers.tick(4_999);
    assert.equal(link.isClosed, false);
    ctx.mock.timers.tick(1);
    assert.equal(link.isClosed, true);
  });

  test("short timeouts are checked every 10 ms", async (ctx) => {
    const { link, now } = await idleLink(ctx, 8);
    now.set(1100);
    ctx.mock.timers.tick(9);
    assert.equal(link.isClosed, false);
    ctx.mock.timers.tick(1);
    assert.equal(link.isClosed, true);
  });

  test("without idleTimeoutMs the link never closes for being idle", async (ctx) => {
    const { link, now } = await idleLink(ctx);
    now.set(1_000_000);
    ctx.mock.timers.tick(10_000);
    assert.equal(link.isClosed, false);
  });
});

describe("Link: reading paced by the reply backlog", () => {
  test("reading pauses above the default 2 MiB of queued replies and resumes below half of it", async () => {
    const tr = new ScriptTransport();
    let backlog = 0;
    let drain: { bytes: number; cb: () => void } | null = null;
    tr.replyBacklog = () => backlog;
    tr.onReplyDrain = (bytes, cb) => (drain = { bytes, cb });
    const { link } = await openLink({}, tr);
    backlog = 2 * 1024 * 1024;
    tr.deliver({ type: "Cancel", connId: 0, requestId: 1 });
    assert.equal(link.readingPaused, false, "at the mark");
    backlog++;
    tr.deliver({ type: "Cancel", connId: 0, requestId: 2 });
    assert.equal(link.readingPaused, true);
    assert.equal(drain!.bytes, 1024 * 1024);
    backlog = 0;
    drain!.cb();
    await turn();
    assert.equal(link.readingPaused, false);
    assert.deepEqual(tr.log.filter((x) => x === "pause" || x === "resume"), ["pause", "resume"]);
  });

  test("a given reply mark is used; holding more than the bound while paused ends the link", async () => {
    const tr = new ScriptTransport();
    tr.replyBacklog = () => 11;
    tr.onReplyDrain = () => {};
    const { link } = await openLink({ replyHighWaterMark: 10 }, tr);
    tr.deliver({ type: "Cancel", connId: 0, requestId: 1 });
    assert.equal(link.readingPaused, true);
    for (let i = 0; i < 65_537 && !link.isClosed; i++) tr.deliver({ type: "Cancel", connId: 0, requestId: 2 });
    assert.equal(link.isClosed, true);
    assert.match(((await link.closed()) as ConnectionClosedError).reason ?? "", /^flow\.backpressure/);
  });
});

describe("InboundPacer: the per-turn budget (mocked performance.now)", () => {
  function pacer(o: { closed?: () => boolean; onHandle?: (id: number) => void; backlog?: () => number } = {}) {
    const handled: number[] = [];
    const calls: string[] = [];
    let drain: { bytes: number; cb: () => void } | null = null;
    const p = new InboundPacer({
      transport: {
        replyBacklog: () => o.backlog?.() ?? 0,
        onReplyDrain: (bytes, cb) => {
          drain = { bytes, cb };
        },
        pauseReading: () => calls.push("pause"),
        resumeReading: () => calls.push("resume"),
      },
      replyMark: 100,
      handle: (m) => {
        const id = (m as { requestId: number }).requestId;
        handled.push(id);
        o.onHandle?.(id);
      },
      isClosed: o.closed ?? (() => false),
      overflow: () => {},
    });
    const msg = (requestId: number): Message => ({ type: "Cancel", connId: 0, requestId });
    return { p, handled, calls, msg, drain: () => drain };
  }

  test("more than 10 ms of handling in one turn: the rest waits for the next turn, in order", async (ctx) => {
    const now = fakeNow(ctx, 1000);
    const t = pacer();
    t.p.receive(t.msg(1), 1000);
    now.set(1010);
    t.p.receive(t.msg(2), 1010);
    assert.equal(t.p.paused, false, "exactly 10 ms is within the budget");
    now.set(1011);
    t.p.receive(t.msg(3), 1011);
    assert.equal(t.p.paused, true);
    assert.deepEqual(t.calls, ["pause"]);
    t.p.receive(t.msg(4), 1011);
    t.p.receive(t.msg(5), 1011);
    assert.deepEqual(t.handled, [1, 2, 3]);
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3, 4, 5]);
    assert.equal(t.p.paused, false);
    assert.deepEqual(t.calls, ["pause", "resume"]);
  });

  test("the budget is per turn: a new turn starts a new budget", async (ctx) => {
    const now = fakeNow(ctx, 1000);
    const t = pacer();
    t.p.receive(t.msg(1), 1000);
    await turn();
    now.set(5000);
    t.p.receive(t.msg(2), 5000);
    assert.equal(t.p.paused, false);
  });

  test("resuming spends a budget too: past 10 ms the rest goes to the next turn; the last one resumes reading at once", async (ctx) => {
    const now = fakeNow(ctx, 1000);
    let step = 0;
    const t = pacer({
      backlog: () => (step === 0 ? 1000 : 0),
      onHandle: (id) => {
        if (id === 3) now.set(2000);
      },
    });
    t.p.receive(t.msg(1), 1000);
    assert.equal(t.p.paused, true);
    for (const id of [2, 3, 4]) t.p.receive(t.msg(id), 1000);
    step = 1;
    t.drain()!.cb();
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3], "2 and 3 handled; 3 spent the budget");
    assert.equal(t.p.paused, true);
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3, 4]);
    assert.equal(t.p.paused, false);
    assert.deepEqual(t.calls, ["pause", "resume"]);

    // When the held message that spends the budget is the last one, reading resumes in that same turn.
    const u = pacer({ backlog: () => (step === 1 ? 0 : 1000), onHandle: (id) => id === 12 && now.set(9000) });
    step = 0;
    now.set(3000);
    u.p.receive(u.msg(11), 3000);
    u.p.receive(u.msg(12), 3000);
    step = 1;
    u.drain()!.cb();
    await turn();
    assert.deepEqual(u.handled, [11, 12]);
    assert.equal(u.p.paused, false);
    assert.deepEqual(u.calls, ["pause", "resume"]);
  });

  test("a pause asks for a drain to half the mark; replies backing up again while resuming pause again", async () => {
    let backlog = 1000;
    const t = pacer({ backlog: () => backlog, onHandle: (id) => id === 2 && (backlog = 1000) });
    t.p.receive(t.msg(1), performance.now());
    assert.equal(t.drain()!.bytes, 50);
    t.p.receive(t.msg(2), performance.now());
    t.p.receive(t.msg(3), performance.now());
    backlog = 0;
    const first = t.drain()!;
    first.cb();
    await turn();
    assert.deepEqual(t.handled, [1, 2], "paused again after 2");
    assert.notEqual(t.drain(), first);
    assert.equal(t.p.paused, true);
    backlog = 0;
    t.drain()!.cb();
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3]);
    assert.deepEqual(t.calls, ["pause", "pause", "resume"]);
  });

  test("once the link closed: no pause, no budget yield, nothing held is handled, reading is not resumed", async (ctx) => {
    const now = fakeNow(ctx, 1000);
    let closed = false;
    const t = pacer({ closed: () => closed, backlog: () => 1000, onHandle: (id) => id === 1 && (closed = true) });
    t.p.receive(t.msg(1), 1000);
    assert.equal(t.p.paused, false, "the link closed while handling: no pause");
    const u = pacer({ closed: () => closed });
    closed = true;
    now.set(1000);
    u.p.receive(u.msg(1), 1000);
    now.set(2000);
    u.p.receive(u.msg(2), 1000);
    assert.equal(u.p.paused, false, "no yield on a closed link");
    assert.deepEqual(u.calls, []);

    closed = false;
    let backlog = 1000;
    const v = pacer({ closed: () => closed, backlog: () => backlog, onHandle: (id) => id === 2 && (closed = true) });
    v.p.receive(v.msg(1), performance.now());
    v.p.receive(v.msg(2), performance.now());
    v.p.receive(v.msg(3), performance.now());
    backlog = 0;
    v.drain()!.cb();
    await turn();
    assert.deepEqual(v.handled, [1, 2], "the link closed while handling 2: 3 is dropped");
    assert.deepEqual(v.calls, ["pause"]);

    closed = false;
    const w = pacer({ closed: () => closed, backlog: () => 1000 });
    w.p.receive(w.msg(1), performance.now());
    w.p.receive(w.msg(2), performance.now());
    closed = true;
    w.drain()!.cb();
    await turn();
    assert.deepEqual(w.handled, [1]);
    assert.deepEqual(w.calls, ["pause"]);
  });

  test("a transport without drain notification is never paused by its backlog", () => {
    const handled: number[] = [];
    const p = new InboundPacer({
      transport: { replyBacklog: () => 1e9 },
      replyMark: 100,
      handle: (m) => handled.push((m as { requestId: number }).requestId),
      isClosed: () => false,
      overflow: () => {},
    });
    p.receive({ type: "Cancel", connId: 0, requestId: 1 }, performance.now());
    p.receive({ type: "Cancel", connId: 0, requestId: 2 }, performance.now());
    assert.equal(p.paused, false);
    assert.deepEqual(handled, [1, 2]);
  });

  test("a transport that can neither pause nor resume reading, nor report a backlog, is still paced", async () => {
    let drain: (() => void) | null = null;
    const handled: number[] = [];
    const p = new InboundPacer({
      transport: {
        replyBacklog: () => 1000,
        onReplyDrain: (_b, cb) => {
          drain = cb;
        },
      },
      replyMark: 100,
      handle: (m) => handled.push((m as { requestId: number }).requestId),
      isClosed: () => false,
      overflow: () => {},
    });
    p.receive({ type: "Cancel", connId: 0, requestId: 1 }, performance.now());
    assert.equal(p.paused, true);
    p.receive({ type: "Cancel", connId: 0, requestId: 2 }, performance.now());
    (drain as unknown as () => void)();
    await turn();
    assert.deepEqual(handled, [1, 2]);
  });

  test("a transport without a backlog is paced by the budget alone, also while resuming", async (ctx) => {
    const now = fakeNow(ctx, 1000);
    let now_ = 1000;
    const handled: number[] = [];
    const p = new InboundPacer({
      transport: {},
      replyMark: 100,
      handle: (m) => {
        const id = (m as { requestId: number }).requestId;
        handled.push(id);
        if (id === 1 || id === 2) now.set(now_ += 100);
      },
      isClosed: () => false,
      overflow: () => {},
    });
    p.receive({ type: "Cancel", connId: 0, requestId: 1 }, 1000);
    assert.equal(p.paused, true);
    p.receive({ type: "Cancel", connId: 0, requestId: 2 }, 1000);
    p.receive({ type: "Cancel", connId: 0, requestId: 3 }, 1000);
    await turn();
    assert.deepEqual(handled, [1, 2], "2 spent the resume's budget");
    await turn();
    assert.deepEqual(handled, [1, 2, 3]);
    assert.equal(p.paused, false);
  });

  test("clear() drops what is held", async () => {
    let backlog = 1000;
    const t = pacer({ backlog: () => backlog });
    t.p.receive(t.msg(1), performance.now());
    t.p.receive(t.msg(2), performance.now());
    t.p.clear();
    backlog = 0;
    t.drain()!.cb();
    await turn();
    assert.deepEqual(t.handled, [1]);
  });
});

describe("ConnectionTable", () => {
  function fakeControl(connId: number, torn: RoamError[], state: { pendingCalls?: number; servingCalls?: number; openCount?: number } = {}): ConnectionControl {
    return {
      connection: {
        connId,
        get pendingCalls() {
          return state.pendingCalls ?? 0;
        },
        get servingCalls() {
          return state.servingCalls ?? 0;
        },
      } as unknown as Connection,
      handle: () => {},
      teardown: (e) => torn.push(e),
      inFlight: () => [],
      channels: {
        get openCount() {
          return state.openCount ?? 0;
        },
      } as ConnectionControl["channels"],
    };
  }

  function table(o: { maxConnections?: number; acceptBacklog?: number; root?: ConnectionControl } = {}) {
    const sent: Message[] = [];
    const torn: RoamError[] = [];
    const opened: { connId: number; dispatcher: Dispatcher | null; metadata: Metadata }[] = [];
    let closed: RoamError | null = null;
    const t = new ConnectionTable(
      {
        send: (m) => sent.push(m),
        open: (connId, dispatcher, metadata) => {
          opened.push({ connId, dispatcher, metadata });
          return fakeControl(connId, torn);
        },
        closedError: () => closed,
        ready: () => Promise.resolve(),
        connectTimeoutMs: 60_000,
        acceptBacklog: o.acceptBacklog ?? 2,
        maxConnections: o.maxConnections ?? 8,
      },
      o.root ?? fakeControl(0, torn),
    );
    return { t, sent, torn, opened, setClosed: (e: RoamError) => (closed = e), close: (e: RoamError) => ((closed = e), t.shutdown(e)) };
  }
  const connect = (requestId: number, metadata: Metadata = []): Message & { type: "Connect" } => ({ type: "Connect", requestId, metadata });
  const last = (sent: Message[]) => sent.at(-1) as Message & { requestId?: number; connId?: number; reason?: string };

  test("maxConnections counts live connections (not 0) and Connects not yet decided", async () => {
    const a = table({ maxConnections: 1 });
    a.t.acceptConnections(() => null);
    a.t.onConnect(connect(1));
    assert.deepEqual(last(a.sent), { type: "Accept", requestId: 1, connId: 1, metadata: [] });
    a.t.onConnect(connect(2));
    assert.equal(last(a.sent).type, "Reject");
    assert.match(last(a.sent).reason!, /too many connections: 1 are open/);

    const b = table({ maxConnections: 1 });
    const it = b.t.incomingConnections();
    const first = it.next();
    b.t.onConnect(connect(1)); // handed to the waiting iterator, not decided yet
    b.t.onConnect(connect(2));
    assert.deepEqual(b.sent.map((m) => [m.type, (m as { requestId: number }).requestId]), [["Reject", 2]]);
    (await first).value!.accept(null);

    const c = table({ maxConnections: 1 });
    c.t.incomingConnections(); // listening, nobody waiting: queued in the backlog
    c.t.onConnect(connect(1));
    c.t.onConnect(connect(2));
    assert.deepEqual(c.sent.map((m) => [m.type, (m as { requestId: number }).requestId]), [["Reject", 2]]);

    // A Connect waiting in the backlog counts once: with room for two, two wait and the third is rejected.
    const d = table({ maxConnections: 2, acceptBacklog: 4 });
    const dIt = d.t.incomingConnections();
    d.t.onConnect(connect(1));
    d.t.onConnect(connect(2));
    d.t.onConnect(connect(3));
    assert.deepEqual(d.sent.map((m) => [m.type, (m as { requestId: number }).requestId]), [["Reject", 3]]);
    for (let i = 0; i < 2; i++) {
      const r = await dIt.next();
      assert.equal(r.done, false, "a queued Connect is a value, not the end");
      r.value!.accept(null);
    }
    d.t.onConnect(connect(4));
    assert.deepEqual(d.sent.map((m) => [m.type, (m as { requestId: number }).requestId]), [["Reject", 3], ["Accept", 1], ["Accept", 2], ["Reject", 4]]);
    // Leaving the loop (return) ends the iteration and stops listening.
    assert.deepEqual(await dIt.return!(), { value: undefined, done: true });
    d.t.onConnect(connect(5));
    assert.deepEqual(d.sent.at(-1), { type: "Reject", requestId: 5, reason: "not listening", metadata: [] });
  });

  test("the accept backlog: exactly acceptBacklog Connects wait; a waiting iterator takes the next one directly", async () => {
    const { t, sent } = table({ acceptBacklog: 2 });
    const it = t.incomingConnections();
    assert.equal(it[Symbol.asyncIterator](), it);
    const waiting = it.next();
    t.onConnect(connect(1, [["who", "one"]]));
    t.onConnect(connect(2));
    t.onConnect(connect(3));
    t.onConnect(connect(4));
    assert.deepEqual(sent, [{ type: "Reject", requestId: 4, reason: "backlog full", metadata: [] }]);
    const one = (await waiting).value!;
    assert.deepEqual(one.metadata, [["who", "one"]]);
    const two = (await it.next()).value!;
    const three = (await it.next()).value!;
    assert.deepEqual([two, three].map((x) => x.metadata), [[], []]);
    one.reject("no thanks", [["why", "test"]]);
    assert.deepEqual(last(sent), { type: "Reject", requestId: 1, reason: "no thanks", metadata: [["why", "test"]] });
    one.reject("again");
    assert.throws(() => one.accept(null), /already accepted or rejected/);
    assert.equal(sent.length, 2);
    const conn = two.accept(null, [["ok", "yes"]]);
    assert.equal(conn.connId, 1);
    assert.deepEqual(last(sent), { type: "Accept", requestId: 2, connId: 1, metadata: [["ok", "yes"]] });
    assert.throws(() => two.accept(null), /already/);
    two.reject("late");
    assert.equal(sent.length, 3);
    // A decided request id may be used again by the peer.
    t.onConnect(connect(1));
    await it.return!();
    assert.deepEqual(last(sent), { type: "Reject", requestId: 1, reason: "not listening", metadata: [] });
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    three.reject("after stop");
    assert.equal(last(sent).reason, "after stop");
  });

  test("accept opens the connection with the Connect's metadata; after the link closed it throws", async () => {
    const { t, opened, setClosed } = table();
    const d: Dispatcher = { dispatch: () => {} };
    t.acceptConnections((md) => (md.length > 0 ? d : null));
    t.onConnect(connect(1, [["x", "y"]]));
    assert.deepEqual(opened, [{ connId: 1, dispatcher: d, metadata: [["x", "y"]] }]);
    assert.equal(t.get(1)!.connection.connId, 1);
    const u = table();
    const it = u.t.incomingConnections();
    u.t.onConnect(connect(5));
    const inc = (await it.next()).value!;
    const error = new ConnectionClosedError("gone", "transport");
    u.setClosed(error);
    assert.throws(() => inc.accept(null), (e) => e === error);
    assert.deepEqual(await it.next(), { value: undefined, done: true }, "the iterator ends once the link closed");
    void setClosed;
  });

  test("shutdown ends a waiting iterator and rejects queued Connects", async () => {
    const { t, sent, close } = table();
    const it = t.incomingConnections();
    const w = it.next();
    close(new ConnectionClosedError("x", "local"));
    assert.deepEqual(await w, { value: undefined, done: true });
    const u = table();
    u.t.incomingConnections();
    u.t.onConnect(connect(9));
    u.close(new ConnectionClosedError("x", "local"));
    assert.deepEqual(last(u.sent), { type: "Reject", requestId: 9, reason: "not listening", metadata: [] });
    void sent;
  });

  test("Connect metadata over the limits is a violation", () => {
    const { t } = table();
    t.acceptConnections(() => null);
    assert.throws(() => t.onConnect(connect(1, [["k".repeat(300), "v"]])), (e) => e instanceof ProtocolViolation && e.rule === "call.metadata.limits");
  });

  test("connect(): request ids count up, the dispatcher serves the new connection, Reject carries reason and metadata", async () => {
    const { t, sent, opened } = table();
    const d: Dispatcher = { dispatch: () => {} };
    const p1 = t.connect({ dispatcher: d });
    const p2 = t.connect();
    await turn();
    assert.deepEqual(sent, [
      { type: "Connect", requestId: 1, metadata: [] },
      { type: "Connect", requestId: 2, metadata: [] },
    ]);
    t.onAccept({ type: "Accept", requestId: 1, connId: 4, metadata: [["m", "1"]] });
    assert.equal((await p1).connId, 4);
    assert.deepEqual(opened[0], { connId: 4, dispatcher: d, metadata: [["m", "1"]] });
    assert.equal(t.size, 2);
    t.onReject({ type: "Reject", requestId: 2, reason: "nope", metadata: [["r", "2"]] });
    await assert.rejects(p2, (e) => e instanceof ConnectionRejectedError && e.reason === "nope" && e.metadata.length === 1);
    t.onReject({ type: "Reject", requestId: 2, reason: "again", metadata: [] }); // unknown: ignored
    const p3 = t.connect();
    await turn();
    t.onAccept({ type: "Accept", requestId: 3, connId: 5, metadata: [] });
    assert.equal((await p3).connId, 5);
    assert.equal(opened[1]!.dispatcher, null);
  });

  test("Accept assigning id 0 or an id in use is core.conn.id-allocation", async () => {
    const { t, sent } = table();
    const p = t.connect();
    await turn();
    const id = (sent[0] as { requestId: number }).requestId;
    for (const connId of [0]) {
      assert.throws(() => t.onAccept({ type: "Accept", requestId: id, connId, metadata: [] }), (e) => e instanceof ProtocolViolation && e.rule === "core.conn.id-allocation" && /reserved/.test(e.detail));
    }
    t.onAccept({ type: "Accept", requestId: id, connId: 3, metadata: [] });
    await p;
    const q = t.connect();
    await turn();
    assert.throws(() => t.onAccept({ type: "Accept", requestId: 2, connId: 3, metadata: [] }), (e) => e instanceof ProtocolViolation && /in use/.test(e.detail));
    t.onAccept({ type: "Accept", requestId: 2, connId: 4, metadata: [] });
    await q;
  });

  test("Accept metadata over the limits is a violation, and the connect() it answered still settles when the link shuts down", async () => {
    const { t } = table();
    const p = t.connect();
    p.catch(() => {});
    await turn();
    assert.throws(() => t.onAccept({ type: "Accept", requestId: 1, connId: 2, metadata: [["k".repeat(300), "v"]] }), (e) => e instanceof ProtocolViolation && e.rule === "call.metadata.limits");
    const closed = new ConnectionClosedError("call.metadata.limits: Accept metadata", "local");
    t.shutdown(closed);
    await assert.rejects(within(p), (e) => e === closed);
  });

  test("a late Accept for a Connect that timed out is closed again, once; the id counts as recently closed", async () => {
    const { t, sent } = table();
    await assert.rejects(within(t.connect({ timeoutMs: 1 })), (e) => e instanceof ConnectionRejectedError && /within 1 ms/.test(e.reason) && e.metadata.length === 0);
    t.onAccept({ type: "Accept", requestId: 1, connId: 6, metadata: [] });
    assert.deepEqual(last(sent), { type: "Goodbye", connId: 6, reason: "message.connect.timeout: Connect was abandoned" });
    assert.equal(t.recentlyClosed(6), true);
    assert.equal(t.get(6), undefined);
    assert.throws(() => t.onAccept({ type: "Accept", requestId: 1, connId: 7, metadata: [] }), (e) => e instanceof ProtocolViolation && e.rule === "message.accept.response");
  });

  test("quiet: no Connect pending either way and nothing in flight on any connection", async () => {
    const state = { pendingCalls: 0, servingCalls: 0, openCount: 0 };
    const torn: RoamError[] = [];
    const { t, close } = table({ root: fakeControl(0, torn, state) });
    assert.equal(t.quiet, true);
    for (const k of ["pendingCalls", "servingCalls", "openCount"] as const) {
      state[k] = 1;
      assert.equal(t.quiet, false, k);
      state[k] = 0;
    }
    const p = t.connect();
    await turn();
    assert.equal(t.quiet, false, "a Connect of ours pending");
    t.onReject({ type: "Reject", requestId: 1, reason: "", metadata: [] });
    await assert.rejects(p);
    assert.equal(t.quiet, true);
    t.incomingConnections();
    t.onConnect(connect(1));
    assert.equal(t.quiet, false, "a Connect of the peer's waiting in the backlog");
    close(new ConnectionClosedError(undefined, "local"));
  });

  test("ids handed out skip live and recently closed ids; the memory of closed ids keeps the 4096 newest", () => {
    const { t } = table({ maxConnections: 10_000 });
    const torn: RoamError[] = [];
    const err = new ConnectionClosedError(undefined, "local");
    // The peer's ids (as if from Accepts): 1..4097 closed in order, 1 closed twice.
    const forget = (id: number) => t.forget(fakeControl(id, torn), err);
    forget(1);
    for (let id = 2; id <= 4096; id++) forget(id);
    forget(1); // refreshed: now the newest
    assert.equal(t.recentlyClosed(1), true);
    assert.equal(t.recentlyClosed(2), true);
    forget(4097);
    assert.equal(t.recentlyClosed(2), false, "the oldest is forgotten");
    assert.equal(t.recentlyClosed(1), true, "re-closing an id refreshes it");
    assert.equal(t.recentlyClosed(3), true);
    t.acceptConnections(() => null);
    t.onConnect(connect(1));
    assert.equal(t.get(2)?.connection.connId, 2, "2 was forgotten, so it may be handed out again");
    t.onConnect(connect(2));
    assert.equal(t.get(4098)?.connection.connId, 4098, "3..4097 are still remembered");
  });
});
