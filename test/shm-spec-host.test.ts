/**
 * SHM with a host that follows only the pinned spec (issue 11, item 5, the
 * host direction): a host written from the spec's rules
 * (test/helpers/spec-host.ts: layout constants only, the native addon only to
 * create and map the file) lays out a segment whose header reserved area is
 * zero — no size-class count, no guest-areas offset, no roam-ts extension
 * word — with the guest areas where roam-ts would not compute them, and
 * spawns the real roam-ts guest (test/helpers/shm-guest.ts, ShmGuest.fromArgs)
 * with a spawn ticket. They exchange calls both ways, a channel carrying 100x
 * the initial credit each way (entries freed by the receiver and reused), and
 * the host's Goodbye.
 *
 * The host waits for frames only on the doorbell: the guest must ring after
 * every commit, release and grant, since the host advertised no `sleeping`.
 */
import { FAULT } from "../src/transport/shm/bipbuf.js";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import type { Socket } from "node:net";
import { after, describe, test } from "node:test";
import type { Message } from "../src/wire/message.js";
import { MemoryBacking, Segment, ShmGuest, ShmTransport } from "../src/transport/shm/index.js";
import { PollWaker } from "../src/transport/shm/waker.js";
import { nativeShm } from "../src/transport/shm/native.js";
import { GuestTest } from "./helpers/shm-api.js";
import { requireOrOptOut } from "./helpers/requirements.js";
import { GUEST_SCRIPT, leftoverSegments, NATIVE_SHM, nativeSkip, segmentPath, within } from "./helpers/shm-harness.js";
import { Cur, SpecHost, str, T, TESTBED, type SpecHostConfig } from "./helpers/spec-host.js";

const skip = nativeSkip;

const hosts: SpecHost[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) process.kill(c.pid, "SIGKILL");
  for (const h of hosts) h.close();
  assert.deepEqual(leftoverSegments(), [], "no segment file is left behind");
});

/** Inline-only limits: a max_payload_size payload goes inline (24 + 1024 <= 2048). */
const CONFIG: SpecHostConfig = {
  maxPayloadSize: 1024,
  initialCredit: 64,
  maxGuests: 2,
  bipbufCapacity: 16 * 1024,
  inlineThreshold: 2048,
  maxChannels: 16,
};

