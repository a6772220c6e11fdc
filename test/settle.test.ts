/**
 * Everything settles (issue 11, item 4): when a link or connection closes,
 * every pending call, tx.send, rx.next, credit wait and handshake wait
 * rejects with ConnectionClosedError carrying the cause, and a handler's
 * ctx.signal says whether the peer cancelled (CancelledError, by "remote")
 * or the connection was lost (ConnectionClosedError).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { channel } from "../src/session/channel/pair.js";
import type { Rx } from "../src/session/channel/rx.js";
import type { Tx } from "../src/session/channel/tx.js";
import { CancelledError, ConnectionClosedError } from "../src/session/errors.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { Link } from "../src/session/link.js";
import { client, serve } from "../src/session/serve.js";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { memoryTransportPair } from "./helpers/memory-transport.js";

const Probe = defineService("Probe", {
  hang: method([arg("tag", t.u32)], t.unit),
  drain: method([arg("input", t.rx(t.u32))], t.u64),
  pump: method([arg("n", t.u32), arg("output", t.tx(t.u32))], t.unit),
});

type Seen = { signalReason?: unknown; channelError?: unknown };

function probeImpl(seen: Seen) {
  return serve(Probe, {
    hang: (_tag, ctx) =>
      new Promise<void>((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => {
          seen.signalReason = ctx.signal.reason;
          reject(ctx.signal.reason);
        });
      }),
    drain: async (input, ctx) => {
      let total = 0n;
      try {
        for await (const v of input) total += BigInt(v);
      } catch (e) {
        seen.channelError = e;
        seen.signalReason = ctx.signal.reason;
        throw e;
      }
      return total;
    },
    pump: async (n, output) => {
      for (let i = 0; i < n; i++) await output.send(i);
    },
  });
}

async function pair(opts: { credit?: number; serverDispatcher?: ReturnType<typeof probeImpl>; startServer?: boolean } = {}) {
  const mt = memoryTransportPair();
  const hs = () => new HelloHandshake({ maxPayloadSize: 1024 * 1024, initialChannelCredit: opts.credit ?? 64 * 1024 });
  const server = new Link(mt.b, { initiator: false, handshake: hs(), dispatcher: opts.serverDispatcher ?? probeImpl({}) });
  const clientLink = new Link(mt.a, { initiator: true, handshake: hs(), dispatcher: null });
  const ready = clientLink.start();
  if (opts.startServer !== false) {
    await Promise.all([server.start(), ready]);
  } else {
    ready.catch(() => {});
  }
  return { mt, server, client: clientLink };
}

/** Resolves to "resolved" / the rejection, or "pending" if neither happened within `ms`. */
async function outcome(p: Promise<unknown>, ms = 2000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    p.then(
      () => "resolved",
      (e: unknown) => e,
    ),
    new Promise((res) => (timer = setTimeout(() => res("pending"), ms))),
  ]);
  clearTimeout(timer);
  return r;
}

/** Attaches handlers now; resolves with "resolved" or the rejection reason. */
function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => "resolved",
    (e: unknown) => e,
  );
}

