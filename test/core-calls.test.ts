/**
 * One connection and its calls (issue 19, session-core), driven through the
 * owner port a link gives it (no link, no transport): routing and the payload
 * limits, teardown, outgoing calls (ids, handshake wait, cancellation and
 * timeouts, every Response outcome), served calls (limits, Cancel,
 * diversion), typed handler execution (every way a handler can end),
 * `serve`/`client`, the error classes' messages and the reply accounting
 * shared by transports.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Writer } from "../src/codec/writer.js";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { channel } from "../src/session/channel/pair.js";
import { detachedCall, openConnection, type Connection, type ConnectionOwner, type Dispatcher, type IncomingCall } from "../src/session/connection.js";
import {
  CancelledError,
  ChannelClosedError,
  ChannelResetError,
  ConnectionClosedError,
  ConnectionRejectedError,
  EncodeFailedError,
  err,
  InvalidPayloadError,
  ProtocolViolation,
  RemoteHandlerError,
  ResponseDecodeError,
  TimeoutError,
  UnknownMethodError,
  UserError,
  type RoamError,
} from "../src/session/errors.js";
import { CreditMessageFlowControl } from "../src/session/flow.js";
import type { InFlightCall } from "../src/session/outgoing.js";
import { OutgoingCalls } from "../src/session/outgoing.js";
import { DEFAULT_THRESHOLDS } from "../src/session/pressure.js";
import { CallRejectedError } from "../src/session/rejected.js";
import { client, serve, ServiceDispatcher } from "../src/session/serve.js";
import { isReply, ReplyBacklog } from "../src/session/transport.js";
import type { Message, Metadata, RequestMessage, ResponseMessage } from "../src/wire/message.js";
import { ChannelRegistry } from "../src/session/channel/registry.js";
import { recordingSink as recordingSinkBy } from "./helpers/channel-recorder.js";

const turn = () => new Promise<void>((r) => setImmediate(r));
/** Lets timers due within `ms` fire first (timers fire in order of their due time). */
const timersUpTo = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Rejects if `p` is still pending after `ms` (instead of hanging the test). */
function within<T>(p: Promise<T>, ms = 2000): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
    }),
  ]);
}

type Sent = Message;

/** A connection on a fake owner; everything it sends is recorded (payload bytes copied). */
function conn(o: Partial<ConnectionOwner> & { connId?: number; dispatcher?: Dispatcher | null; metadata?: Metadata } = {}) {
  const sent: Sent[] = [];
  const closes: [Connection, string][] = [];
  const handlerErrors: { error: unknown; info: { method: string; connId: number; requestId: number } }[] = [];
  const limits = { maxPayloadSize: 1024, initialCredit: 1 << 16 };
  const record = (m: Message) => sent.push("payload" in m ? ({ ...m, payload: m.payload.slice() } as Message) : m);
  const owner: ConnectionOwner = {
    initiator: true,
    get maxPayloadSize() {
      return limits.maxPayloadSize;
    },
    get initialCredit() {
      return limits.initialCredit;
    },
    flow: new CreditMessageFlowControl((connId, channelId, bytes) => record({ type: "Credit", connId, channelId, bytes })),
    thresholds: DEFAULT_THRESHOLDS,
    send: record,
    closeConnection: (c, reason) => closes.push([c, reason]),
    handlerError: (error, info) => handlerErrors.push({ error, info }),
    exposeHandlerErrors: true,
    handshakePending: () => undefined,
    writable: () => undefined,
    maxInFlightCalls: 1024,
    maxChannels: 4096,
    ...o,
  };
  const control = openConnection(o.connId ?? 0, owner, o.dispatcher ?? null, o.metadata);
  const responses = () => sent.filter((m): m is ResponseMessage => m.type === "Response");
  return { control, c: control.connection, sent, closes, handlerErrors, limits, responses };
}

const req = (requestId: number, methodId: bigint, payload: Uint8Array, extra: Partial<RequestMessage> = {}): RequestMessage => ({
  type: "Request",
  connId: 0,
  requestId,
  methodId,
  metadata: [],
  channels: [],
  payload,
  ...extra,
});
const resp = (requestId: number, payload: Uint8Array, metadata: Metadata = []): ResponseMessage => ({ type: "Response", connId: 0, requestId, metadata, channels: [], payload });
const okPayload = <T>(m: { encodeOk(w: Writer, v: T): void }, v: T) => {
  const w = new Writer();
  m.encodeOk(w, v);
  return w.finish();
};
const CANCELLED = Uint8Array.of(1, 3);
const UNKNOWN = Uint8Array.of(1, 1);
const INVALID = Uint8Array.of(1, 2);
const metaOf = (m: ResponseMessage | undefined, k: string) => m?.metadata.find(([x]) => x === k)?.[1];

/** The shared recording sink, with failures recorded by their class. */
const recordingSink = () => recordingSinkBy((e) => e.constructor.name);

const Svc = defineService("Core", {
  echo: method([arg("s", t.string)], t.string),
  maybe: method([arg("n", t.u32)], t.option(t.u32)),
  small: method([], t.u8),
  blob: method([arg("n", t.u32)], t.bytes),
  divide: method([arg("a", t.u32), arg("b", t.u32)], t.result(t.u32, t.string)),
  feed: method([arg("input", t.rx(t.u32))], t.u32),
  produce: method([arg("output", t.tx(t.u32))], t.unit),
  upload: method([arg("input", t.rx(t.bytes))], t.unit),
});
const M = Svc.methods;
const More = defineService("CoreMore", {
  ping: method([], t.unit),
  pair: method([], t.tuple(t.u32, t.u32)),
  count: method([arg("input", t.rx(t.u32))], t.u32),
  context: method([], t.string),
});
const argsOf = <A extends any[]>(m: { encodeArgs(w: Writer, a: A): void }, a: A) => {
  const w = new Writer();
  m.encodeArgs(w, a);
  return w.finish();
};