describe("SHM with a spec-only host", { skip }, () => {
  test("the native SHM addon loads", (t) => {
    if (!requireOrOptOut(t, NATIVE_SHM)) return;
    assert.equal(typeof nativeShm()!.map, "function");
  });

  test("a roam-ts guest attached by spawn ticket: calls both ways, 100x-credit channels both ways, reused entries, host Goodbye", async () => {
    const host = SpecHost.create(segmentPath("spec-host"), CONFIG);
    hosts.push(host);
    // The reserved area really is empty, and the guest areas are not where roam-ts would compute them.
    assert.deepEqual([...host.u8.subarray(96, 128)], new Array(32).fill(0), "header bytes 96..127 are zero");
    assert.ok(host.placed.areas[0]! < host.placed.pool, "guest areas before the pool");

    host.reserve(1);
    const child = spawn(process.execPath, [GUEST_SCRIPT, ...host.ticketArgs(1)], { stdio: ["ignore", "pipe", "pipe", "pipe"] });
    children.push(child);
    let err = "";
    child.stdout!.on("data", () => {});
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    host.useDoorbell(child.stdio[3] as Socket);

    // r[shm.spawn.guest-init]: Reserved → Attached, epoch + 1.
    await within(host.waitPeerState(1, 1, 10_000, "attach"), 11_000, `the guest attaching (stderr: ${err})`);
    // r[shm.guest.attach] step 5 comes after the state change: give it a moment (bounded).
    for (let i = 0; i < 200 && host.epoch(1) === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(host.epoch(1), 1, "the guest incremented its epoch");

    const step = <X>(p: Promise<X>, what: string): Promise<X> => within(p, 30_000, `${what} (guest stderr: ${err})`);

    // 1. host → guest
    const echoed = new Cur(await step(host.call(1, TESTBED.echo, [], str("from a spec-only host")), "echo")).string();
    assert.equal(echoed, "from a spec-only host");

    // 2. guest → host: callHost makes the guest call this host's Testbed.echo first.
    const back = new Cur(await step(host.call(2, GuestTest.methods.callHost.id, [], str("round trip")), "callHost")).string();
    assert.equal(back, "round trip");
    assert.equal(host.answered, 1, "the host answered the guest's own call");

    // 3. host → guest channel, 100x the initial credit; the guest grants through granted_total.
    const goal = 100 * CONFIG.initialCredit;
    const sum = await step(host.sumOver(3, 2, goal), "sum over channel 2");
    assert.ok(sum.sent >= goal, `sent ${sum.sent} bytes`);
    assert.ok(sum.creditWaits > 0, "the host had to wait for credit at least once");
    // r[shm.flow.channel-id-reuse]: the guest, as receiver, sets entry 2 Free; the host reuses it.
    await step(host.waitFree(2, "entry 2 after the sum"), "entry 2 freed by the guest");
    await step(host.sumOver(4, 2, 3), "a second sum on the reused entry 2");

    // 4. guest → host channel, 100x the initial credit; the host grants as it consumes.
    const count = Math.ceil(goal / 2) + 100; // elements of 1-2 bytes
    const gen = await step(host.generateInto(5, 4, count), "generate into channel 4");
    assert.ok(gen.bytes >= goal, `received ${gen.bytes} bytes, 100x credit is ${goal}`);
    // The host freed entry 4 as its receiver; reuse it at once.
    await step(host.generateInto(6, 4, 5), "a second generate on the reused entry 4");

    // 5. The host's Goodbye: the guest detaches (state Goodbye) and exits 0.
    await host.goodbye("spec host done");
    assert.equal(await within(exited, 10_000, `guest exit (stderr: ${err})`), 0, `guest stderr: ${err}`);
    assert.equal(host.peerState(1), 2, "the guest left its entry in Goodbye (r[shm.guest.detach])");
    assert.ok(host.rings > 0);
  });

  test("without a usable pool: a call whose envelope needs a slot is refused locally, a frame too large fails the link, a slot frame gets the rule-id reason", async () => {
    const host = SpecHost.create(segmentPath("spec-host-inline"), CONFIG);
    hosts.push(host);
    const seg = Segment.attach(new MemoryBacking(host.sab));
    assert.equal(seg.placement, "peer-entries");
    assert.equal(seg.guest(1).g2h.header, host.placed.areas[0], "the area is the one the peer entry names");
    assert.equal(seg.guest(1).channels.offset, host.placed.tables[0]);
    const got: Message[] = [];
    const malformed: string[] = [];
    const closed: (Error | undefined)[] = [];
    const waker = new PollWaker();
    const t = new ShmTransport({ role: "guest", segment: seg, peerId: 1, waker });
    waker.start(() => t.wake());
    t.start({ message: (m) => got.push(m), malformed: (rule, detail) => malformed.push(`${rule}: ${detail}`), closed: (c) => closed.push(c) });
    try {
      // 1. Metadata pushes a small call over the inline threshold: answered here with an error, nothing written.
      t.send({ type: "Request", connId: 0, requestId: 7, methodId: TESTBED.echo, metadata: [["note", "x".repeat(CONFIG.inlineThreshold)]], channels: [], payload: Uint8Array.of(1, 0x41) });
      await within(
        (async () => {
          for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
        })(),
        5_000,
        "the local refusal",
      );
      const r = got[0];
      assert.ok(r !== undefined && r.type === "Response" && r.requestId === 7, JSON.stringify(r));
      assert.match(String(r.metadata.find(([k]) => k === "roam-error")?.[1]), /needs a VarSlotPool slot/);
      assert.equal(host.guestWritePosition(), 0, "no frame went to the host");
      // 2. A slot-referenced frame from the host: a Goodbye reason naming the rule, not a crash.
      await host.sendSlotRef(T.Request, 1, 100);
      t.wake();
      assert.equal(malformed.length, 1);
      assert.match(malformed[0]!, /^shm\.handshake\.no-negotiation: a slot-referenced frame arrived/);
      // 3. A Goodbye whose reason needs a slot: the transport stops with that cause.
      t.send({ type: "Goodbye", connId: 0, reason: "y".repeat(CONFIG.inlineThreshold) });
      assert.equal(closed.length, 1);
      assert.match(String(closed[0]?.message), /cannot send a Goodbye frame: .*needs a VarSlotPool slot/);
      assert.equal(host.guestWritePosition(), 0, "still nothing written");
    } finally {
      t.close();
      waker.close();
    }
  });

  test("a BipBuffer position outside the buffer is a violation, and nothing is read beyond it", () => {
    const host = SpecHost.create(segmentPath("spec-host-bipbuf"), CONFIG);
    hosts.push(host);
    const seg = Segment.attach(new MemoryBacking(host.sab));
    const malformed: string[] = [];
    const got: Message[] = [];
    const waker = new PollWaker();
    const t = new ShmTransport({ role: "guest", segment: seg, peerId: 1, waker });
    t.start({ message: (m) => got.push(m), malformed: (rule, detail) => malformed.push(`${rule}: ${detail}`), closed: () => {} });
    try {
      const h2g = host.placed.areas[0]! + 128 + CONFIG.bipbufCapacity;
      host.dv.setUint32(h2g + 0, CONFIG.bipbufCapacity + 64, true); // write beyond the data region
      t.wake();
      assert.deepEqual(got, []);
      assert.equal(malformed.length, 1);
      assert.match(malformed[0]!, /^shm\.bipbuf\.header: write index \d+ is outside the ring/);
      // And as a producer: a read position beyond the buffer grants nothing.
      const g2h = seg.guest(1).g2h;
      host.dv.setUint32(host.placed.areas[0]! + 64, CONFIG.bipbufCapacity + 4, true);
      assert.equal(g2h.grant(64), FAULT, "no grant: the header is corrupt");
      assert.match(g2h.fault, /^shm\.bipbuf\.header: read index \d+ is outside the ring/);
    } finally {
      t.close();
      waker.close();
    }
  });

  test("a guest does not attach when the spec-only host's max_payload_size cannot go inline (r[shm.handshake.no-negotiation])", () => {
    const host = SpecHost.create(segmentPath("spec-host-big"), { ...CONFIG, maxPayloadSize: 4096 });
    hosts.push(host);
    assert.throws(() => ShmGuest.attachPath(host.path), /shm\.handshake\.no-negotiation.*max_payload_size 4096/);
    assert.equal(host.peerState(1), 0, "no entry was taken");
    assert.equal(host.peerState(2), 0);
  });

  test("a guest does not attach through a peer entry that points outside the segment", () => {
    const host = SpecHost.create(segmentPath("spec-host-bad"), { ...CONFIG, maxGuests: 1 });
    hosts.push(host);
    host.dv.setBigUint64(host.entry(1) + 32, BigInt(host.placed.totalSize), true); // ring_offset at the end
    assert.throws(() => ShmGuest.attachPath(host.path), /ring_offset/);
    assert.equal(host.peerState(1), 0, "the entry was not taken");
  });
});
