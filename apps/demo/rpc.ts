/**
 * The tour's RPC sections: one set of servers (Testbed plus two small demo
 * services) on TCP, a Unix socket and WebSocket, then unary calls, typed
 * errors, cancellation, virtual connections, streaming with flow control, and
 * a byte tunnel — each over every transport.
 *
 * Testbed is the conformance service every roam implementation serves (the
 * Rust reference, this one, others): its method ids are fixed, so what the
 * tour calls here is what other languages call.
 */
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";
import * as http from "node:http";
import * as net from "node:net";

import {
  arg,
  type CallContext,
  CancelledError,
  channel,
  client,
  type ClientOf,
  type Connection,
  connectTcp,
  connectUnix,
  connectWebSocket,
  defineService,
  type Dispatcher,
  type ImplementationOf,
  type LevelChange,
  type Link,
  listenTcp,
  listenUnix,
  listenWebSocket,
  type Metadata,
  method,
  pumpDuplex,
  ServiceDispatcher,
  t,
  TimeoutError,
  tunnel,
  UserError,
} from "roam-ts/node";
import { Testbed } from "../testbed/testbed.js";
import { testbedImpl } from "../testbed/impl.js";
import { c, fmtMs, type Row, type Tour, type TourSection } from "./tour.js";

/** A compact, JSON-like rendering of a value: bigints as `7n`, bytes as hex. */
function show(v: unknown): string {
  return render(v);
}

function render(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "()";
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(6)));
  if (v instanceof Uint8Array) return `<${[...v].map((b) => b.toString(16).padStart(2, "0")).join(" ")}>`;
  if (Array.isArray(v)) return `[${v.map(render).join(", ")}]`;
  if (v instanceof Error) return `${v.name}${v instanceof UserError ? `(${render(v.error)})` : ""}`;
  if (typeof v === "object") {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}: ${render(x)}`)
      .join(", ")}}`;
  }
  return String(v);
}

/** Times `run`, adds a row (ok when `check` says the outcome is the expected one). */
async function call<T>(
  rows: Row[],
  where: string,
  what: string,
  run: () => Promise<T>,
  check: (outcome: { value?: T; error?: unknown }) => boolean,
): Promise<{ value?: T; error?: unknown; rttMs: number }> {
  const t0 = performance.now();
  let out: { value?: T; error?: unknown; rttMs: number };
  try {
    const value = await run();
    out = { value, rttMs: performance.now() - t0 };
  } catch (error) {
    out = { error, rttMs: performance.now() - t0 };
  }
  let ok = false;
  try {
    ok = check(out);
  } catch {
    ok = false;
  }
  rows.push({ ok, where, what, result: out.error !== undefined ? c.yellow(show(out.error)) : show(out.value), time: fmtMs(out.rttMs) });
  return out;
}

// ---------------------------------------------------------------------------
// A tiny extra service served next to Testbed: a slow method (to show
// cancellation) and a method reporting the connection it runs on.

const Demo = defineService("Demo", {
  /** Sleeps `ms` milliseconds (or until cancelled); returns the time slept. */
  sleep: method((ms = arg(t.u32), tag = arg(t.string)) => t.u32),
  /** Describes the connection the call arrived on (id and Connect metadata). */
  whoami: method(() => t.string),
});

/** What the server side saw of cancelled calls, keyed by the caller's tag. */
class AbortLog {
  private readonly seen = new Map<string, { afterMs: number; reason: unknown }>();
  private readonly waiters = new Map<string, (v: { afterMs: number; reason: unknown } | undefined) => void>();

  record(tag: string, afterMs: number, reason: unknown): void {
    const entry = { afterMs, reason };
    const w = this.waiters.get(tag);
    if (w) {
      this.waiters.delete(tag);
      w(entry);
    } else {
      this.seen.set(tag, entry);
    }
  }

  /** Resolves with the server's observation, or undefined after `timeoutMs`. */
  wait(tag: string, timeoutMs: number): Promise<{ afterMs: number; reason: unknown } | undefined> {
    const got = this.seen.get(tag);
    if (got) {
      this.seen.delete(tag);
      return Promise.resolve(got);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(tag);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.set(tag, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
    });
  }
}

const abortLog = new AbortLog();

