/**
 * SHM attacks: a hostile guest's BipBuffer indices (huge, into the reserved
 * PROT_NONE range) and pool header, a host that dies under a guest attached
 * by path, and a fuzzer that mutates every field a guest can write — its own
 * area and the shared structures — while a bystander guest keeps calling.
 * The host runs in its own process (stress/server.js shm); this process
 * plays the guests.
 */
import { Testbed } from "../apps/testbed/testbed.js";
import type { Link } from "../src/session/link.js";
import { client } from "../src/session/serve.js";
import { establishGuest, ShmGuest } from "../src/transport/shm/index.js";
import { FLAG_SLOT_REF as FLAG_SLOT_REF_VALUE } from "../src/transport/shm/frame.js";
import { B, C, CH, CHANNEL_ENTRY_SIZE, HEADER_SIZE, M, P, SLOT_META_SIZE } from "../src/transport/shm/layout.js";
import { Proc, type Row } from "./proc.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Attached {
  guest: ShmGuest;
  link: Link;
}

async function attach(path: string, timeoutMs = 3000): Promise<Attached> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const guest = ShmGuest.attachPath(path, { hostTimeoutMs: 5000 });
      const link = establishGuest(guest, null, { spinMicros: 0 });
      await client(Testbed, link.root).echo("hi", { timeout: 2000 });
      return { guest, link };
    } catch (e) {
      last = e;
      await sleep(20);
    }
  }
  throw new Error(`could not attach: ${last}`);
}

/** A guest that keeps calling (small and slot-sized payloads); counts failures. */
function bystander(b: Attached): { stop(): Promise<{ calls: number; failures: number; p99: number; last: string }> } {
  const tb = client(Testbed, b.link.root);
  let calls = 0;
  let failures = 0;
  let last = "";
  let running = true;
  const lat: number[] = [];
  const big = "b".repeat(20_000);
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const t0 = performance.now();
      try {
        const msg = i % 4 === 0 ? big : `hello ${i}`;
        const r = await tb.echo(msg, { timeout: 5000 });
        if (r !== msg) throw new Error("wrong echo");
        calls++;
        lat.push(performance.now() - t0);
      } catch (e) {
        failures++;
        last = String(e).slice(0, 200);
        if (b.link.isClosed) break;
      }
      await sleep(5);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      lat.sort((a, b) => a - b);
      return { calls, failures, p99: Math.round(lat[Math.floor(lat.length * 0.99)] ?? -1), last };
    },
  };
}

async function startHost(path: string): Promise<Proc> {
  const host = Proc.start("./server.js", ["shm", JSON.stringify({ path })]);
  await host.next();
  return host;
}

function row(attack: string, count: string, rep: any, p99: number, outcome: string, ok: boolean): Row {
  return { attack, count, peakRssMB: rep?.peakRssMB ?? -1, lagMs: rep?.lagMs ?? -1, cpuLagMs: rep?.cpuLagMs ?? -1, canaryP99Ms: p99, outcome, ok: ok && (rep?.cpuLagMs ?? 0) <= 100 };
}

