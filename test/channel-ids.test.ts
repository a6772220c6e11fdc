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