describe("Connection", () => {
  test("what it reports comes from its owner and its tables; close() asks the owner, once closed it is a no-op", async () => {
    const x = conn({ connId: 5, metadata: [["who", "me"]] });
    const { c } = x;
    assert.equal(c.connId, 5);
    assert.deepEqual(c.metadata, [["who", "me"]]);
    assert.equal(c.maxPayloadSize, 1024);
    assert.equal(c.initialCredit, 1 << 16);
    x.limits.maxPayloadSize = 77;
    x.limits.initialCredit = 33;
    assert.equal(c.maxPayloadSize, 77);
    assert.equal(c.initialCredit, 33);
    assert.equal(c.isClosed, false);
    assert.equal(c.closeReason, undefined);
    void c.callRaw(1n, new Uint8Array()).catch(() => {});
    assert.equal(c.pendingCalls, 1);
    const held: IncomingCall[] = [];
    c.setDispatcher({ dispatch: (call) => held.push(call) });
    x.control.handle(req(1, 1n, new Uint8Array()));
    assert.equal(c.servingCalls, 1);
    assert.equal(held.length, 1);
    c.close("why");
    c.close();
    assert.deepEqual(
      x.closes.map(([cc, r]) => [cc === c, r]),
      [
        [true, "why"],
        [true, ""],
      ],
    );
    const e = new ConnectionClosedError("gone", "local");
    x.control.teardown(e);
    assert.equal(c.isClosed, true);
    assert.equal(c.closeReason, e);
    c.close("after");
    assert.equal(x.closes.length, 2);
    let seen: RoamError | null = null;
    c.onClose((err) => (seen = err));
    assert.equal(seen, e);
  });

  test("payload limits: a Request or Response payload of max_payload_size is fine, one byte more is message.hello.enforcement on the link", async () => {
    const x = conn({ connId: 4, dispatcher: serve(Svc, { ...impl(), blob: () => new Uint8Array() }) });
    x.limits.maxPayloadSize = 8;
    x.control.handle(req(1, 999n, new Uint8Array(8)));
    assert.equal(x.responses().length, 1, "answered (unknown method)");
    assert.throws(
      () => x.control.handle(req(2, 999n, new Uint8Array(9))),
      (e) => e instanceof ProtocolViolation && e.rule === "message.hello.enforcement" && e.connId === 0 && /flow\.call\.payload-limit/.test(e.reason),
    );
    const p = x.c.callRaw(1n, new Uint8Array());
    const id = (x.sent.at(-1) as RequestMessage).requestId;
    assert.throws(() => x.control.handle(resp(id, new Uint8Array(9))), (e) => e instanceof ProtocolViolation && e.rule === "message.hello.enforcement" && e.connId === 0);
    x.control.handle(resp(id, new Uint8Array(8)));
    assert.equal((await p).payload.length, 8);
  });

  test("channel messages go to the channel registry, Cancel to the served call; a link-level message is message.conn-id", () => {
    const held: IncomingCall[] = [];
    const x = conn({ connId: 3, dispatcher: { dispatch: (call) => held.push(call) } });
    const raw = x.c.rawChannels();
    assert.equal(x.c.rawChannels(), raw, "one raw port per connection");
    const sink = recordingSink();
    raw.notePeerId(2);
    raw.claim(2, sink);
    x.control.handle({ type: "Data", connId: 3, channelId: 2, payload: new Uint8Array(3) });
    x.control.handle({ type: "Credit", connId: 3, channelId: 2, bytes: 10 });
    x.control.handle({ type: "Close", connId: 3, channelId: 2 });
    x.control.handle({ type: "Reset", connId: 3, channelId: 2 });
    assert.deepEqual(sink.seen, ["data:3", "credit:10", "close", "reset"]);
    x.control.handle(req(7, 1n, new Uint8Array()));
    const signal = held[0]!.signal;
    x.control.handle({ type: "Cancel", connId: 3, requestId: 7 });
    assert.equal(signal.aborted, true);
    assert.ok(signal.reason instanceof CancelledError);
    assert.equal(signal.reason.method, "request 7");
    assert.equal(signal.reason.by, "remote");
    x.control.handle({ type: "Cancel", connId: 3, requestId: 8 }); // not in flight: advisory
    assert.throws(
      () => x.control.handle({ type: "Connect", requestId: 1, metadata: [] }),
      (e) => e instanceof ProtocolViolation && e.rule === "message.conn-id" && e.connId === 3,
    );
  });

  test("teardown fails everything once: calls both ways, channels, the dispatcher's hook, listeners (failures of either ignored)", async () => {
    const held: IncomingCall[] = [];
    const closedSeen: [Connection, RoamError][] = [];
    const x = conn({
      dispatcher: {
        dispatch: (call) => held.push(call),
        connectionClosed: (c, e) => {
          closedSeen.push([c, e]);
          throw new Error("hook bug");
        },
      },
    });
    const out = x.c.callRaw(1n, new Uint8Array());
    x.control.handle(req(1, 1n, new Uint8Array()));
    const raw = x.c.rawChannels();
    const sink = recordingSink();
    const id = raw.allocate();
    raw.claim(id, sink);
    const heard: RoamError[] = [];
    x.c.onClose(() => {
      throw new Error("listener bug");
    });
    x.c.onClose((e) => heard.push(e));
    const error = new ConnectionClosedError("lost", "transport");
    const before = x.sent.length;
    x.control.teardown(error);
    x.control.teardown(new ConnectionClosedError("again", "local"));
    await assert.rejects(out, (e) => e === error);
    assert.equal(held[0]!.signal.aborted, true);
    assert.equal(held[0]!.signal.reason, error);
    assert.deepEqual(sink.seen, ["fail:ConnectionClosedError"]);
    assert.deepEqual(closedSeen, [[x.c, error]]);
    assert.deepEqual(heard, [error]);
    assert.equal(x.c.servingCalls, 0);
    assert.equal(x.c.pendingCalls, 0);
    held[0]!.respond(new Uint8Array([0]));
    raw.sendData(id, new Uint8Array(1));
    raw.sendClose(id);
    raw.sendReset(id);
    assert.equal(x.sent.length, before, "nothing is sent once closed");
    await assert.rejects(x.c.callRaw(2n, new Uint8Array()), (e) => e === error);
  });

  test("channel messages carry the connection id; a large bytes element goes out as head + the caller's array", async () => {
    const x = conn({ connId: 6 });
    const raw = x.c.rawChannels();
    raw.sendData(5, Uint8Array.of(1));
    raw.sendClose(5);
    raw.sendReset(5);
    assert.deepEqual(x.sent, [
      { type: "Data", connId: 6, channelId: 5, payload: Uint8Array.of(1) },
      { type: "Close", connId: 6, channelId: 5 },
      { type: "Reset", connId: 6, channelId: 5 },
    ]);
    x.limits.maxPayloadSize = 1 << 20;
    const [tx, rx] = channel<Uint8Array>();
    void x.c.call(M.upload, [rx]).catch(() => {});
    const big = new Uint8Array(5000).fill(7);
    await within(tx.send(big));
    const data = x.sent.filter((m) => m.type === "Data").at(-1) as Message & { payload: Uint8Array; payloadHead?: Uint8Array };
    assert.ok(data.payloadHead instanceof Uint8Array);
    assert.equal(data.payload.length, 5000);
  });

  test("a channel send waits for the transport to become writable", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const x = conn({ writable: () => gate });
    const [tx, rx] = channel<number>();
    void x.c.call(M.feed, [rx]).catch(() => {});
    let sent = false;
    const s = tx.send(1).then(() => (sent = true));
    await timersUpTo(5);
    assert.equal(sent, false);
    release();
    await within(s);
  });

  test("inFlight lists both directions, naming methods the dispatcher knows and hex ids otherwise", () => {
    const held: IncomingCall[] = [];
    const d = new ServiceDispatcher().add(Svc, impl());
    const x = conn({ dispatcher: { dispatch: (call) => held.push(call), describe: (id) => d.describe(id) } });
    void x.c.call(M.echo, ["a"]).catch(() => {});
    void x.c.callRaw(0xabn, new Uint8Array()).catch(() => {});
    x.control.handle(req(1, M.echo.id, argsOf(M.echo, ["x"])));
    x.control.handle(req(2, 0xffn, new Uint8Array()));
    const list = x.control.inFlight();
    assert.deepEqual(
      list.map((c: InFlightCall) => [c.direction, c.requestId, c.name]),
      [
        ["outgoing", 1, "Core.echo"],
        ["outgoing", 2, "method 0x00000000000000ab"],
        ["incoming", 1, "Core.echo"],
        ["incoming", 2, "method 0x00000000000000ff"],
      ],
    );
    assert.ok(list.every((c) => typeof c.started === "number"));
    const y = conn();
    y.control.handle(req(3, 0x1n, new Uint8Array()));
    assert.deepEqual(y.control.inFlight(), [], "a null dispatcher answers at once");
  });

  test("a detached call runs a typed handler and hands the Response to its callback", async () => {
    const x = conn();
    const got: [Uint8Array, Metadata, number[]][] = [];
    const call = detachedCall(x.c, req(9, M.echo.id, argsOf(M.echo, ["hi"])), (p, md, ch) => got.push([p.slice(), md, ch]));
    assert.equal(call.isCancelled, false);
    new ServiceDispatcher().add(Svc, impl()).dispatch(call);
    await turn();
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]![0], okPayload(M.echo, "hi"));
    assert.equal(x.sent.length, 0);
    const slow = detachedCall(x.c, req(10, 1n, new Uint8Array()), () => {});
    slow.cancel("why");
    assert.equal(slow.isCancelled, true);
    assert.equal(slow.signal.reason, "why");
  });
});

