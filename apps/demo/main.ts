/**
 * The roam demo (`npm start`).
 *
 * With no arguments it is fully embedded: it starts a Testbed server on TCP
 * (127.0.0.1, port 0), on a Unix socket in a temp dir and on WebSocket, then
 * over each transport calls every unary Testbed method, shows a user error,
 * a cancellation (and a timeout) that the server observes through
 * `ctx.signal`, and a virtual connection opened with metadata.
 *
 * The demo is a list of sections (see SECTIONS at the bottom); later work adds
 * "streaming", "tunnel" and "plugin host" sections there. Every section prints
 * a table: transport, method, result, round-trip time, and whether the result
 * was the expected one. The process exits 0 by itself when every check passed
 * (all servers, links and timers are closed), 1 otherwise.
 */
import { isDeepStrictEqual } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  CancelledError,
  ServiceDispatcher,
  TimeoutError,
  UserError,
  arg,
  client,
  connectTcp,
  connectUnix,
  connectWebSocket,
  defineService,
  listenTcp,
  listenUnix,
  listenWebSocket,
  method,
  t,
  type CallContext,
  type ClientOf,
  type Connection,
  type Dispatcher,
  type ImplementationOf,
  type Link,
  type Metadata,
  type RoamServer,
  channel,
  tunnel,
  pumpDuplex,
  type LevelChange,
} from "../../src/node.js";
import * as http from "node:http";
import { pluginHostSection } from "./plugin-host.js";
import * as net from "node:net";
import { Testbed } from "../testbed/testbed.js";
import { testbedImpl } from "../testbed/impl.js";

// ---------------------------------------------------------------------------
// Output helpers (colours only on a TTY)

const useColour = process.stdout.isTTY === true && !("NO_COLOR" in process.env);
const paint = (code: string) => (s: string) => (useColour ? `\x1b[${code}m${s}\x1b[0m` : s);
const c = {
  bold: paint("1"),
  dim: paint("2"),
  red: paint("31"),
  green: paint("32"),
  yellow: paint("33"),
  cyan: paint("36"),
};

/** A compact, JSON-like rendering of a value: bigints as `7n`, bytes as hex. */
function show(v: unknown, max = 60): string {
  const s = render(v);
  return s.length > max ? s.slice(0, max - 1) + "…" : s;
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

function formatRtt(ms: number | undefined): string {
  if (ms === undefined) return "";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 100) return `${ms.toFixed(2)} ms`;
  return `${Math.round(ms)} ms`;
}

/** Visible width (ignores ANSI colour codes). */
function width(s: string): number {
  // eslint-disable-next-line no-control-regex
  let n = 0;
  for (const ch of s.replace(/\x1b\[[0-9;]*m/g, "")) {
    const cp = ch.codePointAt(0)!;
    // Emoji and CJK take two terminal columns (a rough rule, enough for a table).
    n += cp >= 0x1f300 || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xff00 && cp <= 0xff60) ? 2 : 1;
  }
  return n;
}

function pad(s: string, n: number, right = false): string {
  const fill = " ".repeat(Math.max(0, n - width(s)));
  return right ? fill + s : s + fill;
}

interface Row {
  transport: string;
  method: string;
  result: string;
  rttMs?: number | undefined;
  ok: boolean;
  note?: string | undefined;
}

/** Collects rows for one section and prints them as a table. */
class Table {
  readonly rows: Row[] = [];

  add(row: Row): void {
    this.rows.push(row);
  }

  print(): void {
    if (this.rows.length === 0) return;
    const head = ["", "transport", "method", "result", "round trip"];
    const cells = this.rows.map((r) => [
      r.ok ? c.green("✓") : c.red("✗"),
      r.transport,
      r.method,
      r.result + (r.note ? c.dim(`  ${r.note}`) : ""),
      formatRtt(r.rttMs),
    ]);
    const widths = head.map((h, i) => Math.max(width(h), ...cells.map((row) => width(row[i]!))));
    const line = (cols: string[]) =>
      "  " + cols.map((col, i) => pad(col, widths[i]!, i === cols.length - 1)).join("  ");
    console.log(c.dim(line(head)));
    console.log(c.dim("  " + widths.map((w) => "─".repeat(w)).join("  ")));
    for (const row of cells) console.log(line(row));
  }
}