function describeConnection(conn: Connection): string {
  const md = conn.metadata.map(([k, v]) => `${k}=${typeof v === "string" ? v : render(v)}`).join(",");
  return `conn ${conn.connId}${md ? ` [${md}]` : ""}`;
}

const demoImpl: ImplementationOf<typeof Demo> = {
  sleep: (ms: number, tag: string, ctx: CallContext) =>
    new Promise<number>((resolve) => {
      const started = performance.now();
      const onAbort = () => {
        clearTimeout(timer);
        abortLog.record(tag, performance.now() - started, ctx.signal.reason);
        resolve(0); // ignored: the call was already answered as Cancelled
      };
      const timer = setTimeout(() => {
        ctx.signal.removeEventListener("abort", onAbort);
        resolve(ms);
      }, ms);
      ctx.signal.addEventListener("abort", onAbort, { once: true });
    }),
  whoami: (ctx: CallContext) => describeConnection(ctx.connection),
};

// Streaming and tunnelling services for the streaming/tunnel sections.
const Streams = defineService("DemoStreams", {
  /** Sends `count` elements of `size` bytes (each starts with its index); reports progress for the slow-consumer view. */
  produce: method((count = arg(t.u32), size = arg(t.u32), out = arg(t.tx(t.bytes))) => t.u32),
  /** How many elements the last `produce` has handed to its channel so far. */
  progress: method(() => t.u32),
  /** Opens a TCP connection to 127.0.0.1:port and pumps it through the two channels. */
  openTunnel: method((port = arg(t.u16), input = arg(t.rx(t.bytes)), output = arg(t.tx(t.bytes))) => t.u64),
});

let produced = 0;
const streamsImpl: ImplementationOf<typeof Streams> = {
  produce: async (count, size, out) => {
    produced = 0;
    for (let i = 0; i < count; i++) {
      const b = new Uint8Array(size);
      new DataView(b.buffer).setUint32(0, i, true);
      await out.send(b);
      produced++;
    }
    return count;
  },
  progress: () => produced,
  openTunnel: async (port, input, output) => {
    const sock = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    const r = await pumpDuplex(sock, { rx: input, tx: output });
    return BigInt(r.sent);
  },
};

function dispatcher(): Dispatcher {
  return new ServiceDispatcher().add(Testbed, testbedImpl).add(Demo, demoImpl).add(Streams, streamsImpl);
}

/** Virtual connections: accepted for any tenant, served by the same services. */
function acceptConnections(_metadata: Metadata): Dispatcher {
  return dispatcher();
}

// ---------------------------------------------------------------------------
// Transports: one server per transport, one client link to each, for all RPC sections.

interface Transport {
  readonly name: string;
  /** The server's address (`RoamServer.address`: a URL for every transport). */
  readonly address: string;
  readonly link: Link;
}

let transports: Promise<Transport[]> | null = null;

/** Starts the servers and connects once (on first use); the tour closes them at the end. */
function startTransports(tour: Tour): Promise<Transport[]> {
  return (transports ??= (async () => {
    const common = { dispatcher: dispatcher(), acceptConnections, onHandlerError: (e: unknown) => console.error(c.red("server handler error:"), e) };
    const tcp = await listenTcp({ ...common, host: "127.0.0.1", port: 0 });
    tour.onCleanup(() => tcp.close());
    const unix = await listenUnix({ ...common, path: join(tour.tempDir(), "roam.sock") });
    tour.onCleanup(() => unix.close());
    const ws = await listenWebSocket({ ...common, host: "127.0.0.1", port: 0 });
    tour.onCleanup(() => ws.close());
    const out: Transport[] = [];
    const add = async (name: string, address: string, connect: () => Promise<Link>) => {
      const link = await connect();
      tour.onCleanup(() => link.close());
      out.push({ name, address, link });
    };
    await add("tcp", tcp.address, () => connectTcp({ host: "127.0.0.1", port: tcp.port! }));
    await add("unix", unix.address, () => connectUnix({ path: unix.path! }));
    await add("ws", ws.address, () => connectWebSocket(ws.address, { timeoutMs: 10_000 }));
    return out;
  })());
}

// ---------------------------------------------------------------------------
// Sections

type Expected = { what: string; run: (tb: ClientOf<typeof Testbed>) => Promise<unknown>; expect: unknown };

const PI = Math.PI;