function impl() {
  return {
    echo: (s: string) => s,
    maybe: (n: number) => (n === 0 ? null : n),
    small: () => 1,
    blob: (n: number) => new Uint8Array(n),
    divide: (a: number, b: number) => (b === 0 ? err("division by zero") : Math.floor(a / b)),
    feed: async (input: AsyncIterable<number>) => {
      let s = 0;
      for await (const v of input) s += v;
      return s;
    },
    produce: async (output: { send(v: number): Promise<void> }) => {
      await output.send(1);
      await output.send(2);
    },
    upload: async () => {},
  };
}

describe("outgoing calls", () => {
  test("request ids count up from 1; the Request carries the method, metadata and payload", () => {
    const x = conn({ connId: 2 });
    void x.c.call(M.echo, ["a"], { metadata: [["k", "v"]] });
    void x.c.call(M.echo, ["b"]);
    void x.c.callRaw(0x5n, Uint8Array.of(9), { channels: [11] });
    assert.deepEqual(x.sent, [
      { type: "Request", connId: 2, requestId: 1, methodId: M.echo.id, metadata: [["k", "v"]], channels: [], payload: argsOf(M.echo, ["a"]) },
      { type: "Request", connId: 2, requestId: 2, methodId: M.echo.id, metadata: [], channels: [], payload: argsOf(M.echo, ["b"]) },
      { type: "Request", connId: 2, requestId: 3, methodId: 0x5n, metadata: [], channels: [11], payload: Uint8Array.of(9) },
    ]);
  });

  test("a call with channels lists their ids in Request.channels, numbered by our parity", () => {
    const x = conn({ initiator: true });
    const [, rx] = channel<number>();
    void x.c.call(M.feed, [rx]);
    const [tx] = channel<number>();
    void x.c.call(M.produce, [tx]);
    assert.deepEqual(
      x.sent.map((m) => (m as RequestMessage).channels),
      [[1], [3]],
    );
  });

  test("a call on a closed connection rejects unsent, and the channel handles in its arguments fail with it", async () => {
    const x = conn();
    const error = new ConnectionClosedError("closed", "local");
    x.control.teardown(error);
    const [tx, rx] = channel<number>();
    await assert.rejects(x.c.call(M.feed, [rx]), (e) => e === error);
    await assert.rejects(within(tx.send(1)), (e) => e === error);
    const [tx2, rx2] = channel<number>();
    await assert.rejects(x.c.call(M.produce, [tx2]), (e) => e === error);
    await assert.rejects(within(rx2.next()), (e) => e === error);
    assert.equal(x.sent.length, 0);
  });

  test("calls made before the handshake wait for it; a failed handshake rejects them with a ConnectionClosedError", async () => {
    let done!: () => void;
    let pending: Promise<void> | undefined = new Promise<void>((r) => (done = r));
    const x = conn({ handshakePending: () => pending });
    const p = x.c.call(M.echo, ["a"]);
    const r = x.c.callRaw(1n, new Uint8Array());
    assert.equal(x.sent.length, 0);
    pending.then(() => (pending = undefined));
    done();
    await turn();
    assert.equal(x.sent.length, 2);
    x.control.handle(resp(1, okPayload(M.echo, "a")));
    x.control.handle(resp(2, Uint8Array.of(0)));
    assert.equal(await p, "a");
    await r;

    const closed = new ConnectionClosedError("no hello", "local");
    const y = conn({ handshakePending: () => Promise.reject(closed) });
    await assert.rejects(y.c.call(M.echo, ["a"]), (e) => e === closed);
    const z = conn({ handshakePending: () => Promise.reject("weird") });
    await assert.rejects(z.c.call(M.echo, ["a"]), (e) => e instanceof ConnectionClosedError && e.reason === "weird" && e.cause === "weird" && e.by === "local");
  });

  test("an already aborted signal rejects at once with CancelledError (local, with the reason); nothing is sent", async () => {
    const x = conn();
    const ac = new AbortController();
    ac.abort("stop");
    await assert.rejects(x.c.call(M.echo, ["a"], { signal: ac.signal }), (e) => e instanceof CancelledError && e.by === "local" && e.cause === "stop" && e.method === "Core.echo");
    await assert.rejects(x.c.callRaw(0x10n, new Uint8Array(), { signal: ac.signal }), (e) => e instanceof CancelledError && e.method === "method 0x0000000000000010" && e.cause === "stop");
    assert.equal(x.sent.length, 0);
  });

  test("request metadata over the limits is refused unsent", async () => {
    const x = conn();
    const big: Metadata = [["k".repeat(300), "v"]];
    await assert.rejects(x.c.call(M.echo, ["a"], { metadata: big }), (e) => e instanceof EncodeFailedError && /call\.metadata\.limits/.test(e.detail) && /Core\.echo/.test(e.what));
    await assert.rejects(x.c.callRaw(1n, new Uint8Array(), { metadata: big }), (e) => e instanceof EncodeFailedError && /call\.metadata\.limits/.test(e.detail));
    assert.equal(x.sent.length, 0);
  });

  test("arguments that do not encode, or exceed max_payload_size, are refused unsent and end the call's channels", async () => {
    const x = conn();
    await assert.rejects(
      x.c.call(M.echo, [42 as unknown as string]),
      (e) => e instanceof EncodeFailedError && e.what === "the arguments of Core.echo" && e.cause instanceof Error && e.detail === e.cause.message,
    );
    x.limits.maxPayloadSize = 3;
    // "abc" encodes as 4 bytes (length + 3).
    await assert.rejects(x.c.call(M.echo, ["abc"]), (e) => e instanceof EncodeFailedError && /4 bytes exceeds the negotiated max_payload_size 3/.test(e.detail));
    await assert.rejects(x.c.callRaw(1n, new Uint8Array(4)), (e) => e instanceof EncodeFailedError && /4 bytes exceeds the negotiated max_payload_size 3/.test(e.detail));
    assert.equal(x.sent.length, 0);
    x.limits.maxPayloadSize = 4;
    void x.c.call(M.echo, ["abc"]);
    void x.c.callRaw(1n, new Uint8Array(4));
    assert.equal(x.sent.length, 2, "exactly max_payload_size is sent");

    // The channels of a call that is not sent end with it.
    const y = conn();
    y.limits.maxPayloadSize = 0;
    const [tx2, rx2] = channel<number>();
    await assert.rejects(y.c.call(M.feed, [rx2]), EncodeFailedError);
    await assert.rejects(within(tx2.send(1)), EncodeFailedError);
    const z = conn();
    const Two = defineService("Two", { two: method([arg("a", t.rx(t.u32)), arg("b", t.string)], t.unit) });
    const [tx4, rx4] = channel<number>();
    await assert.rejects(z.c.call(Two.methods.two, [rx4, 5 as unknown as string]), EncodeFailedError);
    await assert.rejects(within(tx4.send(1)), (e) => e instanceof ConnectionClosedError && e.reason === "call not sent");
    assert.equal(z.sent.length, 0);
  });

  test("onResponseMetadata sees the Response metadata before the call settles", async () => {
    const x = conn();
    const seen: Metadata[] = [];
    const p = x.c.call(M.echo, ["a"], { onResponseMetadata: (md) => seen.push(md) });
    x.control.handle(resp(1, okPayload(M.echo, "a"), [["srv", "1"]]));
    assert.deepEqual(seen, [[["srv", "1"]]]);
    assert.equal(await p, "a");
  });

  test("Response metadata over the limits is call.metadata.limits on the connection", () => {
    const x = conn({ connId: 8 });
    void x.c.callRaw(1n, new Uint8Array()).catch(() => {});
    assert.throws(() => x.control.handle(resp(1, Uint8Array.of(0), [["k".repeat(300), "v"]])), (e) => e instanceof ProtocolViolation && e.rule === "call.metadata.limits" && e.connId === 8);
  });

  test("every Response outcome becomes the matching error", async () => {
    const x = conn();
    const outcome = async (payload: Uint8Array, metadata: Metadata = [], m: typeof M.echo | typeof M.divide = M.echo) => {
      const p = x.c.call(m as typeof M.echo, (m === M.echo ? ["a"] : [1, 0]) as [string]);
      const id = (x.sent.at(-1) as RequestMessage).requestId;
      x.control.handle(resp(id, payload, metadata));
      return p.then(
        () => assert.fail("expected a failure"),
        (e: unknown) => e,
      );
    };
    const user = (await outcome(Uint8Array.of(1, 0, 4, 0x6e, 0x6f, 0x70, 0x65), [], M.divide)) as UserError;
    assert.ok(user instanceof UserError);
    assert.equal(user.error, "nope");
    assert.ok((await outcome(UNKNOWN)) instanceof UnknownMethodError);
    const inv = await outcome(INVALID);
    assert.ok(inv instanceof InvalidPayloadError);
    assert.equal((inv as InvalidPayloadError).method, "Core.echo");
    const plain = await outcome(CANCELLED);
    assert.ok(plain instanceof CancelledError);
    assert.equal((plain as CancelledError).by, "remote");
    const remote = await outcome(CANCELLED, [["roam-error", "Error: boom"]]);
    assert.ok(remote instanceof RemoteHandlerError);
    assert.equal((remote as RemoteHandlerError).remoteMessage, "Error: boom");
    const rejected = await outcome(CANCELLED, [
      ["roam-error", "no token"],
      ["roam-rejected", "unauthenticated"],
    ]);
    assert.ok(rejected instanceof CallRejectedError);
    assert.equal((rejected as CallRejectedError).reason, "unauthenticated");
    assert.equal((rejected as CallRejectedError).detail, "no token");
    assert.equal((rejected as CallRejectedError).method, "Core.echo");
    assert.ok((await outcome(CANCELLED, [["roam-rejected", "unauthenticated"]])) instanceof CancelledError, "a rejection without its detail");
    assert.ok(
      (await outcome(CANCELLED, [
        ["roam-error", "detail"],
        ["roam-rejected", Uint8Array.of(1)],
      ])) instanceof RemoteHandlerError,
    );
    const bytesError = await outcome(CANCELLED, [["roam-error", Uint8Array.of(1)]]);
    assert.ok(bytesError instanceof CancelledError);
    const bytesDetail = await outcome(CANCELLED, [
      ["roam-error", Uint8Array.of(1)],
      ["roam-rejected", "denied"],
    ]);
    assert.ok(bytesDetail instanceof CancelledError && !(bytesDetail instanceof CallRejectedError));
    const bad = await outcome(Uint8Array.of(7));
    assert.ok(bad instanceof ResponseDecodeError);
    assert.equal((bad as ResponseDecodeError).method, "Core.echo");
  });

  test("a failed call fails the channels it opened; a successful one ends its receive ends", async () => {
    const x = conn();
    const [tx, rx] = channel<number>();
    const p = x.c.call(M.feed, [rx]);
    x.control.handle(resp(1, CANCELLED, [["roam-error", "Error: no"]]));
    await assert.rejects(p, RemoteHandlerError);
    await assert.rejects(within(tx.send(1)), RemoteHandlerError);
    const [tx2, rx2] = channel<number>();
    const q = x.c.call(M.produce, [tx2]);
    x.control.handle(resp(2, Uint8Array.of(0)));
    await q;
    assert.deepEqual(await within(rx2.next()), { value: undefined, done: true });
    const [tx3, rx3] = channel<number>();
    const r = x.c.call(M.feed, [rx3]);
    x.control.handle(resp(3, Uint8Array.of(9)));
    await assert.rejects(r, ResponseDecodeError);
    await assert.rejects(within(tx3.send(1)), ResponseDecodeError);
  });

  test("a timeout rejects with TimeoutError and sends Cancel; the late Response is ignored", async () => {
    const x = conn();
    const p = x.c.call(M.echo, ["a"], { timeout: 1 });
    await assert.rejects(within(p), (e) => e instanceof TimeoutError && e.timeoutMs === 1 && e.method === "Core.echo");
    assert.deepEqual(x.sent.at(-1), { type: "Cancel", connId: 0, requestId: 1 });
    assert.equal(x.c.pendingCalls, 0);
    x.control.handle(resp(1, okPayload(M.echo, "late")));
    const r = x.c.callRaw(3n, new Uint8Array(), { timeout: 1 });
    await assert.rejects(within(r), (e) => e instanceof TimeoutError && e.method === "method 0x0000000000000003");
  });

  test("long and infinite timeouts do not fire early; a call answered in time sends no Cancel later", async () => {
    const x = conn();
    const a = x.c.call(M.echo, ["a"], { timeout: 60_000 });
    const b = x.c.call(M.echo, ["b"], { timeout: Infinity });
    const c = x.c.callRaw(1n, new Uint8Array(), { timeout: 60_000 });
    await timersUpTo(5); // a timer armed for 0 or 1 ms would have fired by now
    for (const id of [1, 2]) x.control.handle(resp(id, okPayload(M.echo, "ok")));
    x.control.handle(resp(3, Uint8Array.of(0)));
    assert.deepEqual(await Promise.all([a, b]), ["ok", "ok"]);
    await c;
    // Answered before their 2 ms timeout: the timers are cleared with the call.
    const d = x.c.call(M.echo, ["d"], { timeout: 2 });
    const e = x.c.callRaw(1n, new Uint8Array(), { timeout: 2 });
    x.control.handle(resp(4, okPayload(M.echo, "ok")));
    x.control.handle(resp(5, Uint8Array.of(0)));
    await timersUpTo(20);
    assert.equal(await d, "ok");
    await e;
    assert.equal(x.sent.filter((m) => m.type === "Cancel").length, 0);
  });

  test("aborting sends Cancel at once; aborting after the Response sends nothing", async () => {
    const x = conn();
    const ac = new AbortController();
    const p = x.c.call(M.echo, ["a"], { signal: ac.signal });
    const ac2 = new AbortController();
    const q = x.c.callRaw(1n, new Uint8Array(), { signal: ac2.signal });
    ac.abort("user");
    await assert.rejects(p, (e) => e instanceof CancelledError && e.by === "local" && e.cause === "user");
    assert.deepEqual(x.sent.at(-1), { type: "Cancel", connId: 0, requestId: 1 });
    x.control.handle(resp(2, Uint8Array.of(0)));
    await q;
    const n = x.sent.length;
    ac2.abort();
    assert.equal(x.sent.length, n);
    assert.equal(x.c.pendingCalls, 0);
  });

  test("an abandoned call sends no Cancel once its connection reports closed", async () => {
    let closed: RoamError | null = null;
    const sent: Message[] = [];
    const reg = new ChannelRegistry({ connId: 0, maxPayloadSize: 64 }, true);
    const calls = new OutgoingCalls({
      connId: 0,
      host: { maxPayloadSize: 64 } as never,
      registry: reg,
      send: (m) => sent.push(m),
      closedError: () => closed,
      handshakePending: () => undefined,
    });
    const ac = new AbortController();
    const p = calls.callRaw(1n, new Uint8Array(), { signal: ac.signal });
    closed = new ConnectionClosedError(undefined, "local");
    ac.abort();
    await assert.rejects(p, CancelledError);
    assert.deepEqual(
      sent.map((m) => m.type),
      ["Request"],
    );
  });
});

