/**
 * Live channels of one connection and the routing of channel messages
 * (Data/Close/Reset/Credit), with the id rules: parity of our own ids,
 * uniqueness of the peer's, and "never opened" vs "already ended" told
 * apart in bounded memory.
 */
import { ChannelResetError, ProtocolViolation, type RoamError } from "../errors.js";
import { OpenedChannelIds } from "../channel-ids.js";
import type { RawChannelSink } from "./raw.js";
import type { Rx } from "./rx.js";
import type { Tx } from "./tx.js";

/** Ids of channels that ended recently, to tell "ignore" from "unknown" (bounded). */
class RecentIds {
  private readonly set = new Map<number, "closed" | "reset">();
  constructor(private readonly limit: number) {}
  add(id: number, how: "closed" | "reset"): void {
    this.set.delete(id);
    this.set.set(id, how);
    if (this.set.size > this.limit) {
      const first = this.set.keys().next().value as number;
      this.set.delete(first);
    }
  }
  get(id: number): "closed" | "reset" | undefined {
    return this.set.get(id);
  }
  delete(id: number): void {
    this.set.delete(id);
  }
}



/** What the registry reads from its connection: its id (for violations) and the element size limit. */
export interface RegistryScope {
  readonly connId: number;
  readonly maxPayloadSize: number;
}

/** Ids of ended channels a registry remembers by default (to tell "ignore" from "unknown"). */
export const RECENT_CHANNEL_IDS = 4096;

/**
 * Live channels of one connection and the routing of channel messages.
 * Violations throw ProtocolViolation (the connection turns them into Goodbye).
 */
export class ChannelRegistry {
  /** Channels we receive on (Data arrives). */
  readonly incoming = new Map<number, Rx<any>>();
  /** Channels we send on (Credit arrives). */
  readonly outgoing = new Map<number, Tx<any>>();
  /** Channels handled raw (forwarding proxy): both directions, payloads undecoded. */
  readonly claimed = new Map<number, RawChannelSink>();
  private readonly recent: RecentIds;
  /** Every id opened on this connection by either side (bounded; see OpenedChannelIds). */
  private readonly opened = new OpenedChannelIds();
  private nextId: number;

  constructor(
    private readonly host: RegistryScope,
    /** Link initiator allocates odd ids, acceptor even (channeling.id.parity[.virtual]). */
    initiator: boolean,
    recentIds: number = RECENT_CHANNEL_IDS,
  ) {
    this.nextId = initiator ? 1 : 2;
    this.recent = new RecentIds(recentIds);
  }

  /** Channels open now (both directions, and raw ones). */
  get openCount(): number {
    return this.incoming.size + this.outgoing.size + this.claimed.size;
  }

  /**
   * Our own ids keep the parity rule (channeling.id.parity). An id of our
   * parity that the peer already used on this connection is skipped, so a
   * peer that ignores parity (roam's harness does) never collides with us.
   */
  allocate(): number {
    let id = this.opened.nextFree(this.nextId);
    while (this.isLive(id)) id = this.opened.nextFree(id + 2);
    this.nextId = id + 2;
    this.opened.add(id);
    return id;
  }

  private isLive(id: number): boolean {
    return this.incoming.has(id) || this.outgoing.has(id) || this.claimed.has(id);
  }

  /**
   * Registers a channel the peer allocated in a Request we are serving.
   *
   * Any id not in use on this connection is accepted, whatever its parity:
   * the parity rule (channeling.id.parity) says what a side MUST allocate,
   * and roam's own compliance harness, which is the link acceptor, calls
   * with ids 1 and 3; the Rust and TypeScript references accept those. A
   * collision with a live channel of either side is the violation
   * (channeling.id.uniqueness).
   */
  notePeerId(id: number): void {
    if (id === 0) throw new ProtocolViolation("channeling.id.zero-reserved", "Request allocated channel 0", this.host.connId);
    if (this.isLive(id)) {
      throw new ProtocolViolation("channeling.id.uniqueness", `channel ${id} is already in use`, this.host.connId);
    }
    // A closed id may be used again; it is live from now on.
    this.recent.delete(id);
    this.opened.add(id);
  }

  addIncoming(id: number, rx: Rx<any>): void {
    this.incoming.set(id, rx);
  }
  addOutgoing(id: number, tx: Tx<any>): void {
    this.outgoing.set(id, tx);
  }

  release(id: number, how: "closed" | "reset"): void {
    this.incoming.delete(id);
    this.outgoing.delete(id);
    this.claimed.delete(id);
    this.recent.add(id, how);
  }

  /** Routes every message of channel `id` to `sink` until released. */
  claim(id: number, sink: RawChannelSink): void {
    this.claimed.set(id, sink);
  }

  private wasOpened(id: number): boolean {
    return this.opened.has(id);
  }

