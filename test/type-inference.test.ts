/**
 * Type-level tests of `t` inference and the Client/handler types, as a user
 * writes them against the package entry point. They run in the compiler, not
 * at runtime: `npx tsc -p .` (the first step of `npm test` and of the merge
 * gate) fails if
 *   - an `Expect<Equal<…>>` no longer holds (the inferred type changed), or
 *   - a line marked `@ts-expect-error` stops being an error (TS2578: "Unused
 *     '@ts-expect-error' directive"), i.e. the types became too loose.
 * The checks sit in functions that are never called; the one runtime test
 * only records that the file compiled.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  arg,
  channel,
  client,
  defineService,
  err,
  method,
  serve,
  t,
  type Client,
  type Connection,
  type Implementation,
  type Infer,
  type ResultValue,
  type Rx,
  type ServiceDescriptor,
  type Tx,
} from "../src/index.js";

/** True when A and B are the same type (not merely mutually assignable). */
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
/** Assignable both ways (for tuple-variant values, whose elements the checker keeps as mapped types). */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Compiles only for `true`. */
type Expect<T extends true> = T;

const Point = t.struct({ x: t.i32, y: t.i32 }, "Point");
const Shape = t.enum({ Empty: null, Circle: t.f64, Line: [Point, Point], Rect: { corner: Point, w: t.u32 } }, "Shape");
const Color = t.literals(["Red", "Green"]);

// --- t: value types -------------------------------------------------------------
export type Primitives = [
  Expect<Equal<Infer<typeof t.bool>, boolean>>,
  Expect<Equal<Infer<typeof t.u32>, number>>,
  Expect<Equal<Infer<typeof t.i8>, number>>,
  Expect<Equal<Infer<typeof t.u64>, bigint>>,
  Expect<Equal<Infer<typeof t.i128>, bigint>>,
  Expect<Equal<Infer<typeof t.f64>, number>>,
  Expect<Equal<Infer<typeof t.char>, string>>,
  Expect<Equal<Infer<typeof t.string>, string>>,
  Expect<Equal<Infer<typeof t.bytes>, Uint8Array>>,
  Expect<Equal<Infer<typeof t.unit>, void>>,
];

const nested = t.option(t.option(t.u8));
export type Containers = [
  // Option<T> is `T | null`; when T itself admits null the Some is wrapped.
  Expect<Equal<Infer<ReturnType<typeof t.option<number>>>, number | null>>,
  Expect<Equal<Infer<typeof nested>, { some: number | null } | null>>,
  Expect<Equal<Infer<ReturnType<typeof t.list<string>>>, string[]>>,
  Expect<Equal<Infer<ReturnType<typeof t.map<string, bigint>>>, Map<string, bigint>>>,
  Expect<Equal<Infer<ReturnType<typeof t.set<number>>>, Set<number>>>,
  Expect<Equal<Infer<typeof Point>, { x: number; y: number }>>,
  Expect<Equal<Infer<typeof Color>, "Red" | "Green">>,
];

type ShapeValue = Infer<typeof Shape>;
export type Enums = [
  Expect<Equal<ShapeValue["tag"], "Empty" | "Circle" | "Line" | "Rect">>,
  Expect<Equal<Extract<ShapeValue, { tag: "Empty" }>, { tag: "Empty" }>>,
  Expect<Equal<Extract<ShapeValue, { tag: "Circle" }>, { tag: "Circle"; value: number }>>,
  Expect<Mutual<Extract<ShapeValue, { tag: "Line" }>, { tag: "Line"; value: [{ x: number; y: number }, { x: number; y: number }] }>>,
  Expect<Equal<Extract<ShapeValue, { tag: "Rect" }>, { tag: "Rect"; value: { corner: { x: number; y: number }; w: number } }>>,
];

const fallible = t.result(t.u32, t.literals(["Nope"]));
export type Results = Expect<Equal<Infer<typeof fallible>, ResultValue<number, "Nope">>>;

// Channels: the schema layer knows only direction + element; the session types the values.
const up = t.tx(t.u32);
const down = t.rx(t.string);
export type Channels = [
  Expect<Equal<Infer<typeof up>, Tx<number>>>,
  Expect<Equal<Infer<typeof down>, Rx<string>>>,
  Expect<Equal<Infer<ReturnType<typeof t.struct<{ out: typeof up }>>>, { out: Tx<number> }>>,
];

