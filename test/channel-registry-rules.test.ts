/**
 * The channel registry's routing of Data/Close/Reset/Credit (issue 19): every
 * message kind against every state an id can be in — live receive end, live
 * send end, raw claim, recently closed, recently reset, opened long ago,
 * never opened, and 0 — with the rule each case must name (or "ignored").
 * Pure units: real Rx/Tx bound to a recording host, no link or transport.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CallChannelBinder } from "../src/session/channel/binder.js";
import type { ChannelHost } from "../src/session/channel/host.js";
import { channel } from "../src/session/channel/pair.js";
import { rawChannelPort } from "../src/session/channel/raw.js";
import { recorder, recordingSink } from "./helpers/channel-recorder.js";
import { ChannelRegistry } from "../src/session/channel/registry.js";
import { Rx } from "../src/session/channel/rx.js";
import { Tx } from "../src/session/channel/tx.js";
import { ChannelResetError, ConnectionClosedError, ProtocolViolation } from "../src/session/errors.js";
import { CreditMessageFlowControl } from "../src/session/flow.js";
import { t } from "../src/schema/index.js";

const CONN = 5;
const MAX = 8;

/** A host that only records (the registry rules never depend on what it sends). */
const host = (): ChannelHost => recorder({ connId: CONN, max: MAX, window: 64 });

/** The rule a violation names, "ok" when `f` returns normally. Checks the connection id too. */
function outcome(f: () => void): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProtocolViolation, `expected a ProtocolViolation, got ${String(e)}`);
    assert.equal(e.connId, CONN, "the violation names the registry's connection");
    return e.rule;
  }
  return "ok";
}

const sink = recordingSink;

type State = "never" | "zero" | "closed" | "reset" | "opened-long-ago" | "rx" | "tx";

/** A registry where channel `id` (7 unless zero) is in `state`. */
function registryWith(state: State): { r: ChannelRegistry; id: number; rx: Rx<number>; tx: Tx<number> } {
  const h = host();
  // Remembers one ended id: "opened-long-ago" is pushed out by a later one.
  const r = new ChannelRegistry(h, true, 1);
  const id = state === "zero" ? 0 : 7;
  const rx = new Rx<number>();
  const tx = new Tx<number>();
  if (state === "never" || state === "zero") return { r, id, rx, tx };
  r.notePeerId(id);
  if (state === "rx" || state === "closed") {
    rx.bind(h, id, t.u8);
    r.addIncoming(id, rx);
    if (state === "closed") r.onClose(id);
  } else if (state === "tx" || state === "reset") {
    tx.bind(h, id, t.u8);
    r.addOutgoing(id, tx);
    if (state === "reset") r.onReset(id);
  } else {
    r.release(id, "reset");
    r.notePeerId(9);
    r.release(9, "reset"); // the memory holds one id: 7 is only "opened" now
  }
  return { r, id, rx, tx };
}

const DATA = Uint8Array.of(3);

describe("ChannelRegistry: each message against each state of its id", () => {
  const expected: Record<State, Record<"Data" | "Close" | "Reset" | "Credit", string>> = {
    never: { Data: "channeling.unknown", Close: "channeling.unknown", Reset: "channeling.unknown", Credit: "channeling.unknown" },
    zero: { Data: "channeling.id.zero-reserved", Close: "channeling.id.zero-reserved", Reset: "channeling.id.zero-reserved", Credit: "channeling.id.zero-reserved" },
    closed: { Data: "channeling.data-after-close", Close: "channeling.data-after-close", Reset: "ok", Credit: "ok" },
    reset: { Data: "ok", Close: "ok", Reset: "ok", Credit: "ok" },
    "opened-long-ago": { Data: "channeling.data-after-close", Close: "channeling.data-after-close", Reset: "ok", Credit: "ok" },
    rx: { Data: "ok", Close: "ok", Reset: "ok", Credit: "core.channel" },
    tx: { Data: "core.channel", Close: "core.channel", Reset: "ok", Credit: "ok" },
  };
  for (const [state, row] of Object.entries(expected) as [State, Record<string, string>][]) {
    for (const [kind, want] of Object.entries(row)) {
      test(`${kind} on a channel that is ${state}: ${want}`, () => {
        const { r, id } = registryWith(state);
        const send = {
          Data: () => r.onData(id, DATA),
          Close: () => r.onClose(id),
          Reset: () => r.onReset(id),
          Credit: () => r.onCredit(id, 10),
        }[kind]!;
        assert.equal(outcome(send), want);
      });
    }
  }
});