/** Like outcome() for an already-settling promise. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise((res) => (timer = setTimeout(() => res("pending"), ms)))]);
  clearTimeout(timer);
  return r;
}

function isClosed(e: unknown, by?: string): boolean {
  return e instanceof ConnectionClosedError && (by === undefined || e.by === by);
}

describe("everything settles when a link closes", () => {
  test("a Tx passed to a call rejected because the link had closed: send() rejects", async () => {
    const { client: c } = await pair();
    c.close();
    const p = client(Probe, c.root);
    const [tx, rx] = channel<number>();
    const call = p.drain(rx);
    assert.ok(isClosed(await outcome(call)), "call rejects with ConnectionClosedError");
    const sent = await outcome(tx.send(1));
    assert.ok(isClosed(sent), `tx.send settles with ConnectionClosedError, got ${String(sent)}`);
    const [otx, orx] = channel<number>();
    assert.ok(isClosed(await outcome(p.pump(3, otx))));
    const next = await outcome(orx.next());
    assert.ok(isClosed(next), `rx.next settles with ConnectionClosedError, got ${String(next)}`);
  });

  test("calls and channels waiting for the handshake settle when the link closes first", async () => {
    const { mt, client: c } = await pair({ startServer: false });
    const p = client(Probe, c.root);
    const [tx, rx] = channel<number>();
    const call = p.drain(rx);
    const send = tx.send(7);
    mt.drop(new Error("cable cut"));
    const r = await outcome(call);
    assert.ok(isClosed(r, "transport"), `call: ${String(r)}`);
    assert.equal((r as ConnectionClosedError).cause instanceof Error && ((r as ConnectionClosedError).cause as Error).message, "cable cut", "carries the cause");
    assert.ok(isClosed(await outcome(send), "transport"));
  });

  test("a credit wait rejects with ConnectionClosedError when the transport drops", async () => {
    const seen: Seen = {};
    const { mt, client: c } = await pair({ credit: 16, serverDispatcher: probeImpl(seen) });
    const p = client(Probe, c.root);
    const [tx, rx] = channel<number>();
    const call = p.drain(rx);
    // The handler drains, but 16 bytes of credit run out after a few values
    // of 5 bytes unless Credit arrives: stop the server from reading by dropping.
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 10; i++) sends.push(tx.send(0xfffffff));
    mt.drop(new Error("cable cut"));
    for (const s of sends) {
      const r = await outcome(s);
      assert.ok(r === "resolved" || isClosed(r, "transport"), `send: ${String(r)}`);
    }
    assert.ok(sends.length > 0);
    assert.ok(isClosed(await outcome(call), "transport"));
  });

  test("ctx.signal: the peer cancelled vs the connection was lost", async () => {
    const seen1: Seen = {};
    const a = await pair({ serverDispatcher: probeImpl(seen1) });
    const ac = new AbortController();
    const call = client(Probe, a.client.root).hang(1, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await outcome(call);
    for (let i = 0; i < 50 && seen1.signalReason === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(seen1.signalReason instanceof CancelledError, `peer cancel: ${String(seen1.signalReason)}`);
    assert.equal((seen1.signalReason as CancelledError).by, "remote");
    a.client.close();

    const seen2: Seen = {};
    const b = await pair({ serverDispatcher: probeImpl(seen2) });
    const call2 = client(Probe, b.client.root).hang(2);
    await new Promise((r) => setTimeout(r, 20));
    b.mt.drop(new Error("cable cut"));
    assert.ok(isClosed(await outcome(call2), "transport"));
    assert.ok(isClosed(seen2.signalReason, "transport"), `connection lost: ${String(seen2.signalReason)}`);
  });

  test("a handler's channels fail with ConnectionClosedError, not 'cancelled by the peer', when the transport drops", async () => {
    const seen: Seen = {};
    const { mt, client: c } = await pair({ serverDispatcher: probeImpl(seen) });
    const [tx, rx] = channel<number>();
    const call = client(Probe, c.root).drain(rx);
    await tx.send(1);
    await new Promise((r) => setTimeout(r, 20));
    mt.drop(new Error("cable cut"));
    await outcome(call);
    for (let i = 0; i < 50 && seen.channelError === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(isClosed(seen.channelError, "transport"), `handler's rx: ${String(seen.channelError)}`);
    assert.ok(isClosed(seen.signalReason, "transport"), `handler's signal: ${String(seen.signalReason)}`);
  });
});

describe("property: closing at a random point leaves nothing pending", () => {
  type Op = { kind: "echo" } | { kind: "sum"; n: number } | { kind: "generate"; n: number } | { kind: "hang" };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.constant<Op>({ kind: "echo" }),
    fc.record({ kind: fc.constant("sum" as const), n: fc.integer({ min: 0, max: 40 }) }),
    fc.record({ kind: fc.constant("generate" as const), n: fc.integer({ min: 0, max: 40 }) }),
    fc.constant<Op>({ kind: "hang" }),
  );
  const closeArb = fc.constantFrom("drop", "client-close", "server-close", "server-violation");

  test("every call, send and next settles; failures are ConnectionClosedError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 30 }), closeArb, async (ops, closeAfterTicks, how) => {
        const tb = Testbed;
        const mt = memoryTransportPair();
        const hs = () => new HelloHandshake({ maxPayloadSize: 64 * 1024, initialChannelCredit: 64 });
        const server = new Link(mt.b, { initiator: false, handshake: hs(), dispatcher: serve(tb, testbedImpl) });
        const c = new Link(mt.a, { initiator: true, handshake: hs(), dispatcher: null });
        void server.start().catch(() => {});
        const startP = c.start();
        const tbc = client(tb, c.root);
        // Every promise gets its handlers at once (a rejection before the
        // close is an outcome too, not an unhandled rejection).
        const tracked: Promise<unknown>[] = [];
        const pending = { push: (p: Promise<unknown>) => tracked.push(settle(p)) };
        pending.push(startP);
        for (const op of ops) {
          switch (op.kind) {
            case "echo":
              pending.push(tbc.echo("x"));
              break;
            case "hang": {
              // sum over a channel that is never closed: the handler waits until the link ends.
              const [tx, rx] = channel<number>();
              pending.push(tbc.sum(rx));
              pending.push(tx.send(1));
              break;
            }
            case "sum": {
              const [tx, rx] = channel<number>();
              pending.push(tbc.sum(rx));
              pending.push(
                (async () => {
                  for (let i = 0; i < op.n; i++) await tx.send(i);
                  await tx.close();
                })(),
              );
              break;
            }
            case "generate": {
              const [tx, rx] = channel<number>();
              pending.push(tbc.generate(op.n, tx));
              pending.push(
                (async () => {
                  for (;;) {
                    const r = await rx.next();
                    if (r.done) return;
                  }
                })(),
              );
              break;
            }
          }
        }
        for (let i = 0; i < closeAfterTicks; i++) await new Promise((r) => setImmediate(r));
        switch (how) {
          case "drop":
            mt.drop(new Error("dropped"));
            break;
          case "client-close":
            c.close("bye");
            break;
          case "server-close":
            server.close("bye");
            break;
          case "server-violation":
            // A Data on a channel never opened: the server says Goodbye with the rule id.
            (mt.a as { send(m: unknown): void }).send({ type: "Data", connId: 0, channelId: 999, payload: Uint8Array.of(1) });
            break;
        }
        if (how === "server-violation") {
          // The client learns of it from the Goodbye; make sure the link does end.
          setTimeout(() => c.close(), 50).unref();
        }
        const results = await Promise.all(tracked.map((p) => settledWithin(p, 3000)));
        for (const [i, r] of results.entries()) {
          assert.notEqual(r, "pending", `promise ${i} still pending after close (${how}, ops ${JSON.stringify(ops)})`);
          if (r !== "resolved") {
            assert.ok(r instanceof ConnectionClosedError, `promise ${i} rejected with ${String(r)} (${how})`);
          }
        }
        c.close();
        server.close();
      }),
      { numRuns: 40 },
    );
  });
});