  private unknown(kind: string, id: number): never {
    if (id === 0) throw new ProtocolViolation("channeling.id.zero-reserved", `${kind} on channel 0`, this.host.connId);
    throw new ProtocolViolation("channeling.unknown", `${kind} on channel ${id}, which was never opened`, this.host.connId);
  }

  onData(id: number, payload: Uint8Array): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      if (payload.length > this.host.maxPayloadSize) {
        throw new ProtocolViolation("channeling.data.size-limit", `${payload.length} byte element on channel ${id} (max ${this.host.maxPayloadSize})`, this.host.connId);
      }
      raw.data(payload);
      return;
    }
    const rx = this.incoming.get(id);
    if (rx !== undefined) {
      if (payload.length > this.host.maxPayloadSize) {
        throw new ProtocolViolation("channeling.data.size-limit", `${payload.length} byte element on channel ${id} (max ${this.host.maxPayloadSize})`, this.host.connId);
      }
      rx.deliver(payload);
      return;
    }
    // mutation: equivalent — (-> false) unknown() names channel 0 zero-reserved anyway, and 0 is
    // never live, recent or opened (notePeerId refuses it; allocate starts at 1 or 2).
    if (id === 0) this.unknown("Data", id);
    if (this.outgoing.has(id)) {
      throw new ProtocolViolation("core.channel", `Data on channel ${id}, which only this side sends on`, this.host.connId);
    }
    const ended = this.recent.get(id);
    if (ended === "reset") return; // channeling.reset.effect: ignore
    if (ended === "closed" || this.wasOpened(id)) {
      throw new ProtocolViolation("channeling.data-after-close", `Data on channel ${id} after it was closed`, this.host.connId);
    }
    this.unknown("Data", id);
  }

  onClose(id: number): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      raw.close();
      return;
    }
    const rx = this.incoming.get(id);
    if (rx !== undefined) {
      this.incoming.delete(id);
      this.recent.add(id, "closed");
      rx.end();
      return;
    }
    // mutation: equivalent — (-> false) unknown() names channel 0 zero-reserved anyway, and 0 is
    // never live, recent or opened (notePeerId refuses it; allocate starts at 1 or 2).
    if (id === 0) this.unknown("Close", id);
    if (this.outgoing.has(id)) {
      // The callee closes its Tx ends before responding; as a caller we get
      // those Closes for channels we receive on. A Close for a channel we
      // send on is a direction error.
      throw new ProtocolViolation("core.channel", `Close on channel ${id}, which only this side sends on`, this.host.connId);
    }
    const ended = this.recent.get(id);
    if (ended === "reset") return;
    if (ended === "closed" || this.wasOpened(id)) {
      throw new ProtocolViolation("channeling.data-after-close", `Close on channel ${id} after it was closed`, this.host.connId);
    }
    this.unknown("Close", id);
  }

  onReset(id: number): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      raw.reset();
      return;
    }
    const rx = this.incoming.get(id);
    if (rx !== undefined) {
      this.incoming.delete(id);
      this.recent.add(id, "reset");
      rx.fail(new ChannelResetError("remote"));
      return;
    }
    const tx = this.outgoing.get(id);
    if (tx !== undefined) {
      this.outgoing.delete(id);
      this.recent.add(id, "reset");
      tx.fail(new ChannelResetError("remote"));
      return;
    }
    // mutation: equivalent — (-> false) unknown() names channel 0 zero-reserved anyway, and 0 is
    // never live, recent or opened (notePeerId refuses it; allocate starts at 1 or 2).
    if (id === 0) this.unknown("Reset", id);
    if (this.recent.get(id) !== undefined || this.wasOpened(id)) return; // crossed with our own end: ignore
    this.unknown("Reset", id);
  }

  onCredit(id: number, bytes: number): void {
    const raw = this.claimed.get(id);
    if (raw !== undefined) {
      raw.credit(bytes);
      return;
    }
    const tx = this.outgoing.get(id);
    if (tx !== undefined) {
      tx.grant(bytes);
      return;
    }
    // mutation: equivalent — (-> false) unknown() names channel 0 zero-reserved anyway, and 0 is
    // never live, recent or opened (notePeerId refuses it; allocate starts at 1 or 2).
    if (id === 0) this.unknown("Credit", id);
    if (this.incoming.has(id)) {
      throw new ProtocolViolation("core.channel", `Credit on channel ${id}, which only this side receives on`, this.host.connId);
    }
    if (this.recent.get(id) !== undefined || this.wasOpened(id)) return; // credit racing a close/reset
    this.unknown("Credit", id);
  }

  /** Fails every live channel (connection closed). */
  failAll(error: RoamError): void {
    for (const rx of this.incoming.values()) rx.fail(error);
    for (const tx of this.outgoing.values()) tx.fail(error);
    const raws = [...this.claimed.values()];
    this.incoming.clear();
    this.outgoing.clear();
    this.claimed.clear();
    for (const r of raws) r.fail(error);
  }
}

