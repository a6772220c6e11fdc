/**
 * Routed dispatch: several services and dispatchers on one connection,
 * chosen by method id, with a fallback for every other id (e.g. a
 * ForwardingDispatcher that sends unknown calls upstream).
 *
 *   const d = new RoutedDispatcher([serve(HostTracing, tracing), serve(HostApi, api)], new ForwardingDispatcher(upstream));
 *   // or, like the Rust reference: new RoutedDispatcher(primary, fallback)
 *
 * A route must say which ids it serves (`methodIds()`; `serve(...)` does).
 * The table is built once, at construction: the per-call cost is one Map lookup.
 */
import type { MethodDescriptor } from "../service/define.js";
import { RESPONSE_UNKNOWN_METHOD } from "../wire/envelope.js";
import type { Connection, Dispatcher, IncomingCall } from "../session/connection.js";
import type { RoamError } from "../session/errors.js";

/** A dispatcher that can list the method ids it serves. */
export interface RoutableDispatcher extends Dispatcher {
  methodIds(): Iterable<bigint>;
}

export class RoutedDispatcher implements Dispatcher {
  private readonly table = new Map<bigint, Dispatcher>();
  private readonly routes: readonly Dispatcher[];
  readonly fallback: Dispatcher | null;

  /**
   * `routes`: dispatchers with `methodIds()`; an id served by two routes is
   * an error (say which one wins by leaving it out of the other).
   * `fallback`: gets every call no route claims; without one such calls are
   * answered UnknownMethod.
   */
  constructor(routes: RoutableDispatcher | readonly RoutableDispatcher[], fallback: Dispatcher | null = null) {
    const list = Array.isArray(routes) ? (routes as readonly RoutableDispatcher[]) : [routes as RoutableDispatcher];
    for (const r of list) {
      if (typeof r.methodIds !== "function") throw new TypeError("a route must list its method ids (methodIds()); use serve(...) or put the dispatcher as the fallback");
      for (const id of r.methodIds()) {
        if (this.table.has(id)) {
          const m = r.describe?.(id);
          throw new TypeError(`method ${m ? `${m.service}.${m.name}` : `0x${id.toString(16)}`} is served by two routes`);
        }
        this.table.set(id, r);
      }
    }
    this.routes = list;
    this.fallback = fallback;
  }

  /** Every id a route serves, then the fallback's if it can list them (like the reference). */
  methodIds(): bigint[] {
    const ids = [...this.table.keys()];
    const f = this.fallback as Partial<RoutableDispatcher> | null;
    if (f && typeof f.methodIds === "function") for (const id of f.methodIds()) if (!this.table.has(id)) ids.push(id);
    return ids;
  }

  /** The dispatcher a call with this id goes to (null: answered UnknownMethod). */
  routeOf(methodId: bigint): Dispatcher | null {
    return this.table.get(methodId) ?? this.fallback;
  }

  describe(methodId: bigint): MethodDescriptor | undefined {
    return this.routeOf(methodId)?.describe?.(methodId);
  }

  dispatch(call: IncomingCall): void {
    const d = this.table.get(call.request.methodId) ?? this.fallback;
    if (d === null) {
      call.respond(RESPONSE_UNKNOWN_METHOD);
      return;
    }
    d.dispatch(call);
  }

  connectionClosed(connection: Connection, error: RoamError): void {
    for (const r of this.routes) r.connectionClosed?.(connection, error);
    this.fallback?.connectionClosed?.(connection, error);
  }
}
