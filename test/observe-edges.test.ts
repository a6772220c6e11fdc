/**
 * The observation layer without a network: interceptor chains over test
 * doubles (the Response outcome read from raw bytes, an intercepted
 * dispatcher's answers when an interceptor refuses or answers itself, where
 * channel observers attach inside call arguments) and diagnostics built from
 * hand-made connections and snapshots (channel rows, paused, ordering, the
 * text rendering of links, servers and SHM hosts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Writer } from "../src/codec/writer.js";
import { t } from "../src/schema/index.js";
import { arg, defineService, method, type MethodDescriptor } from "../src/service/define.js";
import { channel } from "../src/session/channel/pair.js";
import type { Tx } from "../src/session/channel/tx.js";
import type { Connection, ConnectionControl, Dispatcher, IncomingCall, ResponseCapture } from "../src/session/connection.js";
import {
  connectionDiagnostics,
  diagnosticsRegistry,
  formatDiagnostics,
  linkDiagnostics,
  processDiagnostics,
  type Diagnostics,
  type DiagnosticsSource,
  type LinkDiagnostics,
} from "../src/session/diagnostics.js";
import { UserError } from "../src/session/errors.js";
import {
  intercept,
  interceptedCaller,
  interceptHandler,
  outcomeOf,
  type ChannelElement,
  type ClientInterceptor,
  type ServerInterceptor,
  type ServerRequest,
} from "../src/session/interceptor.js";
import type { Link } from "../src/session/link.js";
import { CallRejectedError, REJECTED_KEY } from "../src/session/rejected.js";
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED, RESULT_ERR, RESULT_OK, ROAM_ERROR_CANCELLED, ROAM_ERROR_INVALID_PAYLOAD, ROAM_ERROR_UNKNOWN_METHOD, ROAM_ERROR_USER } from "../src/wire/envelope.js";
import type { Metadata } from "../src/wire/message.js";

const Svc = defineService("Obs", {
  plain: method([arg("n", t.u32)], t.u32),
  fallible: method([arg("n", t.u32)], t.result(t.u32, t.string)),
  // A user error type that encodes `undefined` (unit): refusing with a non-UserError must still be a rejection.
  unitErr: method([arg("n", t.u32)], t.result(t.u32, t.unit)),
  none: method([], t.u32),
  stream: method([arg("input", t.rx(t.u32))], t.u32),
});
const M = Svc.methods;

/** Calls tx.send's observer (it runs before send waits for a binding), then abandons the send. */
async function sendObserved(tx: Tx<number>, v: number): Promise<void> {
  const ac = new AbortController();
  const p = tx.send(v, { signal: ac.signal });
  ac.abort();
  await p.catch(() => {});
}

// --- client side -------------------------------------------------------------------

/** A Connection double whose call() resolves with `value` (after calling onResponseMetadata with `meta`). */
function fakeConnection(value: unknown, meta: Metadata = []): Connection {
  return {
    call: (_m: MethodDescriptor, _args: unknown[], o: { onResponseMetadata?: (m: Metadata) => void }) => {
      o.onResponseMetadata?.(meta);
      return Promise.resolve(value);
    },
  } as unknown as Connection;
}

test("client requests: streaming comes from the method; a non-async interceptor that throws is a rejection", async () => {
  const seen: string[] = [];
  const look: ClientInterceptor = (next) => (req) => {
    seen.push(`${req.name} streaming=${req.streaming}`);
    return next(req);
  };
  assert.equal(await interceptedCaller(fakeConnection(7), M.plain, [look])([1], undefined), 7);
  assert.equal(await interceptedCaller(fakeConnection(8), M.stream, [look])([channel<number>()[1]], undefined), 8);
  assert.deepEqual(seen, ["Obs.plain streaming=false", "Obs.stream streaming=true"]);

  const boom: ClientInterceptor = () => () => {
    throw new Error("sync boom");
  };
  const p = interceptedCaller(fakeConnection(1), M.plain, [boom])([1], undefined);
  assert.ok(p instanceof Promise);
  await assert.rejects(p, /sync boom/);
});

