/**
 * The demo's plugin-host section: a host process creates an SHM hub, spawns
 * three guest processes ("cells") and one worker-thread cell, calls into
 * each, lets each call back into the host, streams through channels both
 * ways, then kills one cell with SIGKILL in the middle of a stream and shows
 * the death detected, its resources reclaimed and the cell replaced under the
 * same peer id. Every cell ships its logs and spans to the host (roam-tracing);
 * the host shows the cells' log lines and the trace tree of one call
 * (OpenTelemetry spans: the host's call, the cell's spans inside it).
 * A section of the tour (`main.ts`); runs alone too:
 *
 *   node dist/apps/demo/plugin-host.js
 */
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Worker } from "node:worker_threads";
import { channel, client, ConnectionClosedError, type Link, RoutedDispatcher, serve } from "roam-ts";
import { type DeathInfo, establishHostPeer, ShmHost, ShmPeerGoneError } from "roam-ts/shm";
import { formatRecord, type TaggedRecord, TracingHub } from "roam-ts/tracing";
import { cellRecordsToSpans, otelClientInterceptor } from "roam-ts/otel";
import { CellApi, HostApi } from "./plugin-api.js";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { c, fmtMs, runTour, type Row, type Tour, type TourSection } from "./tour.js";

const CELL_SCRIPT = fileURLToPath(new URL("./plugin-cell.js", import.meta.url));

const { red, dim, bold } = c;

/** Prints finished spans as an indented tree (children under their parent, in start order). */
function printTraceTree(spans: readonly ReadableSpan[], say: (line: string) => void): void {
  const byParent = new Map<string, ReadableSpan[]>();
  const ids = new Set(spans.map((x) => x.spanContext().spanId));
  for (const sp of spans) {
    const parent = sp.parentSpanContext?.spanId;
    const key = parent && ids.has(parent) ? parent : "";
    byParent.set(key, [...(byParent.get(key) ?? []), sp]);
  }
  const ms = (t: [number, number]) => t[0] * 1e3 + t[1] / 1e6;
  const walk = (key: string, depth: number) => {
    const kids = (byParent.get(key) ?? []).sort((a, b) => ms(a.startTime) - ms(b.startTime));
    for (const sp of kids) {
      const who = sp.attributes["roam.peer_name"] ? dim(` [cell ${String(sp.attributes["roam.peer_name"])}#${String(sp.attributes["roam.peer_id"])}]`) : dim(" [host]");
      const events = sp.events.map((e) => e.name).join("; ");
      say(`${"  ".repeat(depth)}${depth > 0 ? "└ " : ""}${bold(sp.name)}${who} ${fmtMs(ms(sp.duration))}${events ? dim(`  events: ${events}`) : ""}`);
      walk(sp.spanContext().spanId, depth + 1);
    }
  };
  walk("", 0);
}

interface Cell {
  name: string;
  peerId: number;
  link: Link;
  child: ChildProcess | null;
  worker: Worker | null;
}

/** The plugin-host section of the tour. */
export const pluginHostSection: TourSection = {
  title: "plugin host over shared memory",
  what: "Plugins run as separate processes talking through shared memory: fast, and one crash is contained.",
  source: "apps/demo/plugin-host.ts, apps/demo/plugin-cell.ts",
  terms: {
    cell: "a plugin process (or worker thread) attached to the host's shared-memory segment",
    "peer id": "a cell's slot in the segment; a replacement cell can take the slot of a dead one",
    doorbell: "the pipe a cell wakes the host with; it hangs up when the cell's process dies",
  },
  run: (tour) => pluginHost(tour),
};

