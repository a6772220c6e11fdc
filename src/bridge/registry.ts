/**
 * Services known to the bridge, looked up by the names in the URL, with the
 * JSON codecs of every method compiled once.
 *
 * A service is reachable by its declared name (`Testbed`, as the Rust bridge
 * routes it) and by its kebab form (`testbed`); a method by its declared name
 * (`echoPoint`), its kebab form (`echo-point`, as in the method-id hash) and
 * its snake form (`echo_point`, as the Rust trait spells it).
 */
import { t, type Schema } from "../schema/index.js";
import type { MethodDescriptor, ServiceDescriptor } from "../service/define.js";
import { kebab } from "../service/kebab.js";
import { jsonCodec, type JsonCodec } from "../json/codec.js";
import { snakeFromKebab } from "./protocol.js";

export interface BridgeMethod {
  readonly service: ServiceDescriptor<any>;
  readonly method: MethodDescriptor;
  /** Qualified name for messages: `Testbed.echo`. */
  readonly qualified: string;
  readonly args: JsonCodec<any[]>;
  readonly ok: JsonCodec<any>;
  readonly err: JsonCodec<any> | null;
}

export interface BridgeService {
  readonly descriptor: ServiceDescriptor<any>;
  readonly methods: ReadonlyMap<string, BridgeMethod>;
}

export function compileMethod(service: ServiceDescriptor<any>, method: MethodDescriptor): BridgeMethod {
  return {
    service,
    method,
    qualified: `${service.name}.${method.name}`,
    args: jsonCodec(t.tuple(...method.argSchemas) as unknown as Schema<any[]>),
    ok: jsonCodec(method.okSchema),
    err: method.errSchema ? jsonCodec(method.errSchema) : null,
  };
}

export class BridgeRegistry {
  private readonly services = new Map<string, BridgeService>();

  constructor(services: readonly ServiceDescriptor<any>[]) {
    for (const d of services) {
      if (d.name.startsWith("@")) throw new TypeError(`service name ${d.name} starts with "@", which is reserved for bridge endpoints (bridge.url.reserved)`);
      const methods = new Map<string, BridgeMethod>();
      for (const m of Object.values(d.methods) as MethodDescriptor[]) {
        const bm = compileMethod(d, m);
        for (const name of new Set([m.name, m.kebabName, snakeFromKebab(m.kebabName)])) methods.set(name, bm);
      }
      const entry: BridgeService = { descriptor: d, methods };
      for (const name of new Set([d.name, kebab(d.name)])) {
        const clash = this.services.get(name);
        if (clash && clash.descriptor !== d) throw new TypeError(`services ${clash.descriptor.name} and ${d.name} are both reachable as /${name}/`);
        this.services.set(name, entry);
      }
    }
  }

  service(name: string): BridgeService | undefined {
    return this.services.get(name);
  }
}
