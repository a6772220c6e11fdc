import { blake3 } from "@noble/hashes/blake3.js";
import type { Reader } from "../codec/reader.js";
import type { Writer } from "../codec/writer.js";
import {
  ChannelSchema,
  ResultSchema,
  Schema,
  type Infer,
  type ResultValue,
  StructSchemaClass,
  EnumSchemaClass,
  OptionSchemaClass,
  ListSchemaClass,
  ArraySchemaClass,
  MapSchemaClass,
  SetSchemaClass,
  TupleSchemaClass,
  t,
} from "../schema/index.js";
import { methodSignature } from "../schema/signature.js";
import {
  RESULT_ERR,
  RESULT_OK,
  ROAM_ERROR_CANCELLED,
  ROAM_ERROR_INVALID_PAYLOAD,
  ROAM_ERROR_UNKNOWN_METHOD,
  ROAM_ERROR_USER,
} from "../wire/envelope.js";
import { kebab } from "./kebab.js";

const textEncoder = new TextEncoder();

/** A named argument: `arg("dividend", t.i64)`. Names are documentation only (not on the wire). */
export interface Arg<T> {
  readonly argName: string;
  readonly schema: Schema<T>;
}

/** Arguments created while `method(signature)` evaluates its parameter defaults (see below). */
let recording: Arg<any>[] | null = null;

/**
 * An argument: `arg("dividend", t.i64)` in a list, or `arg(t.i64)` as a parameter default of
 * `method((dividend = arg(t.i64)) => …)`, where the parameter's own name is the argument name.
 */
export function arg<T>(name: string, schema: Schema<T>): Arg<T>;
export function arg<T>(schema: Schema<T>): Arg<T>;
export function arg<T>(nameOrSchema: string | Schema<T>, schema?: Schema<T>): Arg<T> {
  const a: Arg<T> =
    typeof nameOrSchema === "string" ? { argName: nameOrSchema, schema: schema! } : { argName: "", schema: nameOrSchema };
  if (!(a.schema instanceof Schema)) throw new TypeError(`arg(${typeof nameOrSchema === "string" ? JSON.stringify(nameOrSchema) + ", " : ""}…): not a schema`);
  recording?.push(a);
  return a;
}

export type ArgSpec = Schema<any> | Arg<any>;
/** The argument values of a method, positionally; labels of a labelled tuple `A` are kept. */
export type InferArgs<A extends readonly ArgSpec[]> = {
  -readonly [K in keyof A]-?: A[K] extends Arg<infer T> | undefined ? T : A[K] extends Schema<infer T> ? T : never;
};

/** The spec of one method before the service computes its id. */
export interface MethodSpec<A extends readonly ArgSpec[], R extends Schema<any>> {
  readonly args: A;
  readonly returns: R;
  readonly doc?: string | undefined;
  /** Safe to run twice: a reconnecting client may re-send it without a nonce. */
  readonly idempotent?: boolean | undefined;
}

/** Optional properties of a method (the third argument of `method`). */
export interface MethodOptions {
  readonly doc?: string;
  /**
   * Running the method twice has the same effect as once (a read, a
   * set-to-value). A reconnecting client re-sends such a call after a
   * transport failure even without a roam-nonce. Not part of the method id.
   */
  readonly idempotent?: boolean;
}

/** A method written as a signature: parameter names are the argument names, defaults their schemas. */
export type MethodSignature = (...args: any) => Schema<any>;
/** The parameters of a signature as a labelled tuple of `Arg`s (the labels become the client's parameter names). */
export type SignatureArgs<F extends MethodSignature> = Extract<RequiredArgs<Parameters<F>>, readonly ArgSpec[]>;
/** Generic on purpose: only a mapped type over a type parameter maps a tuple to a tuple (keeping its labels). */
type RequiredArgs<P> = { -readonly [K in keyof P]-?: Exclude<P[K], undefined> };

/**
 * Declares a method, in one of two forms.
 *
 * As a signature — the form that gives the client and handler parameters their names in
 * editor hints (`divide(a: bigint, b: bigint, options?)`), because TypeScript takes tuple
 * labels only from parameter names, never from strings:
 *
 *   method((a = arg(t.i64), b = arg(t.i64)) => t.i64)
 *
 * As a list: `method([arg("a", t.i64), arg("b", t.i64)], t.i64)` (or bare schemas); the
 * same method id, but hints show `args_0, args_1`.
 *
 * Direction of channels follows the Rust trait (the handler's view):
 * `t.rx(T)` — the handler receives, the caller sends; `t.tx(T)` — the handler
 * sends, the caller receives. A `t.result(T, E)` return makes the method
 * fallible with user error type E. The third argument is a doc string or
 * `{ doc, idempotent }`.
 */
