/**
 * Unit tests for the collaborators a connection drives (issue 13): the
 * channel registry (id allocation, peer ids, raw claims, the bounded memory
 * of ended ids), the call-time binder, and outgoing calls settling when the
 * connection closes. Each drives one collaborator through its port alone,
 * with no link or transport.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CallChannelBinder } from "../src/session/channel/binder.js";
import type { ChannelHost } from "../src/session/channel/host.js";
import { channel } from "../src/session/channel/pair.js";
import { recordingSink } from "./helpers/channel-recorder.js";
import { ChannelRegistry } from "../src/session/channel/registry.js";
import { Rx } from "../src/session/channel/rx.js";
import { Tx } from "../src/session/channel/tx.js";
import { CancelledError, ConnectionClosedError, ProtocolViolation, type RoamError } from "../src/session/errors.js";
import { CreditMessageFlowControl } from "../src/session/flow.js";
import { OutgoingCalls, type InFlightCall } from "../src/session/outgoing.js";
import { DEFAULT_THRESHOLDS } from "../src/session/pressure.js";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import type { Message } from "../src/wire/message.js";

function host(sent: Message[] = [], registry?: () => ChannelRegistry): ChannelHost {
  return {
    connId: 0,
    maxPayloadSize: 1024,
    initialCredit: 1024,
    flow: new CreditMessageFlowControl(() => {}),
    thresholds: DEFAULT_THRESHOLDS,
    sendData: (channelId, payload) => sent.push({ type: "Data", connId: 0, channelId, payload }),
    writable: () => undefined,
    sendClose: (channelId) => sent.push({ type: "Close", connId: 0, channelId }),
    sendReset: (channelId) => sent.push({ type: "Reset", connId: 0, channelId }),
    release: (id, how) => registry?.().release(id, how),
  };
}

function rule(f: () => void): string | undefined {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProtocolViolation, `expected a ProtocolViolation, got ${String(e)}`);
    return e.rule;
  }
  return undefined;
}

/** Rejects if `p` is still pending after a few turns (instead of hanging the test). */
function settled<T>(p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error("still pending")), 200))]);
}


describe("ChannelRegistry", () => {
  test("allocates ids of its own parity, in order, stepping over ids the peer took", () => {
    const odd = new ChannelRegistry({ connId: 0, maxPayloadSize: 64 }, true);
    assert.deepEqual([odd.allocate(), odd.allocate()], [1, 3]);
    odd.notePeerId(5); // a peer that ignores parity
    assert.equal(odd.allocate(), 7);
    const even = new ChannelRegistry({ connId: 0, maxPayloadSize: 64 }, false);
    assert.deepEqual([even.allocate(), even.allocate()], [2, 4]);
  });

  test("peer ids: 0 is reserved, a live id is a collision, a released id may be used again", () => {
    const r = new ChannelRegistry({ connId: 3, maxPayloadSize: 64 }, true);
    assert.equal(rule(() => r.notePeerId(0)), "channeling.id.zero-reserved");
    r.notePeerId(2);
    r.claim(2, recordingSink());
    assert.equal(rule(() => r.notePeerId(2)), "channeling.id.uniqueness");
    r.release(2, "closed");
    assert.equal(rule(() => r.notePeerId(2)), undefined);
  });

  test("a claimed id routes every channel message to its sink until released; then the id is burned", () => {
    const r = new ChannelRegistry({ connId: 0, maxPayloadSize: 8 }, true);
    const id = r.allocate();
    const sink = recordingSink();
    r.claim(id, sink);
    assert.equal(r.openCount, 1);
    r.onData(id, new Uint8Array(3));
    r.onCredit(id, 10);
    r.onClose(id);
    r.onReset(id);
    assert.deepEqual(sink.seen, ["data:3", "credit:10", "close", "reset"]);
    assert.equal(rule(() => r.onData(id, new Uint8Array(9))), "channeling.data.size-limit");
    r.release(id, "closed");
    assert.equal(r.openCount, 0);
    assert.equal(rule(() => r.onData(id, new Uint8Array(1))), "channeling.data-after-close");
    assert.equal(rule(() => r.onData(99, new Uint8Array(1))), "channeling.unknown");
    assert.equal(sink.seen.length, 4, "nothing reaches a released sink");
  });

  test("failAll fails every live channel once and forgets them", () => {
    const r = new ChannelRegistry({ connId: 0, maxPayloadSize: 64 }, true);
    const sink = recordingSink();
    r.claim(r.allocate(), sink);
    r.failAll(new ConnectionClosedError("gone", "local"));
    assert.equal(r.openCount, 0);
    assert.equal(sink.seen.length, 1);
    assert.match(sink.seen[0]!, /^fail:/);
  });

  test("the memory of ended ids is bounded: the oldest reset is forgotten (then only 'opened' remains)", () => {
    const limit = 4;
    const r = new ChannelRegistry({ connId: 0, maxPayloadSize: 64 }, true, limit);
    const ids: number[] = [];
    for (let i = 0; i <= limit; i++) {
      const id = r.allocate();
      r.claim(id, recordingSink());
      r.release(id, "reset");
      ids.push(id);
    }
    // The newest reset ids are remembered: late Data is ignored (channeling.reset.effect).
    for (const id of ids.slice(1)) assert.equal(rule(() => r.onData(id, new Uint8Array(1))), undefined, `Data on reset channel ${id}`);
    // The oldest fell out of the bounded memory: it is only known as opened.
    assert.equal(rule(() => r.onData(ids[0]!, new Uint8Array(1))), "channeling.data-after-close");
  });
});

