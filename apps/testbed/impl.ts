/** The reference behaviour of every Testbed method (../shared/testbed/README.md). */
import { err, type ImplementationOf } from "roam-ts";
import { Testbed, type Message, type Person, type Shape } from "./testbed.js";

const PEOPLE: ReadonlyMap<number, Person> = new Map([
  [1, { name: "Alice", age: 30, email: "alice@example.com" }],
  [2, { name: "Bob", age: 25, email: null }],
  [3, { name: "Charlie", age: 35, email: "charlie@example.com" }],
]);

function area(shape: Shape): number {
  switch (shape.tag) {
    case "Circle":
      return Math.PI * shape.value.radius * shape.value.radius;
    case "Rectangle":
      return shape.value.width * shape.value.height;
    case "Point":
      return 0;
  }
}

const I64_MIN = -(1n << 63n);
/** Smallest encoding of a Point: two one-byte varints. */
const MIN_POINT_BYTES = 2;

export const testbedImpl: ImplementationOf<typeof Testbed> = {
  echo: (message) => message,
  reverse: (message) => [...message].reverse().join(""),
  divide: (dividend, divisor) => {
    if (divisor === 0n) return err("DivisionByZero" as const);
    if (dividend === I64_MIN && divisor === -1n) return err("Overflow" as const);
    return dividend / divisor; // BigInt division truncates toward zero, like Rust
  },
  lookup: (id) => PEOPLE.get(id) ?? err("NotFound" as const),
  sum: async (numbers) => {
    let total = 0n;
    for await (const n of numbers) total += BigInt(n);
    return total;
  },
  generate: async (count, output) => {
    for (let i = 0; i < count; i++) await output.send(i);
  },
  transform: async (input, output) => {
    for await (const s of input) await output.send(s);
  },
  echoPoint: (point) => point,
  createPerson: (name, age, email) => ({ name, age, email }),
  rectangleArea: (rect) => Math.abs(rect.bottom_right.x - rect.top_left.x) * Math.abs(rect.bottom_right.y - rect.top_left.y),
  parseColor: (name) => {
    switch (name.toLowerCase()) {
      case "red":
        return "Red";
      case "green":
        return "Green";
      case "blue":
        return "Blue";
      default:
        return null;
    }
  },
  shapeArea: (shape) => area(shape),
  createCanvas: (name, shapes, background) => ({ name, shapes, background }),
  processMessage: (msg): Message => {
    switch (msg.tag) {
      case "Text":
        return { tag: "Text", value: `processed: ${msg.value}` };
      case "Number":
        return { tag: "Number", value: BigInt.asIntN(64, msg.value * 2n) };
      case "Data":
        return { tag: "Data", value: Uint8Array.from(msg.value).reverse() };
    }
  },
  getPoints: (count, ctx) => {
    // Size first, allocate after: a 12-byte request may ask for 4 billion
    // points. Each point encodes to at least 2 bytes (two varints), so a
    // count whose smallest encoding exceeds the negotiated payload limit can
    // never be answered; say so instead of building it.
    const limit = ctx.connection.maxPayloadSize;
    if (count * MIN_POINT_BYTES > limit) {
      throw new RangeError(`getPoints(${count}) needs at least ${count * MIN_POINT_BYTES} bytes, more than the negotiated max_payload_size ${limit}`);
    }
    return Array.from({ length: count }, (_, i) => ({ x: i, y: 2 * i }));
  },
  swapPair: ([a, b]) => [b, a],
};
