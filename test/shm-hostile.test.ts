/**
 * A hostile SHM guest cannot crash the host (issue 12, break 3). The host
 * runs in its own process on a file-backed segment; this test attaches as a
 * guest by path and corrupts what a guest can write: its own BipBuffer
 * indices (huge, and pointing into the reserved PROT_NONE range), and the
 * shared VarSlotPool's class header (extent count and offset). Each time the
 * host must end that guest's link with a Goodbye citing a rule, survive, and
 * serve the next guest.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as readline from "node:readline";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Testbed } from "../apps/testbed/testbed.js";
import { ConnectionClosedError } from "../src/session/errors.js";
import type { Link } from "../src/session/link.js";
import { client } from "../src/session/serve.js";
import { establishGuest, FLAG_SLOT_REF, MsgType, nativeShm, ShmGuest } from "../src/transport/shm/index.js";
import { B, C } from "../src/transport/shm/layout.js";
import { leftoverSegments, segmentPath, sleep, within } from "./helpers/shm-harness.js";

const HOST_SCRIPT = fileURLToPath(new URL("./helpers/shm-hostile-host.js", import.meta.url));
// A missing addon fails these tests loudly; ROAM_SKIP_NATIVE=1 opts out explicitly.
const skip = process.env.ROAM_SKIP_NATIVE === "1" && "ROAM_SKIP_NATIVE=1";

interface HostProc {
  child: ChildProcess;
  path: string;
  events: { ev: string; peer?: number; reason?: string }[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const procs: HostProc[] = [];
after(async () => {
  for (const p of procs) {
    p.child.stdin?.end();
    await Promise.race([p.exited, sleep(3000)]);
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    // A host that was killed (on purpose, or by a regression) leaves its file.
    if (p.child.signalCode !== null) fs.rmSync(p.path, { force: true });
  }
  assert.deepEqual(leftoverSegments(), [], "no segment file is left behind");
});

async function startHost(tag: string): Promise<HostProc> {
  // The segment name carries this process's pid so leftoverSegments() finds it.
  const path = segmentPath(tag);
  const child = spawn(process.execPath, [HOST_SCRIPT, `--segment=${path}`], { stdio: ["pipe", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  const events: HostProc["events"] = [];
  const ready = new Promise<void>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      const e = JSON.parse(line);
      events.push(e);
      if (e.ev === "ready") resolve();
    });
    child.once("exit", () => reject(new Error(`host exited early: ${err}`)));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const p = { child, path, events, exited, stderr: () => err };
  procs.push(p);
  await within(ready, 10_000, "host start");
  return p;
}

async function attach(p: HostProc): Promise<{ guest: ShmGuest; link: Link }> {
  const guest = ShmGuest.attachPath(p.path);
  const link = establishGuest(guest, null);
  const tb = client(Testbed, link.root);
  assert.equal(await within(tb.echo("hello"), 5000, "echo through the host"), "hello");
  return { guest, link };
}

/** The host survives, ends the hostile guest's link citing `rule`, and serves a fresh guest. */
async function expectContained(p: HostProc, link: Link, rule: RegExp): Promise<void> {
  const closed = await within(
    Promise.race([link.closed(), p.exited.then((x) => new Error(`the host died: ${JSON.stringify(x)}; stderr: ${p.stderr().slice(-800)}`))]),
    5000,
    "the hostile guest's link closing",
  );
  assert.ok(closed instanceof ConnectionClosedError, `link closed with ${closed}`);
  assert.equal(p.child.signalCode, null, `the host was not killed (stderr: ${p.stderr().slice(-800)})`);
  assert.equal(closed.by, "remote", `the host said Goodbye (got: ${closed.message})`);
  assert.match(closed.reason ?? "", rule);
  await sleep(200);
  assert.equal(p.child.exitCode, null, `the host is alive (stderr: ${p.stderr().slice(-800)})`);
  assert.equal(p.child.signalCode, null, `the host was not killed (stderr: ${p.stderr().slice(-800)})`);
  const { link: fresh } = await attach(p);
  fresh.close();
}

describe("hostile SHM guest", { skip }, () => {
  test("huge BipBuffer indices: the host ends that guest's link and keeps serving", async () => {
    const p = await startHost("huge-idx");
    const { guest, link } = await attach(p);
    const g = guest.segment.guest(guest.peerId).g2h;
    const i32 = guest.segment.i32;
    // The host reads g2h: a read index far beyond the ring, and a write index past it.
    Atomics.store(i32, (g.header + B.read) >> 2, 0x40000000);
    Atomics.store(i32, (g.header + B.write) >> 2, 0x40000100);
    await expectContained(p, link, /^shm\.bipbuf/);
  });

  test("indices pointing into the reserved PROT_NONE range: no SIGSEGV", async () => {
    const p = await startHost("prot-none");
    const { guest, link } = await attach(p);
    const seg = guest.segment;
    const g = seg.guest(guest.peerId).g2h;
    // Just past the initial size: reserved address space, not mapped.
    const r = seg.layout.totalSize + 4096 - g.data;
    Atomics.store(seg.i32, (g.header + B.read) >> 2, r);
    Atomics.store(seg.i32, (g.header + B.write) >> 2, r + 64);
    await expectContained(p, link, /^shm\.bipbuf/);
  });

  test("a bogus extent count and offset in the shared pool header: no RangeError", async () => {
    const p = await startHost("extents");
    const { guest, link } = await attach(p);
    const seg = guest.segment;
    const k = seg.layout.classes[1]!;
    Atomics.store(seg.i32, (k.header + C.extentCount) >> 2, 3);
    Atomics.store(seg.u64, (k.header + C.extentOffsets) >> 3, 1n << 40n);
    // A slot frame naming extent 1 of that class.
    const g2h = seg.guest(guest.peerId).g2h;
    const off = g2h.grant(36);
    assert.ok(off >= 0);
    const base = g2h.data + off;
    const dv = seg.dv;
    dv.setUint32(base, 36, true);
    dv.setUint32(base + 4, MsgType.Request | (FLAG_SLOT_REF << 8), true);
    dv.setUint32(base + 8, 99, true);
    dv.setBigUint64(base + 12, Testbed.methods.echo.id, true);
    dv.setUint32(base + 20, 2000, true);
    dv.setUint32(base + 24, 1 | (1 << 8), true);
    dv.setUint32(base + 28, 0, true);
    dv.setUint32(base + 32, 1, true);
    g2h.commit(36);
    await expectContained(p, link, /^shm\.(varslot|frame\.slot-ref)/);
  });

  test("a guest attached by path (no doorbell) notices the host's death", async () => {
    const p = await startHost("host-death");
    const { link } = await attach(p);
    const t0 = performance.now();
    p.child.kill("SIGKILL");
    const e = await within(link.closed(), 3000, "the guest noticing the dead host");
    assert.ok(e instanceof ConnectionClosedError && e.by === "transport", String(e));
    assert.ok(performance.now() - t0 < 2000, "noticed within 2 s");
  });
});