export function method<const A extends readonly ArgSpec[], R extends Schema<any>>(args: A, returns: R, doc?: string | MethodOptions): MethodSpec<A, R>;
// `F` has no call-signature constraint on purpose: one would type the parameters contextually
// (as `any`) instead of from their `arg(…)` defaults.
export function method<F extends Function>(signature: F, doc?: string | MethodOptions): F extends MethodSignature ? MethodSpec<SignatureArgs<F>, ReturnType<F>> : never;
export function method(
  argsOrSignature: readonly ArgSpec[] | MethodSignature,
  returnsOrDoc?: Schema<any> | string | MethodOptions,
  doc?: string | MethodOptions,
): MethodSpec<readonly ArgSpec[], Schema<any>> {
  const options = (o: unknown): MethodOptions => (typeof o === "string" ? { doc: o } : typeof o === "object" && o !== null && !(o instanceof Schema) ? (o as MethodOptions) : {});
  if (typeof argsOrSignature !== "function") {
    const o = options(doc);
    return { args: argsOrSignature, returns: returnsOrDoc as Schema<any>, doc: o.doc, idempotent: o.idempotent === true };
  }
  const names = parameterNames(argsOrSignature);
  const outer = recording;
  recording = [];
  let returns: unknown;
  let args: Arg<any>[];
  try {
    returns = (argsOrSignature as () => unknown)();
    args = recording;
  } finally {
    recording = outer;
  }
  if (!(returns instanceof Schema)) throw new TypeError("method((…) => T): the signature must return the method's return schema");
  if (names !== null && names.length !== args.length) {
    throw new TypeError(`method((…) => …): every parameter needs a default \`arg(schema)\` (found ${names.length} parameters, ${args.length} arg() calls)`);
  }
  const named = args.map((a, i) => ({ argName: a.argName || names?.[i] || `arg${i}`, schema: a.schema }));
  const o = options(returnsOrDoc ?? doc);
  return { args: named, returns: returns as Schema<any>, doc: o.doc, idempotent: o.idempotent === true };
}

/**
 * Parameter names of a function from its source (`(a = arg(t.i64), b = …) => …`), or null when
 * the source is not available (native/bound functions). Names are documentation only, so a
 * minified build that renames parameters still works; it only shows other names.
 */
function parameterNames(fn: Function): string[] | null {
  const src = Function.prototype.toString.call(fn);
  const open = src.indexOf("(");
  if (open < 0) return null;
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = open + 1;
  for (let i = open + 1; i < src.length; i++) {
    const ch = src[i]!;
    if (quote !== null) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === "`") quote = ch;
    else if (ch === "(" || ch === "[" || ch === "{") depth++;
    else if (ch === ")" || ch === "]" || ch === "}") {
      if (depth === 0) {
        parts.push(src.slice(start, i));
        break;
      }
      depth--;
    } else if (ch === "," && depth === 0) {
      parts.push(src.slice(start, i));
      start = i + 1;
    }
  }
  const names = parts.map((p) => /^\s*([A-Za-z_$][\w$]*)/.exec(p)?.[1] ?? "").filter((n, i) => n !== "" || parts[i]!.trim() !== "");
  return names.length === 1 && names[0] === "" ? [] : names;
}

/** Success type of a return schema (unwraps Result). */
export type OkOf<R> = R extends ResultSchema<infer T, any> ? T : Infer<R>;
/** User error type of a return schema (`never` when infallible). */
export type ErrOf<R> = R extends ResultSchema<any, infer E> ? E : never;

/** Where a channel sits inside a method's arguments (computed once, at definition). */
export interface ChannelSlot {
  /** Path such as `args[1]`, `args[0].some`, `args[2][*].input`, `args[0].Variant`. */
  readonly path: string;
  /** `rx`: handler receives / caller sends; `tx`: handler sends / caller receives. */
  readonly direction: "tx" | "rx";
  readonly element: Schema<any>;
  /** True when the number of channels here depends on the value (inside Option/List/Map/enum). */
  readonly conditional: boolean;
}