function unaryCases(): Expected[] {
  const rect = { top_left: { x: 1, y: 2 }, bottom_right: { x: 11, y: 7 }, label: "box" };
  const shapes = [{ tag: "Circle", value: { radius: 1.5 } }, { tag: "Rectangle", value: { width: 2, height: 3 } }, { tag: "Point" }] as const;
  return [
    { what: "echo", run: (tb) => tb.echo("hello, roam"), expect: "hello, roam" },
    { what: "reverse", run: (tb) => tb.reverse("héllo 🌍"), expect: "🌍 olléh" },
    { what: "divide", run: (tb) => tb.divide(84n, 2n), expect: 42n },
    { what: "lookup", run: (tb) => tb.lookup(1), expect: { name: "Alice", age: 30, email: "alice@example.com" } },
    { what: "echoPoint", run: (tb) => tb.echoPoint({ x: -3, y: 7 }), expect: { x: -3, y: 7 } },
    { what: "createPerson", run: (tb) => tb.createPerson("Dana", 41, null), expect: { name: "Dana", age: 41, email: null } },
    { what: "rectangleArea", run: (tb) => tb.rectangleArea(rect), expect: 50 },
    { what: "parseColor", run: (tb) => tb.parseColor("green"), expect: "Green" },
    { what: "shapeArea", run: (tb) => tb.shapeArea({ tag: "Circle", value: { radius: 2 } }), expect: 4 * PI },
    {
      what: "createCanvas",
      run: (tb) => tb.createCanvas("sketch", [...shapes], "Blue"),
      expect: { name: "sketch", shapes: [...shapes], background: "Blue" },
    },
    {
      what: "processMessage",
      run: (tb) => tb.processMessage({ tag: "Data", value: Uint8Array.of(1, 2, 3, 4) }),
      expect: { tag: "Data", value: Uint8Array.of(4, 3, 2, 1) },
    },
    {
      what: "getPoints",
      run: (tb) => tb.getPoints(3),
      expect: [
        { x: 0, y: 0 },
        { x: 1, y: 2 },
        { x: 2, y: 4 },
      ],
    },
    { what: "swapPair", run: (tb) => tb.swapPair([7, "seven"]), expect: ["seven", 7] },
  ];
}

export const transportsSection: TourSection = {
  title: "one API, three transports",
  what: "The same server code listens on TCP, a Unix socket and WebSocket: pick a transport, not an API.",
  source: "apps/demo/rpc.ts (startTransports)",
  terms: { Testbed: "the conformance service every roam implementation serves, so calls here match other languages" },
  async run(tour) {
    const rows: Row[] = [];
    for (const tr of await startTransports(tour)) {
      const o = await call(rows, tr.name, "echo on the server at", () => client(Testbed, tr.link.root).echo("hello"), (x) => x.value === "hello");
      rows[rows.length - 1]!.result = `${tr.address} → ${o.error === undefined ? JSON.stringify(o.value) : show(o.error)}`;
    }
    return rows;
  },
};

export const unarySection: TourSection = {
  title: "unary calls",
  what: "Every request/response Testbed method, typed end to end: what you send is what the server gets.",
  source: "apps/demo/rpc.ts (unaryCases), apps/testbed/impl.ts",
  async run(tour) {
    const rows: Row[] = [];
    for (const tr of await startTransports(tour)) {
      const tb = client(Testbed, tr.link.root);
      for (const k of unaryCases()) {
        await call(rows, tr.name, k.what, () => k.run(tb), (o) => o.error === undefined && isDeepStrictEqual(o.value, k.expect));
      }
    }
    return rows;
  },
};

export const errorsSection: TourSection = {
  title: "typed errors",
  what: "A handler returns err(e); the caller gets a UserError whose .error is typed: no string parsing.",
  source: "apps/demo/rpc.ts (errorsSection), apps/testbed/impl.ts",
  async run(tour) {
    const rows: Row[] = [];
    for (const tr of await startTransports(tour)) {
      const tb = client(Testbed, tr.link.root);
      await call(rows, tr.name, "divide(1, 0)", () => tb.divide(1n, 0n), (o) => o.error instanceof UserError && o.error.error === "DivisionByZero");
      await call(rows, tr.name, "lookup(99)", () => tb.lookup(99), (o) => o.error instanceof UserError && o.error.error === "NotFound");
    }
    return rows;
  },
};