describe("served calls", () => {
  test("a duplicate request id in flight is call.request-id.duplicate-detection; request metadata over the limits is call.metadata.limits", () => {
    const x = conn({ connId: 2, dispatcher: { dispatch: () => {} } });
    x.control.handle(req(1, 1n, new Uint8Array()));
    assert.throws(() => x.control.handle(req(1, 1n, new Uint8Array())), (e) => e instanceof ProtocolViolation && e.rule === "call.request-id.duplicate-detection" && e.connId === 2);
    assert.throws(() => x.control.handle(req(2, 1n, new Uint8Array(), { metadata: [["k".repeat(300), "v"]] })), (e) => e instanceof ProtocolViolation && e.rule === "call.metadata.limits" && e.connId === 2);
  });

  test("no dispatcher: UnknownMethod; a served call answers once, and after that its id may be used again", () => {
    const x = conn();
    x.control.handle(req(1, 1n, new Uint8Array()));
    assert.deepEqual(x.responses(), [resp(1, UNKNOWN)]);
    const held: IncomingCall[] = [];
    x.c.setDispatcher({ dispatch: (c) => held.push(c) });
    x.control.handle(req(2, 1n, new Uint8Array()));
    held[0]!.respond(Uint8Array.of(0), [["a", "b"]], [4]);
    held[0]!.respond(Uint8Array.of(1));
    assert.deepEqual(x.responses().at(-1), { type: "Response", connId: 0, requestId: 2, metadata: [["a", "b"]], channels: [4], payload: Uint8Array.of(0) });
    assert.equal(x.responses().length, 2);
    x.control.handle(req(2, 1n, new Uint8Array()));
    assert.equal(held.length, 2);
  });

  test("maxInFlightCalls: exactly that many are served; the next is answered Cancelled with the reason", () => {
    const x = conn({ connId: 1, maxInFlightCalls: 2, dispatcher: { dispatch: () => {} } });
    x.control.handle(req(1, 1n, new Uint8Array()));
    x.control.handle(req(2, 1n, new Uint8Array()));
    assert.equal(x.responses().length, 0);
    x.control.handle(req(3, 1n, new Uint8Array()));
    assert.deepEqual(x.responses(), [
      { type: "Response", connId: 1, requestId: 3, metadata: [["roam-error", x.responses()[0]!.metadata[0]![1]]], channels: [], payload: CANCELLED },
    ]);
    assert.match(String(metaOf(x.responses()[0], "roam-error")), /^call\.limits: 2 calls are already in flight/);
    assert.equal(x.c.servingCalls, 2);
  });

  test("maxChannels: a Request that would open more is refused and its channels burned; one that fits, or opens none, is served", () => {
    const held: IncomingCall[] = [];
    const x = conn({ initiator: true, maxChannels: 3, dispatcher: { dispatch: (c) => held.push(c) } });
    const raw = x.c.rawChannels();
    raw.claim(raw.allocate(), recordingSink()); // 1 open
    x.control.handle(req(1, 1n, new Uint8Array(), { channels: [2, 4, 6] }));
    assert.equal(held.length, 0);
    const r = x.responses()[0]!;
    assert.equal(r.requestId, 1);
    assert.match(String(metaOf(r, "roam-error")), /^call\.limits: 1 channels are open on this connection and the call opens 3 more \(maxChannels 3\)/);
    x.control.handle({ type: "Data", connId: 0, channelId: 4, payload: new Uint8Array(1) }); // late Data on a burned channel: ignored
    x.control.handle(req(2, 1n, new Uint8Array(), { channels: [8, 10] }));
    assert.equal(held.length, 1, "1 + 2 = 3 channels fit");
    for (let i = 0; i < 3; i++) raw.claim(raw.allocate(), recordingSink()); // 4 open, over the limit: a call with no channels is still served
    x.control.handle(req(3, 1n, new Uint8Array()));
    assert.equal(held.length, 2);
  });

  test("a refused call after the connection closed sends nothing", () => {
    const x = conn({ maxInFlightCalls: 0 });
    x.control.teardown(new ConnectionClosedError(undefined, "local"));
    x.control.handle(req(1, 1n, new Uint8Array()));
    assert.equal(x.sent.length, 0);
  });

  test("the signal: created on demand, aborted on Cancel whether asked for before or after", () => {
    const held: IncomingCall[] = [];
    const x = conn({ dispatcher: { dispatch: (c) => held.push(c) } });
    x.control.handle(req(1, 1n, new Uint8Array()));
    x.control.handle(req(2, 1n, new Uint8Array()));
    const early = held[0]!.signal;
    assert.equal(early.aborted, false);
    assert.equal(held[0]!.signal, early, "one signal per call");
    x.control.handle({ type: "Cancel", connId: 0, requestId: 1 });
    x.control.handle({ type: "Cancel", connId: 0, requestId: 2 });
    assert.equal(early.aborted, true);
    const late = held[1]!.signal;
    assert.equal(late.aborted, true);
    assert.ok(late.reason instanceof CancelledError);
  });

  test("a call cancelled twice (Cancel, then the connection lost) keeps the first reason", () => {
    const held: IncomingCall[] = [];
    const x = conn({ dispatcher: { dispatch: (c) => held.push(c) } });
    x.control.handle(req(1, 1n, new Uint8Array()));
    x.control.handle({ type: "Cancel", connId: 0, requestId: 1 });
    x.control.teardown(new ConnectionClosedError("gone", "transport"));
    assert.ok(held[0]!.signal.reason instanceof CancelledError);
  });

  test("inFlight names calls by hex id when the dispatcher cannot describe them, or is gone", () => {
    const x = conn({ dispatcher: { dispatch: () => {} } });
    x.control.handle(req(1, 0x2an, new Uint8Array()));
    assert.deepEqual(
      x.control.inFlight().map((c) => c.name),
      ["method 0x000000000000002a"],
    );
    x.c.setDispatcher(null);
    assert.deepEqual(
      x.control.inFlight().map((c) => c.name),
      ["method 0x000000000000002a"],
    );
  });

  test("divert: the next respond goes to the capture (a copy), then to the wire again", () => {
    const held: IncomingCall[] = [];
    const x = conn({ dispatcher: { dispatch: (c) => held.push(c) } });
    x.control.handle(req(1, 1n, new Uint8Array()));
    const call = held[0]!;
    const got: [Uint8Array, Metadata, number[]][] = [];
    const cap = (p: Uint8Array, md: Metadata, ch: number[]) => got.push([p, md, ch]);
    assert.equal(call.divert!(cap), null);
    assert.equal(call.divert!(cap), cap);
    const buf = Uint8Array.of(0, 5);
    call.respond(buf, [["m", "1"]], [3]);
    buf[1] = 9;
    assert.deepEqual(got, [[Uint8Array.of(0, 5), [["m", "1"]], [3]]]);
    assert.equal(x.responses().length, 0);
    call.respond(Uint8Array.of(0));
    assert.deepEqual(x.responses(), [resp(1, Uint8Array.of(0))]);
  });
});