/** Protocol-level outcome of a call, as carried in a Response payload. */
export type RoamErrorValue<E> =
  | { tag: "User"; value: E }
  | { tag: "UnknownMethod" }
  | { tag: "InvalidPayload" }
  | { tag: "Cancelled" };

export class MethodDescriptor<A extends any[] = any[], T = any, E = any> {
  readonly kebabName: string;
  readonly id: bigint;
  readonly idHex: string;
  readonly signature: Uint8Array;
  readonly argSchemas: readonly Schema<any>[];
  readonly argNames: readonly string[];
  readonly fallible: boolean;
  readonly okSchema: Schema<T>;
  readonly errSchema: Schema<E> | null;
  readonly channels: readonly ChannelSlot[];
  readonly hasChannels: boolean;
  readonly doc: string | undefined;
  /** Declared idempotent (`method(..., { idempotent: true })`). */
  readonly idempotent: boolean;
  private readonly argTuple: Schema<A>;

  constructor(
    readonly service: string,
    readonly name: string,
    spec: MethodSpec<readonly ArgSpec[], Schema<any>>,
  ) {
    this.argSchemas = spec.args.map((a) => (a instanceof Schema ? a : a.schema));
    this.argNames = spec.args.map((a, i) => (a instanceof Schema ? `arg${i}` : a.argName));
    this.doc = spec.doc;
    this.idempotent = spec.idempotent === true;
    const ret = spec.returns;
    if (ret.hasChannels) throw new TypeError(`${service}.${name}: Tx/Rx must not appear in the return type (core.channel.return-forbidden)`);
    if (ret instanceof ResultSchema) {
      this.fallible = true;
      this.okSchema = ret.ok;
      this.errSchema = ret.err;
    } else {
      this.fallible = false;
      this.okSchema = ret;
      this.errSchema = null;
    }
    this.argTuple = t.tuple(...this.argSchemas) as unknown as Schema<A>;
    this.signature = methodSignature(this.argSchemas, ret);
    this.kebabName = kebab(name);
    this.id = computeMethodId(service, name, this.signature);
    this.idHex = "0x" + this.id.toString(16).padStart(16, "0");
    const slots: ChannelSlot[] = [];
    this.argSchemas.forEach((s, i) => collectChannels(s, `args[${i}]`, false, slots, new Set()));
    this.channels = slots;
    this.hasChannels = slots.length > 0;
  }

  encodeArgs(w: Writer, args: A): void {
    this.argTuple.encode(w, args);
  }
  decodeArgs(r: Reader): A {
    const v = this.argTuple.decode(r);
    r.expectEnd();
    return v;
  }

  /** Response payload for a success. */
  encodeOk(w: Writer, value: T): void {
    w.u8(RESULT_OK);
    this.okSchema.encode(w, value);
  }
  /** Response payload for a user error (fallible methods only). */
  encodeUserError(w: Writer, error: E): void {
    if (this.errSchema === null) throw new TypeError(`${this.service}.${this.name} is infallible: it has no user error type`);
    w.u8(RESULT_ERR);
    w.u8(ROAM_ERROR_USER);
    this.errSchema.encode(w, error);
  }

  /** Decodes a Response payload into `Result<T, RoamError<E>>`. */
  decodeResponse(r: Reader): ResultValue<T, RoamErrorValue<E>> {
    const at = r.pos;
    const outer = r.varint32();
    let result: ResultValue<T, RoamErrorValue<E>>;
    if (outer === RESULT_OK) {
      result = { ok: true, value: this.okSchema.decode(r) };
    } else if (outer === RESULT_ERR) {
      const inner = r.varint32();
      switch (inner) {
        case ROAM_ERROR_USER:
          if (this.errSchema === null) r.fail(`User error for infallible method ${this.service}.${this.name}`, at);
          result = { ok: false, error: { tag: "User", value: this.errSchema.decode(r) } };
          break;
        case ROAM_ERROR_UNKNOWN_METHOD:
          result = { ok: false, error: { tag: "UnknownMethod" } };
          break;
        case ROAM_ERROR_INVALID_PAYLOAD:
          result = { ok: false, error: { tag: "InvalidPayload" } };
          break;
        case ROAM_ERROR_CANCELLED:
          result = { ok: false, error: { tag: "Cancelled" } };
          break;
        default:
          r.fail(`unknown RoamError discriminant ${inner}`, at);
      }
    } else {
      r.fail(`invalid Result discriminant ${outer}`, at);
    }
    r.expectEnd();
    return result;
  }
}