describe("ChannelRegistry: what routing does to the channel", () => {
  test("Data reaches the Rx; Close ends it and the id counts as closed from then on", async () => {
    const { r, id, rx } = registryWith("rx");
    r.onData(id, Uint8Array.of(42));
    assert.equal(r.openCount, 1);
    r.onClose(id);
    assert.equal(r.openCount, 0);
    assert.deepEqual(await rx.next(), { value: 42, done: false });
    assert.deepEqual(await rx.next(), { value: undefined, done: true });
    assert.equal(outcome(() => r.onClose(id)), "channeling.data-after-close");
  });

  test("an element of exactly max_payload_size is accepted, one byte more is channeling.data.size-limit", async () => {
    const { r, id, rx } = registryWith("rx");
    const h = host();
    const bytesRx = new Rx<Uint8Array>();
    const bid = 11;
    r.notePeerId(bid);
    bytesRx.bind(h, bid, t.bytes);
    r.addIncoming(bid, bytesRx);
    const exact = new Uint8Array(MAX);
    exact[0] = MAX - 1; // varint length prefix, then MAX - 1 bytes
    assert.equal(outcome(() => r.onData(bid, exact)), "ok");
    assert.equal((await bytesRx.next()).value?.length, MAX - 1);
    assert.equal(outcome(() => r.onData(bid, new Uint8Array(MAX + 1))), "channeling.data.size-limit");
    assert.equal(outcome(() => r.onData(id, new Uint8Array(MAX + 1))), "channeling.data.size-limit");

    const raw = sink();
    r.claim(13, raw);
    assert.equal(outcome(() => r.onData(13, new Uint8Array(MAX))), "ok");
    assert.equal(outcome(() => r.onData(13, new Uint8Array(MAX + 1))), "channeling.data.size-limit");
    assert.deepEqual(raw.seen, [`data:${MAX}`]);
  });

  test("a Reset of a receive end fails it with ChannelResetError('remote'); later Data is ignored", async () => {
    const { r, id, rx } = registryWith("rx");
    r.onReset(id);
    assert.equal(r.openCount, 0);
    const e = await rx.next().then(() => null, (x: unknown) => x);
    assert.ok(e instanceof ChannelResetError);
    assert.equal(e.by, "remote");
    assert.equal(outcome(() => r.onData(id, DATA)), "ok");
    assert.equal(outcome(() => r.onClose(id)), "ok");
  });

  test("a Reset of a send end fails it with ChannelResetError('remote'); later Credit and Data are ignored", async () => {
    const { r, id, tx } = registryWith("tx");
    r.onReset(id);
    assert.equal(r.openCount, 0);
    const e = await tx.send(1).then(() => null, (x: unknown) => x);
    assert.ok(e instanceof ChannelResetError);
    assert.equal(e.by, "remote");
    assert.equal(outcome(() => r.onCredit(id, 5)), "ok");
    assert.equal(outcome(() => r.onData(id, DATA)), "ok");
  });

  test("Credit reaches the Tx's send credit", () => {
    const { r, id, tx } = registryWith("tx");
    assert.equal(tx.stats().creditOutstanding, 64);
    r.onCredit(id, 10);
    assert.equal(tx.stats().creditOutstanding, 74);
  });

  test("a live send end is a collision for a peer id; a claimed id is skipped by allocate", () => {
    const { r, id } = registryWith("tx");
    assert.equal(outcome(() => r.notePeerId(id)), "channeling.id.uniqueness");
    const r2 = new ChannelRegistry(host(), true);
    r2.claim(1, sink()); // claimed without notePeerId: only the live maps know it
    r2.claim(3, sink());
    assert.equal(r2.allocate(), 5);
    const r3 = new ChannelRegistry(host(), true);
    r3.addOutgoing(1, new Tx());
    assert.equal(r3.allocate(), 3);
    const r4 = new ChannelRegistry(host(), true);
    r4.addIncoming(1, new Rx());
    assert.equal(r4.allocate(), 3);
  });

  test("openCount counts each direction and the raw claims", () => {
    const r = new ChannelRegistry(host(), true);
    r.addIncoming(1, new Rx());
    r.addOutgoing(3, new Tx());
    r.addOutgoing(5, new Tx());
    r.claim(7, sink());
    assert.equal(r.openCount, 4);
  });

  test("failAll fails receive ends, send ends and raw claims with the error, and forgets them", async () => {
    const h = host();
    const r = new ChannelRegistry(h, true);
    const rx = new Rx<number>();
    rx.bind(h, 1, t.u8);
    r.addIncoming(1, rx);
    const tx = new Tx<number>();
    tx.bind(h, 3, t.u8);
    r.addOutgoing(3, tx);
    const raw = sink();
    r.claim(5, raw);
    const error = new ConnectionClosedError("gone", "local");
    r.failAll(error);
    assert.equal(r.openCount, 0);
    await assert.rejects(rx.next(), (e) => e === error);
    await assert.rejects(tx.send(1), (e) => e === error);
    assert.deepEqual(raw.seen, [`fail:${error.message}`]);
  });

  test("a peer id that was recently reset and is used again is no longer 'reset'", () => {
    const { r, id } = registryWith("reset");
    r.notePeerId(id);
    // Opened again and not registered under any end: Data is no longer silently ignored.
    assert.equal(outcome(() => r.onData(id, DATA)), "channeling.data-after-close");
  });

  test("re-ending an id refreshes its place in the bounded memory of ended ids", () => {
    const r = new ChannelRegistry(host(), true, 2);
    for (const id of [1, 3, 5]) r.notePeerId(id);
    r.release(1, "reset");
    r.release(3, "reset");
    r.release(1, "reset"); // 1 is now the newest
    r.release(5, "reset"); // pushes out the oldest: 3
    assert.equal(outcome(() => r.onData(1, DATA)), "ok", "1 is still remembered as reset");
    assert.equal(outcome(() => r.onData(5, DATA)), "ok");
    assert.equal(outcome(() => r.onData(3, DATA)), "channeling.data-after-close", "3 is only known as opened");
  });
});

