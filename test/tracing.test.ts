/**
 * roam-tracing across cells (an SHM guest process): records arrive at the
 * host tagged with the peer id and name, in order; an overflowing cell
 * buffer drops the oldest and reports the count; a config push changes what
 * the guest emits; one trace id spans client → server → SHM guest in the
 * OpenTelemetry in-memory exporter. Also over a socket, and the filter.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import { context, trace, SpanKind } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { RoutedDispatcher } from "../src/routing/routed.js";
import { client, serve } from "../src/session/serve.js";
import type { Link } from "../src/session/link.js";
import { establishHostPeer, ShmHost } from "../src/transport/shm/index.js";
import { connectTcp, listenTcp, type RoamServer } from "../src/transport/node.js";
import { TracingHub, formatRecord } from "../src/tracing/host.js";
import { CellTracer } from "../src/tracing/cell.js";
import { TargetFilter } from "../src/tracing/filter.js";
import type { TaggedRecord } from "../src/tracing/schema.js";
import { cellRecordsToSpans, otelClientInterceptor, otelServerInterceptor, parseTraceparent } from "../src/otel/index.js";
import { Front, TraceTest } from "./helpers/tracing-api.js";
import { leftoverSegments, segmentPath, sleep } from "./helpers/shm-harness.js";

const GUEST = fileURLToPath(new URL("./helpers/tracing-guest.js", import.meta.url));
const exporter = new InMemorySpanExporter();
const hosts: ShmHost[] = [];
const children: ChildProcess[] = [];
const servers: RoamServer[] = [];
const links: Link[] = [];

before(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});

after(async () => {
  for (const l of links) l.close();
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(hosts.map((h) => h.close()));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  assert.deepEqual(leftoverSegments(), []);
});

async function until<T>(what: string, f: () => T | undefined | false, ms = 5000): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A hub, an SHM host and one guest process serving TraceTest + CellTracing. */
async function startGuest(tag: string, env: Record<string, string> = {}, config = { filter_directives: "info", include_span_events: true }) {
  const hub = new TracingHub({ config });
  const records: TaggedRecord[] = [];
  hub.onRecord((r) => records.push(r));
  const host = ShmHost.create({ path: segmentPath(tag) });
  hosts.push(host);
  const ticket = host.addPeer({ name: `tracer-${tag}` });
  const child = ticket.spawn(process.execPath, [GUEST], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...env } });
  children.push(child);
  const link = establishHostPeer(host, ticket.peerId, new RoutedDispatcher([hub.serviceFor(ticket.peerId, `tracer-${tag}`)]));
  await host.waitAttached(ticket.peerId);
  return { hub, records, host, peerId: ticket.peerId, link, child, api: client(TraceTest, link.root, { interceptors: [otelClientInterceptor()] }) };
}

function events(records: TaggedRecord[], message: string) {
  return records.flatMap((r) => (r.record.tag === "Event" && r.record.value.message === message ? [r] : []));
}

function fieldI(r: TaggedRecord): number {
  if (r.record.tag !== "Event") return -1;
  const f = r.record.value.fields.find(([k]) => k === "i")?.[1];
  return f && f.tag === "U64" ? Number(f.value) : -1;
}