describe("typed handlers", () => {
  function served(o: Parameters<typeof conn>[0] = {}, implOverride: Record<string, unknown> = {}) {
    return conn({ dispatcher: serve(Svc, { ...impl(), ...implOverride } as ReturnType<typeof impl>), ...o });
  }
  /** A Request whose only argument is a channel: the payload is its id. */
  const x_stream = (x: ReturnType<typeof conn>, id: number, methodId: bigint, channelId: number) => x.control.handle(req(id, methodId, Uint8Array.of(channelId), { channels: [channelId] }));
  const call = (x: ReturnType<typeof conn>, id: number, m: { id: bigint; encodeArgs(w: Writer, a: any): void }, a: unknown[], extra: Partial<RequestMessage> = {}) =>
    x.control.handle(req(id, m.id, argsOf(m, a), extra));

  test("sync and async results, null results, and thenables are answered Ok", async () => {
    const x = served({}, {
      echo: (s: string) => ({ then: (ok: (v: string) => void) => ok(`then:${s}`) }) as unknown as string,
      maybe: (n: number) => (n === 0 ? null : n),
    });
    call(x, 1, M.echo, ["a"]);
    call(x, 2, M.maybe, [0]);
    call(x, 3, M.maybe, [5]);
    await turn();
    assert.deepEqual(
      x.responses().map((r) => [r.requestId, [...r.payload]]),
      [
        [1, [...okPayload(M.echo, "then:a")]],
        [2, [...okPayload(M.maybe, null)]],
        [3, [...okPayload(M.maybe, 5)]],
      ],
    );
  });

  test("undecodable arguments: InvalidPayload; Request channels the arguments do not use: call.request.channels", () => {
    const x = served({ connId: 0 });
    x.control.handle(req(1, M.echo.id, Uint8Array.of(5, 1)));
    assert.deepEqual(x.responses(), [resp(1, INVALID)]);
    assert.throws(() => call(x, 2, M.echo, ["a"], { channels: [2] }), (e) => e instanceof ProtocolViolation && e.rule === "call.request.channels");
  });

  test("a user error is encoded for fallible methods; from an infallible one it is a handler bug", async () => {
    const x = served({}, { echo: () => err("oops") as unknown as string });
    call(x, 1, M.divide, [1, 0]);
    call(x, 2, M.echo, ["a"]);
    await turn();
    const [r1, r2] = x.responses();
    assert.deepEqual([...r1!.payload], [1, 0, 16, ...new TextEncoder().encode("division by zero")]);
    assert.deepEqual([...r2!.payload], [...CANCELLED]);
    assert.match(String(metaOf(r2, "roam-error")), /^TypeError: Core\.echo is infallible but its handler produced a UserError/);
    assert.equal(x.handlerErrors.length, 1);
    assert.deepEqual(x.handlerErrors[0]!.info, { method: "Core.echo", connId: 0, requestId: 2 });
  });

  test("thrown errors: reported, answered Cancelled with name and message (or 'internal error' when not exposed), cut to 1024 bytes", async () => {
    const thrown: unknown[] = [new RangeError("bad range"), "plain string", null, new Error("x".repeat(2000))];
    let i = 0;
    const x = served({}, {
      echo: () => {
        throw thrown[i++];
      },
      small: async () => {
        throw new Error("async failure");
      },
    });
    for (let id = 1; id <= 4; id++) assert.doesNotThrow(() => call(x, id, M.echo, ["a"]));
    call(x, 5, M.small, []);
    await turn();
    const msgs = x.responses().map((r) => metaOf(r, "roam-error"));
    assert.deepEqual(msgs.slice(0, 3), ["RangeError: bad range", "Error: plain string", "Error: null"]);
    assert.equal((msgs[3] as string).length, 1024);
    assert.equal(msgs[4], "Error: async failure");
    assert.equal(x.handlerErrors.length, 5);
    const hidden = served({ exposeHandlerErrors: false }, {
      echo: () => {
        throw new Error("secret");
      },
    });
    call(hidden, 1, M.echo, ["a"]);
    assert.equal(metaOf(hidden.responses()[0], "roam-error"), "internal error");
  });

  test("a result that does not fit the schema is reported and explained", () => {
    const x = served({}, { small: () => 300 });
    call(x, 1, M.small, []);
    const r = x.responses()[0]!;
    assert.deepEqual([...r.payload], [...CANCELLED]);
    assert.match(String(metaOf(r, "roam-error")), /^the handler's result does not fit the schema: /);
    assert.equal(x.handlerErrors.length, 1);
  });

  test("a rejection (CallRejectedError) travels as Cancelled with detail and code, cut to 1024 and 128, and is not reported", () => {
    const x = served({}, {
      echo: () => {
        throw new CallRejectedError("r".repeat(200), "d".repeat(2000));
      },
    });
    call(x, 1, M.echo, ["a"]);
    const r = x.responses()[0]!;
    assert.deepEqual([...r.payload], [...CANCELLED]);
    assert.equal(metaOf(r, "roam-error"), "d".repeat(1024));
    assert.equal(metaOf(r, "roam-rejected"), "r".repeat(128));
    assert.equal(x.handlerErrors.length, 0);
  });

  test("response metadata: kept on success and before the error entries; over the limits it is dropped and reported", async () => {
    const x = served({}, {
      echo: (s: string, ctx?: { responseMetadata: [string, string][] }) => {
        ctx!.responseMetadata.push(["srv", s]);
        if (s === "fail") throw new Error("f");
        if (s === "reject") throw new CallRejectedError("denied", "no");
        if (s === "big") ctx!.responseMetadata.push(["k".repeat(300), "v"]);
        return s;
      },
    } as never);
    call(x, 1, M.echo, ["ok"]);
    call(x, 2, M.echo, ["fail"]);
    call(x, 3, M.echo, ["reject"]);
    call(x, 4, M.echo, ["big"]);
    const [a, b, c, d] = x.responses();
    assert.deepEqual(a!.metadata, [["srv", "ok"]]);
    assert.deepEqual(b!.metadata, [
      ["srv", "fail"],
      ["roam-error", "Error: f"],
    ]);
    assert.deepEqual(c!.metadata, [
      ["srv", "reject"],
      ["roam-error", "no"],
      ["roam-rejected", "denied"],
    ]);
    assert.deepEqual(d!.metadata, []);
    assert.deepEqual([...d!.payload], [...okPayload(M.echo, "big")]);
    assert.ok(x.handlerErrors.at(-1)!.error instanceof EncodeFailedError);
  });

  test("a result over max_payload_size is answered Cancelled with the size; exactly the limit is sent", () => {
    const x = served();
    x.limits.maxPayloadSize = 12;
    call(x, 1, M.blob, [10]); // Ok tag + length + 10 bytes = 12
    call(x, 2, M.blob, [11]);
    const [ok, big] = x.responses();
    assert.equal(ok!.payload.length, 12);
    assert.deepEqual([...big!.payload], [...CANCELLED]);
    assert.deepEqual(big!.metadata, [["roam-error", "result of 13 bytes exceeds the negotiated max_payload_size"]]);
    assert.ok(x.handlerErrors[0]!.error instanceof EncodeFailedError);
    assert.deepEqual(x.handlerErrors[0]!.info, { method: "Core.blob", connId: 0, requestId: 2 });
  });

  test("Cancel: answered Cancelled at once, the handler's later result is dropped, its channels end", async () => {
    let finish!: (v: number) => void;
    const x = served({ initiator: false }, { small: () => new Promise<number>((r) => (finish = r)) });
    call(x, 1, M.small, []);
    x.control.handle({ type: "Cancel", connId: 0, requestId: 1 });
    assert.deepEqual(x.responses(), [resp(1, CANCELLED)]);
    finish(1);
    await turn();
    assert.equal(x.responses().length, 1);

    // A streaming call: its receive end fails with CancelledError, or ConnectionClosedError when the connection goes.
    let input!: AsyncIterator<number>;
    const y = served({ initiator: false }, {
      feed: (i: AsyncIterable<number>) => {
        input = i[Symbol.asyncIterator]();
        return new Promise<number>(() => {});
      },
    });
    x_stream(y, 1, M.feed.id, 1);
    y.control.handle({ type: "Cancel", connId: 0, requestId: 1 });
    await assert.rejects(within(input.next()), CancelledError);
    x_stream(y, 2, M.feed.id, 3);
    const mine = input;
    const error = new ConnectionClosedError("gone", "transport");
    y.control.teardown(error);
    await assert.rejects(within(mine.next()), (e) => e === error);
  });

  test("the callee's send ends close before the Response; a failed handler resets them", async () => {
    const x = served({ initiator: false });
    x_stream(x, 1, M.produce.id, 1);
    for (let i = 0; i < 20 && x.responses().length === 0; i++) await turn();
    assert.deepEqual(
      x.sent.filter((m) => m.type !== "Credit").map((m) => m.type),
      ["Data", "Data", "Close", "Response"],
    );
    const y = served({ initiator: false }, {
      produce: () => {
        throw new Error("no");
      },
    });
    x_stream(y, 1, M.produce.id, 1);
    for (let i = 0; i < 20 && y.responses().length === 0; i++) await turn();
    assert.deepEqual(
      y.sent.map((m) => m.type),
      ["Reset", "Response"],
    );
    const z = served({ initiator: false }, {
      produce: () => {
        throw new CallRejectedError("denied", "no");
      },
    });
    x_stream(z, 1, M.produce.id, 1);
    for (let i = 0; i < 20 && z.responses().length === 0; i++) await turn();
    assert.deepEqual(
      z.sent.map((m) => m.type),
      ["Reset", "Response"],
    );
  });

  test("undecodable arguments of a streaming call end the channels it opened", () => {
    const x = served({ initiator: false });
    x.control.handle(req(1, M.feed.id, Uint8Array.of(1, 2, 3), { channels: [1] }));
    assert.deepEqual(x.responses(), [resp(1, INVALID)]);
    x.control.handle({ type: "Data", connId: 0, channelId: 1, payload: Uint8Array.of(1) }); // burned: ignored
    assert.equal(x.c.rawChannels().connId, 0);
  });
});

describe("typed handlers: results of every shape", () => {
  test("void and tuple results answer at once; a receive-only call answers at once too; the context describes the call", async () => {
    const x = conn({ connId: 7, initiator: false });
    x.c.setDispatcher(
      serve(More, {
        ping: () => undefined,
        pair: () => [1, 2] as [number, number],
        count: () => 0,
        context: (ctx) => {
          assert.equal(ctx.signal.aborted, false);
          return `${ctx.method.name} ${ctx.requestId} ${ctx.connection.connId} ${JSON.stringify(ctx.metadata)}`;
        },
      }),
    );
    x.control.handle(req(1, More.methods.ping.id, new Uint8Array()));
    x.control.handle(req(2, More.methods.pair.id, new Uint8Array()));
    x.control.handle(req(3, More.methods.count.id, Uint8Array.of(1), { channels: [1] }));
    x.control.handle(req(4, More.methods.context.id, new Uint8Array(), { metadata: [["m", "v"]] }));
    assert.deepEqual(
      x.responses().map((r) => [r.requestId, [...r.payload]]),
      [
        [1, [0]],
        [2, [0, 1, 2]],
        [3, [0, 0]],
        [4, [...okPayload(More.methods.context, 'context 4 7 [["m","v"]]')]],
      ],
    );
  });
});

describe("serve and client", () => {
  test("a service without a handler, or a method id served twice, is refused", () => {
    assert.throws(() => serve(Svc, { echo: (s: string) => s } as never), /Core\.maybe has no handler/);
    const d = new ServiceDispatcher().add(Svc, impl());
    assert.throws(() => d.add(Svc, impl()), /is already served/);
    assert.deepEqual(d.methodIds(), Object.values(M).map((m) => m.id));
    assert.equal(d.describe(M.echo.id), M.echo);
    assert.equal(d.describe(1n), undefined);
  });

  test("server interceptors wrap handlers added before and after use(); serve() takes them as an option", async () => {
    const order: string[] = [];
    const tag = (name: string) => (next: (r: never) => Promise<unknown>) => async (r: never) => {
      order.push(name);
      return next(r);
    };
    const d = new ServiceDispatcher().add(Svc, impl());
    d.use(tag("a") as never);
    const x = conn({ dispatcher: d });
    x.control.handle(req(1, M.echo.id, argsOf(M.echo, ["x"])));
    await turn();
    assert.deepEqual(order, ["a"]);
    const s = serve(Svc, impl(), { interceptors: [tag("b") as never] });
    const y = conn({ dispatcher: s });
    y.control.handle(req(1, M.echo.id, argsOf(M.echo, ["x"])));
    await turn();
    assert.deepEqual(order, ["a", "b"]);
    assert.deepEqual([...y.responses()[0]!.payload], [...okPayload(M.echo, "x")]);
    const plain = serve(Svc, impl(), { interceptors: [] });
    const z = conn({ dispatcher: plain });
    z.control.handle(req(1, M.echo.id, argsOf(M.echo, ["y"])));
    assert.equal(z.responses().length, 1, "no interceptors: answered synchronously");
    // Options without interceptors, and use() with an empty list, leave the handlers plain too.
    for (const d of [serve(Svc, impl(), {}), serve(Svc, impl()).use(...[])]) {
      const w = conn({ dispatcher: d });
      w.control.handle(req(1, M.echo.id, argsOf(M.echo, ["z"])));
      assert.equal(w.responses().length, 1, "answered synchronously");
    }
  });

  test("callRaw sends its metadata; metadata within the limits does not stop the call", async () => {
    const x = conn();
    const p = x.c.callRaw(7n, Uint8Array.of(1, 2), { metadata: [["trace", "t-1"], ["n", 5n]] });
    const sent = x.sent.at(-1) as RequestMessage;
    assert.equal(sent.type, "Request");
    assert.deepEqual(sent.metadata, [["trace", "t-1"], ["n", 5n]]);
    x.control.handle(resp(sent.requestId, Uint8Array.of(0, 9)));
    assert.deepEqual([...(await p).payload], [0, 9]);
  });

  test("client: arguments counted, an optional trailing CallOptions, interceptors only on a Connection", async () => {
    const x = conn();
    const c = client(Svc, x.c);
    const p = c.echo("a", { metadata: [["k", "v"]] });
    assert.deepEqual((x.sent.at(-1) as RequestMessage).metadata, [["k", "v"]]);
    x.control.handle(resp(1, okPayload(M.echo, "a")));
    assert.equal(await p, "a");
    await assert.rejects((c.echo as (...a: unknown[]) => Promise<string>)(), /Core\.echo takes 1 argument\(s\) \(\+ optional CallOptions\), got 0/);
    await assert.rejects((c.echo as (...a: unknown[]) => Promise<string>)("a", {}, 3), /got 3/);
    const seen: string[] = [];
    const ic = client(Svc, x.c, {
      interceptors: [
        (next) => (r) => {
          seen.push(r.name);
          return next(r);
        },
      ],
    });
    const q = ic.echo("b");
    const r = ic.echo("c", { metadata: [["m", "1"]] });
    assert.deepEqual((x.sent.at(-1) as RequestMessage).metadata, [["m", "1"]]);
    x.control.handle(resp(2, okPayload(M.echo, "b")));
    x.control.handle(resp(3, okPayload(M.echo, "c")));
    assert.deepEqual(await Promise.all([q, r]), ["b", "c"]);
    assert.deepEqual(seen, ["Core.echo", "Core.echo"]);
    await assert.rejects((ic.echo as (...a: unknown[]) => Promise<string>)(), /takes 1 argument/);
    assert.throws(() => client(Svc, { call: () => Promise.resolve(undefined as never) }, { interceptors: [(n) => n] }), /client interceptors need a Connection/);
    assert.equal(typeof client(Svc, { call: () => Promise.resolve(undefined as never) }, { interceptors: [] }).echo, "function");
  });
});

describe("errors and reply accounting", () => {
  test("each error says what happened and who did it", () => {
    assert.equal(new UserError("NotFound").message, "the method returned a user error: NotFound");
    assert.equal(new UserError({ n: 1n, b: Uint8Array.of(1, 2) }).message, 'the method returned a user error: {"n":"1n","b":"<2 bytes>"}');
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    assert.equal(new UserError(cyclic).message, "the method returned a user error: [object Object]");
    assert.equal(err(5).error, 5);
    assert.match(new CancelledError("S.m", "local").message, /^S\.m was cancelled by its AbortSignal/);
    assert.match(new CancelledError("S.m", "remote").message, /^S\.m was cancelled by the peer/);
    assert.equal(new ConnectionClosedError(undefined, "local").message, "connection closed; open a new connection to continue");
    assert.equal(new ConnectionClosedError("bye", "remote").message, "connection closed by the peer: bye; open a new connection to continue");
    assert.equal(new ConnectionClosedError("", "transport").message, "connection closed (transport lost); open a new connection to continue");
    assert.match(new ResponseDecodeError("S.m", new Error("short")).message, /did not decode \(short\)/);
    assert.match(new ResponseDecodeError("S.m", "raw").message, /did not decode \(raw\)/);
    assert.match(new ResponseDecodeError("S.m", null).message, /did not decode \(null\)/);
    assert.equal(new ChannelResetError("local").message, "channel reset by this side; no more values will flow on it");
    assert.equal(new ChannelResetError("remote", "why").message, "channel reset by the peer: why; no more values will flow on it");
    assert.equal(new ChannelClosedError("x").code, "channel-closed");
    assert.equal(new ConnectionRejectedError("no", []).code, "connection-rejected");
    const v = new ProtocolViolation("a.rule", "detail");
    assert.equal(v.connId, 0);
    assert.equal(v.reason, "a.rule: detail");
    assert.equal(v.message, "a.rule: detail");
    assert.deepEqual(
      [new UserError(1), new UnknownMethodError("m"), new InvalidPayloadError("m"), new CancelledError("m", "local"), new RemoteHandlerError("m", "x"), new TimeoutError("m", 1), new ConnectionClosedError(undefined, "local"), new EncodeFailedError("w", "d"), new ResponseDecodeError("m", 1), new ConnectionRejectedError("r", [])].map((e) => [e.name, e.code]),
      [
        ["UserError", "user"],
        ["UnknownMethodError", "unknown-method"],
        ["InvalidPayloadError", "invalid-payload"],
        ["CancelledError", "cancelled"],
        ["RemoteHandlerError", "remote-handler"],
        ["TimeoutError", "timeout"],
        ["ConnectionClosedError", "connection-closed"],
        ["EncodeFailedError", "encode-failed"],
        ["ResponseDecodeError", "response-decode"],
        ["ConnectionRejectedError", "connection-rejected"],
      ],
    );
  });

  test("replies are what a peer makes us send", () => {
    const replies = ["Response", "Accept", "Reject", "Goodbye", "Credit"];
    for (const type of ["Hello", "Request", "Response", "Cancel", "Data", "Close", "Reset", "Credit", "Connect", "Accept", "Reject", "Goodbye"]) {
      assert.equal(isReply({ type } as Message), replies.includes(type), type);
    }
  });

  test("ReplyBacklog: written bytes drain it (never below 0); a waiter is called once at or below its mark, or on release", async () => {
    const b = new ReplyBacklog();
    b.add(100);
    b.add(50);
    assert.equal(b.bytes, 150);
    let called = 0;
    b.onDrain(60, () => called++);
    b.written(80);
    assert.equal(called, 0, "70 > 60");
    b.written(10);
    assert.equal(called, 1, "60 <= 60");
    b.written(10);
    assert.equal(called, 1, "once");
    b.written(1000);
    assert.equal(b.bytes, 0);
    let at = 0;
    b.onDrain(0, () => at++);
    assert.equal(at, 0, "already drained: called in a microtask");
    await Promise.resolve();
    assert.equal(at, 1);
    b.add(10);
    let released = 0;
    b.onDrain(5, () => released++);
    b.release();
    assert.equal(released, 1);
    assert.equal(b.bytes, 0);
    b.release();
    assert.equal(released, 1);
    b.add(10);
    let exact = 0;
    b.onDrain(10, () => exact++);
    await Promise.resolve();
    assert.equal(exact, 1, "already at the mark");
  });
});