// ---------------------------------------------------------------------------
// A tiny extra service served next to Testbed: a slow method (to show
// cancellation) and a method reporting the connection it runs on.

const Demo = defineService("Demo", {
  /** Sleeps `ms` milliseconds (or until cancelled); returns the time slept. */
  sleep: method([arg("ms", t.u32), arg("tag", t.string)], t.u32),
  /** Describes the connection the call arrived on (id and Connect metadata). */
  whoami: method([], t.string),
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
  produce: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.u32),
  /** How many elements the last `produce` has handed to its channel so far. */
  progress: method([], t.u32),
  /** Opens a TCP connection to 127.0.0.1:port and pumps it through the two channels. */
  openTunnel: method([arg("port", t.u16), arg("input", t.rx(t.bytes)), arg("output", t.tx(t.bytes))], t.u64),
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
// Transports

interface Transport {
  readonly name: string;
  /** Where the server listens (for the header). */
  readonly address: string;
  readonly link: Link;
}

interface DemoContext {
  readonly transports: readonly Transport[];
  /** Times a call and adds a row; `check` decides whether the outcome is the expected one. */
  call<T>(
    table: Table,
    transport: string,
    methodName: string,
    run: () => Promise<T>,
    check: (outcome: { value?: T; error?: unknown }) => boolean,
  ): Promise<{ value?: T; error?: unknown; rttMs: number }>;
}

interface Section {
  readonly title: string;
  readonly description: string;
  run(ctx: DemoContext, table: Table): Promise<void>;
}

async function timed<T>(run: () => Promise<T>): Promise<{ value?: T; error?: unknown; rttMs: number }> {
  const t0 = performance.now();
  try {
    const value = await run();
    return { value, rttMs: performance.now() - t0 };
  } catch (error) {
    return { error, rttMs: performance.now() - t0 };
  }
}

// ---------------------------------------------------------------------------
// Sections

type Expected = { method: string; run: (tb: ClientOf<typeof Testbed>) => Promise<unknown>; expect: unknown };

const PI = Math.PI;

function unaryCases(): Expected[] {
  const rect = { top_left: { x: 1, y: 2 }, bottom_right: { x: 11, y: 7 }, label: "box" };
  const shapes = [{ tag: "Circle", value: { radius: 1.5 } }, { tag: "Rectangle", value: { width: 2, height: 3 } }, { tag: "Point" }] as const;
  return [
    { method: "echo", run: (tb) => tb.echo("hello, roam"), expect: "hello, roam" },
    { method: "reverse", run: (tb) => tb.reverse("héllo 🌍"), expect: "🌍 olléh" },
    { method: "divide", run: (tb) => tb.divide(84n, 2n), expect: 42n },
    { method: "lookup", run: (tb) => tb.lookup(1), expect: { name: "Alice", age: 30, email: "alice@example.com" } },
    { method: "echoPoint", run: (tb) => tb.echoPoint({ x: -3, y: 7 }), expect: { x: -3, y: 7 } },
    { method: "createPerson", run: (tb) => tb.createPerson("Dana", 41, null), expect: { name: "Dana", age: 41, email: null } },
    { method: "rectangleArea", run: (tb) => tb.rectangleArea(rect), expect: 50 },
    { method: "parseColor", run: (tb) => tb.parseColor("green"), expect: "Green" },
    { method: "shapeArea", run: (tb) => tb.shapeArea({ tag: "Circle", value: { radius: 2 } }), expect: 4 * PI },
    {
      method: "createCanvas",
      run: (tb) => tb.createCanvas("sketch", [...shapes], "Blue"),
      expect: { name: "sketch", shapes: [...shapes], background: "Blue" },
    },
    {
      method: "processMessage",
      run: (tb) => tb.processMessage({ tag: "Data", value: Uint8Array.of(1, 2, 3, 4) }),
      expect: { tag: "Data", value: Uint8Array.of(4, 3, 2, 1) },
    },
    {
      method: "getPoints",
      run: (tb) => tb.getPoints(3),
      expect: [
        { x: 0, y: 0 },
        { x: 1, y: 2 },
        { x: 2, y: 4 },
      ],
    },
    { method: "swapPair", run: (tb) => tb.swapPair([7, "seven"]), expect: ["seven", 7] },
  ];
}

const unarySection: Section = {
  title: "unary calls",
  description: "every non-streaming Testbed method, over each transport",
  async run(ctx, table) {
    for (const tr of ctx.transports) {
      const tb = client(Testbed, tr.link.root);
      for (const k of unaryCases()) {
        await ctx.call(table, tr.name, k.method, () => k.run(tb), (o) => o.error === undefined && isDeepStrictEqual(o.value, k.expect));
      }
    }
  },
};

const errorsSection: Section = {
  title: "user errors",
  description: "a fallible method's error type arrives as UserError",
  async run(ctx, table) {
    for (const tr of ctx.transports) {
      const tb = client(Testbed, tr.link.root);
      await ctx.call(table, tr.name, "divide(1, 0)", () => tb.divide(1n, 0n), (o) => o.error instanceof UserError && o.error.error === "DivisionByZero");
      await ctx.call(table, tr.name, "lookup(99)", () => tb.lookup(99), (o) => o.error instanceof UserError && o.error.error === "NotFound");
    }
  },
};

const cancellationSection: Section = {
  title: "cancellation",
  description: "Demo.sleep(10 s) aborted by an AbortController / a timeout; the handler sees ctx.signal abort",
  async run(ctx, table) {
    for (const tr of ctx.transports) {
      const demo = client(Demo, tr.link.root);

      const tag = `${tr.name}-abort`;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 30);
      const res = await ctx.call(
        table,
        tr.name,
        "Demo.sleep(10000) + abort@30ms",
        () => demo.sleep(10_000, tag, { signal: ac.signal }),
        (o) => o.error instanceof CancelledError && o.error.by === "local",
      );
      clearTimeout(timer);
      const seen = await abortLog.wait(tag, 5_000);
      table.add({
        transport: tr.name,
        method: "  server ctx.signal",
        result: seen ? `aborted after ${formatRtt(seen.afterMs)} (${show(seen.reason)})` : "NOT aborted within 5 s",
        ok: seen !== undefined && seen.reason instanceof CancelledError && seen.reason.by === "remote",
        note: seen ? `client rejected after ${formatRtt(res.rttMs)}` : undefined,
      });

      const ttag = `${tr.name}-timeout`;
      await ctx.call(
        table,
        tr.name,
        "Demo.sleep(10000) timeout 20ms",
        () => demo.sleep(10_000, ttag, { timeout: 20 }),
        (o) => o.error instanceof TimeoutError,
      );
      const tseen = await abortLog.wait(ttag, 5_000);
      table.add({
        transport: tr.name,
        method: "  server ctx.signal",
        result: tseen ? `aborted after ${formatRtt(tseen.afterMs)}` : "NOT aborted within 5 s",
        ok: tseen !== undefined,
      });

      // The link is still healthy afterwards.
      await ctx.call(table, tr.name, "Demo.sleep(1)", () => demo.sleep(1, `${tr.name}-ok`), (o) => o.value === 1);
    }
  },
};

