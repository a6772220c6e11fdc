/**
 * Diagnostics: a structured snapshot of what a link, a server or an SHM host
 * has in flight — connections, calls (method, age, direction) and channels
 * (direction, credit, buffered bytes, pressure level, paused) — and a text
 * rendering of it for humans (what the SIGUSR1 dump prints).
 *
 *   link.diagnostics(); server.diagnostics(); host.diagnostics();
 *   console.log(formatDiagnostics(server.diagnostics()));
 *
 * Taking a snapshot walks the live maps once; nothing is recorded per call
 * beyond the start time each call already carries.
 */
import type { ConnectionControl } from "./connection.js";
import type { Link } from "./link.js";
import type { PressureLevel } from "./pressure.js";

export interface CallDiagnostics {
  connId: number;
  requestId: number;
  /** outgoing: we called and wait; incoming: we serve it. */
  direction: "outgoing" | "incoming";
  /** `Service.method` (or `method 0x…` when the dispatcher does not know the id). */
  method: string;
  ageMs: number;
}

export interface ChannelDiagnostics {
  connId: number;
  channelId: number;
  /** send: this side sends (a Tx); receive: this side receives (an Rx); forwarded: relayed by a proxy. */
  direction: "send" | "receive" | "forwarded";
  /** Receiver: credit the sender still holds. Sender: credit we hold. */
  creditOutstanding: number;
  /** Receiver: bytes received, not yet taken. Sender: bytes of sends waiting for credit. */
  bufferedBytes: number;
  window: number;
  level: PressureLevel;
  /** The sender cannot send: no credit left (receiver: the sender is held back by us). */
  paused: boolean;
  totalBytes: number;
  totalValues: number;
}

export interface ConnectionDiagnostics {
  connId: number;
  closed: boolean;
  calls: CallDiagnostics[];
  channels: ChannelDiagnostics[];
}

export interface LinkDiagnostics {
  /** The transport ("tcp 127.0.0.1:53211", "shm peer 3", …). */
  transport: string;
  initiator: boolean;
  closed: boolean;
  maxPayloadSize: number | null;
  initialCredit: number | null;
  connections: ConnectionDiagnostics[];
}

export interface ServerDiagnostics {
  kind: "server";
  address: string;
  links: LinkDiagnostics[];
}

export interface ShmGuestDiagnostics {
  peerId: number;
  name: string;
  /** Peer-table state: empty, attached, goodbye, reserved. */
  peerState: string;
  kind: string;
  /** Milliseconds since the guest last wrote its heartbeat (null: none yet). */
  heartbeatAgeMs: number | null;
  /** Payload slots currently owned by the guest (allocated by it, not yet freed). */
  slotsOwned: number;
  /** Whether the host considers it dead or detached. */
  ended: false | "dead" | "detached";
  link: LinkDiagnostics | null;
}

export interface ShmHostDiagnostics {
  kind: "shm-host";
  path: string | null;
  sizeBytes: number;
  /** Payload slots owned by the host. */
  hostSlotsOwned: number;
  guests: ShmGuestDiagnostics[];
  stats: { deaths: number; detaches: number; reclaimed: number; slotsRecovered: number };
}

export type Diagnostics = ServerDiagnostics | ShmHostDiagnostics | ({ kind: "link" } & LinkDiagnostics);

/** Something that can report itself (servers and SHM hosts register on creation). */
export interface DiagnosticsSource {
  diagnostics(): Diagnostics | LinkDiagnostics;
  /** Links it owns (so the process-wide dump does not list them twice). */
  ownedLinks(): Iterable<Link>;
}

/** Process-wide registry of live links and sources (for `installDiagnosticsSignal`). Entries leave when they close. */
export const diagnosticsRegistry = {
  links: new Set<Link>(),
  sources: new Set<DiagnosticsSource>(),
};

/** @internal Called by the Link constructor. */
export function trackLink(link: Link): void {
  diagnosticsRegistry.links.add(link);
  link.onClose(() => diagnosticsRegistry.links.delete(link));
}

/** Snapshots of everything live in this process: servers and SHM hosts with their links, then other links. */
export function processDiagnostics(): Diagnostics[] {
  const out: Diagnostics[] = [];
  const owned = new Set<Link>();
  for (const s of diagnosticsRegistry.sources) {
    for (const l of s.ownedLinks()) owned.add(l);
    const d = s.diagnostics();
    out.push("kind" in d ? d : { kind: "link", ...d });
  }
  for (const l of diagnosticsRegistry.links) if (!owned.has(l)) out.push({ kind: "link", ...l.diagnostics() });
  return out;
}

