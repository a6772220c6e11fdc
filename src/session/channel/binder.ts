/**
 * The call-time binder: binds channel handles while a Request's arguments
 * are encoded (caller) or decoded (callee), and ends them with the call.
 */
import type { ChannelBinder, ChannelSchema } from "../../schema/index.js";
import { ProtocolViolation, type RoamError } from "../errors.js";
import type { ChannelHost } from "./host.js";
import type { ChannelRegistry } from "./registry.js";
import { Rx } from "./rx.js";
import { Tx } from "./tx.js";

/**
 * Binds channel handles while a Request's arguments are encoded (caller) or
 * decoded (callee). Collects the ids in argument order for `Request.channels`.
 */
export class CallChannelBinder implements ChannelBinder {
  readonly ids: number[] = [];
  /** Channels bound by this call: receive ends close with the Response. */
  readonly receivers: Rx<any>[] = [];
  readonly senders: Tx<any>[] = [];
  private cursor = 0;

  constructor(
    private readonly host: ChannelHost,
    private readonly registry: ChannelRegistry,
    /** Callee: the authoritative ids from Request.channels. */
    private readonly authoritative?: readonly number[],
  ) {}

  bindOutgoing(handle: unknown, schema: ChannelSchema<any>): number {
    // Caller side. `t.rx` (handler receives): the caller passes the Rx end and
    // sends on its partner Tx. `t.tx` (handler sends): the caller passes the
    // Tx end and receives on its partner Rx.
    const id = this.registry.allocate();
    this.ids.push(id);
    if (schema.kind === "rx") {
      if (!(handle instanceof Rx)) throw new TypeError(`expected an Rx (the far end of channel()) for an Rx<T> argument, got ${describeHandle(handle)}`);
      const near = handle.partner;
      if (!near) throw new TypeError("this Rx has no partner Tx; create it with channel()");
      near.bind(this.host, id, schema.element);
      this.registry.addOutgoing(id, near);
      this.senders.push(near);
    } else {
      if (!(handle instanceof Tx)) throw new TypeError(`expected a Tx (the far end of channel()) for a Tx<T> argument, got ${describeHandle(handle)}`);
      const near = handle.partner;
      if (!near) throw new TypeError("this Tx has no partner Rx; create it with channel()");
      near.bind(this.host, id, schema.element);
      this.registry.addIncoming(id, near);
      this.receivers.push(near);
    }
    return id;
  }

  bindIncoming(idFromPayload: number, schema: ChannelSchema<any>): unknown {
    // Callee side: r[channeling.allocation.caller] Request.channels is authoritative.
    const auth = this.authoritative;
    let id = idFromPayload;
    if (auth) {
      if (this.cursor >= auth.length) {
        throw new ProtocolViolation("call.request.channels", `payload has more channels than Request.channels (${auth.length})`, this.host.connId);
      }
      id = auth[this.cursor++]!;
    }
    this.registry.notePeerId(id);
    this.ids.push(id);
    if (schema.kind === "rx") {
      const rx = new Rx<any>();
      rx.bind(this.host, id, schema.element);
      this.registry.addIncoming(id, rx);
      this.receivers.push(rx);
      return rx;
    }
    const tx = new Tx<any>();
    tx.bind(this.host, id, schema.element);
    this.registry.addOutgoing(id, tx);
    this.senders.push(tx);
    return tx;
  }

  /**
   * Ends every channel of this call with `error` (never sent, abandoned,
   * failed, or its handler cancelled): ids are burned as reset.
   */
  fail(error: RoamError): void {
    // mutation: equivalent — the `id !== undefined` checks here and in endReceivers (-> true):
    // an end is pushed to receivers/senders only after bind() gave it its id.
    for (const rx of this.receivers) {
      if (rx.id !== undefined) this.registry.release(rx.id, "reset");
      rx.fail(error);
    }
    for (const tx of this.senders) {
      if (tx.id !== undefined) this.registry.release(tx.id, "reset");
      tx.fail(error);
    }
  }

  /** r[channeling.lifecycle.response-closes-pulls]: the call's Response ends our receive ends. */
  endReceivers(): void {
    for (const rx of this.receivers) {
      if (rx.id !== undefined) this.registry.release(rx.id, "closed");
      rx.end();
    }
  }

  /** Callee: every id in Request.channels must have been consumed by the arguments. */
  checkAllConsumed(): void {
    if (this.authoritative && this.cursor !== this.authoritative.length) {
      throw new ProtocolViolation("call.request.channels", `Request.channels lists ${this.authoritative.length} ids, the arguments hold ${this.cursor}`, this.host.connId);
    }
  }
}

function describeHandle(h: unknown): string {
  if (h instanceof Tx) return "a Tx";
  if (h instanceof Rx) return "an Rx";
  return h === null ? "null" : typeof h;
}