test("client observeChannels: observers chain, and Tx/Rx are found in arrays and objects up to depth 8 only", async () => {
  const nestA = (v: unknown, n: number): unknown => (n === 0 ? v : [nestA(v, n - 1)]);
  const nestO = (v: unknown, n: number): unknown => (n === 0 ? v : { v: nestO(v, n - 1) });
  const [tx8, rx8] = channel<number>(); // at depth 8 (args is depth 0): observed
  const [tx9, rx9] = channel<number>(); // at depth 9 through arrays: not observed
  const [txO, rxO] = channel<number>(); // at depth 9 through objects: not observed
  const [txK, rxK] = channel<number>(); // inside a plain object at depth 2: observed
  const args = [nestA(rx8, 7), nestA(rx9, 8), nestO(rxO, 8), { k: rxK, n: null, u: undefined, s: "str", x: 5 }, null, undefined];
  const elements: string[] = [];
  const watch: ClientInterceptor = (next) => (req) => {
    req.observeChannels((e) => elements.push(`first ${e.direction} ${String(e.value)}`));
    req.observeChannels((e) => elements.push(`second ${e.direction} ${String(e.value)}`));
    return next(req);
  };
  assert.equal(await interceptedCaller(fakeConnection(3), M.plain, [watch])(args, undefined), 3);
  await sendObserved(tx8, 8);
  await sendObserved(tx9, 9);
  await sendObserved(txO, 90);
  await sendObserved(txK, 2);
  assert.deepEqual(elements, ["first send 8", "second send 8", "first send 2", "second send 2"]);
});

// --- server side: typed handlers ---------------------------------------------------

interface FakeCtx {
  signal: AbortSignal;
  metadata: Metadata;
  responseMetadata: [string, string][];
  connection: Connection;
  method: MethodDescriptor;
  requestId: number;
}
function fakeCtx(m: MethodDescriptor): FakeCtx {
  return { signal: new AbortController().signal, metadata: [], responseMetadata: [], connection: {} as Connection, method: m, requestId: 5 };
}

test("typed handler chain: the request's signal is the call's; args replaced by undefined call the handler with ctx only", async () => {
  const ctx = fakeCtx(M.none);
  let signal: AbortSignal | undefined;
  let handlerArgs: unknown[] = [];
  const strip: ServerInterceptor = (next) => (req) => {
    signal = req.signal;
    req.args = undefined;
    return next(req);
  };
  const h = interceptHandler(M.none, (...a: unknown[]) => ((handlerArgs = a), 11), [strip]);
  assert.equal(await h(ctx), 11);
  assert.equal(signal, ctx.signal);
  assert.equal(handlerArgs.length, 1);
  assert.equal(handlerArgs[0], ctx);
});

test("typed handler chain: an interceptor's own failure outcome becomes a rejection carrying its message, else the outcome", async () => {
  const answer =
    (r: { outcome: "handler-error" | "cancelled"; message?: string }): ServerInterceptor =>
    () =>
    () =>
      Promise.resolve(r);
  const withMessage = interceptHandler(M.plain, () => 1, [answer({ outcome: "handler-error", message: "quota" })]);
  await assert.rejects(withMessage(1, fakeCtx(M.plain)), (e: unknown) => e instanceof CallRejectedError && e.reason === "internal" && e.detail === "quota");
  const bare = interceptHandler(M.plain, () => 1, [answer({ outcome: "cancelled" })]);
  await assert.rejects(bare(1, fakeCtx(M.plain)), (e: unknown) => e instanceof CallRejectedError && e.detail === "cancelled");
});

test("typed handler chain: observeChannels twice feeds both observers", async () => {
  const [tx, rx] = channel<number>();
  const seen: string[] = [];
  const watch: ServerInterceptor = (next) => (req) => {
    req.observeChannels((e: ChannelElement) => seen.push(`a ${e.value}`));
    req.observeChannels((e: ChannelElement) => seen.push(`b ${e.value}`));
    return next(req);
  };
  const h = interceptHandler(M.stream, () => 0, [watch]);
  assert.equal(await h(rx, fakeCtx(M.stream)), 0);
  await sendObserved(tx, 4);
  assert.deepEqual(seen, ["a 4", "b 4"]);
});

// --- outcomes read from Response bytes --------------------------------------------------

