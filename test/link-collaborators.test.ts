/**
 * Unit tests for the link's collaborators (issue 13), each driven through
 * its port alone: the inbound pacer (pause on reply backlog, resume in
 * order, bounded holding) and the connection table (Connect/Accept/Reject,
 * id allocation around closed ids, the connection limit, shutdown).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConnectionTable } from "../src/session/connection-table.js";
import type { Connection, ConnectionControl } from "../src/session/connection.js";
import { ConnectionClosedError, ConnectionRejectedError, ProtocolViolation, type RoamError } from "../src/session/errors.js";
import { InboundPacer, MAX_DEFERRED_MESSAGES } from "../src/session/inbound.js";
import type { Message } from "../src/wire/message.js";

const turn = () => new Promise<void>((r) => setImmediate(r));

describe("InboundPacer", () => {
  // A frozen clock: the pacer's 10 ms turn budget must not be spent by a slow
  // (loaded, or instrumented by a mutation run) machine, which would pause
  // reading where these tests expect the reply backlog alone to decide.
  before(() => {
    performance.now = () => 1000;
  });
  after(() => {
    delete (performance as { now?: unknown }).now;
  });

  function pacer() {
    const handled: number[] = [];
    const calls: string[] = [];
    let backlog = 0;
    let drain: (() => void) | null = null;
    let overflow: string | null = null;
    const p = new InboundPacer({
      transport: {
        replyBacklog: () => backlog,
        onReplyDrain: (_below, cb) => {
          drain = cb;
        },
        pauseReading: () => calls.push("pause"),
        resumeReading: () => calls.push("resume"),
      },
      replyMark: 100,
      handle: (m) => handled.push((m as { requestId: number }).requestId),
      isClosed: () => false,
      overflow: (reason) => {
        overflow = reason;
      },
    });
    const msg = (requestId: number): Message => ({ type: "Cancel", connId: 0, requestId });
    return {
      p,
      handled,
      calls,
      msg,
      setBacklog: (n: number) => (backlog = n),
      drain: () => drain?.(),
      overflow: () => overflow,
    };
  }

  test("replies backing up pause reading; what arrives meanwhile is handled in order after they drain", async () => {
    const t = pacer();
    t.p.receive(t.msg(1), performance.now());
    assert.equal(t.p.paused, false);
    t.setBacklog(500);
    t.p.receive(t.msg(2), performance.now());
    assert.equal(t.p.paused, true);
    assert.deepEqual(t.calls, ["pause"]);
    t.p.receive(t.msg(3), performance.now());
    t.p.receive(t.msg(4), performance.now());
    assert.deepEqual(t.handled, [1, 2], "held while paused");
    t.setBacklog(0);
    t.drain();
    assert.deepEqual(t.handled, [1, 2], "resumes in a later turn, not from the drain callback");
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3, 4]);
    assert.equal(t.p.paused, false);
    assert.deepEqual(t.calls, ["pause", "resume"]);
  });

  test("a reply backlog exactly at the mark does not pause; only above it, also while resuming", async () => {
    const t = pacer();
    t.setBacklog(100);
    t.p.receive(t.msg(1), performance.now());
    assert.equal(t.p.paused, false, "at the mark");
    t.setBacklog(101);
    t.p.receive(t.msg(2), performance.now());
    assert.equal(t.p.paused, true, "above it");
    t.p.receive(t.msg(3), performance.now());
    t.p.receive(t.msg(4), performance.now());
    t.setBacklog(100);
    t.drain();
    await turn();
    assert.deepEqual(t.handled, [1, 2, 3, 4], "held messages all handled while the backlog stays at the mark");
    assert.equal(t.p.paused, false);
  });

  test("resuming held messages stops once more than the 10 ms turn budget is spent, not at exactly 10 ms", async () => {
    const t = pacer();
    t.setBacklog(500);
    t.p.receive(t.msg(1), performance.now());
    for (const id of [2, 3, 4]) t.p.receive(t.msg(id), performance.now());
    t.setBacklog(0);
    // A clock that moves 10 ms on each reading: the resume loop starts its turn (1st reading),
    // handles 2 (10 ms spent: within the budget), handles 3 (20 ms: over) and yields.
    let now = 5000;
    performance.now = () => (now += 10);
    try {
      t.drain();
      await turn();
      assert.deepEqual(t.handled, [1, 2, 3]);
      assert.equal(t.p.paused, true, "yielded with 4 still held");
      await turn();
      assert.deepEqual(t.handled, [1, 2, 3, 4]);
    } finally {
      performance.now = () => 1000;
    }
  });

  test("holding is bounded: past MAX_DEFERRED_MESSAGES the link is told to close", () => {
    const t = pacer();
    t.setBacklog(500);
    t.p.receive(t.msg(0), performance.now());
    for (let i = 0; i < MAX_DEFERRED_MESSAGES; i++) t.p.receive(t.msg(i), performance.now());
    assert.equal(t.overflow(), null);
    t.p.receive(t.msg(-1), performance.now());
    assert.match(t.overflow() ?? "", /flow\.backpressure/);
  });
});

describe("ConnectionTable", () => {
  function fakeControl(connId: number, torn: RoamError[]): ConnectionControl {
    return {
      connection: { connId, pendingCalls: 0, servingCalls: 0 } as unknown as Connection,
      handle: () => {},
      teardown: (e) => torn.push(e),
      inFlight: () => [],
      channels: { openCount: 0 } as ConnectionControl["channels"],
    };
  }

  function table(maxConnections = 8) {
    const sent: Message[] = [];
    const torn: RoamError[] = [];
    let closed: RoamError | null = null;
    const t = new ConnectionTable(
      {
        send: (m) => sent.push(m),
        open: (connId) => fakeControl(connId, torn),
        closedError: () => closed,
        ready: () => Promise.resolve(),
        connectTimeoutMs: 1000,
        acceptBacklog: 2,
        maxConnections,
      },
      fakeControl(0, torn),
    );
    return { t, sent, torn, close: (e: RoamError) => ((closed = e), t.shutdown(e)) };
  }

  test("a Connect while not listening is rejected; accepted connections get fresh ids, never a recently closed one", async () => {
    const { t, sent } = table();
    t.onConnect({ type: "Connect", requestId: 1, metadata: [] });
    assert.deepEqual(sent.at(-1), { type: "Reject", requestId: 1, reason: "not listening", metadata: [] });
    // Our own Connect: the peer assigns id 1, then that connection closes.
    const ours = t.connect();
    await turn();
    t.onAccept({ type: "Accept", requestId: (sent.at(-1) as { requestId: number }).requestId, connId: 1, metadata: [] });
    await ours;
    t.forget(t.get(1)!, new ConnectionClosedError("bye", "local"));
    assert.equal(t.recentlyClosed(1), true);
    // A late message for 1 is told apart from an unknown id: 1 is not handed out again.
    t.acceptConnections(() => null);
    t.onConnect({ type: "Connect", requestId: 2, metadata: [] });
    assert.equal(sent.at(-1)!.type, "Accept");
    assert.equal((sent.at(-1) as { connId: number }).connId, 2);
    t.onConnect({ type: "Connect", requestId: 3, metadata: [] });
    assert.equal((sent.at(-1) as { connId: number }).connId, 3);
    assert.equal(t.size, 3);
  });

  test("over maxConnections a Connect is rejected, and a duplicate Connect request id is a violation", () => {
    const { t, sent } = table(1);
    t.acceptConnections(() => null);
    t.onConnect({ type: "Connect", requestId: 1, metadata: [] });
    t.onConnect({ type: "Connect", requestId: 2, metadata: [] });
    assert.equal(sent.at(-1)!.type, "Reject");
    assert.match((sent.at(-1) as { reason: string }).reason, /maxConnections/);
    const { t: t2 } = table();
    t2.incomingConnections();
    t2.onConnect({ type: "Connect", requestId: 5, metadata: [] });
    assert.throws(() => t2.onConnect({ type: "Connect", requestId: 5, metadata: [] }), ProtocolViolation);
  });

  test("connect() resolves on Accept, rejects on Reject; shutdown fails pending Connects and tears every connection down", async () => {
    const { t, sent, torn, close } = table();
    const ok = t.connect();
    await turn();
    const req = sent.at(-1) as { requestId: number };
    t.onAccept({ type: "Accept", requestId: req.requestId, connId: 7, metadata: [] });
    assert.equal((await ok).connId, 7);
    assert.throws(() => t.onAccept({ type: "Accept", requestId: 99, connId: 8, metadata: [] }), ProtocolViolation);
    const refused = t.connect();
    await turn();
    t.onReject({ type: "Reject", requestId: (sent.at(-1) as { requestId: number }).requestId, reason: "no", metadata: [] });
    await assert.rejects(refused, ConnectionRejectedError);
    const pending = t.connect();
    await turn();
    const error = new ConnectionClosedError("gone", "transport");
    close(error);
    await assert.rejects(pending, (e) => e === error);
    assert.equal(t.size, 0);
    assert.deepEqual(torn, [error, error], "connection 0 and 7");
  });
});
