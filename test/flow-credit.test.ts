/**
 * Send-credit objects of both flow-control backends (local counter with
 * Credit messages; SHM shared counters): waiters go strictly in order, an
 * aborted waiter leaves the queue and lets the next one through, and the
 * end of a channel fails everyone still waiting.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CounterSendCredit, type SendCredit } from "../src/session/flow.js";
import { ShmSendCredit, type CreditHost } from "../src/transport/shm/flow.js";
import type { ChannelTable } from "../src/transport/shm/segment.js";

interface Backend {
  /** A send credit starting with `initial` bytes, and a way to grant more. */
  make(initial: number): { credit: SendCredit; give(n: number): void; waiting(): boolean };
}

/** An SHM host whose channel table is one granted_total counter. */
function shmBackend(): Backend {
  return {
    make(initial) {
      let granted = initial;
      let waiting = false;
      const table = { granted: () => granted >>> 0 } as unknown as ChannelTable;
      const host: CreditHost = {
        table,
        disposed: () => {},
        waiting: (_c, on) => {
          waiting = on;
        },
        granted: () => {},
      };
      const credit = new ShmSendCredit(host, 7);
      credit.t = 1;
      return {
        credit,
        give(n) {
          granted += n;
          credit.poll(); // what the transport does when the peer's doorbell rings
        },
        waiting: () => waiting,
      };
    },
  };
}

const counterBackend: Backend = {
  make(initial) {
    const credit = new CounterSendCredit(initial);
    return { credit, give: (n) => credit.grant(n), waiting: () => false };
  },
};

/** Resolves to the order in which the given promises settled ("label" or "label!" if rejected). */
function settleOrder(ps: Record<string, Promise<void> | undefined>): { order: string[] } {
  const order: string[] = [];
  for (const [k, p] of Object.entries(ps)) {
    if (p === undefined) order.push(k);
    else p.then(() => order.push(k), () => order.push(`${k}!`));
  }
  return { order };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

for (const [name, backend] of [
  ["counter (Credit messages)", counterBackend],
  ["SHM (shared granted_total)", shmBackend()],
] as const) {
  describe(`send credit: ${name}`, () => {
    test("takes credit at once while it lasts, then waits; a small request never overtakes a big one", async () => {
      const b = backend.make(100);
      assert.equal(b.credit.acquire(60), undefined);
      assert.equal(b.credit.available, 40);
      const big = b.credit.acquire(50);
      const small = b.credit.acquire(10); // would fit, but must queue behind `big`
      assert.ok(big && small);
      const s = settleOrder({ big, small });
      await tick();
      assert.deepEqual(s.order, []);
      if (name.startsWith("SHM")) assert.equal(b.waiting(), true);
      b.give(10); // 50 available: big goes, small does not fit yet
      await tick();
      assert.deepEqual(s.order, ["big"]);
      b.give(10);
      await tick();
      assert.deepEqual(s.order, ["big", "small"]);
      assert.equal(b.credit.available, 0);
      if (name.startsWith("SHM")) assert.equal(b.waiting(), false);
    });

    test("an aborted waiter leaves the queue and the next one goes through", async () => {
      const b = backend.make(10);
      const ac = new AbortController();
      const big = b.credit.acquire(100, ac.signal);
      const small = b.credit.acquire(10);
      const s = settleOrder({ big, small });
      await tick();
      assert.deepEqual(s.order, []);
      ac.abort(new Error("caller gave up"));
      await tick();
      assert.deepEqual(s.order, ["big!", "small"]);
      await assert.rejects(big!, /caller gave up/);
      assert.equal(b.credit.available, 0);
    });

    test("an already-aborted signal rejects without queueing", async () => {
      const b = backend.make(0);
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(b.credit.acquire(5, ac.signal)!);
      if (name.startsWith("SHM")) assert.equal(b.waiting(), false);
      b.give(5);
      assert.equal(b.credit.acquire(5), undefined, "the aborted request took nothing");
    });

    test("dispose fails every waiter and every later acquire", async () => {
      const b = backend.make(0);
      const w1 = b.credit.acquire(1);
      const w2 = b.credit.acquire(2);
      b.credit.dispose(new Error("channel reset"));
      await assert.rejects(w1!, /channel reset/);
      await assert.rejects(w2!, /channel reset/);
      await assert.rejects(b.credit.acquire(1)!, /channel reset/);
    });
  });
}
