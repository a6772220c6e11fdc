/**
 * The server side of a stress attack, in its own process so its memory and
 * event loop are measured alone. `node dist/stress/server.js <kind> '<json options>'`
 * kind: tcp | ws | proxy (a ForwardingDispatcher in front of a Testbed server,
 * both here) | shm (a file-backed SHM hub serving guests that attach by path).
 * Prints {"ready":true,"port":…,"path":…}; then, for each line "report" on
 * stdin, {"peakRssMB":…,"lagMs":…,"cpuLagMs":…,"links":…,"extra":…}. Exits
 * when stdin ends.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import * as readline from "node:readline";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { ForwardingDispatcher } from "../src/proxy/forward.js";
import type { Link } from "../src/session/link.js";
import { serve } from "../src/session/serve.js";
import { connectTcp, listenTcp, listenWebSocket, type RoamServer } from "../src/transport/node.js";
import { establishHostPeer, ShmHost } from "../src/transport/shm/index.js";

const kind = process.argv[2] ?? "tcp";
const opts = JSON.parse(process.argv[3] ?? "{}") as Record<string, unknown>;
const emit = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");

let peakRss = process.memoryUsage.rss();
const hist = monitorEventLoopDelay({ resolution: 10 });
hist.enable();
// How long the event loop was blocked by this process's own work: per tick of
// a 10 ms timer, the smaller of the wall-clock lag (which also counts time the
// OS gave to other processes) and the process's CPU time over the tick (which
// also counts V8's GC and compiler threads running beside the loop). Either
// alone overstates on a shared 2-core machine; the loop was blocked for at
// most both.
let cpuLag = 0;
let lastCpu = process.cpuUsage();
let lastWall = performance.now();
setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  const c = process.cpuUsage();
  const now = performance.now();
  const cpu = (c.user - lastCpu.user + c.system - lastCpu.system) / 1000 - 10;
  const wall = now - lastWall - 10;
  cpuLag = Math.max(cpuLag, Math.min(cpu, wall));
  lastCpu = c;
  lastWall = now;
}, 10);

const extra: Record<string, unknown> = {};
let links = (): number => 0;

async function main(): Promise<void> {
  const dispatcher = serve(Testbed, testbedImpl);
  if (kind === "tcp" || kind === "ws") {
    const o = { dispatcher, acceptConnections: () => serve(Testbed, testbedImpl), ...opts };
    const server: RoamServer = kind === "tcp" ? await listenTcp({ ...o, port: 0 }) : await listenWebSocket({ ...o, port: 0 });
    let maxLinks = 0;
    links = () => server.links.size;
    setInterval(() => {
      maxLinks = Math.max(maxLinks, server.links.size);
      extra.maxLinks = maxLinks;
    }, 5).unref();
    emit({ ready: true, port: server.port, url: server.address });
    return;
  }
  if (kind === "proxy") {
    const upstreamServer = await listenTcp({ port: 0, dispatcher });
    const up: Link = await connectTcp({ port: upstreamServer.port! });
    const fwd = new ForwardingDispatcher(up.root);
    const server = await listenTcp({ port: 0, dispatcher: fwd, ...opts });
    links = () => server.links.size;
    setInterval(() => {
      extra.upstreamPending = up.root.pendingCalls;
      extra.heapMB = Math.round(process.memoryUsage().heapUsed / 2 ** 20);
    }, 20).unref();
    emit({ ready: true, port: server.port });
    return;
  }
  if (kind === "shm") {
    const path = String(opts.path);
    let ended = 0;
    const live = new Set<number>();
    const host: ShmHost = ShmHost.create({ path, maxGuests: 8, monitorIntervalMs: 10, goodbyeTimeoutMs: 200, onAttach: (peerId) => serveGuest(peerId) });
    const serveGuest = (peerId: number): void => {
      const link = establishHostPeer(host, peerId, serve(Testbed, testbedImpl), { spinMicros: 0 });
      live.add(peerId);
      link.onClose((e) => {
        live.delete(peerId);
        ended++;
        extra.ended = ended;
        extra.lastReason = e.message.slice(0, 160);
        if (process.env.STRESS_LOG_CLOSES) console.error(`peer ${peerId} closed: ${e.message}`);
      });
    };
    links = () => live.size;
    process.stdin.on("end", () => void host.close().then(() => process.exit(0)));
    emit({ ready: true, path });
    return;
  }
  throw new Error(`unknown kind ${kind}`);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "report") {
    emit({ peakRssMB: Math.round(peakRss / 2 ** 20), lagMs: Math.round(hist.max / 1e6), cpuLagMs: Math.round(Math.max(0, cpuLag)), links: links(), extra });
  } else if (line.trim() === "reset-peaks") {
    peakRss = process.memoryUsage.rss();
    hist.reset();
    cpuLag = 0;
    emit({ ok: true });
  }
});
process.stdin.on("end", () => {
  if (kind !== "shm") process.exit(0);
});
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