describe("rawChannelPort", () => {
  test("each operation reaches the registry or the host of its connection", () => {
    const calls: string[] = [];
    const base = host();
    const h: ChannelHost = {
      ...base,
      initialCredit: 48,
      flow: {
        sender: (connId, id, initial) => (calls.push(`sender:${connId}:${id}:${initial}`), new CreditMessageFlowControl(() => {}).sender(connId, id, initial)),
        receiver: (connId, id, initial, buffered) => (calls.push(`receiver:${connId}:${id}:${initial}:${buffered()}`), new CreditMessageFlowControl(() => {}).receiver(connId, id, initial, buffered)),
      },
      sendData: (id, payload) => calls.push(`data:${id}:${payload.length}`),
      sendClose: (id) => calls.push(`close:${id}`),
      sendReset: (id) => calls.push(`reset:${id}`),
    };
    const r = new ChannelRegistry(h, true);
    const port = rawChannelPort(h, r);
    assert.equal(port.connId, CONN);
    assert.equal(port.initialCredit, 48);
    assert.equal(port.allocate(), 1);
    port.notePeerId(4);
    assert.equal(outcome(() => port.notePeerId(0)), "channeling.id.zero-reserved");
    const s = sink();
    port.claim(4, s);
    assert.equal(outcome(() => port.notePeerId(4)), "channeling.id.uniqueness", "claimed: live");
    r.onData(4, Uint8Array.of(1, 2));
    assert.deepEqual(s.seen, ["data:2"]);
    port.release(4, "reset");
    assert.equal(r.openCount, 0);
    assert.equal(outcome(() => r.onData(4, DATA)), "ok", "released as reset");
    assert.equal(port.receiveCredit(6, () => 3).outstanding, 48);
    assert.equal(port.sendCredit(8).available, 48);
    port.sendData(6, Uint8Array.of(1, 2, 3));
    port.sendClose(6);
    port.sendReset(8);
    assert.deepEqual(calls, [`receiver:${CONN}:6:48:3`, `sender:${CONN}:8:48`, "data:6:3", "close:6", "reset:8"]);
  });
});

