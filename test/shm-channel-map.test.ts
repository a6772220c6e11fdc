/**
 * The SHM channel map (transport/shm/channel-map.ts) on its own, against a
 * real channel table in plain shared memory and recording ports: allocation
 * by parity, the peer's channels and their aliases, the credit objects it
 * creates (before and after the call carrying the channel is sent), and each
 * way a channel ends (closeReply peers, spec-only peers).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ChannelMap, type ChannelMapPorts } from "../src/transport/shm/channel-map.js";
import { ShmFlowControl, type ShmReceiveCredit, type ShmSendCredit } from "../src/transport/shm/flow.js";
import { MsgType } from "../src/transport/shm/frame.js";
import { CHANNEL_ENTRY_SIZE, ChannelState } from "../src/transport/shm/layout.js";
import { ChannelTable } from "../src/transport/shm/segment.js";

const INITIAL = 1000;

function setup(o: { isHost?: boolean; maxChannels?: number; closeReply?: boolean } = {}) {
  const maxChannels = o.maxChannels ?? 16;
  const table = new ChannelTable(new Int32Array(new SharedArrayBuffer(maxChannels * CHANNEL_ENTRY_SIZE)), 0, maxChannels);
  const log: string[] = [];
  const violations: string[] = [];
  const state = { closeReply: o.closeReply ?? true };
  const stats = { channelsOpen: 0 };
  const ports: ChannelMapPorts = {
    peerAnswersClose: () => state.closeReply,
    sendEnd: (type, t, connId) => log.push(`${type === MsgType.Close ? "Close" : "Reset"} t${t} c${connId}`),
    violate: (rule) => violations.push(rule),
    ended: () => log.push("ended"),
    creditWait: () => log.push("creditWait"),
    granted: () => log.push("granted"),
  };
  const map = new ChannelMap({ isHost: o.isHost ?? true, table, maxChannels, initialCredit: INITIAL, stats }, ports);
  return { map, table, log, violations, state, stats, flow: new ShmFlowControl(map) };
}

describe("SHM channel map", () => {
  test("allocation by parity: the host takes even entries from 2, the guest odd ones from 1, each activated with the initial credit", () => {
    const host = setup({ isHost: true });
    assert.deepEqual(host.map.outgoing(1, [1, 3, 5]), [2, 4, 6]);
    const guest = setup({ isHost: false });
    assert.deepEqual(guest.map.outgoing(1, [2, 4]), [1, 3]);
    for (const t of [2, 4, 6]) {
      assert.equal(host.table.state(t), ChannelState.Active);
      assert.equal(host.table.granted(t), INITIAL);
    }
    assert.equal(host.stats.channelsOpen, 3);
    // A channel already mapped keeps its entry (the same channel in a second message).
    assert.deepEqual(host.map.outgoing(1, [3]), [4]);
    assert.equal(host.stats.channelsOpen, 3);
  });

  test("a full table refuses the whole message and gives back the entries it took for it", () => {
    const { map, table, stats } = setup({ isHost: true, maxChannels: 8 }); // even entries 2, 4, 6
    assert.deepEqual(map.outgoing(1, [1]), [2]);
    assert.equal(map.outgoing(1, [3, 5, 7]), null, "needs three entries, two are left");
    assert.equal(stats.channelsOpen, 1);
    assert.equal(table.state(4), ChannelState.Free);
    assert.equal(table.state(6), ChannelState.Free);
    assert.deepEqual(map.outgoing(1, [9, 11]), [4, 6], "the entries taken for the refused message are free again");
  });

  test("the peer's channels get fresh core ids of the peer's parity, per connection; ours echoed back keep their id", () => {
    const host = setup({ isHost: true });
    assert.deepEqual(host.map.incoming(1, [1, 3]), [1, 3]);
    assert.deepEqual(host.map.incoming(2, [5]), [1], "aliases are counted per connection");
    assert.deepEqual(host.map.incoming(1, [7]), [5]);
    assert.deepEqual(host.map.outgoing(1, [2]), [2]);
    assert.deepEqual(host.map.incoming(1, [2]), [2], "our own channel, echoed in a Response");
    const guest = setup({ isHost: false });
    assert.deepEqual(guest.map.incoming(1, [2, 4]), [2, 4]);
    assert.deepEqual(host.violations, []);
  });

  test("the peer's channel ids are checked: range, parity, uniqueness", () => {
    const { map, violations } = setup({ isHost: true, maxChannels: 16 });
    assert.equal(map.incoming(1, [16]), null);
    assert.equal(map.incoming(1, [0]), null);
    assert.equal(map.incoming(1, [4]), null, "the guest allocated an even (host) entry");
    assert.deepEqual(map.incoming(1, [3]), [1]);
    assert.equal(map.incoming(1, [3]), null, "entry 3 is still in use");
    assert.deepEqual(violations, ["shm.flow.channel-table-indexing", "shm.flow.channel-table-indexing", "shm.id.channel-parity", "channeling.id.uniqueness"]);
  });

  test("a credit object bound before its call is sent gets the table index when the call goes out", async () => {
    const { map, flow, table, log } = setup({ isHost: true });
    const s = flow.sender(1, 7, INITIAL) as ShmSendCredit;
    const r = flow.receiver(1, 9, INITIAL, () => 0) as ShmReceiveCredit;
    assert.equal(s.t, 0);
    assert.equal(r.t, 0);
    assert.equal(s.available, 0, "no entry yet: no credit");
    const waiter = s.acquire(10)!;
    assert.ok(waiter instanceof Promise);
    assert.deepEqual(log, ["creditWait"]);
    assert.equal(map.waitingForCredit, true);
    assert.equal(map.dataIndex(1, 7), 0, "nothing is sent on a channel without an entry");
    assert.deepEqual(map.outgoing(1, [7, 9]), [2, 4]);
    assert.equal(s.t, 2);
    assert.equal(r.t, 4);
    await waiter; // the waiting sender was let through as soon as the entry existed
    assert.equal(s.available, INITIAL - 10);
    assert.equal(map.waitingForCredit, false);
    assert.equal(map.dataIndex(1, 7), 2);
    // The receiver grants through the table entry it was given.
    assert.equal(r.onData(INITIAL), true);
    r.onConsumed(INITIAL);
    assert.equal(table.granted(4), 2 * INITIAL);
    assert.ok(log.includes("granted"));
  });

  test("a credit object for a channel the peer opened is bound at once", () => {
    const { map, flow } = setup({ isHost: true });
    assert.deepEqual(map.incoming(1, [3]), [1]);
    const r = flow.receiver(1, 1, INITIAL, () => 0) as ShmReceiveCredit;
    assert.equal(r.t, 3);
  });

  test("a channel dropped before its call was sent is forgotten: no last frame, a later call maps it afresh", () => {
    const { map, flow, log, stats } = setup({ isHost: true });
    const s = flow.sender(1, 7, INITIAL) as ShmSendCredit;
    s.dispose(new Error("dropped"));
    assert.deepEqual(log, [], "no Reset for a channel the peer never heard of");
    assert.deepEqual(map.outgoing(1, [7]), [2]);
    assert.equal(s.t, 0, "the disposed credit object is not bound");
    assert.equal(stats.channelsOpen, 1);
  });

  test("disposing a mapped channel sends its Reset once; closeReply: the peer's answer frees the entry", () => {
    const { map, flow, table, log, stats } = setup({ isHost: true, closeReply: true });
    const s = flow.sender(1, 7, INITIAL) as ShmSendCredit;
    map.outgoing(1, [7]);
    s.dispose(new Error("done"));
    s.dispose(new Error("again"));
    assert.deepEqual(log, ["Reset t2 c1", "ended"]);
    assert.equal(map.dataIndex(1, 7), 0, "nothing more is sent after our last frame");
    assert.equal(table.state(2), ChannelState.Active, "the entry waits for the peer's last frame");
    assert.equal(map.peerEnded(1, 2, "Reset"), null, "the answer: nothing for the core");
    assert.equal(table.state(2), ChannelState.Free);
    assert.equal(stats.channelsOpen, 0);
    assert.deepEqual(map.outgoing(1, [9]), [4]);
    map.end(1, 9, MsgType.Close);
    map.peerEnded(1, 4, "Reset");
    assert.deepEqual(map.outgoing(1, [11, 13]), [6, 8], "entries come back at the end of the free list");
  });

  test("the peer's Close reaches the core; a channel the core never took up is answered by the map", () => {
    const { map, log } = setup({ isHost: true, closeReply: true });
    map.incoming(1, [3]);
    const c = map.peerEnded(1, 3, "Close");
    assert.ok(c);
    assert.equal(c.localId, 1);
    map.answer(c);
    assert.deepEqual(log, ["Reset t3 c1"]);
    assert.equal(map.peerData(1, 3), -1, "Data after the end is dropped");
  });

  test("spec-only peer: our Close ends the channel; the entry is reused only once the receiver set it Free", () => {
    const { map, flow, table, log, stats } = setup({ isHost: true, closeReply: false, maxChannels: 6 }); // entries 2, 4
    flow.sender(1, 1, INITIAL); // we send on channel 1: the peer receives, and frees the entry
    map.outgoing(1, [1, 3]);
    map.end(1, 1, MsgType.Close);
    assert.deepEqual(log, ["Close t2 c1"]);
    assert.equal(stats.channelsOpen, 1);
    assert.equal(map.outgoing(1, [5]), null, "entry 2 is not Free yet");
    table.free(2); // the receiver's r[shm.flow.channel-id-reuse]
    assert.deepEqual(map.outgoing(1, [7]), [2]);
    assert.equal(stats.channelsOpen, 2);
    assert.equal(map.dataIndex(1, 7), 2);
  });

  test("spec-only peer: its Close on a channel it sends to reaches the core and sets the entry Free", () => {
    const { map, table, violations } = setup({ isHost: true, closeReply: false });
    map.incoming(1, [3]);
    table.activate(3, INITIAL);
    const c = map.peerEnded(1, 3, "Close");
    assert.ok(c);
    assert.equal(table.state(3), ChannelState.Free);
    assert.equal(map.peerData(1, 3), -1, "a Data crossing the end is ignored");
    assert.equal(map.peerEnded(1, 3, "Reset"), null);
    assert.deepEqual(violations, []);
  });

  test("Data on an entry that is not open is a violation", () => {
    const { map, violations } = setup({ isHost: true });
    assert.equal(map.peerData(1, 5), -1);
    map.incoming(1, [5]);
    assert.equal(map.peerData(2, 5), -1, "another connection's entry");
    assert.equal(map.peerData(1, 5), 1);
    assert.deepEqual(violations, ["channeling.unknown", "channeling.unknown"]);
  });

  test("stop fails every sender, mapped or not, and nothing more is sent for disposed channels", async () => {
    const { map, flow, log } = setup({ isHost: true });
    const mapped = flow.sender(1, 7, INITIAL) as ShmSendCredit;
    map.outgoing(1, [7]);
    const pending = flow.sender(1, 9, INITIAL) as ShmSendCredit;
    const w = pending.acquire(1)!;
    const err = new Error("link closed");
    map.stop(err);
    await assert.rejects(w, /link closed/);
    await assert.rejects(mapped.acquire(1)!, /link closed/);
    log.length = 0;
    mapped.dispose(new Error("late"));
    assert.deepEqual(log, [], "no Reset after the link stopped");
  });

  test("after a Goodbye on connection 0 channels need no last frames", () => {
    const { map, flow, log } = setup({ isHost: true });
    const s = flow.sender(1, 7, INITIAL) as ShmSendCredit;
    map.outgoing(1, [7]);
    map.endLink();
    s.dispose(new Error("bye"));
    assert.deepEqual(log, []);
  });
});
