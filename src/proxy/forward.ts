/**
 * Transparent forwarding: every call arriving on a connection is re-issued
 * on an upstream connection without knowing the schema. Channel ids are
 * remapped in both directions (Request.channels is authoritative, so the
 * payload travels untouched), and channel traffic is relayed with credit
 * mediated end to end (see relay.ts).
 */
import { HANDLER_ERROR_KEY, RESPONSE_CANCELLED } from "../wire/envelope.js";
import type { Connection, Dispatcher, IncomingCall } from "../session/connection.js";
import { ConnectionClosedError, type RoamError } from "../session/errors.js";
import type { Metadata, ResponseMessage } from "../wire/message.js";
import { ChannelRelay } from "./relay.js";

interface ProxiedCall {
  relays: ChannelRelay[];
  abort: AbortController;
  down: Connection;
}

export interface ForwarderStats {
  /** Calls currently forwarded and awaiting their upstream Response. */
  inFlight: number;
  /** Channels currently relayed. */
  channels: number;
  /** Bytes queued inside the proxy right now, over all relays. */
  queuedBytes: number;
}

/**
 * A dispatcher that forwards every call to `upstream`.
 * Serve it on a connection: `link.root.setDispatcher(new ForwardingDispatcher(upstreamConn))`.
 */
export class ForwardingDispatcher implements Dispatcher {
  private upstream: Connection | null;
  private readonly calls = new Set<ProxiedCall>();
  private readonly relays = new Set<ChannelRelay>();

  constructor(upstream: Connection | null) {
    this.upstream = upstream;
  }

  protected currentUpstream(): Connection | null {
    return this.upstream;
  }

  protected replaceUpstream(conn: Connection | null): void {
    this.upstream = conn;
  }

  dispatch(call: IncomingCall): void {
    const up = this.currentUpstream();
    const down = call.connection;
    const m = call.request;
    if (up === null || up.isClosed) {
      // No upstream (yet): the call is Cancelled, as the late-bound forwarder specifies.
      call.respond(RESPONSE_CANCELLED);
      return;
    }
    const relays: ChannelRelay[] = [];
    const upIds: number[] = [];
    const downChannels = m.channels.length > 0 ? down.rawChannels() : null;
    const upChannels = m.channels.length > 0 ? up.rawChannels() : null;
    for (const downId of m.channels) {
      downChannels!.notePeerId(downId); // parity/uniqueness of the caller's ids
      const upId = upChannels!.allocate();
      const relay = new ChannelRelay(downChannels!, downId, upChannels!, upId);
      relays.push(relay);
      upIds.push(upId);
      this.relays.add(relay);
    }
    const abort = new AbortController();
    const pc: ProxiedCall = { relays, abort, down };
    this.calls.add(pc);
    // Downstream Cancel → upstream Cancel.
    const signal = call.signal;
    const onCancel = () => abort.abort(signal.reason);
    signal.addEventListener("abort", onCancel, { once: true });

    const finish = () => {
      signal.removeEventListener("abort", onCancel);
      this.calls.delete(pc);
    };
    up.callRaw(m.methodId, m.payload, { channels: upIds, metadata: m.metadata, signal: abort.signal }).then(
      async (resp: ResponseMessage) => {
        // Data the callee sent before its Response goes downstream first.
        await Promise.all(relays.map((r) => r.responseArrived()));
        for (const r of relays) if (r.isReleased) this.relays.delete(r);
        finish();
        call.respond(resp.payload, resp.metadata, resp.channels.map((id) => relays.find((r) => r.upId === id)?.downId ?? id));
      },
      (e: unknown) => {
        finish();
        for (const r of relays) {
          r.teardown(e as RoamError, "up");
          this.relays.delete(r);
        }
        const reason = e instanceof ConnectionClosedError ? "upstream connection closed" : `upstream call failed: ${(e as Error)?.message ?? e}`;
        const md: Metadata = [[HANDLER_ERROR_KEY, reason]];
        call.respond(RESPONSE_CANCELLED, md);
      },
    );
  }

  connectionClosed(connection: Connection, error: RoamError): void {
    for (const pc of [...this.calls]) {
      if (pc.down !== connection) continue;
      pc.abort.abort(error);
      for (const r of pc.relays) {
        r.teardown(error, "down");
        this.relays.delete(r);
      }
      this.calls.delete(pc);
    }
  }

  stats(): ForwarderStats {
    let queued = 0;
    let channels = 0;
    for (const r of this.relays) {
      if (r.isReleased) {
        this.relays.delete(r);
        continue;
      }
      channels++;
      queued += r.toUpstream.bytes + r.toDownstream.bytes;
    }
    return { inFlight: this.calls.size, channels, queuedBytes: queued };
  }

  /** Largest number of bytes any live relay direction has held (bounded by the window). */
  peakQueuedBytes(): number {
    let peak = 0;
    for (const r of this.relays) peak = Math.max(peak, r.toUpstream.peakBytes, r.toDownstream.peakBytes);
    return peak;
  }
}

/**
 * A forwarder whose upstream is attached later (e.g. once a backend has
 * connected). Calls that arrive before `setUpstream` get Cancelled.
 */
export class LateBoundForwarder extends ForwardingDispatcher {
  constructor() {
    super(null);
  }
  /** Attaches (or replaces, or detaches with null) the upstream connection. */
  setUpstream(conn: Connection | null): void {
    this.replaceUpstream(conn);
  }
  get hasUpstream(): boolean {
    return this.currentUpstream() !== null;
  }
}