describe("CallChannelBinder", () => {
  function binderHost() {
    const h = host();
    return { h, reg: new ChannelRegistry(h, true) };
  }

  test("a handle of the wrong kind or without a partner is a TypeError that says what it got", () => {
    const { h, reg } = binderHost();
    const b = new CallChannelBinder(h, reg);
    assert.throws(() => b.bindOutgoing(new Rx<number>(), t.rx(t.u8)), /no partner Tx/);
    assert.throws(() => b.bindOutgoing(new Tx<number>(), t.tx(t.u8)), /no partner Rx/);
    assert.throws(() => b.bindOutgoing(channel<number>()[0], t.rx(t.u8)), /got a Tx$/);
    assert.throws(() => b.bindOutgoing(channel<number>()[1], t.tx(t.u8)), /got an Rx$/);
    assert.throws(() => b.bindOutgoing(null, t.tx(t.u8)), /got null$/);
    assert.throws(() => b.bindOutgoing(7, t.rx(t.u8)), /got number$/);
  });

  test("callee without Request.channels: the ids in the payload are used, and nothing is left to consume", () => {
    const { h, reg } = binderHost();
    const b = new CallChannelBinder(h, reg);
    const rx = b.bindIncoming(5, t.rx(t.u8)) as Rx<number>;
    const tx = b.bindIncoming(6, t.tx(t.u8)) as Tx<number>;
    assert.equal(rx.id, 5);
    assert.equal(tx.id, 6);
    assert.deepEqual(b.ids, [5, 6]);
    assert.equal(outcome(() => b.checkAllConsumed()), "ok");
    assert.equal(reg.openCount, 2);
    assert.equal(outcome(() => reg.onCredit(6, 1)), "ok", "the Tx end is registered as a send end");
    assert.equal(outcome(() => reg.onData(5, DATA)), "ok", "the Rx end is registered as a receive end");
    const full = new CallChannelBinder(h, reg, [9]);
    full.bindIncoming(0, t.rx(t.u8));
    assert.equal(outcome(() => full.checkAllConsumed()), "ok");
    assert.equal(outcome(() => new CallChannelBinder(h, reg, [11]).bindIncoming(0, t.rx(t.u8)) && undefined), "ok");
    assert.equal(outcome(() => b.bindIncoming(9, t.rx(t.u8))), "channeling.id.uniqueness", "the peer's ids are checked");
  });

  test("fail releases every end as reset and fails it; endReceivers closes only the receive ends", async () => {
    const { h, reg } = binderHost();
    const b = new CallChannelBinder(h, reg, [3, 5]);
    const rx = b.bindIncoming(0, t.rx(t.u8)) as Rx<number>;
    const tx = b.bindIncoming(0, t.tx(t.u8)) as Tx<number>;
    const e = new ConnectionClosedError("gone", "local");
    assert.equal(reg.openCount, 2);
    b.fail(e);
    assert.equal(reg.openCount, 0);
    assert.equal(outcome(() => reg.onData(3, DATA)), "ok", "3 ended as reset: late Data is ignored");
    assert.equal(outcome(() => reg.onClose(5)), "ok", "5 ended as reset: a late Close is ignored");
    await assert.rejects(rx.next(), (x) => x === e);
    await assert.rejects(tx.send(1), (x) => x === e);

    const c = new CallChannelBinder(h, reg, [7, 9]);
    const rx2 = c.bindIncoming(0, t.rx(t.u8)) as Rx<number>;
    const tx2 = c.bindIncoming(0, t.tx(t.u8)) as Tx<number>;
    c.endReceivers();
    assert.equal(reg.openCount, 1, "the send end stays registered");
    assert.deepEqual(await rx2.next(), { value: undefined, done: true });
    assert.equal(tx2.isClosed, false, "send ends stay open");
    assert.equal(outcome(() => reg.onData(7, DATA)), "channeling.data-after-close");
  });
});
