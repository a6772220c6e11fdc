/**
 * SHM transport benchmark, in one run with its peers (interleaved rounds,
 * medians): this project's Unix-socket transport (server in another
 * process), SHM across processes (file-backed segment, doorbells), SHM with a
 * worker-thread guest (SharedArrayBuffer, Atomics), and raw worker_threads
 * postMessage as the in-process floor.
 *
 *   npx tsc -p . && node dist/bench/shm.js
 *
 * Measures: the round trip of a small call (Testbed.echo, p50), MB/s of
 * 1 MiB payloads (Bench.echoBytes, 8 in flight, bytes counted both ways) and
 * MB/s of a channel of 64 KiB bytes elements (Bench.sink, default credit).
 * Floors measured in the same run: a SharedArrayBuffer spin ping-pong
 * between two threads (the least a round trip through shared memory can
 * cost) and a one-thread memcpy of 1 MiB (the most bytes/s a copy can move).
 * Targets (issue 18): SHM between processes moves 1 MiB payloads and 64 KiB
 * channel elements at >= 0.25x memcpy, and a small call's round trip is at
 * most 3x the spin floor. (Issue 5: round trip at most half of the Unix
 * socket's; bulk at least 2x the Unix socket's.)
 * Env: BENCH_ROUNDS (3; quick 2), BENCH_WARMUP_MS (300; 150), BENCH_DURATION_MS (1500; 400).
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { Testbed } from "../apps/testbed/testbed.js";
import { channel, client, HelloHandshake, Link, ServiceDispatcher } from "roam-ts";
import { memoryTransportPair } from "roam-ts/bridge";
import { testbedImpl } from "../apps/testbed/impl.js";
import { establishHostPeer, ShmHost } from "roam-ts/shm";
import {
  calibrateNsPerIter,
  DIST_ROOT,
  fmtBytesPerSec,
  fmtRatio,
  fmtUs,
  measureSequential,
  measureThroughput,
  median,
  printTable,
  runRounds,
  type Row,
} from "./lib/harness.js";
import { patternSlice } from "./lib/pattern.js";
import { connectRoam, startRoamServer } from "./roam/clients.js";
import { reportRatios, settings } from "./lib/report.js";
import { Bench } from "./roam/bench-service.js";

const s = settings({ rounds: 3, warmupMs: 300, durationMs: 1500 }, { rounds: 2, warmupMs: 150, durationMs: 400 });
const rounds = s.rounds;
const m = { warmupMs: s.warmupMs, durationMs: s.durationMs };
const MIB = 1024 * 1024;
// Own buffers, not views of the 8 MiB pattern pool: postMessage clones a
// view's whole ArrayBuffer, which would make it copy 8 MiB per message.
const BULK = new Uint8Array(patternSlice(0, MIB));
const ELEMENT = new Uint8Array(patternSlice(0, 64 * 1024));
const ELEMENTS_PER_CALL = 256;
const BULK_INFLIGHT = 8;

interface Contender {
  rtt(): Promise<void>;
  bulk(): Promise<number>;
  stream(): Promise<number>;
}

function roamContender(link: Link): Contender {
  const tb = client(Testbed, link.root);
  const bench = client(Bench, link.root);
  return {
    rtt: async () => {
      await tb.echo("x");
    },
    bulk: async () => {
      const rs = await Promise.all(Array.from({ length: BULK_INFLIGHT }, () => bench.echoBytes(BULK)));
      for (const r of rs) if (r.length !== MIB) throw new Error("short echo");
      return BULK_INFLIGHT * 2 * MIB;
    },
    stream: async () => {
      const [tx, rx] = channel<Uint8Array>();
      const done = bench.sink(rx);
      for (let i = 0; i < ELEMENTS_PER_CALL; i++) await tx.send(ELEMENT);
      await tx.close();
      const n = await done;
      if (n !== BigInt(ELEMENTS_PER_CALL * ELEMENT.length)) throw new Error(`sink got ${n} bytes`);
      return ELEMENTS_PER_CALL * ELEMENT.length;
    },
  };
}

function postMessageContender(w: Worker): Contender {
  const next = () => new Promise<unknown>((resolve) => w.once("message", resolve));
  return {
    rtt: async () => {
      const p = next();
      w.postMessage("x");
      await p;
    },
    bulk: async () => {
      let got = 0;
      const all = new Promise<void>((resolve) => {
        const on = (v: unknown) => {
          if ((v as Uint8Array).length !== MIB) throw new Error("short echo");
          if (++got === BULK_INFLIGHT) {
            w.off("message", on);
            resolve();
          }
        };
        w.on("message", on);
      });
      for (let i = 0; i < BULK_INFLIGHT; i++) w.postMessage(BULK);
      await all;
      return BULK_INFLIGHT * 2 * MIB;
    },
    stream: async () => {
      // A window of 16 chunks (1 MiB, like the default channel credit), one ack per chunk.
      const window = 16;
      let sent = 0;
      let acked = 0;
      await new Promise<void>((resolve) => {
        const on = () => {
          acked++;
          if (sent < ELEMENTS_PER_CALL) {
            w.postMessage({ chunk: ELEMENT });
            sent++;
          }
          if (acked === ELEMENTS_PER_CALL) {
            w.off("message", on);
            resolve();
          }
        };
        w.on("message", on);
        for (; sent < window; sent++) w.postMessage({ chunk: ELEMENT });
      });
      return ELEMENTS_PER_CALL * ELEMENT.length;
    },
  };
}

/**
 * Round trip of a SharedArrayBuffer spin ping-pong with a worker thread, µs
 * (median over batches of 100 round trips; each side spins on Atomics.load).
 */
