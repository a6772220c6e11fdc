/**
 * `t`, the public builder: the primitive schemas and one factory per
 * composite kind. Its types are what `Infer<S>` reads values from.
 */
import { ChannelSchema, type RxHandle, type TxHandle } from "./channels.js";
import { ArraySchema, ListSchema, MapSchema, OptionSchema, SetSchema, StructSchema, TupleSchema, type Fields, type InferFields, type OptionValue } from "./containers.js";
import type { InferTuple, Schema } from "./core.js";
import { EnumSchema, LiteralEnumSchema, type InferEnum, type Variants } from "./enums.js";
import { bool, bytes, char, f32, f64, i128, i16, i32, i64, i8, string, u128, u16, u32, u64, u8, unit } from "./primitives.js";
import { LazySchema } from "./recursion.js";
import { ResultSchema } from "./result.js";

export const t = {
  bool,
  u8,
  u16,
  u32,
  u64,
  u128,
  i8,
  i16,
  i32,
  i64,
  i128,
  f32,
  f64,
  char,
  string,
  unit,
  bytes,
  option<T>(inner: Schema<T>): Schema<OptionValue<T>> {
    return new OptionSchema(inner);
  },
  list<T>(element: Schema<T>): Schema<T[]> {
    return new ListSchema(element);
  },
  array<T>(element: Schema<T>, length: number): Schema<T[]> {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`array length must be a non-negative integer`);
    return new ArraySchema(element, length);
  },
  map<K, V>(key: Schema<K>, value: Schema<V>): Schema<Map<K, V>> {
    return new MapSchema(key, value);
  },
  set<T>(element: Schema<T>): Schema<Set<T>> {
    return new SetSchema(element);
  },
  tuple<const A extends readonly Schema<any>[]>(...elements: A): Schema<InferTuple<A>> {
    return new TupleSchema(elements);
  },
  struct<const F extends Fields>(fields: F, name?: string): Schema<InferFields<F>> & { readonly fields: F } {
    return new StructSchema(fields, name);
  },
  enum<const V extends Variants>(variants: V, name?: string): Schema<InferEnum<V>> {
    return new EnumSchema(variants, name);
  },
  /** Unit-only enum whose values are plain strings: `t.literals(["Red", "Green"])`. */
  literals<const N extends string>(names: readonly N[], name?: string): Schema<N> {
    return new LiteralEnumSchema(names, name);
  },
  result<T, E>(ok: Schema<T>, err: Schema<E>): ResultSchema<T, E> {
    return new ResultSchema(ok, err);
  },
  /** `Tx<T>`: the handler sends values of T (the caller receives). */
  tx<T>(element: Schema<T>): ChannelSchema<T, TxHandle<T>> {
    return new ChannelSchema<T, TxHandle<T>>("tx", element);
  },
  /** `Rx<T>`: the handler receives values of T (the caller sends). */
  rx<T>(element: Schema<T>): ChannelSchema<T, RxHandle<T>> {
    return new ChannelSchema<T, RxHandle<T>>("rx", element);
  },
  /** A forward/recursive reference: `const Tree = t.struct({ kids: t.list(t.lazy(() => Tree)) })`. */
  lazy<T>(thunk: () => Schema<T>): Schema<T> {
    return new LazySchema(thunk);
  },
};