/** Break 3: huge indices, indices into PROT_NONE, bogus extent count and offset. */
export async function hostileIndexAttacks(path: string): Promise<Row[]> {
  const host = await startHost(path);
  const by = await attach(path);
  const canary = bystander(by);
  const rows: Row[] = [];
  const cases: [string, (a: Attached) => void][] = [
    [
      "SHM huge ring indices",
      ({ guest }) => {
        const g = guest.segment.guest(guest.peerId).g2h;
        Atomics.store(guest.segment.i32, (g.header + B.read) >> 2, 0x40000000);
        Atomics.store(guest.segment.i32, (g.header + B.write) >> 2, 0x40000100);
      },
    ],
    [
      "SHM indices into PROT_NONE",
      ({ guest }) => {
        const seg = guest.segment;
        const g = seg.guest(guest.peerId).g2h;
        const r = seg.layout.totalSize + 4096 - g.data;
        Atomics.store(seg.i32, (g.header + B.read) >> 2, r);
        Atomics.store(seg.i32, (g.header + B.write) >> 2, r + 64);
      },
    ],
    [
      "SHM bogus extent count/offset",
      ({ guest }) => {
        const seg = guest.segment;
        const k = seg.layout.classes[1]!;
        Atomics.store(seg.i32, (k.header + C.extentCount) >> 2, 3);
        Atomics.store(seg.u64, (k.header + C.extentOffsets) >> 3, 1n << 40n);
        const g2h = seg.guest(guest.peerId).g2h;
        const off = g2h.grant(36);
        const base = g2h.data + off;
        seg.dv.setUint32(base, 36, true);
        seg.dv.setUint32(base + 4, 1 | (FLAG_SLOT_REF_VALUE << 8), true);
        seg.dv.setUint32(base + 8, 99, true);
        seg.dv.setBigUint64(base + 12, Testbed.methods.echo.id, true);
        seg.dv.setUint32(base + 20, 2000, true);
        seg.dv.setUint32(base + 24, 1 | (1 << 8), true);
        seg.dv.setUint32(base + 28, 0, true);
        seg.dv.setUint32(base + 32, 1, true);
        g2h.commit(36);
      },
    ],
  ];
  for (const [name, corrupt] of cases) {
    await host.ask("reset-peaks");
    const a = await attach(path);
    corrupt(a);
    const closed = await Promise.race([a.link.closed(), sleep(5000).then(() => null)]);
    const reason = closed ? ((closed as { reason?: string }).reason ?? closed.message) : "link still open";
    a.guest.detach();
    const alive = host.alive;
    const rep = alive ? await host.ask("report") : null;
    let fresh = false;
    if (alive) {
      const f = await attach(path).catch(() => null);
      fresh = f !== null;
      f?.link.close();
    }
    rows.push(row(name, "1 guest", rep, -1, alive ? `host alive; that guest got Goodbye "${reason.slice(0, 70)}"; next guest served: ${fresh}` : `host died: ${host.stderr.slice(-200)}`, alive && /^shm\./.test(reason) && fresh));
  }
  const c = await canary.stop();
  for (const r of rows) r.canaryP99Ms = c.p99;
  if (c.failures > 0) for (const r of rows) (r.ok = false), (r.outcome += ` — bystander failures ${c.failures}: ${c.last}`);
  by.link.close();
  await host.stop();
  return rows;
}

/** A guest attached by path notices the host's death. */
export async function shmHostDeath(path: string): Promise<Row> {
  const host = await startHost(path);
  const a = await attach(path);
  const t0 = performance.now();
  host.child.kill("SIGKILL");
  const closed = await Promise.race([a.link.closed(), sleep(15_000).then(() => null)]);
  const ms = Math.round(performance.now() - t0);
  const { rmSync } = await import("node:fs");
  rmSync(path, { force: true });
  return row("SHM host death (path guest)", "1 guest", null, -1, closed ? `guest noticed in ${ms} ms: ${closed.message.slice(0, 80)}` : "guest never noticed", closed !== null && ms < 2000);
}

/** Fields a guest can write: [name, byte offset, width]. */
function fields(a: Attached): [string, number, 4 | 8][] {
  const seg = a.guest.segment;
  const g = seg.guest(a.guest.peerId);
  const out: [string, number, 4 | 8][] = [];
  for (const [buf, name] of [
    [g.g2h, "g2h"],
    [g.h2g, "h2g"],
  ] as const) {
    for (const [f, off] of Object.entries(B)) out.push([`${name}.${f}`, buf.header + off, 4]);
    // ring data: frame headers the guest writes (or the host's, which it may scribble on)
    for (let i = 0; i < 8; i++) out.push([`${name}.data+${i * 4}`, buf.data + i * 4, 4]);
  }
  for (let t = 0; t < 4; t++) for (const [f, off] of Object.entries(CH)) out.push([`channel[${t}].${f}`, g.channels.offset + t * CHANNEL_ENTRY_SIZE + off, 4]);
  for (const [f, off] of Object.entries(P)) out.push([`peer.${f}`, g.entry + off, f === "lastHeartbeat" || f.endsWith("Offset") ? 8 : 4]);
  // shared: the segment header, the class headers, slot metas
  for (let off = 0; off < HEADER_SIZE; off += 4) out.push([`header+${off}`, off, 4]);
  for (const k of seg.layout.classes) {
    for (let off = 0; off < 64; off += 4) out.push([`class@${k.header}+${off}`, k.header + off, 4]);
    for (let s = 0; s < 4; s++) for (const [f, off] of Object.entries(M)) out.push([`meta(${k.slotSize})[${s}].${f}`, k.meta0 + s * SLOT_META_SIZE + off, 4]);
  }
  return out;
}