test("outcomeOf reads every Response shape without a schema", () => {
  const err = (inner: number) => Uint8Array.of(RESULT_ERR, inner);
  assert.deepEqual(outcomeOf(new Uint8Array(0), []), { outcome: "invalid-payload" });
  assert.deepEqual(outcomeOf(Uint8Array.of(RESULT_OK, 1), []), { outcome: "ok" });
  assert.deepEqual(outcomeOf(Uint8Array.of(RESULT_ERR, ROAM_ERROR_USER, 3), []), { outcome: "user-error" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_UNKNOWN_METHOD), []), { outcome: "unknown-method" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_INVALID_PAYLOAD), []), { outcome: "invalid-payload" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_CANCELLED), []), { outcome: "cancelled" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_CANCELLED), [["other", "x"]]), { outcome: "cancelled" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_CANCELLED), [["other", "x"], [HANDLER_ERROR_KEY, "boom"]]), { outcome: "handler-error", message: "boom" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_CANCELLED), [[HANDLER_ERROR_KEY, "no token"], [REJECTED_KEY, "unauthenticated"]]), { outcome: "rejected", message: "no token" });
  assert.deepEqual(outcomeOf(err(ROAM_ERROR_CANCELLED), [[REJECTED_KEY, "unauthenticated"]]), { outcome: "rejected", message: "" });
  // Truncated: the inner discriminant is missing.
  assert.deepEqual(outcomeOf(Uint8Array.of(RESULT_ERR), []), { outcome: "invalid-payload" });
});

// --- server side: any dispatcher ------------------------------------------------------

interface Sent {
  payload: Uint8Array;
  metadata: Metadata | undefined;
  channels: number[] | undefined;
}
/** An IncomingCall as a Connection makes it: respond() goes to the diversion when one is set. */
function fakeCall(methodId: bigint, opts: { divertable?: boolean } = {}): { call: IncomingCall; sent: Sent[] } {
  const sent: Sent[] = [];
  let capture: ResponseCapture | null = null;
  const call: IncomingCall = {
    connection: {} as Connection,
    request: { type: "Request", connId: 0, requestId: 9, methodId, metadata: [["in", "1"]], channels: [], payload: new Uint8Array(0) },
    signal: new AbortController().signal,
    respond(payload, metadata, channels) {
      if (capture) capture(payload, metadata ?? [], channels ?? []);
      else sent.push({ payload, metadata, channels });
    },
  };
  if (opts.divertable !== false) {
    (call as { divert: IncomingCall["divert"] }).divert = (c) => {
      const prev = capture;
      capture = c;
      return prev;
    };
  }
  return { call, sent };
}

/** Resolves once `sent` has `n` entries (bounded). */
async function responses(sent: Sent[], n = 1): Promise<Sent[]> {
  for (let i = 0; i < 1000 && sent.length < n; i++) await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, n, "the call was answered");
  return sent;
}

/** A dispatcher that answers every call with `payload` and `metadata`, knowing the methods of Svc. */
function answering(payload: Uint8Array, metadata: Metadata, opts: { describe?: boolean } = {}): Dispatcher & { dispatched: number; closed: unknown[] } {
  const d = {
    dispatched: 0,
    closed: [] as unknown[],
    dispatch(call: IncomingCall) {
      d.dispatched++;
      call.respond(payload, metadata, [3]);
    },
    connectionClosed(_c: Connection, e: unknown) {
      d.closed.push(e);
    },
  };
  if (opts.describe !== false) (d as Dispatcher).describe = (id) => Object.values(M).find((m) => m.id === id);
  return d;
}

test("intercept(): no interceptors is the dispatcher itself; describe and connectionClosed reach the inner dispatcher", () => {
  const inner = answering(Uint8Array.of(RESULT_OK), []);
  assert.equal(intercept(inner, []), inner);
  const pass: ServerInterceptor = (next) => next;
  const d = intercept(inner, [pass]);
  assert.notEqual(d, inner);
  assert.equal(d.describe!(M.plain.id), M.plain);
  const bare = intercept({ dispatch: () => {} }, [pass]);
  assert.equal(bare.describe!(M.plain.id), undefined);
  const error = new CallRejectedError("internal", "gone");
  d.connectionClosed!({} as Connection, error);
  assert.deepEqual(inner.closed, [error]);
  bare.connectionClosed!({} as Connection, error); // no inner hook: nothing to call
});

test("an intercepted dispatcher: a call without divert goes straight to the inner dispatcher, past the interceptors", async () => {
  const inner = answering(Uint8Array.of(RESULT_OK, 1), [["up", "1"]]);
  let ran = 0;
  const d = intercept(inner, [(next) => (req) => (ran++, next(req))]);
  const { call, sent } = fakeCall(M.plain.id, { divertable: false });
  d.dispatch(call);
  assert.equal(ran, 0);
  assert.equal(inner.dispatched, 1);
  assert.deepEqual(sent, [{ payload: Uint8Array.of(RESULT_OK, 1), metadata: [["up", "1"]], channels: [3] }]);
});