async function spinFloorUs(w: Worker, a: Int32Array): Promise<number> {
  Atomics.store(a, 0, 1);
  Atomics.notify(a, 0);
  try {
    const batchUs: number[] = [];
    let seq = Atomics.load(a, 1);
    const spinOnce = (): void => {
      Atomics.store(a, 1, ++seq);
      for (let i = 0; Atomics.load(a, 2) !== seq; i++) if (i > 2e9) throw new Error("spin floor: the worker does not answer");
    };
    for (let i = 0; i < 1000; i++) spinOnce(); // warm-up
    const end = performance.now() + m.durationMs;
    while (performance.now() < end && batchUs.length < 1e6) {
      const t0 = performance.now();
      for (let i = 0; i < 100; i++) spinOnce();
      batchUs.push(((performance.now() - t0) * 1000) / 100);
    }
    return median(batchUs);
  } finally {
    Atomics.store(a, 0, 0);
  }
  void w;
}

/**
 * The session core's own round trip: a roam client and server in this thread
 * over an in-memory transport pair (messages encoded and decoded, delivered
 * on the next event-loop turn). Every transport pays this work on top of its
 * own, so it bounds how close any roam round trip can get to the spin floor.
 */
function memoryLinkPair(): { client: Link; server: Link } {
  const [a, b] = memoryTransportPair();
  const hs = () => new HelloHandshake({ maxPayloadSize: 4 * MIB, initialChannelCredit: MIB });
  const server = new Link(b, { initiator: false, handshake: hs(), dispatcher: new ServiceDispatcher().add(Testbed, testbedImpl) });
  const client = new Link(a, { initiator: true, handshake: hs(), dispatcher: null });
  void server.start();
  void client.start();
  return { client, server };
}

/** Bytes/s of `copy` (which moves 1 MiB per call), timed on this thread for the measurement's duration. */
function copyRate(copy: () => void): number {
  for (let i = 0; i < 50; i++) copy();
  let n = 0;
  const t0 = performance.now();
  const end = t0 + m.durationMs;
  let t = t0;
  while (t < end && n < 1e7) {
    for (let i = 0; i < 16; i++) copy();
    n += 16;
    t = performance.now();
  }
  return (n * MIB) / ((t - t0) / 1000);
}

