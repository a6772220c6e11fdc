/**
 * Typed servers and clients built from a service definition.
 */
import type { ClientArgs, ClientError, ClientResult, MethodDescriptor, MethodSpecs, ServiceDescriptor } from "../service/define.js";
import { RESPONSE_UNKNOWN_METHOD } from "../wire/envelope.js";
import type { UserError } from "./errors.js";
import type { CallContext, CallOptions, Connection, Dispatcher, IncomingCall } from "./connection.js";
import { runTypedHandler } from "./dispatch.js";
import { interceptedCaller, interceptHandler, type ClientInterceptor, type ServerInterceptor } from "./interceptor.js";

/** Options of `serve(...)`. */
export interface ServeOptions {
  /** Server interceptors around every handler (first = outermost). */
  interceptors?: readonly ServerInterceptor[];
}

/** Options of `client(...)`. */
export interface ClientOptions {
  /** Client interceptors around every call (first = outermost). */
  interceptors?: readonly ClientInterceptor[];
}

type Awaitable<T> = T | Promise<T>;

/** What a handler of method M returns: the success value, or `err(e)` for fallible methods. */
export type HandlerResult<M> = [ClientError<M>] extends [never] ? Awaitable<ClientResult<M>> : Awaitable<ClientResult<M> | UserError<ClientError<M>>>;

/** The implementation of a service: one (async) function per method, arguments then context. */
export type Implementation<S extends MethodSpecs> = {
  [K in keyof ServiceDescriptor<S>["methods"]]: (
    ...args: [...ClientArgs<ServiceDescriptor<S>["methods"][K]>, ctx: CallContext]
  ) => HandlerResult<ServiceDescriptor<S>["methods"][K]>;
};

/** A client: one method per service method; an optional trailing CallOptions. */
export type Client<S extends MethodSpecs> = {
  [K in keyof ServiceDescriptor<S>["methods"]]: (
    ...args: [...ClientArgs<ServiceDescriptor<S>["methods"][K]>, options?: CallOptions]
  ) => Promise<ClientResult<ServiceDescriptor<S>["methods"][K]>>;
};

/** A dispatcher serving one or more services on a connection. */
export class ServiceDispatcher implements Dispatcher {
  private readonly table = new Map<bigint, { method: MethodDescriptor; fn: (...a: any[]) => unknown; plain: (...a: any[]) => unknown }>();
  private interceptors: ServerInterceptor[] = [];

  /** Adds a service; later services may not reuse method ids. */
  add<S extends MethodSpecs>(service: ServiceDescriptor<S>, impl: Implementation<S>): this {
    for (const name of Object.keys(service.methods)) {
      const method = (service.methods as Record<string, MethodDescriptor>)[name]!;
      const fn = (impl as Record<string, unknown>)[name];
      if (typeof fn !== "function") throw new TypeError(`${service.name}.${name} has no handler in the implementation`);
      if (this.table.has(method.id)) throw new TypeError(`method id ${method.idHex} (${service.name}.${name}) is already served`);
      const plain = (fn as (...a: any[]) => unknown).bind(impl);
      this.table.set(method.id, { method, plain, fn: this.interceptors.length > 0 ? interceptHandler(method, plain, this.interceptors) : plain });
    }
    return this;
  }

  /** Adds server interceptors (after those already installed: they run inside them), for every method. */
  use(...interceptors: ServerInterceptor[]): this {
    this.interceptors = [...this.interceptors, ...interceptors];
    for (const e of this.table.values()) e.fn = this.interceptors.length > 0 ? interceptHandler(e.method, e.plain, this.interceptors) : e.plain;
    return this;
  }

  /** The ids this dispatcher serves (for routing). */
  methodIds(): bigint[] {
    return [...this.table.keys()];
  }

  describe(methodId: bigint): MethodDescriptor | undefined {
    return this.table.get(methodId)?.method;
  }

  dispatch(call: IncomingCall): void {
    const entry = this.table.get(call.request.methodId);
    if (entry === undefined) {
      call.respond(RESPONSE_UNKNOWN_METHOD);
      return;
    }
    runTypedHandler(call, entry.method, entry.fn);
  }
}

/** `serve(Testbed, impl)`: a dispatcher for one service (add more with `.add`). */
export function serve<S extends MethodSpecs>(service: ServiceDescriptor<S>, impl: Implementation<S>, options?: ServeOptions): ServiceDispatcher {
  const d = new ServiceDispatcher();
  if (options?.interceptors?.length) d.use(...options.interceptors);
  return d.add(service, impl);
}

/** What a typed client calls through: a `Connection`, or a `ReconnectingClient`. */
export interface CallTarget {
  call<A extends any[], T, E>(method: MethodDescriptor<A, T, E>, args: A, options?: CallOptions): Promise<T>;
}

/**
 * A typed client for `service` on `connection`:
 * `const c = client(Testbed, link.root); await c.echo("hi", { timeout: 1000 })`.
 * `connection` may also be a ReconnectingClient.
 */
export function client<S extends MethodSpecs>(service: ServiceDescriptor<S>, connection: CallTarget, options?: ClientOptions): Client<S> {
  const out: Record<string, unknown> = {};
  const interceptors = options?.interceptors ?? [];
  for (const name of Object.keys(service.methods)) {
    const method = (service.methods as Record<string, MethodDescriptor>)[name]!;
    const argc = method.argSchemas.length;
    if (interceptors.length > 0) {
      if (!("connId" in connection)) {
        throw new TypeError("client interceptors need a Connection (interceptors see req.connection); use them on link.root, not on a ReconnectingClient");
      }
      const call = interceptedCaller(connection as Connection, method, interceptors);
      out[name] = (...args: unknown[]) => {
        if (args.length === argc) return call(args, undefined);
        if (args.length === argc + 1) return call(args.slice(0, argc), args[argc] as CallOptions | undefined);
        return Promise.reject(new TypeError(`${service.name}.${name} takes ${argc} argument(s) (+ optional CallOptions), got ${args.length}`));
      };
      continue;
    }
    out[name] = (...args: unknown[]) => {
      if (args.length === argc) return connection.call(method, args as any[]);
      if (args.length === argc + 1) return connection.call(method, args.slice(0, argc) as any[], args[argc] as CallOptions | undefined);
      return Promise.reject(new TypeError(`${service.name}.${name} takes ${argc} argument(s) (+ optional CallOptions), got ${args.length}`));
    };
  }
  return out as Client<S>;
}

/** The implementation type of a service descriptor: `const impl: ImplementationOf<typeof Testbed> = {...}`. */
export type ImplementationOf<D> = D extends ServiceDescriptor<infer S> ? Implementation<S> : never;
/** The client type of a service descriptor. */
export type ClientOf<D> = D extends ServiceDescriptor<infer S> ? Client<S> : never;
