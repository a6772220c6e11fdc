/**
 * Receive rules for channel ids (issue 11, item 1): a peer may allocate ids
 * of either parity as long as they are not in use; a collision with a live
 * channel of either side is channeling.id.uniqueness; "never opened"
 * (channeling.unknown) and "already closed" (channeling.data-after-close)
 * are told apart without parity, in bounded memory; our own allocation keeps
 * the parity rule and steps around ids the peer took.
 */
import assert from "node:assert/strict";
import { recorder } from "./helpers/channel-recorder.js";
import { describe, test } from "node:test";
import fc from "fast-check";
import { OpenedChannelIds } from "../src/session/channel-ids.js";
import { ChannelRegistry } from "../src/session/channel/registry.js";
import { Rx } from "../src/session/channel/rx.js";
import type { ChannelHost } from "../src/session/channel/host.js";
import { ProtocolViolation } from "../src/session/errors.js";
import { t } from "../src/schema/index.js";

const host = (): ChannelHost => recorder({ connId: 0, max: 1024, window: 1024 });

function violation(f: () => void): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ProtocolViolation, `expected a ProtocolViolation, got ${String(e)}`);
    return e.rule;
  }
  assert.fail("expected a protocol violation");
}

describe("OpenedChannelIds", () => {
  test("sequential ids of each side stay one range each", () => {
    const s = new OpenedChannelIds(8);
    for (let id = 1; id < 20_000; id += 2) s.add(id);
    for (let id = 2; id < 20_000; id += 2) s.add(id);
    assert.equal(s.rangeCount, 2);
    assert.ok(s.has(1) && s.has(19_999) && s.has(2) && s.has(19_998));
    assert.ok(!s.has(20_001) && !s.has(20_000));
  });

  test("exact below the bound; never forgets an id above it; memory stays bounded", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 400 }), fc.integer({ min: 1, max: 5000 }), (ids, probe) => {
        const s = new OpenedChannelIds(16);
        for (const id of ids) s.add(id);
        for (const id of ids) assert.ok(s.has(id), `forgot ${id}`);
        assert.ok(s.rangeCount <= 32, `${s.rangeCount} ranges`);
        const exact = new OpenedChannelIds(1_000_000);
        for (const id of ids) exact.add(id);
        assert.equal(exact.has(probe), ids.includes(probe));
        const free = exact.nextFree(probe);
        assert.ok(free >= probe && free % 2 === probe % 2 && !ids.includes(free));
      }),
      { numRuns: 200 },
    );
  });
});

/**
 * A plain model of OpenedChannelIds: per parity, the set of recorded `id >> 1`
 * values; over `max` ranges, the gap between the two ranges closest together
 * (the first such pair on a tie) is filled in.
 */
class ModelIds {
  readonly sets: [Set<number>, Set<number>] = [new Set(), new Set()];
  constructor(private readonly max: number) {}
  static ranges(set: Set<number>): [number, number][] {
    const ks = [...set].sort((a, b) => a - b);
    const out: [number, number][] = [];
    for (const k of ks) {
      const last = out.at(-1);
      if (last && k === last[1] + 1) last[1] = k;
      else out.push([k, k]);
    }
    return out;
  }
  add(id: number): void {
    const set = this.sets[id & 1];
    set.add(id >> 1);
    const r = ModelIds.ranges(set);
    if (r.length <= this.max) return;
    let best = 0;
    for (let i = 1; i + 1 < r.length; i++) if (r[i + 1]![0] - r[i]![1] < r[best + 1]![0] - r[best]![1]) best = i;
    for (let k = r[best]![1] + 1; k < r[best + 1]![0]; k++) set.add(k);
  }
  has(id: number): boolean {
    return this.sets[id & 1].has(id >> 1);
  }
  get rangeCount(): number {
    return ModelIds.ranges(this.sets[0]).length + ModelIds.ranges(this.sets[1]).length;
  }
}