test("an intercepted dispatcher passes the inner Response through, adding the interceptors' response metadata", async () => {
  const upstreamMeta: Metadata = [["up", "1"]];
  const seen: string[] = [];
  let signalSeen: AbortSignal | undefined;
  const quiet: ServerInterceptor = (next) => async (req) => {
    signalSeen = req.signal;
    seen.push(`${req.name} streaming=${req.streaming}`);
    const r = await next(req);
    seen.push(r.outcome);
    return r;
  };
  // Nothing added: the inner metadata array goes out as it is.
  {
    const { call, sent } = fakeCall(M.plain.id);
    intercept(answering(Uint8Array.of(RESULT_OK, 1), upstreamMeta), [quiet]).dispatch(call);
    const [r] = await responses(sent);
    assert.deepEqual(r, { payload: Uint8Array.of(RESULT_OK, 1), metadata: upstreamMeta, channels: [3] });
    assert.equal(r!.metadata, upstreamMeta);
    assert.equal(signalSeen, call.signal);
  }
  // An unknown method (the inner dispatcher does not describe it): named by id, not streaming.
  {
    const { call, sent } = fakeCall(0x1234n);
    intercept(answering(Uint8Array.of(RESULT_OK, 1), upstreamMeta, { describe: false }), [quiet]).dispatch(call);
    await responses(sent);
    assert.deepEqual(sent[0]!.metadata, upstreamMeta);
  }
  assert.deepEqual(seen, ["Obs.plain streaming=false", "ok", "method 0x0000000000001234 streaming=false", "ok"]);
  // Added: appended after the inner entries.
  {
    const { call, sent } = fakeCall(M.stream.id);
    const tag: ServerInterceptor = (next) => async (req) => {
      seen.push(`${req.name} streaming=${req.streaming}`);
      req.responseMetadata.push(["x-tag", "t"]);
      return next(req);
    };
    intercept(answering(Uint8Array.of(RESULT_OK, 1), upstreamMeta), [tag]).dispatch(call);
    const [r] = await responses(sent);
    assert.deepEqual(r!.metadata, [["up", "1"], ["x-tag", "t"]]);
    assert.equal(seen.at(-1), "Obs.stream streaming=true");
  }
});

/** The metadata of a rejection as respondFailure sends it. */
function rejection(extra: [string, string][], detail: string, reason: string): Metadata {
  return [...extra, [HANDLER_ERROR_KEY, detail], [REJECTED_KEY, reason]];
}