const virtualConnectionSection: Section = {
  title: "virtual connections",
  description: 'link.connect({ metadata: [["tenant", "acme"]] }), accepted by the server\'s acceptConnections',
  async run(ctx, table) {
    for (const tr of ctx.transports) {
      const t0 = performance.now();
      let conn: Connection | undefined;
      try {
        conn = await tr.link.connect({ metadata: [["tenant", "acme"]], timeoutMs: 5_000 });
        table.add({ transport: tr.name, method: "link.connect(tenant=acme)", result: `conn ${conn.connId}`, rttMs: performance.now() - t0, ok: conn.connId !== 0 });
      } catch (e) {
        table.add({ transport: tr.name, method: "link.connect(tenant=acme)", result: show(e), rttMs: performance.now() - t0, ok: false });
        continue;
      }
      const id = conn.connId;
      await ctx.call(table, tr.name, "Demo.whoami (virtual)", () => client(Demo, conn!).whoami(), (o) => o.value === `conn ${id} [tenant=acme]`);
      await ctx.call(table, tr.name, "Demo.whoami (root)", () => client(Demo, tr.link.root).whoami(), (o) => o.value === "conn 0");
      await ctx.call(table, tr.name, "echo (virtual)", () => client(Testbed, conn!).echo("from acme"), (o) => o.value === "from acme");
      conn.close();
      await ctx.call(
        table,
        tr.name,
        "echo after conn.close()",
        () => client(Testbed, conn!).echo("late"),
        (o) => o.error !== undefined && (o.error as Error).name === "ConnectionClosedError",
      );
    }
  },
};