/** @internal */
export function connectionDiagnostics(control: ConnectionControl, now = performance.now()): ConnectionDiagnostics {
  const conn = control.connection;
  const calls: CallDiagnostics[] = control.inFlight().map((c) => ({
    connId: conn.connId,
    requestId: c.requestId,
    direction: c.direction,
    method: c.name,
    ageMs: Math.round(now - c.started),
  }));
  const channels: ChannelDiagnostics[] = [];
  const reg = control.channels;
  for (const [id, tx] of reg.outgoing) {
    const s = tx.stats();
    channels.push({
      connId: conn.connId,
      channelId: id,
      direction: "send",
      creditOutstanding: s.creditOutstanding,
      bufferedBytes: s.bufferedBytes,
      window: s.window,
      level: s.level,
      paused: s.bufferedBytes > 0 || s.creditOutstanding === 0,
      totalBytes: s.totalBytes,
      totalValues: s.totalValues,
    });
  }
  for (const [id, rx] of reg.incoming) {
    const s = rx.stats();
    channels.push({
      connId: conn.connId,
      channelId: id,
      direction: "receive",
      creditOutstanding: s.creditOutstanding,
      bufferedBytes: s.bufferedBytes,
      window: s.window,
      level: s.level,
      paused: s.creditOutstanding === 0,
      totalBytes: s.totalBytes,
      totalValues: s.totalValues,
    });
  }
  for (const id of reg.claimed.keys()) {
    channels.push({ connId: conn.connId, channelId: id, direction: "forwarded", creditOutstanding: 0, bufferedBytes: 0, window: 0, level: "green", paused: false, totalBytes: 0, totalValues: 0 });
  }
  channels.sort((a, b) => a.channelId - b.channelId);
  return { connId: conn.connId, closed: conn.isClosed, calls, channels };
}

/** @internal Used by `Link.diagnostics()`. */
export function linkDiagnostics(link: Link, connections: Iterable<ConnectionControl>): LinkDiagnostics {
  const now = performance.now();
  let limits: { maxPayloadSize: number; initialCredit: number } | null = null;
  try {
    limits = link.handshakePending() === undefined ? { maxPayloadSize: link.maxPayloadSize, initialCredit: link.initialCredit } : null;
    // mutation: equivalent — the catch block emptied: when the line above throws, its assignment did
    // not happen, so limits is still null.
  } catch {
    limits = null;
  }
  return {
    transport: link.transport.description,
    initiator: link.initiator,
    closed: link.isClosed,
    maxPayloadSize: limits?.maxPayloadSize ?? null,
    initialCredit: limits?.initialCredit ?? null,
    connections: [...connections].map((c) => connectionDiagnostics(c, now)),
  };
}

// --- text ---------------------------------------------------------------------------

function fmtBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function linkLines(l: LinkDiagnostics, indent: string, out: string[]): void {
  const calls = l.connections.reduce((n, c) => n + c.calls.length, 0);
  const chans = l.connections.reduce((n, c) => n + c.channels.length, 0);
  out.push(`${indent}link ${l.transport} (${l.initiator ? "initiator" : "acceptor"}${l.closed ? ", closed" : ""}): ${l.connections.length} connection(s), ${calls} call(s) in flight, ${chans} open channel(s)`);
  for (const c of l.connections) {
    if (c.calls.length === 0 && c.channels.length === 0) continue;
    out.push(`${indent}  conn ${c.connId}${c.closed ? " (closed)" : ""}`);
    for (const call of c.calls) {
      out.push(`${indent}    ${call.direction === "outgoing" ? "-> calling" : "<- serving"} ${call.method} #${call.requestId} for ${call.ageMs} ms`);
    }
    for (const ch of c.channels) {
      if (ch.direction === "forwarded") {
        out.push(`${indent}    channel ${ch.channelId} forwarded`);
        continue;
      }
      out.push(
        `${indent}    channel ${ch.channelId} ${ch.direction}: ${ch.level}${ch.paused ? " PAUSED" : ""}, credit ${fmtBytes(ch.creditOutstanding)} of ${fmtBytes(ch.window)}, buffered ${fmtBytes(ch.bufferedBytes)}, ${ch.totalValues} value(s) moved`,
      );
    }
  }
}

/** Human-readable text of one or more snapshots (what the SIGUSR1 dump prints). */
export function formatDiagnostics(snapshots: Diagnostics | readonly Diagnostics[]): string {
  const list = Array.isArray(snapshots) ? (snapshots as readonly Diagnostics[]) : [snapshots as Diagnostics];
  const out: string[] = [];
  for (const d of list) {
    switch (d.kind) {
      case "server":
        out.push(`[roam server ${d.address}] ${d.links.length} link(s)`);
        for (const l of d.links) linkLines(l, "  ", out);
        break;
      case "shm-host":
        out.push(`[roam shm host ${d.path ?? "(memory)"}] ${d.guests.length} guest(s), host owns ${d.hostSlotsOwned} slot(s); deaths ${d.stats.deaths}, detaches ${d.stats.detaches}`);
        for (const g of d.guests) {
          out.push(
            `  guest ${g.peerId} "${g.name}" (${g.kind}): ${g.peerState}${g.ended ? ` (${g.ended})` : ""}, heartbeat ${g.heartbeatAgeMs === null ? "none yet" : `${g.heartbeatAgeMs} ms ago`}, owns ${g.slotsOwned} slot(s)`,
          );
          if (g.link) linkLines(g.link, "    ", out);
        }
        break;
      case "link":
        linkLines(d, "", out);
        break;
    }
  }
  return out.join("\n") + "\n";
}