describe("tracing across cells (SHM guest process)", () => {
  test("records arrive tagged with the peer id and name, in order; a full buffer drops the oldest and says how many", async () => {
    const g = await startGuest("order", { TRACE_BUFFER: "16" });
    await until("the start-up event", () => events(g.records, "guest started").length === 1);
    await g.api.log(12, "Info");
    const lines = await until("12 lines", () => {
      const l = events(g.records, "line");
      return l.length === 12 && l;
    });
    assert.deepEqual(lines.map(fieldI), [...Array(12).keys()], "in order");
    for (const r of lines) {
      assert.equal(r.peerId, g.peerId);
      assert.equal(r.peerName, "tracer-order");
    }
    assert.match(formatRecord(lines[0]!), /^\[tracer-order#\d+\] INFO guest::test: line i=0$/);

    // 100 events at once into a 16-record buffer: the newest 16 arrive, 84 are reported dropped.
    await g.api.burst(100);
    await until("the drop report", () => g.records.some((r) => r.record.tag === "Event" && r.record.value.target === "roam_tracing"));
    await sleep(100);
    const burst = events(g.records, "burst");
    const got = events(g.records, "burst").map(fieldI);
    // The rpc.server span records of the burst call itself share the buffer: count what was kept.
    assert.ok(got.length <= 16 && got.length >= 14, `kept ${got.length}`);
    assert.deepEqual(got, [...Array(got.length).keys()].map((i) => 100 - got.length + i), "the newest, in order");
    const drops = g.records.filter((r) => r.record.tag === "Event" && r.record.value.target === "roam_tracing");
    assert.equal(drops.length, 1, "one drop report");
    const dropped = g.hub.stats().peers.find((p) => p.peerId === g.peerId)!.droppedByCell;
    const stats = await g.api.stats();
    assert.equal(BigInt(dropped), stats.dropped, "the host's count equals the cell's");
    assert.ok(dropped >= 84, `dropped ${dropped}`);
    assert.ok(burst.length > 0);
  });

  test("a config push changes what the guest emits; a bad filter is refused", async () => {
    const g = await startGuest("config", {}, { filter_directives: "info", include_span_events: false });
    await until("start", () => events(g.records, "guest started").length === 1);
    assert.equal((await g.api.stats()).filter, "info", "the guest queried the host's config at start-up");
    await g.api.log(3, "Debug");
    await g.api.log(1, "Warn");
    await until("the warn line", () => events(g.records, "line").length === 1);
    await sleep(60);
    assert.deepEqual(events(g.records, "line").map((r) => (r.record.tag === "Event" ? r.record.value.level : "")), ["Warn"], "debug filtered out");

    assert.deepEqual(await g.hub.configure(g.link.root, { filter_directives: "warn,guest::test=debug", include_span_events: false }), { tag: "Ok" });
    await g.api.log(3, "Debug");
    await g.api.log(2, "Trace");
    await until("3 debug lines", () => events(g.records, "line").length === 4);
    await sleep(60);
    assert.deepEqual(
      events(g.records, "line").map((r) => (r.record.tag === "Event" ? r.record.value.level : "")),
      ["Warn", "Debug", "Debug", "Debug"],
      "debug now passes, trace still not",
    );
    const bad = await g.hub.configure(g.link.root, { filter_directives: "guest[span]=debug", include_span_events: false });
    assert.equal(bad.tag, "InvalidFilter");
    assert.equal((await g.api.stats()).filter, "warn,guest::test=debug", "a refused config changes nothing");
  });

  test("one trace id spans client → server → SHM guest (cell spans become spans of the host)", async () => {
    exporter.reset();
    const g = await startGuest("otel");
    const stop = cellRecordsToSpans(g.hub);
    // The front server: its handler calls the guest (the active span is the server span).
    const server = await listenTcp({
      port: 0,
      dispatcher: serve(Front, { run: async (label) => `${await g.api.work(label)} / ${await g.api.otelWork(label)}` }, { interceptors: [otelServerInterceptor()] }),
    });
    servers.push(server);
    const link = await connectTcp({ port: server.port! });
    links.push(link);
    const front = client(Front, link.root, { interceptors: [otelClientInterceptor()] });
    assert.equal(await front.run("x"), "done x / otel x");
    const spans = await until("the guest's spans", () => {
      const s = exporter.getFinishedSpans();
      return s.some((x) => x.name === "work") && s.some((x) => x.name === "otel-work") && s;
    });
    stop();
    const byName = (n: string, kind?: SpanKind) => spans.filter((s) => s.name === n && (kind === undefined || s.kind === kind));
    const clientSpan = byName("Front.run", SpanKind.CLIENT)[0]!;
    const serverSpan = byName("Front.run", SpanKind.SERVER)[0]!;
    const toGuest = byName("TraceTest.work", SpanKind.CLIENT)[0]!;
    const work = byName("work")[0]!;
    const otelWork = byName("otel-work")[0]!;
    for (const s of [clientSpan, serverSpan, toGuest, work, otelWork]) assert.ok(s, "span exists");
    const traceId = clientSpan.spanContext().traceId;
    for (const s of spans) assert.equal(s.spanContext().traceId, traceId, `${s.name} is in the trace`);
    // Parent chain: client → server → host's call to the guest → guest's rpc span → work.
    assert.equal(serverSpan.parentSpanContext?.spanId, clientSpan.spanContext().spanId);
    assert.equal(toGuest.parentSpanContext?.spanId, serverSpan.spanContext().spanId);
    const guestRpc = spans.find((s) => s.name === "TraceTest.work" && s.attributes["roam.cell.target"] === "rpc.server")!;
    assert.ok(guestRpc, "the guest's rpc span");
    assert.equal(guestRpc.parentSpanContext?.spanId, toGuest.spanContext().spanId);
    assert.equal(work.parentSpanContext?.spanId, guestRpc.spanContext().spanId);
    assert.equal(work.attributes["roam.peer_id"], g.peerId);
    assert.equal(work.attributes["label"], "x");
    assert.ok(work.events.some((e) => e.name === "working"), "the event inside became a span event");
    assert.equal(clientSpan.attributes["rpc.system"], "roam");
    assert.equal(clientSpan.attributes["rpc.method"], "run");
    assert.equal(clientSpan.attributes["roam.outcome"], "ok");
    assert.equal(serverSpan.attributes["roam.outcome"], "ok");
    // The OpenTelemetry-API guest span: its parent chain reaches the host's client span too.
    const otelToGuest = byName("TraceTest.otelWork", SpanKind.CLIENT)[0]!;
    const otelServer = spans.find((s) => s.name === "TraceTest.otelWork" && s.attributes["roam.cell.target"] === "roam-ts")!;
    assert.ok(otelServer, "the guest's OTel server span arrived as a cell span");
    assert.equal(otelServer.parentSpanContext?.spanId, otelToGuest.spanContext().spanId);
    assert.equal(otelWork.parentSpanContext?.spanId, otelServer.spanContext().spanId);
    assert.ok(otelWork.events.some((e) => e.name === "otel-event"));
  });
});

describe("tracing from a worker-thread guest", () => {
  test("a worker guest's records arrive tagged with its peer id, in order", async () => {
    const hub = new TracingHub({ config: { filter_directives: "info", include_span_events: false } });
    const records: TaggedRecord[] = [];
    hub.onRecord((r) => records.push(r));
    const host = ShmHost.create({ path: segmentPath("worker") });
    hosts.push(host);
    const ticket = host.addPeer({ name: "worker-cell" });
    ticket.spawnWorker(GUEST);
    const link = establishHostPeer(host, ticket.peerId, hub.serviceFor(ticket.peerId, "worker-cell"));
    await host.waitAttached(ticket.peerId);
    await client(TraceTest, link.root).log(5, "Warn");
    const lines = await until("5 lines", () => {
      const l = events(records, "line");
      return l.length === 5 && l;
    });
    assert.deepEqual(lines.map(fieldI), [0, 1, 2, 3, 4]);
    assert.ok(lines.every((r) => r.peerId === ticket.peerId && r.peerName === "worker-cell"));
  });
});

describe("tracing over a socket, and the pieces", () => {
  test("a cell on a TCP link: config query at start, events and spans with their parents, flush on stop", async () => {
    const hub = new TracingHub({ config: { filter_directives: "debug", include_span_events: true } });
    const seen: TaggedRecord[] = [];
    hub.onRecord((r) => seen.push(r));
    const server = await listenTcp({ port: 0, dispatcherFor: () => hub.serviceFor(7, "socket-cell") });
    servers.push(server);
    const tracer = new CellTracer({ flushIntervalMs: 1000 });
    const link = await connectTcp({ port: server.port!, dispatcher: tracer.dispatcher() });
    links.push(link);
    await tracer.start(link.root);
    const log = tracer.logger("cell::x");
    log.trace("hidden");
    await log.inSpan("outer", { n: 1 }, async () => {
      log.debug("inside", { ok: true, big: 1n << 70n, neg: -3 });
    });
    await tracer.stop();
    const kinds = seen.map((r) => r.record.tag);
    assert.deepEqual(kinds, ["SpanEnter", "Event", "SpanClose"]);
    const enter = seen[0]!.record;
    const ev = seen[1]!.record;
    assert.ok(enter.tag === "SpanEnter" && ev.tag === "Event");
    assert.equal(ev.value.parent, enter.value.id);
    assert.deepEqual(ev.value.fields, [
      ["ok", { tag: "Bool", value: true }],
      ["big", { tag: "Str", value: (1n << 70n).toString() }],
      ["neg", { tag: "I64", value: -3n }],
    ]);
    assert.ok(ev.value.timestamp_ns >= enter.value.timestamp_ns);
    assert.equal(seen[0]!.peerId, 7);
    assert.deepEqual(tracer.stats().filter, "debug");
  });

  test("filter directives: longest target wins, off, bare targets, invalid input", () => {
    const f = TargetFilter.parse("warn,app=debug,app::db=off,noisy");
    assert.equal(f.enabled("Info", "other"), false);
    assert.equal(f.enabled("Warn", "other"), true);
    assert.equal(f.enabled("Debug", "app::http"), true);
    assert.equal(f.enabled("Trace", "app::http"), false);
    assert.equal(f.enabled("Error", "app::db::pool"), false);
    assert.equal(f.enabled("Trace", "noisy::x"), true);
    assert.equal(TargetFilter.parse("").enabled("Info", "x"), true);
    assert.equal(TargetFilter.parse("").enabled("Debug", "x"), false);
    assert.equal(TargetFilter.parse("app=info").enabled("Error", "zzz"), false, "no default directive: off");
    assert.throws(() => TargetFilter.parse("app=loud"), /invalid level/);
    assert.throws(() => TargetFilter.parse("app[span]=info"), /invalid target/);
  });

  test("W3C traceparent parsing rejects malformed and all-zero ids", () => {
    assert.ok(parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert.equal(parseTraceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01"), undefined);
    assert.equal(parseTraceparent("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), undefined);
    assert.equal(parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"), undefined);
    assert.equal(parseTraceparent("garbage"), undefined);
    const sc = parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-future", "a=b")!;
    assert.equal(sc.traceState?.get("a"), "b");
  });
});
