/**
 * The idle loop (transport/shm/sleeper.ts) on its own, with scripted ports
 * and a fake clock: when it spins and when it sleeps, how the spin budget
 * shrinks and recovers, what the sleeping flag says, the last look before
 * sleeping; and PeerBell: at most one ring per sleep of the peer.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PeerBell, RUNG, Sleeper, WANTS_CREDIT, WANTS_FRAMES, WANTS_ROOM, type SleeperPorts } from "../src/transport/shm/sleeper.js";
import { EXT } from "../src/transport/shm/layout.js";
import type { Waker } from "../src/transport/shm/waker.js";

const SPIN_US = 50;

function setup(script: Partial<{ inFlight: boolean; creditWaiting: boolean; queued: boolean; framesAfterPolls: number; framesAtLastLook: boolean }> = {}) {
  const s = { inFlight: false, creditWaiting: false, queued: false, framesAfterPolls: Infinity, framesAtLastLook: false, ...script };
  let clock = 1000;
  let polls = 0;
  let flagRaised = false;
  /** The frames of this turn were read (a scheduled follow-up turn finds none). */
  let consumed = false;
  const log: string[] = [];
  const i32 = new Int32Array(new SharedArrayBuffer(16));
  const stats = { sleeps: 0, spinHits: 0 };
  const ports: SleeperPorts = {
    stopped: () => false,
    callsInFlight: () => s.inFlight,
    canRead: () => true,
    hasFrames: () => {
      clock += 0.00001; // each poll costs 10 ns of the fake clock
      if (consumed) return false;
      if (flagRaised) return s.framesAtLastLook;
      return ++polls >= s.framesAfterPolls;
    },
    creditWaiting: () => s.creditWaiting,
    creditReady: () => false,
    queued: () => s.queued,
    read: () => {
      consumed = true;
      log.push("read");
    },
    flush: () => (log.push("flush"), false),
    pollCredits: () => (log.push("credits"), false),
    finish: () => false,
    sleep: (flag) => log.push(`sleep ${flag}`),
  };
  const sleeper = new Sleeper(
    { spinMicros: SPIN_US, flag: { i32, index: 1 }, stats, now: () => clock },
    {
      ...ports,
      flush: () => {
        flagRaised = Atomics.load(i32, 1) !== 0;
        return ports.flush();
      },
    },
  );
  return {
    sleeper,
    log,
    stats,
    i32,
    script: s,
    turn(): string[] {
      log.length = 0;
      polls = 0;
      flagRaised = false;
      consumed = false;
      Atomics.store(i32, 1, 0);
      sleeper.idle();
      return [...log];
    },
    advance(ms: number) {
      clock += ms;
    },
    now: () => clock,
  };
}