const streamingSection: Section = {
  title: "streaming",
  description: "Tx/Rx channels with credit-based flow control: sum, generate, transform, and a slow consumer",
  async run(ctx, table) {
    for (const tr of ctx.transports) {
      const tb = client(Testbed, tr.link.root);
      await ctx.call(table, tr.name, "sum(1..1000) over an Rx", async () => {
        const [tx, rx] = channel<number>();
        const total = tb.sum(rx);
        for (let i = 1; i <= 1000; i++) await tx.send(i);
        await tx.close();
        return total;
      }, (o) => o.value === 500500n);
      await ctx.call(table, tr.name, "generate(10000) into a Tx", async () => {
        const [tx, rx] = channel<number>();
        const done = tb.generate(10_000, tx);
        const values = await rx.collect();
        await done;
        return values.every((v, i) => v === i) ? `${values.length} values, in order` : "OUT OF ORDER";
      }, (o) => o.value === "10000 values, in order");
      await ctx.call(table, tr.name, "transform(500 strings)", async () => {
        const [itx, irx] = channel<string>();
        const [otx, orx] = channel<string>();
        const done = tb.transform(irx, otx);
        const out = orx.collect();
        for (let i = 0; i < 500; i++) await itx.send(`s${i}`);
        await itx.close();
        await done;
        const got = await out;
        return got.length === 500 && got[499] === "s499" ? "500 echoed, in order" : `got ${got.length}`;
      }, (o) => o.value === "500 echoed, in order");
    }

    // A slow consumer on a link with a 64 KiB window: the producer stalls,
    // memory on both sides stays within the window, nothing else is blocked.
    const tcp = ctx.transports.find((x) => x.name === "tcp")!;
    const link = await connectTcp({ host: "127.0.0.1", port: Number(tcp.address.split(":").pop()), initialChannelCredit: 64 * 1024 });
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
      table.add({
        transport: "tcp",
        method: "slow consumer: paused 300 ms",
        result: `producer at ${stalledAt}/${count}, receiver holds ${(st.bufferedBytes / 1024).toFixed(0)} KiB (window ${st.window / 1024} KiB), level ${st.level}`,
        ok: stalledAt < count && st.bufferedBytes <= st.window,
      });
      const t0 = performance.now();
      const echo = await client(Testbed, link.root).echo("not blocked");
      table.add({ transport: "tcp", method: "echo while the consumer sleeps", result: JSON.stringify(echo), rttMs: performance.now() - t0, ok: echo === "not blocked" });
      let n = 0;
      let inOrder = true;
      for await (const b of rx) {
        if (new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) !== n) inOrder = false;
        n++;
      }
      await done;
      table.add({
        transport: "tcp",
        method: "slow consumer: resumed",
        result: `${n}/${count} elements${inOrder ? ", in order" : " OUT OF ORDER"}; ${levels.length} level events (first ${levels.slice(0, 3).map((l) => l.to).join("→")}…, last ${levels.at(-1)?.to ?? "-"})`,
        ok: n === count && inOrder,
      });
    } finally {
      link.close();
    }
  },
};

