/**
 * The native COBS addon must produce exactly the bytes of the JS codec (and
 * therefore of the reference), and reject the same malformed frames.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { cobsDecode, cobsEncode } from "../src/codec/cobs.js";
import { nativeCobs } from "../src/transport/native-cobs.js";

const skip = process.env.ROAM_NO_NATIVE === "1";

test("the native addon is built (npm ci builds native/cobs)", { skip }, () => {
  assert.ok(nativeCobs, "native/cobs/build/Release/roam_cobs.node did not load: run `npm run build:native`");
});

const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }),
  // Long zero-free runs around the 254-byte block boundary, with or without trailing zeros.
  fc.tuple(fc.integer({ min: 240, max: 800 }), fc.integer({ min: 0, max: 3 })).map(([n, zeros]) => {
    const a = new Uint8Array(n + zeros).fill(7);
    return a;
  }),
  fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })), { maxLength: 1200 }).map((a) => Uint8Array.from(a)),
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

test("native decode == JS decode, including malformed frames", { skip: skip || !nativeCobs }, () => {
  fc.assert(
    fc.property(fc.oneof(bytesArb.map((r) => cobsEncode(r)), fc.uint8Array({ maxLength: 600 })), (frame) => {
      let js: Uint8Array | "error";
      try {
        js = cobsDecode(frame);
      } catch {
        js = "error";
      }
      const copy = frame.slice();
      const n = nativeCobs!.decodeInPlace(copy);
      if (js === "error") assert.ok(n < 0, `native accepted a frame JS rejects (${n})`);
      else assert.deepEqual(copy.subarray(0, n), js);
    }),
    { numRuns: 1500 },
  );
});

test("native encode refuses a destination that is too small", { skip: skip || !nativeCobs }, () => {
  assert.throws(() => nativeCobs!.encode(new Uint8Array(4), 0, new Uint8Array(10).fill(1)), TypeError);
});
