/**
 * session-core cases found while reading the mutants of link.ts and
 * dispatch.ts (issue 19) that core-link/core-calls did not pin: a call made
 * before the handshake, pacing once the link closed while replies back up,
 * and a handler that fails after its call was cancelled.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Writer } from "../src/codec/writer.js";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { openConnection, type ConnectionOwner } from "../src/session/connection.js";
import { CreditMessageFlowControl } from "../src/session/flow.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { Link } from "../src/session/link.js";
import { InboundPacer, MAX_DEFERRED_MESSAGES } from "../src/session/inbound.js";
import { DEFAULT_THRESHOLDS } from "../src/session/pressure.js";
import { serve } from "../src/session/serve.js";
import { channel } from "../src/session/channel/pair.js";
import { Rx } from "../src/session/channel/rx.js";
import type { Message, RequestMessage, ResponseMessage } from "../src/wire/message.js";
import { ScriptTransport } from "./helpers/script-transport.js";

// A frozen clock: the inbound pacer's 10 ms turn budget is never spent by a slow machine.
before(() => {
  performance.now = () => 1000;
});
after(() => {
  delete (performance as { now?: unknown }).now;
});

const Svc = defineService("Extra", {
  echo: method([arg("s", t.string)], t.string),
  late: method([], t.u32),
});

const turn = () => new Promise<void>((r) => setImmediate(r));

describe("link", () => {
  test("a call made before the handshake waits for it (not refused for a max_payload_size of 0) and goes out after Hello", async () => {
    const tr = new ScriptTransport();
    const link = new Link(tr, { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 4096, initialChannelCredit: 1024 }) });
    const p = link.root.call(Svc.methods.echo, ["early"]);
    const ready = link.start();
    tr.hello();
    await ready;
    await turn();
    const req = tr.sentOf("Request")[0]!;
    assert.ok(req, "the Request went out after the handshake");
    assert.equal(tr.sent[0]!.type, "Hello");
    const w = new Writer();
    Svc.methods.echo.encodeOk(w, "early");
    tr.deliver({ type: "Response", connId: 0, requestId: req.requestId, metadata: [], channels: [], payload: w.finish() });
    assert.equal(await p, "early");
  });

  test("a message that closes the link while replies back up does not pause reading", async () => {
    const tr = new ScriptTransport();
    let backlog = 0;
    tr.replyBacklog = () => backlog;
    tr.onReplyDrain = () => {};
    const link = new Link(tr, { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 4096, initialChannelCredit: 1024 }) });
    const ready = link.start();
    tr.hello();
    await ready;
    backlog = 1 << 30; // the Goodbye below leaves the replies backed up
    tr.deliver({ type: "Goodbye", connId: 0, reason: "" });
    assert.equal(link.isClosed, true);
    assert.equal(link.readingPaused, false);
    assert.equal(tr.log.includes("pause"), false);
  });
});

describe("link: what waits for the handshake", () => {
  test("only Credit is flushed at once; other messages are left to the transport's batching", async () => {
    const tr = new ScriptTransport();
    const link = new Link(tr, { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 4096, initialChannelCredit: 1024 }) });
    const ready = link.start();
    tr.hello();
    await ready;
    void link.root.callRaw(1n, new Uint8Array(1)).catch(() => {});
    link.root.rawChannels().sendData(1, new Uint8Array(1));
    assert.deepEqual(tr.log.slice(-2), ["send:Request", "send:Data"]);
    link.close();
  });

  test("connect() made before the handshake starts its timeout only once the handshake completed", async (ctx) => {
    ctx.mock.timers.enable({ apis: ["setTimeout"] });
    const tr = new ScriptTransport();
    const link = new Link(tr, { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 4096, initialChannelCredit: 1024 }) });
    const ready = link.start();
    let settled = "";
    const p = link.connect({ timeoutMs: 100 }).then(
      (c) => (settled = `accepted ${c.connId}`),
      (e: Error) => (settled = `failed ${e.message}`),
    );
    await turn();
    ctx.mock.timers.tick(90);
    tr.hello();
    await ready;
    await turn();
    assert.deepEqual(
      tr.sent.map((m) => m.type),
      ["Hello", "Connect"],
    );
    ctx.mock.timers.tick(50); // 140 ms after connect(), 50 after the handshake
    await turn();
    assert.equal(settled, "");
    tr.deliver({ type: "Accept", requestId: tr.sentOf("Connect")[0]!.requestId, connId: 2, metadata: [] });
    await p;
    assert.equal(settled, "accepted 2");
  });
});

describe("inbound pacer: holding and resuming repeatedly", () => {
  function pacer(backlog: () => number, onHandle: (id: number) => void = () => {}) {
    const handled: number[] = [];
    let drain: (() => void) | null = null;
    let overflow = "";
    const p = new InboundPacer({
      transport: {
        replyBacklog: backlog,
        onReplyDrain: (_b, cb) => {
          drain = cb;
        },
      },
      replyMark: 100,
      handle: (m) => {
        const id = (m as { requestId: number }).requestId;
        handled.push(id);
        onHandle(id);
      },
      isClosed: () => false,
      overflow: (r) => (overflow = r),
    });
    const msg = (requestId: number): Message => ({ type: "Cancel", connId: 0, requestId });
    return { p, handled, msg, drain: () => (drain as unknown as () => void)(), overflow: () => overflow };
  }

  test("the bound counts what is still held: after a partial resume, exactly MAX_DEFERRED_MESSAGES more may wait", async () => {
    let backlog = 1000;
    const t = pacer(
      () => backlog,
      (id) => id === 2 && (backlog = 1000),
    );
    t.p.receive(t.msg(1), 1000); // pauses
    t.p.receive(t.msg(2), 1000);
    t.p.receive(t.msg(3), 1000);
    backlog = 0;
    t.drain();
    await turn();
    assert.deepEqual(t.handled, [1, 2], "paused again after 2; 3 is still held");
    for (let i = 0; i < MAX_DEFERRED_MESSAGES - 1; i++) t.p.receive(t.msg(4), 1000);
    assert.equal(t.overflow(), "", "1 + (MAX - 1) held");
    t.p.receive(t.msg(5), 1000);
    assert.match(t.overflow(), /^flow\.backpressure/);
  });

  test("pausing and resuming twice handles each message once, in order", async () => {
    let backlog = 1000;
    const t = pacer(() => backlog);
    t.p.receive(t.msg(1), 1000);
    t.p.receive(t.msg(2), 1000);
    backlog = 0;
    t.drain();
    await turn();
    assert.deepEqual(t.handled, [1, 2]);
    backlog = 1000;
    t.p.receive(t.msg(3), 1000);
    t.p.receive(t.msg(4), 1000);
    backlog = 0;
    t.drain();
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3, 4]);
    assert.equal(t.p.paused, false);
  });
});

describe("a call that is never sent", () => {
  test("fails every channel handle in its arguments, also one made alone, also after an argument of the wrong type", async () => {
    const Two = defineService("ExtraTwo", { two: method([arg("a", t.rx(t.u32)), arg("b", t.rx(t.u32))], t.unit) });
    const tr = new ScriptTransport();
    const link = new Link(tr, { initiator: true, handshake: new HelloHandshake({ maxPayloadSize: 4096, initialChannelCredit: 1024 }) });
    const ready = link.start();
    tr.hello();
    await ready;
    link.close("done");
    const error = link.root.closeReason!;
    const lone = new Rx<number>();
    const [tx, rx] = channel<number>();
    await assert.rejects(link.root.call(Two.methods.two, [lone, rx]), (e) => e === error);
    await assert.rejects(lone.next(), (e) => e === error);
    await assert.rejects(tx.send(1), (e) => e === error);
    const [tx2, rx2] = channel<number>();
    await assert.rejects(link.root.call(Two.methods.two, [5 as unknown as Rx<number>, rx2]), (e) => e === error);
    await assert.rejects(tx2.send(1), (e) => e === error);
  });
});

describe("typed handlers", () => {
  test("a handler that fails after its call was cancelled is not reported, and nothing more is sent", async () => {
    const sent: Message[] = [];
    const reported: unknown[] = [];
    let fail!: (e: unknown) => void;
    const owner: ConnectionOwner = {
      initiator: false,
      maxPayloadSize: 1024,
      initialCredit: 1024,
      flow: new CreditMessageFlowControl(() => {}),
      thresholds: DEFAULT_THRESHOLDS,
      send: (m) => sent.push(m),
      closeConnection: () => {},
      handlerError: (e) => reported.push(e),
      exposeHandlerErrors: true,
      handshakePending: () => undefined,
      writable: () => undefined,
      maxInFlightCalls: 16,
      maxChannels: 16,
    };
    const dispatcher = serve(Svc, { echo: (s) => s, late: () => new Promise<number>((_r, reject) => (fail = reject)) });
    const c = openConnection(0, owner, dispatcher);
    const req: RequestMessage = { type: "Request", connId: 0, requestId: 1, methodId: Svc.methods.late.id, metadata: [], channels: [], payload: new Uint8Array() };
    c.handle(req);
    c.handle({ type: "Cancel", connId: 0, requestId: 1 });
    assert.equal(sent.length, 1);
    assert.deepEqual([...(sent[0] as ResponseMessage).payload], [1, 3]);
    fail(new Error("too late"));
    await turn();
    assert.deepEqual(reported, []);
    assert.equal(sent.length, 1);
  });
});