function valueShapes(): void {
  const tuple = t.tuple(t.u8, t.string);
  const ok1: Infer<typeof tuple> = [1, "a"];
  // @ts-expect-error: elements in the wrong order
  const bad1: Infer<typeof tuple> = ["a", 1];
  const ok2: Infer<typeof Shape> = { tag: "Rect", value: { corner: { x: 1, y: 2 }, w: 3 } };
  // @ts-expect-error: Circle carries an f64
  const bad2: Infer<typeof Shape> = { tag: "Circle", value: "round" };
  // @ts-expect-error: not one of the literals
  const bad3: Infer<typeof Color> = "Blue";
  const ok4: Infer<typeof fallible> = { ok: false, error: "Nope" };
  // @ts-expect-error: an Err carries `error`, not `value`
  const bad4: Infer<typeof fallible> = { ok: false, value: 1 };
  // @ts-expect-error: Option<Option<u8>> needs `{ some }` around an inner None
  const bad5: Infer<typeof nested> = 5;
  // @ts-expect-error: u64 is a bigint, not a number
  const bad6: Infer<typeof t.u64> = 5;
  // @ts-expect-error: a Tx is not an Rx
  const bad7: Infer<typeof up> = channel<number>()[1];
  void [ok1, bad1, ok2, bad2, bad3, ok4, bad4, bad5, bad6, bad7];
}

// --- clients and handlers ----------------------------------------------------------
const Api = defineService("Api", {
  divide: method((a = arg(t.i64), b = arg(t.i64)) => t.result(t.i64, t.literals(["DivisionByZero"]))),
  find: method((key = arg(t.string)) => t.option(Point)),
  produce: method((n = arg(t.u32), out = arg(t.tx(t.u32))) => t.unit),
  consume: method((input = arg(t.rx(t.string))) => t.u64),
});

function clients(conn: Connection): void {
  const c: Client<SpecsOf<typeof Api>> = client(Api, conn);
  void (async () => {
    const q: bigint = await c.divide(7n, 2n);
    // @ts-expect-error: i64 arguments are bigints
    await c.divide(7, 2n);
    // @ts-expect-error: missing an argument
    await c.divide(7n);
    // @ts-expect-error: the success type is bigint, not the Result (user errors are thrown)
    const r: ResultValue<bigint, "DivisionByZero"> = await c.divide(1n, 1n);
    const p: { x: number; y: number } | null = await c.find("k");
    // @ts-expect-error: Option<Point> may be null
    const p2: { x: number; y: number } = await c.find("k");
    // The handler sends on a Tx, so the caller passes a Tx and reads the paired Rx.
    const [tx, rx] = channel<number>();
    await c.produce(3, tx);
    // @ts-expect-error: produce takes the Tx end, not the Rx
    await c.produce(3, rx);
    const [stx] = channel<number>();
    // @ts-expect-error: consume takes an Rx<string>, not a Tx<number>
    await c.consume(stx);
    const [, srx] = channel<string>();
    const total: bigint = await c.consume(srx);
    void [q, r, p, p2, total];
  });
}

function handlers(): void {
  const good: Implementation<SpecsOf<typeof Api>> = {
    divide: (a, b) => (b === 0n ? err("DivisionByZero") : a / b),
    find: async () => null,
    produce: async (n, out) => {
      const o: Tx<number> = out;
      for (let i = 0; i < n; i++) await o.send(i);
    },
    consume: async (input) => {
      const i: Rx<string> = input;
      let total = 0n;
      for await (const s of i) total += BigInt(s.length);
      return total;
    },
  };
  serve(Api, good);
  serve(Api, {
    // @ts-expect-error: wrong return type (string for i64)
    divide: () => "seven",
    find: () => null,
    produce: () => undefined,
    consume: () => 0n,
  });
  serve(Api, {
    divide: () => 1n,
    // @ts-expect-error: err() of a type the method does not declare
    find: () => err("NotFound"),
    produce: () => undefined,
    consume: () => 0n,
  });
  serve(Api, {
    divide: () => 1n,
    find: () => null,
    produce: async (_n, out) => {
      // @ts-expect-error: the handler's Tx sends; it has no recv
      await out.recv();
    },
    consume: async (input) => {
      // @ts-expect-error: the handler's Rx receives; it cannot send
      await input.send("x");
      return 0n;
    },
  });
}

/** The method specs a service descriptor was defined with. */
type SpecsOf<D> = D extends ServiceDescriptor<infer S> ? S : never;

test("type-level checks of t inference and Client/handler types compiled", () => {
  assert.equal(typeof valueShapes, "function");
  assert.equal(typeof clients, "function");
  assert.equal(typeof handlers, "function");
});