/** The fuzzer: `cases` mutations, host alive and the bystander unaffected. */
export async function shmFuzz(path: string, cases: number, seed = 12): Promise<Row> {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32);
  const host = await startHost(path);
  const by = await attach(path);
  // The bystander owns the first slots it uses: the fuzzer leaves slot metas
  // of other guests alone (a scribble there cannot be told from theirs).
  const canary = bystander(by);
  await sleep(200);
  await host.ask("reset-peaks");
  let a = await attach(path);
  let reattached = 0;
  let applied = 0;
  const t0 = Date.now();
  let problem = "";
  for (let i = 0; i < cases && !problem; i++) {
    const fs = fields(a);
    const [name, off, width] = fs[Math.floor(rnd() * fs.length)]!;
    if (name.startsWith("meta")) {
      // only slots that are free or the attacker's own
      const ownerOff = off - (off % SLOT_META_SIZE) + M.owner;
      const stateOff = off - (off % SLOT_META_SIZE) + M.state;
      const seg = a.guest.segment;
      const owner = Atomics.load(seg.i32, ownerOff >> 2);
      const state = Atomics.load(seg.i32, stateOff >> 2);
      if (state !== 0 && owner !== a.guest.peerId) continue;
    }
    const cap = a.guest.segment.config.bipbufCapacity;
    const values = [0, 1, 2, 3, 4, -1, 0x7fffffff, -0x80000000, cap - 1, cap, cap + 4, 24, 36, Math.floor(rnd() * 2 ** 32) | 0];
    const v = values[Math.floor(rnd() * values.length)]!;
    const seg = a.guest.segment;
    if (width === 8) Atomics.store(seg.u64, off >> 3, BigInt.asUintN(64, BigInt(v)));
    else Atomics.store(seg.i32, off >> 2, v);
    applied++;
    if (i % 8 === 7 || a.link.isClosed) {
      const ok = await client(Testbed, a.link.root).echo("probe", { timeout: 300 }).then(() => true, () => false);
      if (!ok || a.link.isClosed) {
        a.guest.detach();
        await sleep(5);
        try {
          a = await attach(path, 5000);
          reattached++;
        } catch (e) {
          problem = `could not attach a fresh guest after case ${i} (${name}): ${(e as Error).message}`;
        }
      }
    }
    if (!host.alive) problem = `host died at case ${i} (${name} = ${v}): ${host.stderr.slice(-300)}`;
    if (by.link.isClosed) problem = `bystander's link closed at case ${i} (${name} = ${v}); host log: ${host.stderr.slice(-400)}`;
  }
  const rep = host.alive ? await host.ask("report") : null;
  const c = await canary.stop();
  a.guest.detach();
  by.link.close();
  await host.stop();
  const ok = !problem && c.failures === 0 && rep !== null;
  return row(
    "SHM segment fuzzer",
    `${applied} mutations`,
    rep,
    c.p99,
    `${problem || "host alive"}; ${reattached} hostile guests cut off and replaced; bystander ${c.calls} calls, ${c.failures} failed${c.failures ? ` (${c.last})` : ""}; ${Math.round((Date.now() - t0) / 1000)} s`,
    ok,
  );
}