test("an intercepted dispatcher answers for an interceptor that answers itself or throws", async () => {
  const inner = answering(Uint8Array.of(RESULT_OK, 1), []);
  const run = async (methodId: bigint, ...chain: ServerInterceptor[]): Promise<Sent> => {
    const { call, sent } = fakeCall(methodId);
    intercept(inner, chain).dispatch(call);
    return (await responses(sent))[0]!;
  };
  const userErr = (v: string) => {
    const w = new Writer(16);
    M.fallible.encodeUserError(w, v);
    return w.finish().slice();
  };
  const meta: ServerInterceptor = (next) => (req) => (req.responseMetadata.push(["x-m", "1"]), next(req));

  // Answered without next: a user error on a fallible method is the method's error.
  let r = await run(M.fallible.id, () => async () => ({ outcome: "user-error", error: "nope" }));
  assert.deepEqual(r.payload, userErr("nope"));
  // ... carrying the response metadata the chain added.
  r = await run(M.fallible.id, meta, () => async () => ({ outcome: "user-error", error: "nope" }));
  assert.deepEqual({ payload: r.payload, metadata: r.metadata }, { payload: userErr("nope"), metadata: [["x-m", "1"]] });
  // A user error that does not fit the error type, or on an infallible method: a rejection.
  r = await run(M.fallible.id, () => async () => ({ outcome: "user-error", error: 42 }));
  assert.deepEqual(r.payload, RESPONSE_CANCELLED);
  r = await run(M.plain.id, () => async () => ({ outcome: "user-error", error: "nope" }));
  assert.deepEqual(r, { payload: RESPONSE_CANCELLED, metadata: rejection([], "the method returned a user error: nope", "internal"), channels: undefined });
  // A user error for a method the dispatcher does not know: a rejection.
  r = await run(0x77n, () => async () => {
    throw new UserError("nope");
  });
  assert.deepEqual(r.metadata, rejection([], "the method returned a user error: nope", "internal"));
  // Another outcome: a rejection with its message, else the outcome.
  r = await run(M.plain.id, () => async () => ({ outcome: "handler-error", message: "quota" }));
  assert.deepEqual(r.metadata, rejection([], "quota", "internal"));
  r = await run(M.plain.id, () => async () => ({ outcome: "cancelled" }));
  assert.deepEqual(r.metadata, rejection([], "cancelled", "internal"));
  // An async interceptor that throws: a rejection with its reason, after the chain's metadata.
  r = await run(M.plain.id, (next) => async (req) => {
    req.responseMetadata.push(["x-m", "1"]);
    throw new CallRejectedError("permission-denied", "not you");
  });
  assert.deepEqual(r.metadata, rejection([["x-m", "1"]], "not you", "permission-denied"));
  // A rejection of a fallible method whose error type would encode anything is still a rejection.
  r = await run(M.unitErr.id, () => async () => {
    throw new CallRejectedError("unavailable", "later");
  });
  assert.deepEqual(r, { payload: RESPONSE_CANCELLED, metadata: rejection([], "later", "unavailable"), channels: undefined });
  // Detail and reason are bounded (1024 and 128 characters).
  r = await run(M.plain.id, () => async () => {
    throw new CallRejectedError("r".repeat(300), "d".repeat(3000));
  });
  assert.deepEqual(r.metadata, rejection([], "d".repeat(1024), "r".repeat(128)));
  assert.equal(inner.dispatched, 0, "no interceptor called next");
});

test("ServerRequest from an untyped dispatcher: args undefined, observeChannels attaches nothing", async () => {
  let req: ServerRequest | undefined;
  const i: ServerInterceptor = (next) => (r) => {
    req = r;
    r.observeChannels(() => {});
    return next(r);
  };
  const { call, sent } = fakeCall(M.plain.id);
  intercept(answering(Uint8Array.of(RESULT_OK, 1), []), [i]).dispatch(call);
  await responses(sent);
  assert.equal(req!.args, undefined);
  assert.equal(req!.requestId, 9);
  assert.deepEqual(req!.metadata, [["in", "1"]]);
});

// --- diagnostics -------------------------------------------------------------------

interface FakeStats {
  creditOutstanding: number;
  bufferedBytes: number;
  window?: number;
}
function fakeControl(opts: {
  connId: number;
  outgoing: [number, FakeStats][];
  incoming: [number, FakeStats][];
  claimed: number[];
  calls?: { requestId: number; direction: "outgoing" | "incoming"; name: string; started: number }[];
}): ConnectionControl {
  const withStats = (s: FakeStats) => ({ stats: () => ({ window: 100, level: "yellow", totalBytes: 50, totalValues: 2, ...s }) });
  return {
    connection: { connId: opts.connId, isClosed: false },
    inFlight: () => opts.calls ?? [],
    channels: {
      outgoing: new Map(opts.outgoing.map(([id, s]) => [id, withStats(s)])),
      incoming: new Map(opts.incoming.map(([id, s]) => [id, withStats(s)])),
      claimed: new Map(opts.claimed.map((id) => [id, {}])),
    },
  } as unknown as ConnectionControl;
}

