/**
 * The host side of roam-tracing: one `TracingHub` for all cells; each cell
 * connection gets a `HostTracing` dispatcher from `serviceFor(peerId, name)`
 * that tags every record with the cell's identity (r[tracing.type.tagged]).
 *
 *   const hub = new TracingHub({ config: { filter_directives: "info", include_span_events: true } });
 *   hub.onRecord((r) => console.log(formatRecord(r)));
 *   const link = establishHostPeer(host, peerId, new RoutedDispatcher([hub.serviceFor(peerId, "image"), serve(HostApi, api)]));
 *   await hub.configure(link.root, { filter_directives: "debug", include_span_events: true });  // push to one cell
 *
 * Consumers: synchronous listeners (`onRecord`), or `records()`, an async
 * iterator over a bounded queue (r[tracing.impl.host-buffer-size]): when the
 * consumer falls `bufferSize` records behind, newer records are dropped for
 * that iterator and counted (`stats().dropped`), like the reference's
 * `try_send`.
 */
import type { Connection } from "../session/connection.js";
import { client, serve, type ServiceDispatcher } from "../session/serve.js";
import { CellTracing, HostTracing, type ConfigResult, type FieldValue, type TaggedRecord, type TracingConfig, type TracingRecord } from "./schema.js";

export interface TracingHubOptions {
  /** What cells get from `get_tracing_config`. Default `{ filter_directives: "info", include_span_events: false }`. */
  config?: TracingConfig;
  /** Queue bound of each `records()` iterator. Default 4096. */
  bufferSize?: number;
}

export interface PeerTracingStats {
  peerId: number;
  peerName: string | null;
  records: number;
  batches: number;
  /** Records the cell reported dropping from its own buffer. */
  droppedByCell: number;
}

export class TracingHub {
  private config: TracingConfig;
  private readonly bufferSize: number;
  private listeners: ((r: TaggedRecord) => void)[] = [];
  private readonly peers = new Map<number, PeerTracingStats>();
  /** Records dropped because a `records()` consumer was too slow. */
  droppedByHost = 0;

  constructor(options: TracingHubOptions = {}) {
    this.config = options.config ?? { filter_directives: "info", include_span_events: false };
    this.bufferSize = options.bufferSize ?? 4096;
  }

  /** The config cells receive from `get_tracing_config` (cells already running keep theirs until `configure`). */
  setConfig(config: TracingConfig): void {
    this.config = config;
  }
  getConfig(): TracingConfig {
    return this.config;
  }

  /** The `HostTracing` service for one cell's connection. */
  serviceFor(peerId: number, peerName: string | null = null): ServiceDispatcher {
    const stats: PeerTracingStats = this.peers.get(peerId) ?? { peerId, peerName, records: 0, batches: 0, droppedByCell: 0 };
    stats.peerName = peerName;
    this.peers.set(peerId, stats);
    return serve(HostTracing, {
      get_tracing_config: () => this.config,
      emit_tracing: (records) => {
        stats.batches++;
        for (const record of records) {
          stats.records++;
          if (record.tag === "Event" && record.value.target === "roam_tracing") {
            const d = record.value.fields.find(([k]) => k === "dropped")?.[1];
            if (d && d.tag === "U64") stats.droppedByCell += Number(d.value);
          }
          this.publish({ peerId, peerName, record });
        }
      },
    });
  }

  /** Pushes `config` to one cell through its `CellTracing` service (r[tracing.flow.config-update]). */
  configure(connection: Connection, config: TracingConfig, options?: { timeout?: number }): Promise<ConfigResult> {
    return client(CellTracing, connection).configure(config, { timeout: options?.timeout ?? 10_000 });
  }

  /** Calls `listener` for every record, synchronously, in arrival order. Returns an unsubscribe function. */
  onRecord(listener: (r: TaggedRecord) => void): () => void {
    this.listeners = [...this.listeners, listener];
    return () => (this.listeners = this.listeners.filter((l) => l !== listener));
  }

  /** An async iterator over every record from now on (bounded: see the class comment). */
  records(): AsyncIterableIterator<TaggedRecord> & { return(): Promise<IteratorResult<TaggedRecord>> } {
    const queue: TaggedRecord[] = [];
    let waiter: ((r: IteratorResult<TaggedRecord>) => void) | null = null;
    let done = false;
    const off = this.onRecord((r) => {
      if (waiter) {
        const w = waiter;
        waiter = null;
        w({ value: r, done: false });
      } else if (queue.length < this.bufferSize) queue.push(r);
      else this.droppedByHost++;
    });
    const it = {
      next: (): Promise<IteratorResult<TaggedRecord>> => {
        if (queue.length > 0) return Promise.resolve({ value: queue.shift()!, done: false });
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (waiter = resolve));
      },
      return: (): Promise<IteratorResult<TaggedRecord>> => {
        done = true;
        off();
        queue.length = 0;
        waiter?.({ value: undefined, done: true });
        waiter = null;
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  stats(): { peers: PeerTracingStats[]; droppedByHost: number } {
    return { peers: [...this.peers.values()].map((p) => ({ ...p })), droppedByHost: this.droppedByHost };
  }

  private publish(r: TaggedRecord): void {
    for (const l of this.listeners) {
      try {
        l(r);
      } catch (e) {
        console.error("roam-tracing: a record listener threw:", e);
      }
    }
  }
}

function fieldText(v: FieldValue): string {
  return v.tag === "Str" ? JSON.stringify(v.value) : String(v.value);
}

/** One line per record, e.g. `[image#1] INFO my_cell::images: resized width=640`. */
export function formatRecord(r: TaggedRecord): string {
  const who = `[${r.peerName ?? "cell"}#${r.peerId}]`;
  const rec: TracingRecord = r.record;
  const fields = (fs: readonly (readonly [string, FieldValue])[]) => fs.map(([k, v]) => ` ${k}=${fieldText(v)}`).join("");
  switch (rec.tag) {
    case "Event":
      return `${who} ${rec.value.level.toUpperCase()} ${rec.value.target}: ${rec.value.message ?? ""}${fields(rec.value.fields)}`;
    case "SpanEnter":
      return `${who} ${rec.value.level.toUpperCase()} ${rec.value.target}: --> ${rec.value.name} #${rec.value.id}${fields(rec.value.fields)}`;
    case "SpanExit":
      return `${who} exit #${rec.value.id}`;
    case "SpanClose":
      return `${who} <-- close #${rec.value.id}`;
  }
}