/**
 * The cost of handing the application 1 MiB it owns: allocate fresh memory
 * and copy into it (what any receiver does once per payload), bytes/s.
 */
function freshCopyBytesPerSec(): number {
  const src = new Uint8Array(BULK);
  let intact = true;
  const rate = copyRate(() => {
    const b = Buffer.allocUnsafeSlow(MIB);
    b.set(src);
    intact &&= b[4321] === src[4321];
  });
  if (!intact) throw new Error("fresh copy floor: copy mismatch");
  return rate;
}

/** One thread copying 1 MiB into a SharedArrayBuffer (how V8 copies into a segment), bytes/s. */
function sabCopyBytesPerSec(): number {
  const src = new Uint8Array(BULK);
  const dst = new Uint8Array(new SharedArrayBuffer(MIB));
  const rate = copyRate(() => dst.set(src));
  if (dst[4321] !== src[4321]) throw new Error("SAB copy floor: copy mismatch");
  return rate;
}

/** One thread copying a 1 MiB buffer into another (TypedArray.set = memcpy), bytes/s. */
function memcpyBytesPerSec(): number {
  const src = new Uint8Array(BULK);
  const dst = new Uint8Array(MIB);
  const rate = copyRate(() => dst.set(src));
  if (dst[12345] !== src[12345]) throw new Error("memcpy floor: copy mismatch");
  return rate;
}