async function pluginHost(tour: Tour): Promise<Row[]> {
  const rows: Row[] = [];
  const started = performance.now();
  const host = ShmHost.create();
  const deaths = new Map<number, { info: DeathInfo; at: number }>();
  const onDeath = (id: number, info: DeathInfo) => deaths.set(id, { info, at: performance.now() });
  const hostImpl = {
    hello: (cell: string, pid: number) => `welcome, ${cell} (pid ${pid})`,
    uptime: () => performance.now() - started,
  };
  const cells: Cell[] = [];
  // roam-tracing: every cell asks the hub for its filter, then ships its records here.
  const hub = new TracingHub({ config: { filter_directives: "info", include_span_events: true } });
  const cellLogs: TaggedRecord[] = [];
  hub.onRecord((r) => r.record.tag === "Event" && cellLogs.push(r));
  // OpenTelemetry on the host: an in-memory exporter, cell span records become spans of the same trace.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exporter = new InMemorySpanExporter();
  const otel = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer("plugin-host");
  const stopSpans = cellRecordsToSpans(hub, { tracer: otel });
  let tracedTraceId = "";
  const check = async <T>(cell: string, what: string, run: () => Promise<T>, ok: (v: T) => boolean, show: (v: T) => string): Promise<T | undefined> => {
    const t0 = performance.now();
    try {
      const v = await run();
      rows.push({ ok: ok(v), where: cell, what, result: show(v), time: fmtMs(performance.now() - t0) });
      return v;
    } catch (e) {
      rows.push({ ok: false, where: cell, what, result: red(`${(e as Error).name}: ${(e as Error).message}`), time: fmtMs(performance.now() - t0) });
      return undefined;
    }
  };
  const spawnCell = (name: string, asWorker: boolean): Cell => {
    const ticket = host.addPeer({ name, onDeath });
    let child: ChildProcess | null = null;
    let worker: Worker | null = null;
    if (asWorker) worker = ticket.spawnWorker(CELL_SCRIPT, { workerData: { cell: name } });
    else child = ticket.spawn(process.execPath, [CELL_SCRIPT, `--cell=${name}`], { stdio: ["ignore", "inherit", "inherit"] });
    const link = establishHostPeer(host, ticket.peerId, new RoutedDispatcher([hub.serviceFor(ticket.peerId, name), serve(HostApi, hostImpl)]));
    const cell = { name, peerId: ticket.peerId, link, child, worker };
    // Ctrl-C or a closed pipe mid-tour: no cell outlives the tour.
    tour.onCleanup(() => {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      void worker?.terminate();
    });
    cells.push(cell);
    return cell;
  };

  tour.onCleanup(() => host.close());
  rows.push({ ok: true, where: "host", what: "shared-memory segment", result: `${host.path}; 3 cells as processes, 1 as a worker thread` });
  try {
    const spawned = [spawnCell("image", false), spawnCell("markdown", false), spawnCell("search", false), spawnCell("fonts", true)];
    await Promise.all(spawned.map((c) => host.waitAttached(c.peerId, 10_000)));
    for (const cell of spawned) {
      const api = client(CellApi, cell.link.root);
      await check(cell.name, "describe()", () => api.describe(), (s) => s.startsWith(cell.name), (s) => s);
      await check(cell.name, "greetHost() → calls host.hello", () => api.greetHost(), (s) => s.startsWith(`welcome, ${cell.name}`), (s) => JSON.stringify(s));
      const count = 256;
      const size = 64 * 1024;
      await check(
        cell.name,
        `produce(${count} × 64 KiB) → host`,
        async () => {
          const [tx, rx] = channel<Uint8Array>();
          const t0 = performance.now();
          const done = api.produce(count, size, tx);
          let got = 0;
          for await (const b of rx) got += b.length;
          await done;
          return { got, ms: performance.now() - t0 };
        },
        (r) => r.got === count * size,
        (r) => `${(r.got / 1048576).toFixed(0)} MiB at ${((r.got / 1e6) / (r.ms / 1000)).toFixed(0)} MB/s`,
      );
      await check(
        cell.name,
        `consume(${count} × 64 KiB) ← host`,
        async () => {
          const [tx, rx] = channel<Uint8Array>();
          const t0 = performance.now();
          const done = api.consume(rx);
          const block = new Uint8Array(size).fill(1);
          for (let i = 0; i < count; i++) await tx.send(block);
          await tx.close();
          return { got: Number(await done), ms: performance.now() - t0 };
        },
        (r) => r.got === count * size,
        (r) => `${(r.got / 1048576).toFixed(0)} MiB at ${((r.got / 1e6) / (r.ms / 1000)).toFixed(0)} MB/s`,
      );
    }

    // One traced call: the host's span, its call into the cell, the cell's spans inside.
    const traced = spawned[0]!;
    await check(
      traced.name,
      "traced greetHost() (OpenTelemetry)",
      async () => {
        const api = client(CellApi, traced.link.root, { interceptors: [otelClientInterceptor({ tracer: otel })] });
        const answer = await otel.startActiveSpan("host: ask a cell to greet", async (root) => {
          tracedTraceId = root.spanContext().traceId;
          try {
            return await api.greetHost();
          } finally {
            root.end();
          }
        });
        // The cell drains every 50 ms: wait for its span to arrive as a host span.
        const ofTrace = () => exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === tracedTraceId);
        for (let i = 0; i < 100 && !ofTrace().some((x) => x.name === "greet-host"); i++) await new Promise((r) => setTimeout(r, 20));
        return { answer, spans: ofTrace() };
      },
      (r) => r.spans.some((x) => x.name === "greet-host" && x.attributes["roam.peer_name"] === traced.name) && r.spans.length === 4,
      (r) => `${r.spans.length} spans in one trace (host → cell ${traced.name})`,
    );

    // Kill one cell in the middle of a stream.
    const victim = spawned[1]!;
    const vapi = client(CellApi, victim.link.root);
    const [tx, rx] = channel<Uint8Array>();
    const streaming = vapi.produce(1_000_000, 64 * 1024, tx);
    let received = 0;
    const reading = (async () => {
      for await (const b of rx) received += b.length;
    })();
    const outcome = Promise.allSettled([streaming, reading]);
    await new Promise((r) => setTimeout(r, 150));
    const killedAt = performance.now();
    victim.child!.kill("SIGKILL");
    const [s1, s2] = await outcome;
    const death = deaths.get(victim.peerId);
    rows.push({
      ok: death !== undefined && death.at - killedAt < 1000,
      where: victim.name,
      what: `SIGKILL after ${(received / 1048576).toFixed(0)} MiB streamed`,
      result: death ? `the host's onDeath saw it (detected by: ${death.info.cause === "doorbell" ? "its doorbell hanging up" : death.info.cause})` : red("no onDeath"),
      time: death ? fmtMs(death.at - killedAt) : "",
    });
    const typed = (r: PromiseSettledResult<unknown>) => r.status === "rejected" && r.reason instanceof ConnectionClosedError && r.reason.cause instanceof ShmPeerGoneError;
    rows.push({
      ok: typed(s1) && typed(s2),
      where: victim.name,
      what: "the stream and its call",
      result: typed(s1) && typed(s2) ? "both failed: ConnectionClosedError ← ShmPeerGoneError" : red(`${s1.status}/${s2.status}`),
      time: "",
    });
    const t0 = performance.now();
    await host.whenReclaimed(victim.peerId);
    rows.push({
      ok: host.segment.peerState(victim.peerId) === 0,
      where: victim.name,
      what: "its resources",
      result: `reclaimed: buffers reset, ${host.stats.slotsRecovered} payload slot(s) recovered, its peer slot free again`,
      time: fmtMs(performance.now() - t0),
    });
    const replacement = spawnCell("markdown-2", false);
    await check(
      replacement.name,
      `a replacement (peer id ${replacement.peerId})`,
      async () => {
        await host.waitAttached(replacement.peerId, 10_000);
        return client(CellApi, replacement.link.root).greetHost();
      },
      (s) => replacement.peerId === victim.peerId && s.startsWith("welcome, markdown-2"),
      (s) => `${replacement.peerId === victim.peerId ? "same peer id reused" : red("different peer id")}; ${JSON.stringify(s)}`,
    );
    for (const cell of cells.filter((c) => c !== victim)) {
      await check(cell.name, "still serving", () => client(CellApi, cell.link.root).describe(), (s) => s.length > 0, () => "ok");
    }
  } catch (e) {
    rows.push({ ok: false, where: "-", what: "(section failed)", result: red(String(e)), time: "" });
  } finally {
    const t0 = performance.now();
    await host.close();
    rows.push({
      ok: true,
      where: "host",
      what: "host.close()",
      result: `guests detached, segment file deleted (${host.stats.detaches} detach(es), ${host.stats.deaths} death(s))`,
      time: fmtMs(performance.now() - t0),
    });
  }
  stopSpans();
  tour.note(dim("cell logs, as the host received them (roam-tracing; the last 8):"));
  for (const r of cellLogs.slice(-8)) tour.note(formatRecord(r));
  tour.note(dim("trace of the traced call (host spans and the cell's spans, one trace id):"));
  printTraceTree(exporter.getFinishedSpans().filter((x) => x.spanContext().traceId === tracedTraceId), (l) => tour.note(l));
  return rows;
}
// Run on its own: node dist/apps/demo/plugin-host.js
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runTour([], [pluginHostSection]).then(
    (failures) => {
      process.exitCode = failures === 0 ? 0 : 1;
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