export const cancellationSection: TourSection = {
  title: "cancellation",
  what: "Aborting a call (or a timeout) stops the server's handler too, so abandoned work does not run on.",
  source: "apps/demo/rpc.ts (Demo.sleep)",
  terms: { "ctx.signal": "the AbortSignal a handler gets; it fires when the caller gives up" },
  async run(tour) {
    const rows: Row[] = [];
    for (const tr of await startTransports(tour)) {
      const demo = client(Demo, tr.link.root);
      const tag = `${tr.name}-abort`;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 30);
      await call(rows, tr.name, "sleep(10 s), abort at 30 ms", () => demo.sleep(10_000, tag, { signal: ac.signal }), (o) => o.error instanceof CancelledError && o.error.by === "local");
      clearTimeout(timer);
      const seen = await abortLog.wait(tag, 5_000);
      rows.push({
        where: tr.name,
        what: "  server's ctx.signal",
        result: seen ? `aborted after ${fmtMs(seen.afterMs)}` : "NOT aborted within 5 s",
        ok: seen !== undefined && seen.reason instanceof CancelledError && seen.reason.by === "remote",
      });
      const ttag = `${tr.name}-timeout`;
      await call(rows, tr.name, "sleep(10 s), timeout 20 ms", () => demo.sleep(10_000, ttag, { timeout: 20 }), (o) => o.error instanceof TimeoutError);
      const tseen = await abortLog.wait(ttag, 5_000);
      rows.push({ where: tr.name, what: "  server's ctx.signal", result: tseen ? `aborted after ${fmtMs(tseen.afterMs)}` : "NOT aborted within 5 s", ok: tseen !== undefined });
      // The link is still healthy afterwards.
      await call(rows, tr.name, "sleep(1 ms) afterwards", () => demo.sleep(1, `${tr.name}-ok`), (o) => o.value === 1);
    }
    return rows;
  },
};

export const virtualConnectionSection: TourSection = {
  title: "virtual connections",
  what: "Many independent connections share one socket, each with its own metadata (tenant, auth, …).",
  source: "apps/demo/rpc.ts (acceptConnections)",
  terms: { "conn 0": "the root connection every link starts with; link.connect() opens more (1, 3, …)" },
  async run(tour) {
    const rows: Row[] = [];
    for (const tr of await startTransports(tour)) {
      const t0 = performance.now();
      let conn: Connection;
      try {
        conn = await tr.link.connect({ metadata: [["tenant", "acme"]], timeoutMs: 5_000 });
        rows.push({ where: tr.name, what: "link.connect(tenant=acme)", result: `conn ${conn.connId}`, time: fmtMs(performance.now() - t0), ok: conn.connId !== 0 });
      } catch (e) {
        rows.push({ where: tr.name, what: "link.connect(tenant=acme)", result: show(e), time: fmtMs(performance.now() - t0), ok: false });
        continue;
      }
      const id = conn.connId;
      await call(rows, tr.name, "whoami on it", () => client(Demo, conn).whoami(), (o) => o.value === `conn ${id} [tenant=acme]`);
      await call(rows, tr.name, "whoami on the root", () => client(Demo, tr.link.root).whoami(), (o) => o.value === "conn 0");
      conn.close();
      await call(rows, tr.name, "echo after conn.close()", () => client(Testbed, conn).echo("late"), (o) => (o.error as Error | undefined)?.name === "ConnectionClosedError");
    }
    return rows;
  },
};

