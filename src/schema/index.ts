/** The schema layer: `t`, the schema classes, and value-type inference. Imports nothing above the codec. */
export { Schema, describe, type Infer, type InferTuple, type SchemaKind } from "./core.js";
export type { OptionValue, Fields, InferFields } from "./containers.js";
export type { VariantSpec, Variants, InferEnum } from "./enums.js";
export { ResultSchema, type ResultValue } from "./result.js";
export { ChannelSchema, type ChannelBinder, type ChannelDirection, type ChannelHandles, type WithBinder, type TxHandle, type RxHandle } from "./channels.js";
export { MAX_RECURSION_DEPTH } from "./recursion.js";
export { minEncodedSize } from "./size.js";
export { t } from "./t.js";
export type { PrimSchema } from "./primitives.js";
export type { StructSchema, OptionSchema, ListSchema, TupleSchema } from "./containers.js";
export type { EnumSchema, LiteralEnumSchema } from "./enums.js";
export type { LazySchema } from "./recursion.js";
export {
  StructSchema as StructSchemaClass,
  TupleSchema as TupleSchemaClass,
  OptionSchema as OptionSchemaClass,
  ListSchema as ListSchemaClass,
  ArraySchema as ArraySchemaClass,
  MapSchema as MapSchemaClass,
  SetSchema as SetSchemaClass,
} from "./containers.js";
export { EnumSchema as EnumSchemaClass } from "./enums.js";
export { LazySchema as LazySchemaClass } from "./recursion.js";
export { SigWriter, typeSignature, methodSignature } from "./signature.js";