describe("SHM sleeper: spin, then sleep", () => {
  test("nothing expected: sleeps at once, waiting for frames only", () => {
    const h = setup();
    assert.deepEqual(h.turn(), ["flush", "credits", `sleep ${WANTS_FRAMES}`]);
    assert.equal(h.stats.sleeps, 1);
    assert.equal(h.stats.spinHits, 0);
    assert.equal(Atomics.load(h.i32, 1), WANTS_FRAMES, "the flag is raised before the last look");
    assert.equal(h.sleeper.asleep, true);
    h.sleeper.awake();
    assert.equal(Atomics.load(h.i32, 1), 0);
    assert.equal(h.sleeper.asleep, false);
  });

  test("a call in flight: spins, and a frame arriving within the budget is read without sleeping", () => {
    const h = setup({ inFlight: true, framesAfterPolls: 5 });
    assert.deepEqual(h.turn(), ["read", "credits", "flush"]);
    assert.equal(h.stats.spinHits, 1);
    assert.equal(h.stats.sleeps, 0);
  });

  test("recent input counts as expecting more; old input does not", () => {
    const h = setup({ framesAfterPolls: 3 });
    h.sleeper.noteInput();
    assert.deepEqual(h.turn(), ["read", "credits", "flush"], "input a moment ago: spin");
    h.advance((4 * SPIN_US) / 1000);
    assert.deepEqual(h.turn(), ["flush", "credits", `sleep ${WANTS_FRAMES}`], "input 4 spin budgets ago: sleep at once");
  });

  test("spin misses halve the budget down to nothing; then a probe every 32 turns, and a hit restores it", () => {
    const h = setup({ inFlight: true }); // no frame ever arrives
    const spent: number[] = [];
    for (let i = 0; i < 6; i++) {
      const t0 = h.now();
      h.turn();
      spent.push(Math.round((h.now() - t0) * 1000)); // µs
    }
    // 50 → 25 → 12.5 → 6.25 → 3.125 µs, then 0 (below 50/16): the sixth turn does not spin.
    const want = [50, 25, 12.5, 6.25, 3.125, 0];
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(spent[i]! - want[i]!) <= 1, `turn ${i}: spun ${spent[i]} µs, want ${want[i]}`);
    assert.equal(h.stats.sleeps, 6);
    h.script.framesAfterPolls = 1; // a frame would be there at once if we spun
    for (let i = 0; i < 30; i++) assert.deepEqual(h.turn(), ["flush", "credits", `sleep ${WANTS_FRAMES}`], `turn ${i}: no spin while the budget is 0`);
    assert.deepEqual(h.turn(), ["read", "credits", "flush"], "the 32nd turn without budget probes with a full one");
    assert.equal(h.stats.spinHits, 1);
    assert.deepEqual(h.turn(), ["read", "credits", "flush"], "a hit keeps the budget full");
  });

  test("the flag says what we wait for: room for queued frames, credit", () => {
    const h = setup({ queued: true, creditWaiting: true });
    h.script.inFlight = false;
    const out = h.turn();
    assert.equal(out.at(-1), `sleep ${WANTS_FRAMES | WANTS_ROOM | WANTS_CREDIT}`);
  });

  test("the last look after raising the flag: frames found then are read instead of sleeping", () => {
    const h = setup({ framesAtLastLook: true });
    assert.deepEqual(h.turn(), ["flush", "credits", "read"]);
    assert.equal(h.stats.sleeps, 0);
    assert.equal(Atomics.load(h.i32, 1), 0, "the flag is lowered again");
  });

  test("spinning disabled (0 µs): sleeps even with a call in flight", () => {
    const i32 = new Int32Array(new SharedArrayBuffer(8));
    const log: string[] = [];
    const sleeper = new Sleeper(
      { spinMicros: 0, flag: { i32, index: 0 }, stats: { sleeps: 0, spinHits: 0 } },
      {
        stopped: () => false,
        callsInFlight: () => true,
        canRead: () => true,
        hasFrames: () => {
          log.push("poll");
          return false;
        },
        creditWaiting: () => false,
        creditReady: () => false,
        queued: () => false,
        read: () => log.push("read"),
        flush: () => false,
        pollCredits: () => false,
        finish: () => false,
        sleep: () => log.push("sleep"),
      },
    );
    sleeper.idle();
    assert.deepEqual(log, ["poll", "sleep"], "one last look, no spin");
  });

  test("schedule runs one idle turn however often it is asked", async () => {
    const h = setup();
    h.sleeper.schedule();
    h.sleeper.schedule();
    h.sleeper.schedule();
    await new Promise((r) => setImmediate(r));
    assert.equal(h.stats.sleeps, 1);
  });
});

describe("SHM PeerBell", () => {
  function bell(extensions: number) {
    const i32 = new Int32Array(new SharedArrayBuffer(8));
    let rings = 0;
    const waker = { ring: () => rings++ } as unknown as Waker;
    return { b: new PeerBell({ i32, index: 0 }, waker, () => extensions), i32, rings: () => rings };
  }

  test("rings a sleeping peer once per sleep, and only for what it waits for", () => {
    const { b, i32, rings } = bell(EXT.sleeping);
    b.ring(WANTS_FRAMES);
    assert.equal(rings(), 0, "the peer is awake");
    Atomics.store(i32, 0, WANTS_FRAMES);
    b.ring(WANTS_ROOM);
    assert.equal(rings(), 0, "it does not wait for room");
    b.ring(WANTS_FRAMES);
    assert.equal(rings(), 1);
    assert.equal(Atomics.load(i32, 0), WANTS_FRAMES | RUNG);
    b.ring(WANTS_FRAMES);
    assert.equal(rings(), 1, "already rung");
  });

  test("a peer that publishes no sleeping flag is rung every time", () => {
    const { b, rings } = bell(0);
    assert.equal(b.peerPublishesSleep, false);
    b.ring(WANTS_FRAMES);
    b.ring(WANTS_CREDIT);
    assert.equal(rings(), 2);
  });
});