/** method_id = LE u64 of blake3(kebab(service) "." kebab(method) blake3(sig))[0..8]. */
export function computeMethodId(service: string, method: string, signature: Uint8Array): bigint {
  const sigHash = blake3(signature);
  const prefix = textEncoder.encode(`${kebab(service)}.${kebab(method)}`);
  const input = new Uint8Array(prefix.length + sigHash.length);
  input.set(prefix, 0);
  input.set(sigHash, prefix.length);
  const h = blake3(input);
  let id = 0n;
  for (let i = 7; i >= 0; i--) id = (id << 8n) | BigInt(h[i]!);
  return id;
}

function collectChannels(s: Schema<any>, path: string, conditional: boolean, out: ChannelSlot[], seen: Set<Schema<any>>): void {
  if (!s.hasChannels || seen.has(s)) return;
  if (s instanceof ChannelSchema) {
    out.push({ path, direction: s.kind, element: s.element, conditional });
    return;
  }
  if (s instanceof OptionSchemaClass) return collectChannels(s.inner, `${path}.some`, true, out, seen);
  if (s instanceof ListSchemaClass || s instanceof SetSchemaClass) return collectChannels(s.element, `${path}[*]`, true, out, seen);
  if (s instanceof ArraySchemaClass) return collectChannels(s.element, `${path}[*]`, conditional, out, seen);
  if (s instanceof MapSchemaClass) {
    collectChannels(s.key, `${path}.<key>`, true, out, seen);
    collectChannels(s.value, `${path}.<value>`, true, out, seen);
    return;
  }
  if (s instanceof TupleSchemaClass) {
    s.elements.forEach((e: Schema<any>, i: number) => collectChannels(e, `${path}[${i}]`, conditional, out, seen));
    return;
  }
  if (s instanceof StructSchemaClass) {
    seen.add(s);
    s.names.forEach((n: string, i: number) => collectChannels(s.types[i]!, `${path}.${n}`, conditional, out, seen));
    seen.delete(s);
    return;
  }
  if (s instanceof EnumSchemaClass) {
    seen.add(s);
    for (const v of s.variants) {
      if (v.payload) collectChannels(v.payload, `${path}.${v.name}`, true, out, seen);
    }
    seen.delete(s);
    return;
  }
  // Lazy (recursive) types: channels inside are found while encoding.
  out.push({ path: `${path}.<recursive>`, direction: "rx", element: s, conditional: true });
}

export type MethodSpecs = { readonly [name: string]: MethodSpec<readonly ArgSpec[], Schema<any>> };

export type MethodsOf<S extends MethodSpecs> = {
  [K in keyof S & string]: MethodDescriptor<
    InferArgs<S[K]["args"]>,
    OkOf<S[K]["returns"]>,
    ErrOf<S[K]["returns"]>
  >;
};

export interface ServiceDescriptor<S extends MethodSpecs = MethodSpecs> {
  readonly name: string;
  readonly methods: MethodsOf<S>;
  /** Lookup by wire id. */
  readonly byId: ReadonlyMap<bigint, MethodDescriptor>;
}

/**
 * Defines a service from TypeScript alone:
 *
 * ```ts
 * const Calc = defineService("Calc", {
 *   add: method([arg("a", t.i32), arg("b", t.i32)], t.i64),
 * });
 * Calc.methods.add.id // the same u64 the Rust reference computes
 * ```
 */
export function defineService<const S extends MethodSpecs>(name: string, specs: S): ServiceDescriptor<S> {
  const methods: Record<string, MethodDescriptor> = {};
  const byId = new Map<bigint, MethodDescriptor>();
  for (const mname of Object.keys(specs)) {
    const d = new MethodDescriptor(name, mname, specs[mname]!);
    const clash = byId.get(d.id);
    if (clash) throw new TypeError(`${name}: methods ${clash.name} and ${mname} have the same id ${d.idHex}`);
    methods[mname] = d;
    byId.set(d.id, d);
  }
  return { name, methods: methods as MethodsOf<S>, byId };
}

export type ClientArgs<M> = M extends MethodDescriptor<infer A, any, any> ? A : never;
export type ClientResult<M> = M extends MethodDescriptor<any, infer T, any> ? T : never;
export type ClientError<M> = M extends MethodDescriptor<any, any, infer E> ? E : never;