export const streamingSection: TourSection = {
  title: "streaming with flow control",
  what: "Channels stream values both ways; a slow reader slows the sender instead of filling memory.",
  source: "apps/demo/rpc.ts (streamingSection)",
  terms: {
    "Tx / Rx": "the sending and receiving ends of a channel, passed as call arguments",
    credit: "how many bytes a sender may still send; the receiver grants more as it reads",
    level: "green/yellow/red: how full the receiver's buffer is",
  },
  async run(tour) {
    const rows: Row[] = [];
    const all = await startTransports(tour);
    for (const tr of all) {
      const tb = client(Testbed, tr.link.root);
      await call(rows, tr.name, "sum(1..1000) over an Rx", async () => {
        const [tx, rx] = channel<number>();
        const total = tb.sum(rx);
        for (let i = 1; i <= 1000; i++) await tx.send(i);
        await tx.close();
        return total;
      }, (o) => o.value === 500500n);
      await call(rows, tr.name, "generate(10000) into a Tx", async () => {
        const [tx, rx] = channel<number>();
        const done = tb.generate(10_000, tx);
        const values = await rx.collect();
        await done;
        return values.every((v, i) => v === i) ? `${values.length} values, in order` : "OUT OF ORDER";
      }, (o) => o.value === "10000 values, in order");
    }

    // A slow consumer on a link with a 64 KiB window: the producer stalls,
    // memory on both sides stays within the window, nothing else is blocked.
    const tcp = all.find((x) => x.name === "tcp")!;
    const u = new URL(tcp.address);
    const link = await connectTcp({ host: u.hostname, port: Number(u.port), initialChannelCredit: 64 * 1024 });
    try {
      const streams = client(Streams, link.root);
      const [tx, rx] = channel<Uint8Array>();
      const levels: LevelChange[] = [];
      rx.onLevel((ch) => levels.push(ch));
      const count = 2000;
      const done = streams.produce(count, 4096, tx);
      await new Promise((r) => setTimeout(r, 300));
      const stalledAt = await streams.progress();
      const st = rx.stats();
      rows.push({
        where: "tcp",
        what: "reader pauses 300 ms",
        result: `sender stopped at ${stalledAt} of ${count}; reader holds ${(st.bufferedBytes / 1024).toFixed(0)} KiB of a ${st.window / 1024} KiB window; level ${st.level}`,
        ok: stalledAt < count && st.bufferedBytes <= st.window,
      });
      const t0 = performance.now();
      const echo = await client(Testbed, link.root).echo("not blocked");
      rows.push({ where: "tcp", what: "a call meanwhile", result: `${JSON.stringify(echo)}: other calls are not blocked`, time: fmtMs(performance.now() - t0), ok: echo === "not blocked" });
      let n = 0;
      let inOrder = true;
      for await (const b of rx) {
        if (new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) !== n) inOrder = false;
        n++;
      }
      await done;
      rows.push({
        where: "tcp",
        what: "reader resumes",
        result: `${n} of ${count} values${inOrder ? ", in order" : " OUT OF ORDER"}; level went ${levels.slice(0, 2).map((l) => l.to).join(" → ")} and back to ${levels.at(-1)?.to ?? "-"}`,
        ok: n === count && inOrder,
      });
    } finally {
      link.close();
    }
    return rows;
  },
};

export const tunnelSection: TourSection = {
  title: "byte tunnel",
  what: "A TCP connection carried inside a call (like SSH port forwarding), with the same flow control.",
  source: "apps/demo/rpc.ts (Streams.openTunnel), src/tunnel/tunnel.ts",
  async run(tour) {
    const rows: Row[] = [];
    const web = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`hello from the far side: ${req.method} ${req.url}\n`);
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    tour.onCleanup(() => web.close());
    const webPort = (web.address() as net.AddressInfo).port;
    // The local entry point: each connection to it is carried through its own tunnel.
    const entry = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => entry.listen(0, "127.0.0.1", r));
    tour.onCleanup(() => entry.close());
    const entryPort = (entry.address() as net.AddressInfo).port;
    for (const tr of await startTransports(tour)) {
      const streams = client(Streams, tr.link.root);
      const pumps: Promise<unknown>[] = [];
      entry.removeAllListeners("connection");
      entry.on("connection", (sock: net.Socket) => {
        const tun = tunnel();
        pumps.push(streams.openTunnel(webPort, tun.remote.input, tun.remote.output));
        pumps.push(pumpDuplex(sock, tun.local));
      });
      await call(rows, tr.name, "HTTP GET through it", async () => {
        const body = await new Promise<string>((resolve, reject) => {
          http
            .get({ host: "127.0.0.1", port: entryPort, path: "/demo", agent: false }, (res) => {
              let text = "";
              res.setEncoding("utf8");
              res.on("data", (d: string) => (text += d));
              res.on("end", () => resolve(`${res.statusCode} ${text.trim()}`));
            })
            .on("error", reject);
        });
        await Promise.allSettled(pumps);
        return body;
      }, (o) => typeof o.value === "string" && o.value.startsWith("200 hello from the far side: GET /demo"));
    }
    return rows;
  },
};

/** The RPC sections, in tour order. */
export const rpcSections: TourSection[] = [transportsSection, unarySection, errorsSection, cancellationSection, virtualConnectionSection, streamingSection, tunnelSection];