async function main(): Promise<void> {
  const guestJs = path.join(DIST_ROOT, "bench/shm/guest.js");
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    // This project's Unix-socket transport, server in its own process (default 1 MiB credit).
    const unixServer = await startRoamServer("unix");
    cleanups.push(() => unixServer.stop());
    const unixLink = await connectRoam(unixServer, { maxPayloadSize: 4 * MIB });
    cleanups.push(() => unixLink.close());

    // SHM across processes: file-backed segment in /dev/shm, doorbell on fd 3.
    const procHost = ShmHost.create();
    cleanups.push(() => procHost.close());
    const pt = procHost.addPeer({ name: "bench guest process" });
    pt.spawn(process.execPath, [guestJs], { stdio: ["pipe", "inherit", "inherit"] });
    const procLink = establishHostPeer(procHost, pt.peerId, null);
    await procHost.waitAttached(pt.peerId);

    // SHM with a worker-thread guest: growable SharedArrayBuffer, Atomics wake-ups.
    const memHost = ShmHost.create({ backing: "memory" });
    cleanups.push(() => memHost.close());
    const wt = memHost.addPeer({ name: "bench guest worker" });
    wt.spawnWorker(guestJs);
    const workerLink = establishHostPeer(memHost, wt.peerId, null);
    await memHost.waitAttached(wt.peerId);

    // worker_threads postMessage.
    const pm = new Worker(path.join(DIST_ROOT, "bench/shm/pm-worker.js"));
    cleanups.push(async () => {
      await pm.terminate();
    });

    // SAB spin ping-pong floor: a worker that spins only while we measure.
    const spinWords = new Int32Array(new SharedArrayBuffer(16));
    const spinner = new Worker(path.join(DIST_ROOT, "bench/shm/spin-worker.js"), { workerData: spinWords.buffer });
    cleanups.push(async () => {
      Atomics.store(spinWords, 0, 2);
      Atomics.notify(spinWords, 0);
      await spinner.terminate();
    });

    // The session core alone: client and server in this thread, in-memory transport.
    const mem = memoryLinkPair();
    cleanups.push(() => {
      mem.client.close();
      mem.server.close();
    });
    await mem.client.ready();
    const memTb = client(Testbed, mem.client.root);

    const contenders: Record<string, Contender> = {
      "roam over Unix socket (other process)": roamContender(unixLink),
      "roam over SHM, guest process": roamContender(procLink),
      "roam over SHM, worker thread": roamContender(workerLink),
      "worker_threads postMessage (floor)": postMessageContender(pm),
    };
    const names = Object.keys(contenders);
    process.stderr.write(`[shm] ${rounds} interleaved rounds × 3 measurements × ${names.length} contenders\n`);
    const nsPerIter = calibrateNsPerIter();

    const SPIN = "SAB spin ping-pong (floor)";
    const MEMCPY = "one-thread memcpy 1 MiB (floor)";
    const CORE = "roam session core, in-memory link, one thread (floor)";
    const FRESH = "fresh 1 MiB + copy into it (floor)";
    const SABCOPY = "copy 1 MiB into a SharedArrayBuffer (floor)";
    const rtt = await runRounds(rounds, {
      ...Object.fromEntries(names.map((n) => [n, async () => (await measureSequential(contenders[n]!.rtt, m)).p50us])),
      [SPIN]: () => spinFloorUs(spinner, spinWords),
      [CORE]: async () =>
        (
          await measureSequential(async () => {
            await memTb.echo("x");
          }, m)
        ).p50us,
    });
    const bulk = await runRounds(rounds, {
      ...Object.fromEntries(names.map((n) => [n, async () => (await measureThroughput(contenders[n]!.bulk, m)).bytesPerSec])),
      [MEMCPY]: async () => memcpyBytesPerSec(),
      [FRESH]: async () => freshCopyBytesPerSec(),
      [SABCOPY]: async () => sabCopyBytesPerSec(),
    });
    const stream = await runRounds(rounds, {
      ...Object.fromEntries(names.map((n) => [n, async () => (await measureThroughput(contenders[n]!.stream, m)).bytesPerSec])),
      [MEMCPY]: async () => memcpyBytesPerSec(),
    });

    const med = (r: Record<string, number[]>, n: string) => median(r[n]!);
    const unix = names[0]!;
    const rows: Row[] = names.map((n) => ({
      contender: n,
      "small call p50": fmtUs(med(rtt, n)),
      "rtt / unix": fmtRatio(med(rtt, n) / med(rtt, unix)),
      "1 MiB payloads": fmtBytesPerSec(med(bulk, n)),
      "bulk × unix": fmtRatio(med(bulk, n) / med(bulk, unix)),
      "64 KiB channel": fmtBytesPerSec(med(stream, n)),
      "channel × unix": fmtRatio(med(stream, n) / med(stream, unix)),
    }));
    const memcpy = median([...bulk[MEMCPY]!, ...stream[MEMCPY]!]);
    const spin = med(rtt, SPIN);
    rows.push({ contender: SPIN, "small call p50": fmtUs(spin), "rtt / unix": fmtRatio(spin / med(rtt, unix)) });
    rows.push({ contender: MEMCPY, "1 MiB payloads": fmtBytesPerSec(memcpy), "bulk × unix": fmtRatio(memcpy / med(bulk, unix)) });
    const core = med(rtt, CORE);
    const fresh = med(bulk, FRESH);
    const sabCopy = med(bulk, SABCOPY);
    rows.push({ contender: CORE, "small call p50": fmtUs(core), "rtt / unix": fmtRatio(core / med(rtt, unix)) });
    rows.push({ contender: FRESH, "1 MiB payloads": fmtBytesPerSec(fresh), "bulk × unix": fmtRatio(fresh / med(bulk, unix)) });
    rows.push({ contender: SABCOPY, "1 MiB payloads": fmtBytesPerSec(sabCopy), "bulk × unix": fmtRatio(sabCopy / med(bulk, unix)) });
    printTable(rows, `SHM transport vs Unix socket vs postMessage (medians of ${rounds} rounds; machine ${nsPerIter.toFixed(2)} ns/iter)`);
    const shmProc = names[1]!;
    const shmWorker = names[2]!;
    reportRatios(
      [
        { bench: "shm", work: "SHM, 1 MiB payloads, guest process", roam: fmtBytesPerSec(med(bulk, shmProc)), peer: `one-thread memcpy ${fmtBytesPerSec(memcpy)}`, ratio: med(bulk, shmProc) / memcpy, target: ">= 0.25" },
        { bench: "shm", work: "SHM, 64 KiB channel, guest process", roam: fmtBytesPerSec(med(stream, shmProc)), peer: `one-thread memcpy ${fmtBytesPerSec(memcpy)}`, ratio: med(stream, shmProc) / memcpy, target: ">= 0.25" },
        { bench: "shm", work: "SHM, 64 KiB channel, guest process", roam: fmtBytesPerSec(med(stream, shmProc)), peer: `roam over Unix ${fmtBytesPerSec(med(stream, unix))}`, ratio: med(stream, shmProc) / med(stream, unix) },
        { bench: "shm", work: "SHM, small call round trip, guest process", roam: `${fmtUs(med(rtt, shmProc))} p50`, peer: `SAB spin ping-pong ${fmtUs(spin)}`, ratio: med(rtt, shmProc) / spin, ratioOf: "the floor's time", target: "<= 3" },
        // Why the two targets above are out of reach in Node (docs/benchmarks.md): the floors they imply, measured here.
        { bench: "shm", work: "roam session core alone (in-memory link): round trip", roam: `${fmtUs(core)} p50`, peer: `SAB spin ping-pong ${fmtUs(spin)}`, ratio: core / spin, ratioOf: "the floor's time" },
        { bench: "shm", work: "SHM, small call round trip, guest process", roam: `${fmtUs(med(rtt, shmProc))} p50`, peer: `session core alone ${fmtUs(core)}`, ratio: med(rtt, shmProc) / core, ratioOf: "the core's time" },
        { bench: "shm", work: "fresh 1 MiB + copy (what a receiver pays per payload)", roam: fmtBytesPerSec(fresh), peer: `one-thread memcpy ${fmtBytesPerSec(memcpy)}`, ratio: fresh / memcpy },
        { bench: "shm", work: "copy 1 MiB into a SharedArrayBuffer", roam: fmtBytesPerSec(sabCopy), peer: `one-thread memcpy ${fmtBytesPerSec(memcpy)}`, ratio: sabCopy / memcpy },
        { bench: "shm", work: "SHM, small call round trip, worker thread", roam: `${fmtUs(med(rtt, shmWorker))} p50`, peer: `postMessage ${fmtUs(med(rtt, names[3]!))}`, ratio: med(rtt, shmWorker) / med(rtt, names[3]!), ratioOf: "postMessage's time" },
        { bench: "shm", work: "SHM, 1 MiB payloads, worker thread", roam: fmtBytesPerSec(med(bulk, shmWorker)), peer: `postMessage ${fmtBytesPerSec(med(bulk, names[3]!))}`, ratio: med(bulk, shmWorker) / med(bulk, names[3]!) },
      ],
      "SHM: roam vs the memory floors (same run; ratios are the result)",
    );
    const rttRatio = med(rtt, shmProc) / med(rtt, unix);
    const bulkRatio = med(bulk, shmProc) / med(bulk, unix);
    const streamRatio = med(stream, shmProc) / med(stream, unix);
    console.log(
      `targets: cross-process SHM round trip ${fmtRatio(rttRatio)} of Unix (target <= 0.5: ${rttRatio <= 0.5 ? "met" : "NOT met"}); ` +
        `SHM bulk ${fmtRatio(bulkRatio)} / channel ${fmtRatio(streamRatio)} of Unix (target >= 2x: ${bulkRatio >= 2 && streamRatio >= 2 ? "met" : "NOT met"})`,
    );
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // best effort
      }
    }
  }
}

await main();