const tunnelSection: Section = {
  title: "tunnel",
  description: "an HTTP request to a local server, carried through a byte tunnel (Tx<bytes>/Rx<bytes>) inside a call",
  async run(ctx, table) {
    const web = http.createServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`hello from the far side: ${req.method} ${req.url}\n`);
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    const webPort = (web.address() as net.AddressInfo).port;
    // The local entry point: each connection to it is carried through its own tunnel.
    const entry = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => entry.listen(0, "127.0.0.1", r));
    const entryPort = (entry.address() as net.AddressInfo).port;
    try {
      for (const tr of ctx.transports) {
        const streams = client(Streams, tr.link.root);
        const pumps: Promise<unknown>[] = [];
        entry.removeAllListeners("connection");
        entry.on("connection", (sock: net.Socket) => {
          const tun = tunnel();
          pumps.push(streams.openTunnel(webPort, tun.remote.input, tun.remote.output));
          pumps.push(pumpDuplex(sock, tun.local));
        });
        await ctx.call(table, tr.name, `GET http://127.0.0.1:${entryPort}/demo`, async () => {
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
    } finally {
      entry.close();
      web.close();
    }
  },
};

/**
 * The demo, section by section. Later work appends "streaming", "tunnel" and
 * "plugin host" sections here; each gets its own heading and table.
 */
const SECTIONS: Section[] = [unarySection, errorsSection, cancellationSection, virtualConnectionSection, streamingSection, tunnelSection];

// ---------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const started = performance.now();
  const servers: RoamServer[] = [];
  const links: Link[] = [];
  const dir = mkdtempSync(join(tmpdir(), "roam-demo-"));
  let failures = 0;
  try {
    const common = { dispatcher: dispatcher(), acceptConnections, onHandlerError: (e: unknown) => console.error(c.red("server handler error:"), e) };
    const tcp = await listenTcp({ ...common, host: "127.0.0.1", port: 0 });
    servers.push(tcp);
    const unix = await listenUnix({ ...common, path: join(dir, "roam.sock") });
    servers.push(unix);
    const ws = await listenWebSocket({ ...common, host: "127.0.0.1", port: 0 });
    servers.push(ws);

    const transports: Transport[] = [];
    const add = async (name: string, address: string, connect: () => Promise<Link>) => {
      const link = await connect();
      links.push(link);
      transports.push({ name, address, link });
    };
    await add("tcp", `tcp://${tcp.address}`, () => connectTcp({ host: "127.0.0.1", port: tcp.port! }));
    await add("unix", `unix://${unix.path}`, () => connectUnix({ path: unix.path! }));
    await add("ws", ws.address, () => connectWebSocket(ws.address, { timeoutMs: 10_000 }));

    console.log(c.bold("roam demo") + c.dim(" — embedded Testbed servers (wire v2)"));
    for (const tr of transports) console.log(`  ${pad(tr.name, 5)} ${c.cyan(tr.address)}`);

    const ctx: DemoContext = {
      transports,
      async call(table, transport, methodName, run, check) {
        const out = await timed(run);
        let ok = false;
        try {
          ok = check(out);
        } catch {
          ok = false;
        }
        table.add({
          transport,
          method: methodName,
          result: out.error !== undefined ? c.yellow(show(out.error)) : show(out.value),
          rttMs: out.rttMs,
          ok,
        });
        return out;
      },
    };

    for (const section of SECTIONS) {
      console.log();
      console.log(c.bold(`▸ ${section.title}`) + c.dim(` — ${section.description}`));
      const table = new Table();
      try {
        await section.run(ctx, table);
      } catch (e) {
        table.add({ transport: "-", method: "(section failed)", result: show(e instanceof Error ? `${e.name}: ${e.message}` : e, 120), ok: false });
      }
      table.print();
      failures += table.rows.filter((r) => !r.ok).length;
    }
  } finally {
    for (const l of links) l.close();
    await Promise.all(servers.map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  }
  // The plugin host (shared memory): prints its own heading and table.
  console.log();
  try {
    failures += await pluginHostSection();
  } catch (e) {
    console.error(c.red("plugin host section failed:"), e);
    failures++;
  }
  console.log();
  const took = `${((performance.now() - started) / 1000).toFixed(2)} s`;
  if (failures === 0) console.log(c.green(c.bold("all checks passed")) + c.dim(` (${took})`));
  else console.log(c.red(c.bold(`${failures} check(s) FAILED`)) + c.dim(` (${took})`));
  return failures === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(c.red("demo failed:"), e);
    process.exitCode = 1;
  },
);