test("connection snapshot: every channel kind, paused for senders and receivers, ordered by channel id, call ages", () => {
  const control = fakeControl({
    connId: 2,
    outgoing: [
      [9, { creditOutstanding: 5, bufferedBytes: 0 }], // credit left, nothing waiting: running
      [7, { creditOutstanding: 5, bufferedBytes: 10 }], // sends waiting: paused
      [5, { creditOutstanding: 0, bufferedBytes: 0 }], // no credit: paused
    ],
    incoming: [
      [6, { creditOutstanding: 0, bufferedBytes: 0 }], // sender has no credit: paused
      [3, { creditOutstanding: 8, bufferedBytes: 4 }],
    ],
    claimed: [4],
    calls: [{ requestId: 1, direction: "incoming", name: "Obs.plain", started: 400 }],
  });
  const d = connectionDiagnostics(control, 1000);
  const row = (channelId: number, direction: string, creditOutstanding: number, bufferedBytes: number, paused: boolean) => ({
    connId: 2,
    channelId,
    direction,
    creditOutstanding,
    bufferedBytes,
    window: 100,
    level: "yellow",
    paused,
    totalBytes: 50,
    totalValues: 2,
  });
  assert.deepEqual(d, {
    connId: 2,
    closed: false,
    calls: [{ connId: 2, requestId: 1, direction: "incoming", method: "Obs.plain", ageMs: 600 }],
    channels: [
      row(3, "receive", 8, 4, false),
      { connId: 2, channelId: 4, direction: "forwarded", creditOutstanding: 0, bufferedBytes: 0, window: 0, level: "green", paused: false, totalBytes: 0, totalValues: 0 },
      row(5, "send", 0, 0, true),
      row(6, "receive", 0, 0, true),
      row(7, "send", 5, 10, true),
      row(9, "send", 5, 0, false),
    ],
  });
});

test("link snapshot: limits only once the handshake is done", () => {
  const fakeLink = (pending: boolean) =>
    ({
      handshakePending: () => (pending ? new Promise(() => {}) : undefined),
      maxPayloadSize: 4096,
      initialCredit: 8192,
      transport: { description: "fake 1" },
      initiator: true,
      isClosed: false,
    }) as unknown as Link;
  const empty = fakeControl({ connId: 0, outgoing: [], incoming: [], claimed: [] });
  assert.deepEqual(linkDiagnostics(fakeLink(false), [empty]), {
    transport: "fake 1",
    initiator: true,
    closed: false,
    maxPayloadSize: 4096,
    initialCredit: 8192,
    connections: [{ connId: 0, closed: false, calls: [], channels: [] }],
  });
  const pending = linkDiagnostics(fakeLink(true), []);
  assert.equal(pending.maxPayloadSize, null);
  assert.equal(pending.initialCredit, null);
  // A link that cannot tell its limits (the getter throws) still gets a snapshot, without limits.
  const broken = Object.defineProperty(fakeLink(false), "maxPayloadSize", {
    get: () => {
      throw new Error("no limits");
    },
  });
  const d = linkDiagnostics(broken, []);
  assert.equal(d.transport, "fake 1");
  assert.equal(d.maxPayloadSize, null);
  assert.equal(d.initialCredit, null);
});

test("processDiagnostics: sources first (a bare link snapshot gets its kind), then links no source owns", () => {
  const linkSnap = (transport: string): LinkDiagnostics => ({ transport, initiator: false, closed: false, maxPayloadSize: null, initialCredit: null, connections: [] });
  const owned = { diagnostics: () => linkSnap("owned") } as unknown as Link;
  const loose = { diagnostics: () => linkSnap("loose") } as unknown as Link;
  const server: DiagnosticsSource = { diagnostics: () => ({ kind: "server", address: "a", links: [linkSnap("owned")] }), ownedLinks: () => [owned] };
  const bare: DiagnosticsSource = { diagnostics: () => linkSnap("bare"), ownedLinks: () => [] };
  const savedLinks = [...diagnosticsRegistry.links];
  const savedSources = [...diagnosticsRegistry.sources];
  diagnosticsRegistry.links.clear();
  diagnosticsRegistry.sources.clear();
  try {
    diagnosticsRegistry.sources.add(server);
    diagnosticsRegistry.sources.add(bare);
    diagnosticsRegistry.links.add(owned);
    diagnosticsRegistry.links.add(loose);
    assert.deepEqual(processDiagnostics(), [
      { kind: "server", address: "a", links: [linkSnap("owned")] },
      { kind: "link", ...linkSnap("bare") },
      { kind: "link", ...linkSnap("loose") },
    ]);
  } finally {
    diagnosticsRegistry.links.clear();
    diagnosticsRegistry.sources.clear();
    for (const l of savedLinks) diagnosticsRegistry.links.add(l);
    for (const s of savedSources) diagnosticsRegistry.sources.add(s);
  }
});