describe("CallChannelBinder", () => {
  const element = t.u32;

  test("caller: binds the near end of each handle to a fresh id, in argument order", () => {
    let reg!: ChannelRegistry;
    const h = host([], () => reg);
    reg = new ChannelRegistry(h, true);
    const b = new CallChannelBinder(h, reg);
    const [tx1, rx1] = channel<number>();
    const [tx2, rx2] = channel<number>();
    assert.equal(b.bindOutgoing(rx1, t.rx(element)), 1); // handler receives: we send on tx1
    assert.equal(b.bindOutgoing(tx2, t.tx(element)), 3); // handler sends: we receive on rx2
    assert.deepEqual(b.ids, [1, 3]);
    assert.equal(tx1.id, 1);
    assert.equal(rx2.id, 3);
    assert.deepEqual(b.senders, [tx1]);
    assert.deepEqual(b.receivers, [rx2]);
    assert.equal(reg.openCount, 2);
    assert.throws(() => b.bindOutgoing(tx1, t.rx(element)), TypeError, "a Tx where an Rx is expected");
    assert.throws(() => b.bindOutgoing(rx1, t.rx(element)), /already bound/, "one channel per call");
  });

  test("callee: Request.channels is authoritative; too many or too few is call.request.channels", () => {
    let reg!: ChannelRegistry;
    const h = host([], () => reg);
    reg = new ChannelRegistry(h, false);
    const b = new CallChannelBinder(h, reg, [7]);
    const rx = b.bindIncoming(1234, t.rx(element));
    assert.ok(rx instanceof Rx);
    assert.equal(rx.id, 7, "the id from Request.channels, not the payload");
    assert.equal(rule(() => b.bindIncoming(9, t.tx(element))), "call.request.channels");
    const short = new CallChannelBinder(h, reg, [9, 11]);
    assert.ok(short.bindIncoming(0, t.tx(element)) instanceof Tx);
    assert.equal(rule(() => short.checkAllConsumed()), "call.request.channels");
  });

  test("fail() ends every channel of the call and burns its ids as reset; endReceivers() closes the receive ends", async () => {
    let reg!: ChannelRegistry;
    const h = host([], () => reg);
    reg = new ChannelRegistry(h, true);
    const b = new CallChannelBinder(h, reg);
    const [tx, rx] = channel<number>();
    b.bindOutgoing(rx, t.rx(element));
    const [farTx, nearRx] = channel<number>();
    b.bindOutgoing(farTx, t.tx(element));
    const error = new CancelledError("P.m", "local");
    b.fail(error);
    assert.equal(reg.openCount, 0);
    await assert.rejects(settled(tx.send(1)), (e) => e === error);
    await assert.rejects(settled(nearRx.next()), (e) => e === error);
    assert.equal(rule(() => reg.onData(nearRx.id!, new Uint8Array(1))), undefined, "late Data on a reset channel is ignored");

    const b2 = new CallChannelBinder(h, reg);
    const [farTx2, nearRx2] = channel<number>();
    b2.bindOutgoing(farTx2, t.tx(element));
    b2.endReceivers();
    assert.deepEqual(await settled(nearRx2.next()), { value: undefined, done: true });
    assert.equal(reg.openCount, 0);
    assert.equal(rule(() => reg.onData(nearRx2.id!, new Uint8Array(1))), "channeling.data-after-close");
  });
});

