/**
 * The compiled form of a JSON codec: a pair of closures per schema (`Node`),
 * the per-call context they share, and the error helpers that build a
 * JsonEncodeError/JsonDecodeError with the value path.
 */
import { describe, type ChannelSchema } from "../schema/index.js";
import { JsonDecodeError, JsonEncodeError } from "./errors.js";
import { BigIntText } from "./parse.js";

/** Channel binding while a call's arguments are decoded/encoded (bridge WebSocket only). */
export interface JsonChannelBinder {
  /** Decoding (bridge): the handle to put in the argument for the client's channel id. */
  incoming?(id: number, schema: ChannelSchema<any>): unknown;
  /** Encoding (client): the id to write for a Tx/Rx handle. */
  outgoing?(handle: unknown, schema: ChannelSchema<any>): number;
}

/** Per-call state: the channel binder and the current lazy-nesting depth. */
export interface Ctx {
  binder: JsonChannelBinder | undefined;
  depth: number;
}

export type Enc = (v: any, ctx: Ctx) => string;
export type Dec = (j: unknown, ctx: Ctx) => any;
/** A schema compiled to JSON: `enc` writes JSON text, `dec` reads an already-parsed JSON value. */
export interface Node {
  enc: Enc;
  dec: Dec;
}

/** Any error thrown while encoding, as a JsonEncodeError. */
export function asEncodeError(e: unknown): JsonEncodeError {
  if (e instanceof JsonEncodeError) return e;
  return new JsonEncodeError((e as Error)?.message ?? String(e));
}

export function decFail(detail: string): never {
  throw new JsonDecodeError(detail);
}
export function encFail(detail: string): never {
  throw new JsonEncodeError(detail);
}
export function withDecPath(e: unknown, seg: string): never {
  if (e instanceof JsonDecodeError) throw e.withOuterPath(seg);
  throw e;
}
export function withEncPath(e: unknown, seg: string): never {
  if (e instanceof JsonEncodeError) throw e.withOuterPath(seg);
  if (e instanceof Error) throw new JsonEncodeError(e.message, [seg]);
  throw e;
}

/** What a parsed JSON value is, for decode errors. */
export function kindOf(j: unknown): string {
  if (j instanceof BigIntText) return `number ${j.text}`;
  return describe(j);
}

/** JSON text of a string. */
export const str = JSON.stringify as (s: string) => string;

/** A JSON object (not an array, null or a big-integer literal). */
export function isPlainObject(j: unknown): j is Record<string, unknown> {
  return typeof j === "object" && j !== null && !Array.isArray(j) && !(j instanceof BigIntText);
}
