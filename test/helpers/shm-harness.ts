/** Shared pieces of the SHM integration tests. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";
import { Testbed } from "../../apps/testbed/testbed.js";
import { channel } from "../../src/session/channel/pair.js";
import { UserError } from "../../src/session/errors.js";
import type { ClientOf } from "../../src/session/serve.js";
import { nativeShm, requireNativeShm } from "../../src/transport/shm/native.js";
import { optedOut, type Requirement } from "./requirements.js";

/**
 * The multi-process SHM tests need the native addon: a load failure fails the
 * run; ROAM_SKIP_NATIVE=1 opts out (then `nativeSkip` skips their suites).
 */
export const NATIVE_SHM: Requirement = {
  what: "the native SHM addon (native/shm)",
  problem: nativeShm() ? null : nativeProblem(),
  install: "npm run build:native (node-gyp; needs python3, make and g++: apt-get install -y python3 make g++)",
  optOut: "ROAM_SKIP_NATIVE",
};
function nativeProblem(): string {
  try {
    requireNativeShm();
    return "unknown";
  } catch (e) {
    return (e as Error).message;
  }
}
/** The `skip` option for suites that need the native addon (set only by the explicit opt-out). */
export const nativeSkip = optedOut(NATIVE_SHM);

/** The compiled test guest (a child process or a worker thread). */
export const GUEST_SCRIPT = fileURLToPath(new URL("./shm-guest.js", import.meta.url));

/** A unique segment path for one test (in /dev/shm). */
export function segmentPath(tag: string): string {
  return `/dev/shm/roam-test-${tag}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Segment files this process created that are still there. */
export function leftoverSegments(): string[] {
  if (!fs.existsSync("/dev/shm")) return [];
  return fs.readdirSync("/dev/shm").filter((f) => (f.startsWith("roam-test-") || f.startsWith("roam-hub-")) && f.includes(`-${process.pid}-`));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

/** Every Testbed method, unary and streaming, with the reference results. */
export async function exerciseTestbed(tb: ClientOf<typeof Testbed>): Promise<void> {
  assert.equal(await tb.echo("hello"), "hello");
  assert.equal(await tb.reverse("héllo 🦀"), "🦀 olléh");
  assert.equal(await tb.divide(7n, 2n), 3n);
  await assert.rejects(tb.divide(1n, 0n), (e: unknown) => e instanceof UserError && e.error === "DivisionByZero");
  assert.deepEqual(await tb.lookup(1), { name: "Alice", age: 30, email: "alice@example.com" });
  await assert.rejects(tb.lookup(99), (e: unknown) => e instanceof UserError && e.error === "NotFound");
  assert.deepEqual(await tb.echoPoint({ x: -5, y: 7 }), { x: -5, y: 7 });
  assert.deepEqual(await tb.createPerson("Dee", 41, null), { name: "Dee", age: 41, email: null });
  assert.equal(await tb.rectangleArea({ top_left: { x: 0, y: 0 }, bottom_right: { x: 3, y: -4 }, label: "r" }), 12);
  assert.equal(await tb.parseColor("GREEN"), "Green");
  assert.equal(await tb.parseColor("purple"), null);
  assert.equal(await tb.shapeArea({ tag: "Rectangle", value: { width: 2, height: 3.5 } }), 7);
  assert.deepEqual(await tb.createCanvas("c", [{ tag: "Point" }, { tag: "Circle", value: { radius: 1 } }], "Blue"), {
    name: "c",
    shapes: [{ tag: "Point" }, { tag: "Circle", value: { radius: 1 } }],
    background: "Blue",
  });
  assert.deepEqual(await tb.processMessage({ tag: "Text", value: "hi" }), { tag: "Text", value: "processed: hi" });
  assert.deepEqual(await tb.processMessage({ tag: "Number", value: 21n }), { tag: "Number", value: 42n });
  assert.deepEqual(await tb.processMessage({ tag: "Data", value: Uint8Array.of(1, 2, 3) }), { tag: "Data", value: Uint8Array.of(3, 2, 1) });
  assert.deepEqual(await tb.getPoints(3), [
    { x: 0, y: 0 },
    { x: 1, y: 2 },
    { x: 2, y: 4 },
  ]);
  assert.deepEqual(await tb.swapPair([5, "five"]), ["five", 5]);
  // Streaming: caller → callee, callee → caller, both at once.
  {
    const [tx, rx] = channel<number>();
    const total = tb.sum(rx);
    for (let i = 1; i <= 1000; i++) await tx.send(i);
    await tx.close();
    assert.equal(await total, 500500n);
  }
  {
    const [tx, rx] = channel<number>();
    const done = tb.generate(500, tx);
    const got = await rx.collect();
    await done;
    assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i));
  }
  {
    const [inTx, inRx] = channel<string>();
    const [outTx, outRx] = channel<string>();
    const done = tb.transform(inRx, outTx);
    const collected = outRx.collect();
    for (const s of ["a", "bb", "ccc"]) await inTx.send(s);
    await inTx.close();
    await done;
    assert.deepEqual(await collected, ["a", "bb", "ccc"]);
  }
}
