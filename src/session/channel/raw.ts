/**
 * Channels handled without a schema (the forwarding proxy): the sink that
 * receives their messages undecoded, and the narrow port a connection hands
 * out for them instead of its internals.
 */
import type { RoamError } from "../errors.js";
import type { ReceiveCredit, SendCredit } from "../flow.js";
import type { ChannelHost } from "./host.js";
import type { ChannelRegistry } from "./registry.js";

/**
 * Receives the messages of a channel claimed without a schema (proxies):
 * payloads are passed through undecoded.
 */
export interface RawChannelSink {
  data(payload: Uint8Array): void;
  close(): void;
  reset(): void;
  credit(bytes: number): void;
  /** The connection ended. */
  fail(error: RoamError): void;
}

/**
 * What relaying channels between connections needs from one connection
 * (`connection.rawChannels()`): ids, raw routing, credit and the three
 * channel messages — nothing of the connection's calls or typed channels.
 */
export interface RawChannels {
  readonly connId: number;
  /** The per-channel credit window negotiated on this link. */
  readonly initialCredit: number;
  /** Registers an id the peer allocated in a Request (channeling.id.uniqueness; throws ProtocolViolation). */
  notePeerId(id: number): void;
  /** A fresh id of our parity (channeling.id.parity). */
  allocate(): number;
  /** Routes every message of channel `id` to `sink` until released. */
  claim(id: number, sink: RawChannelSink): void;
  /** The channel ended; forget it (its id stays burned). */
  release(id: number, how: "closed" | "reset"): void;
  /** Credit we grant on `id` as its data is consumed; `buffered` reports bytes held. */
  receiveCredit(id: number, buffered: () => number): ReceiveCredit;
  /** Credit the peer grants us to send on `id`. */
  sendCredit(id: number): SendCredit;
  sendData(id: number, payload: Uint8Array): void;
  sendClose(id: number): void;
  sendReset(id: number): void;
}

/** The raw-channel port over one connection's channel host and registry. */
export function rawChannelPort(host: ChannelHost, registry: ChannelRegistry): RawChannels {
  return {
    connId: host.connId,
    get initialCredit() {
      return host.initialCredit;
    },
    notePeerId: (id) => registry.notePeerId(id),
    allocate: () => registry.allocate(),
    claim: (id, sink) => registry.claim(id, sink),
    release: (id, how) => registry.release(id, how),
    receiveCredit: (id, buffered) => host.flow.receiver(host.connId, id, host.initialCredit, buffered),
    sendCredit: (id) => host.flow.sender(host.connId, id, host.initialCredit),
    sendData: (id, payload) => host.sendData(id, payload),
    sendClose: (id) => host.sendClose(id),
    sendReset: (id) => host.sendReset(id),
  };
}