describe("OutgoingCalls", () => {
  const Svc = defineService("Unit", {
    feed: method([arg("input", t.rx(t.u32))], t.unit),
  });

  function outgoing(opts: { handshake?: Promise<void> } = {}) {
    const sent: Message[] = [];
    let closed: RoamError | null = null;
    let reg!: ChannelRegistry;
    const h = host(sent, () => reg);
    reg = new ChannelRegistry(h, true);
    let handshake = opts.handshake;
    void handshake?.then(() => (handshake = undefined));
    const calls = new OutgoingCalls({
      connId: 0,
      host: h,
      registry: reg,
      send: (m) => sent.push(m),
      closedError: () => closed,
      handshakePending: () => handshake,
    });
    return {
      calls,
      sent,
      reg,
      close(e: RoamError) {
        closed = e;
        calls.teardown(e);
      },
    };
  }

  test("every pending call settles with the close error, and its channels fail with it", async () => {
    const o = outgoing();
    const raw = o.calls.callRaw(1n, new Uint8Array([1]));
    const [tx, rx] = channel<number>();
    const typed = o.calls.call(Svc.methods.feed, [rx]);
    assert.equal(o.calls.size, 2);
    assert.deepEqual(
      o.sent.map((m) => m.type),
      ["Request", "Request"],
    );
    const error = new ConnectionClosedError("link lost", "transport");
    o.close(error);
    await assert.rejects(settled(raw), (e) => e === error);
    await assert.rejects(settled(typed), (e) => e === error);
    await assert.rejects(settled(tx.send(1)), (e) => e === error);
    assert.equal(o.calls.size, 0);
    assert.equal(o.reg.openCount, 0);
    await assert.rejects(o.calls.callRaw(2n, new Uint8Array()), (e) => e === error, "a call after close rejects at once");
    assert.equal(o.sent.length, 2, "nothing is sent after close");
  });

  test("a Response whose metadata is over the limits is a violation, and its call still settles when the connection closes", async () => {
    const o = outgoing();
    const raw = o.calls.callRaw(1n, new Uint8Array([1]));
    await new Promise((r) => setImmediate(r));
    const req = o.sent[0]!;
    assert.equal(req.type, "Request");
    const requestId = (req as { requestId: number }).requestId;
    assert.throws(
      () => o.calls.onResponse({ type: "Response", connId: 0, requestId, metadata: [["k".repeat(300), "v"]], channels: [], payload: new Uint8Array([0]) }),
      (e) => e instanceof ProtocolViolation && e.rule === "call.metadata.limits",
    );
    const error = new ConnectionClosedError("call.metadata.limits: response metadata", "local");
    o.close(error);
    await assert.rejects(settled(raw), (e) => e === error);
  });

  test("a call made before the handshake waits for it; an abandoned call sends Cancel and ignores its late Response", async () => {
    let done!: () => void;
    const o = outgoing({ handshake: new Promise<void>((r) => (done = r)) });
    const ac = new AbortController();
    const p = o.calls.callRaw(5n, new Uint8Array([9]), { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(o.sent.length, 0, "held until the handshake");
    done();
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(o.sent.length, 1);
    const req = o.sent[0]!;
    assert.equal(req.type, "Request");
    const list: InFlightCall[] = [];
    o.calls.inFlight(list);
    assert.equal(list.length, 1);
    ac.abort();
    await assert.rejects(settled(p), CancelledError);
    assert.equal(o.sent.at(-1)!.type, "Cancel");
    assert.equal(o.calls.size, 0);
    o.calls.onResponse({ type: "Response", connId: 0, requestId: (req as { requestId: number }).requestId, metadata: [], channels: [], payload: new Uint8Array([0]) });
  });

  test("a Cancelled Response fails the typed call and the channels it opened (channeling.lifecycle.speculative)", async () => {
    const o = outgoing();
    const [tx, rx] = channel<number>();
    const p = o.calls.call(Svc.methods.feed, [rx]);
    const req = o.sent[0] as { requestId: number };
    // RESPONSE_CANCELLED with no roam-error: CancelledError from the remote.
    o.calls.onResponse({ type: "Response", connId: 0, requestId: req.requestId, metadata: [], channels: [], payload: Uint8Array.of(1, 3) });
    await assert.rejects(settled(p), CancelledError);
    await assert.rejects(settled(tx.send(1)), CancelledError);
    assert.equal(o.calls.size, 0);
  });
});