test("formatDiagnostics renders servers, SHM hosts and links: counts, idle connections skipped, byte units, paused and forwarded channels", () => {
  const ch = (channelId: number, direction: "send" | "receive" | "forwarded", creditOutstanding: number, window: number, bufferedBytes: number, paused: boolean) => ({
    connId: 1,
    channelId,
    direction,
    creditOutstanding,
    bufferedBytes,
    window,
    level: paused ? ("red" as const) : ("green" as const),
    paused,
    totalBytes: 0,
    totalValues: channelId,
  });
  const busy: LinkDiagnostics = {
    transport: "tcp 127.0.0.1:1",
    initiator: false,
    closed: true,
    maxPayloadSize: 1,
    initialCredit: 1,
    connections: [
      { connId: 0, closed: false, calls: [], channels: [] },
      {
        connId: 1,
        closed: true,
        calls: [
          { connId: 1, requestId: 4, direction: "incoming", method: "Obs.plain", ageMs: 12 },
          { connId: 1, requestId: 5, direction: "outgoing", method: "Obs.none", ageMs: 3 },
        ],
        channels: [ch(2, "send", 1 << 20, 1536, 1023, true), ch(3, "receive", 1024, (1 << 20) + (1 << 19), 0, false), ch(4, "forwarded", 0, 0, 0, false)],
      },
      { connId: 2, closed: false, calls: [], channels: [ch(6, "receive", 1, 1, 1, false)] },
      { connId: 3, closed: false, calls: [{ connId: 3, requestId: 1, direction: "outgoing", method: "Obs.stream", ageMs: 0 }], channels: [] },
    ],
  };
  const idle: LinkDiagnostics = { transport: "shm peer 1", initiator: true, closed: false, maxPayloadSize: null, initialCredit: null, connections: [] };
  const snaps: Diagnostics[] = [
    { kind: "server", address: "tcp://127.0.0.1:1", links: [busy] },
    {
      kind: "shm-host",
      path: null,
      sizeBytes: 1,
      hostSlotsOwned: 2,
      stats: { deaths: 1, detaches: 0, reclaimed: 0, slotsRecovered: 0 },
      guests: [
        { peerId: 1, name: "g1", peerState: "attached", kind: "process", heartbeatAgeMs: 7, slotsOwned: 3, ended: false, link: idle },
        { peerId: 2, name: "g2", peerState: "goodbye", kind: "worker", heartbeatAgeMs: null, slotsOwned: 0, ended: "dead", link: null },
      ],
    },
    { kind: "shm-host", path: "/dev/shm/x", sizeBytes: 1, hostSlotsOwned: 0, stats: { deaths: 0, detaches: 2, reclaimed: 0, slotsRecovered: 0 }, guests: [] },
    { kind: "link", ...idle },
  ];
  assert.equal(
    formatDiagnostics(snaps),
    [
      "[roam server tcp://127.0.0.1:1] 1 link(s)",
      "  link tcp 127.0.0.1:1 (acceptor, closed): 4 connection(s), 3 call(s) in flight, 4 open channel(s)",
      "    conn 1 (closed)",
      "      <- serving Obs.plain #4 for 12 ms",
      "      -> calling Obs.none #5 for 3 ms",
      "      channel 2 send: red PAUSED, credit 1.0 MiB of 1.5 KiB, buffered 1023 B, 2 value(s) moved",
      "      channel 3 receive: green, credit 1.0 KiB of 1.5 MiB, buffered 0 B, 3 value(s) moved",
      "      channel 4 forwarded",
      "    conn 2",
      "      channel 6 receive: green, credit 1 B of 1 B, buffered 1 B, 6 value(s) moved",
      "    conn 3",
      "      -> calling Obs.stream #1 for 0 ms",
      "[roam shm host (memory)] 2 guest(s), host owns 2 slot(s); deaths 1, detaches 0",
      '  guest 1 "g1" (process): attached, heartbeat 7 ms ago, owns 3 slot(s)',
      "    link shm peer 1 (initiator): 0 connection(s), 0 call(s) in flight, 0 open channel(s)",
      '  guest 2 "g2" (worker): goodbye (dead), heartbeat none yet, owns 0 slot(s)',
      "[roam shm host /dev/shm/x] 0 guest(s), host owns 0 slot(s); deaths 0, detaches 2",
      "link shm peer 1 (initiator): 0 connection(s), 0 call(s) in flight, 0 open channel(s)",
      "",
    ].join("\n"),
  );
  // One snapshot (not a list) renders the same way.
  assert.equal(formatDiagnostics({ kind: "link", ...idle }), "link shm peer 1 (initiator): 0 connection(s), 0 call(s) in flight, 0 open channel(s)\n");
});
