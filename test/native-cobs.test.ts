/**
 * The native COBS addon must produce exactly the bytes of the JS codec (and
 * therefore of the reference), and reject the same malformed frames.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CobsFrameDecoder, cobsDecode, cobsDecodeStep, cobsEncode } from "../src/codec/cobs.js";
import { nativeCobs } from "../src/transport/native-cobs.js";
import { createRequire } from "node:module";
import { requireOrOptOut } from "./helpers/requirements.js";

// ROAM_NO_NATIVE=1 is the pure-JS pass of `npm test` (the addon is deliberately not loaded).
const skip = process.env.ROAM_NO_NATIVE === "1";

test("the native addon is built and loads (npm ci builds native/cobs)", { skip }, (t) => {
  let problem: string | null = null;
  if (!nativeCobs) {
    try {
      createRequire(import.meta.url)("../../native/cobs/build/Release/roam_cobs.node");
      problem = "it did not load";
    } catch (e) {
      problem = (e as Error).message;
    }
  }
  if (!requireOrOptOut(t, { what: "the native COBS addon (native/cobs)", problem, install: "npm run build:native (node-gyp; needs python3, make and g++: apt-get install -y python3 make g++)", optOut: "ROAM_SKIP_NATIVE" })) return;
  assert.ok(nativeCobs);
});

const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }),
  // Long zero-free runs around the 254-byte block boundary, with or without trailing zeros.
  fc.tuple(fc.integer({ min: 240, max: 800 }), fc.integer({ min: 0, max: 3 })).map(([n, zeros]) => {
    const a = new Uint8Array(n + zeros).fill(7);
    return a;
  }),
  fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })), { maxLength: 1200 }).map((a) => Uint8Array.from(a)),
  // Zero-free data with a few zeros anywhere: lands zeros in every lane of the
  // encoder's 64-byte steps and in the overlapping vector that ends a block.
  fc.tuple(fc.integer({ min: 30, max: 900 }), fc.array(fc.nat(), { maxLength: 4 })).map(([n, at]) => {
    const a = new Uint8Array(n).fill(0x5a);
    for (const k of at) a[k % n] = 0;
    return a;
  }),
);

test("native encode == JS encode (one part and split in two parts)", { skip: skip || !nativeCobs }, () => {
  fc.assert(
    fc.property(bytesArb, fc.nat(), (raw, cutSeed) => {
      const expected = cobsEncode(raw);
      const dst = new Uint8Array(raw.length + Math.floor(raw.length / 254) + 8);
      const end = nativeCobs!.encode(dst, 3, raw);
      assert.deepEqual(dst.subarray(3, end), expected);
      const cut = raw.length === 0 ? 0 : cutSeed % (raw.length + 1);
      const end2 = nativeCobs!.encode(dst, 0, raw.subarray(0, cut), raw.subarray(cut));
      assert.deepEqual(dst.subarray(0, end2), expected);
    }),
    { numRuns: 1500 },
  );
});

test("native stream decoding of one frame == JS cobsDecode, including malformed frames", { skip: skip || !nativeCobs }, () => {
  const zeroFree = fc.uint8Array({ maxLength: 600 }).map((a) => a.map((x) => x || 1));
  fc.assert(
    fc.property(fc.oneof(bytesArb.map((r) => cobsEncode(r)), zeroFree), (frame) => {
      let js: Uint8Array | "error";
      try {
        js = cobsDecode(frame);
      } catch {
        js = "error";
      }
      const stream = new Uint8Array(frame.length + 1);
      stream.set(frame);
      const got: Uint8Array[] = [];
      let native: Uint8Array | "error";
      try {
        new CobsFrameDecoder(4096, nativeCobs!.decodeStream).push(stream, (f) => got.push(f));
        native = got.length === 1 ? got[0]! : frame.length === 0 ? new Uint8Array(0) : "error";
      } catch {
        native = "error";
      }
      assert.deepEqual(native, js);
    }),
    { numRuns: 1500 },
  );
});

test("native encode refuses a destination that is too small", { skip: skip || !nativeCobs }, () => {
  assert.throws(() => nativeCobs!.encode(new Uint8Array(4), 0, new Uint8Array(10).fill(1)), TypeError);
});

/** Runs a decoder over `stream` cut into `cuts`; frames, then "error" if it threw. */
function decodeAll(dec: CobsFrameDecoder, stream: Uint8Array, cuts: number[]): (Uint8Array | "error")[] {
  const out: (Uint8Array | "error")[] = [];
  const reused = new Uint8Array(stream.length);
  let at = 0;
  for (const c of [...cuts.filter((x) => x < stream.length).sort((x, y) => x - y), stream.length]) {
    if (c < at) continue;
    // Feed through one reused buffer that is scribbled over afterwards.
    const piece = reused.subarray(0, c - at);
    piece.set(stream.subarray(at, c));
    try {
      dec.push(piece, (f) => out.push(f));
    } catch {
      out.push("error");
      return out;
    }
    piece.fill(0xa5);
    at = c;
  }
  return out;
}

test("stream decoding: native decodeStream == JS cobsDecodeStep at any chunking and slab size, malformed input included", { skip: skip || !nativeCobs }, () => {
  const frameArb = fc.oneof(bytesArb.map((r) => ({ raw: r, enc: cobsEncode(r) })), fc.uint8Array({ minLength: 1, maxLength: 300 }).map((g) => ({ raw: null, enc: g })));
  fc.assert(
    fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), fc.integer({ min: 1, max: 2048 }), (frames, cutSeeds, slab) => {
      const parts: number[] = [];
      for (const f of frames) parts.push(...f.enc, 0);
      const stream = Uint8Array.from(parts);
      const cuts = cutSeeds.map((s) => (stream.length === 0 ? 0 : s % stream.length));
      const native = decodeAll(new CobsFrameDecoder(4096, nativeCobs!.decodeStream, slab), stream, cuts);
      const js = decodeAll(new CobsFrameDecoder(4096, cobsDecodeStep, slab), stream, cuts);
      assert.deepEqual(native, js);
      if (frames.every((f) => f.raw !== null)) {
        // Well-formed: exactly the frames (empty ones included, bare delimiters never appear here).
        assert.deepEqual(native, frames.map((f) => f.raw));
      }
    }),
    { numRuns: 1500 },
  );
});

test("native decodeStream refuses a state or destination that could write out of bounds", { skip: skip || !nativeCobs }, () => {
  const src = Uint8Array.of(5, 1, 2, 3, 4, 0);
  assert.throws(() => nativeCobs!.decodeStream(src, 0, src.length, new Uint8Array(3), new Int32Array(4)), TypeError);
  assert.throws(() => nativeCobs!.decodeStream(src, 0, src.length, new Uint8Array(64), Int32Array.of(0, 0, 62, 0)), TypeError);
  assert.throws(() => nativeCobs!.decodeStream(src, 0, src.length, new Uint8Array(64), Int32Array.of(300, 0, 0, 0)), TypeError);
  assert.throws(() => nativeCobs!.decodeStream(src, 2, 99, new Uint8Array(64), new Int32Array(4)), TypeError);
  const st = new Int32Array(4);
  const dst = new Uint8Array(16);
  assert.equal(nativeCobs!.decodeStream(src, 0, src.length, dst, st), 6);
  assert.deepEqual([...st], [0, 0, 4, 1]);
  assert.deepEqual(dst.subarray(0, 4), Uint8Array.of(1, 2, 3, 4));
});