describe("OpenedChannelIds against a model", () => {
  test("after every add: has, nextFree and the number of ranges match the model (joins, bound, ties)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 120 }), { maxLength: 80 }), fc.integer({ min: 1, max: 6 }), (ids, max) => {
        const s = new OpenedChannelIds(max);
        const m = new ModelIds(max);
        for (const id of ids) {
          s.add(id);
          m.add(id);
          assert.equal(s.rangeCount, m.rangeCount, `ranges after adding ${id}`);
          for (let probe = 0; probe <= 124; probe++) {
            assert.equal(s.has(probe), m.has(probe), `has(${probe}) after adding ${id}`);
          }
        }
        for (let probe = 1; probe <= 124; probe += 7) {
          let free = probe;
          while (m.has(free)) free += 2;
          assert.equal(s.nextFree(probe), free, `nextFree(${probe})`);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("hand-picked: joining the next range, a range grown downwards, and the first of two equal gaps merged", () => {
    const s = new OpenedChannelIds(3);
    for (const id of [2, 6, 10]) s.add(id); // k = 1, 3, 5: three ranges
    s.add(4); // k = 2 joins [1] and [3]
    assert.equal(s.rangeCount, 2);
    assert.ok(s.has(2) && s.has(4) && s.has(6) && !s.has(8));
    s.add(0); // k = 0 grows [1..3] downwards
    assert.equal(s.rangeCount, 2);
    s.add(14); // k = 7: [0..3] [5] [7]
    s.add(18); // k = 9: four ranges, over the bound; gaps 2, 2, 2: the first pair merges
    assert.equal(s.rangeCount, 3);
    assert.ok(s.has(8), "the gap between [0..3] and [5] was merged");
    assert.ok(!s.has(12) && !s.has(16), "the other gaps were not");
  });
});

describe("ChannelRegistry receive rules", () => {
  test("the peer may use ids of our parity; we step around them", () => {
    const r = new ChannelRegistry(host(), true); // link initiator: we allocate odd ids
    r.notePeerId(1); // roam's harness does exactly this
    r.addIncoming(1, new Rx());
    r.notePeerId(3);
    r.addIncoming(3, new Rx());
    r.notePeerId(4);
    assert.equal(r.allocate(), 5, "ids 1 and 3 are the peer's now");
    assert.equal(r.allocate(), 7);
  });

  test("a collision with a live channel of either side is channeling.id.uniqueness", () => {
    const r = new ChannelRegistry(host(), true);
    const ours = r.allocate();
    r.addIncoming(ours, new Rx());
    assert.equal(violation(() => r.notePeerId(ours)), "channeling.id.uniqueness");
    r.notePeerId(8);
    r.addIncoming(8, new Rx());
    assert.equal(violation(() => r.notePeerId(8)), "channeling.id.uniqueness");
    assert.equal(violation(() => r.notePeerId(0)), "channeling.id.zero-reserved");
  });

  test("never opened vs already closed, for ids of either parity", () => {
    const h = host();
    const r = new ChannelRegistry(h, false); // acceptor: we allocate even ids
    r.notePeerId(2); // peer used our parity
    r.addIncoming(2, new Rx());
    r.onClose(2);
    assert.equal(violation(() => r.onData(2, Uint8Array.of(1))), "channeling.data-after-close");
    assert.equal(violation(() => r.onData(4, Uint8Array.of(1))), "channeling.unknown");
    assert.equal(violation(() => r.onData(1, Uint8Array.of(1))), "channeling.unknown");
    // A closed id may be used again by the peer: it is not in use.
    r.notePeerId(2);
    const rx = new Rx<number>();
    rx.bind(h, 2, t.u8);
    r.addIncoming(2, rx);
    r.onData(2, Uint8Array.of(1));
  });

  test("closed ids older than the recent window are still told from never-opened ones", () => {
    const r = new ChannelRegistry(host(), false);
    for (let id = 1; id < 2 * 10_000; id += 2) {
      r.notePeerId(id);
      r.addIncoming(id, new Rx());
      r.onClose(id);
    }
    assert.equal(violation(() => r.onData(1, Uint8Array.of(1))), "channeling.data-after-close");
    assert.equal(violation(() => r.onData(3, Uint8Array.of(1))), "channeling.data-after-close");
    assert.equal(violation(() => r.onData(20_001, Uint8Array.of(1))), "channeling.unknown");
    assert.equal(violation(() => r.onData(2, Uint8Array.of(1))), "channeling.unknown");
  });
});
