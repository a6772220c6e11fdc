/**
 * Property tests of the codec with fast-check:
 *  1. random schemas (every kind, nested, recursive) with fitting values
 *     round-trip, and decode∘encode re-encodes to the identical bytes;
 *  2. hostile input (random bytes, mutated valid encodings) makes every
 *     decoder return a value or throw DecodeError/FramingError — nothing
 *     else, and never slowly.
 * bench/fuzz-codec.ts runs property 2 at a much larger scale.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from "../src/codec/cobs.js";
import { decodeMessage, messageToBytes } from "../src/wire/message.js";
import { classify, cobsRawArb, feedFrames, messageArb, mutate, mutationsArb, sampleArb, schemaArb } from "../bench/codec-arbitraries.js";

/** Deterministic by default; FC_SEED=<n> reproduces or varies a run. */
const seedEnv = process.env["FC_SEED"];
const BASE: fc.Parameters<unknown> = {
  numRuns: 500,
  ...(seedEnv !== undefined ? { seed: Number(seedEnv) } : {}),
};
function params<T>(numRuns: number): fc.Parameters<T> {
  return { ...(BASE as fc.Parameters<T>), numRuns };
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

// ---------------------------------------------------------------------------
// 1. round trips
// ---------------------------------------------------------------------------

test("random schema + value: decode(encode(v)) deep-equals v and re-encodes to the same bytes", () => {
  fc.assert(
    fc.property(sampleArb(3), ({ schema, value }) => {
      const bytes = schema.toBytes(value);
      const decoded = schema.fromBytes(bytes);
      // deepStrictEqual compares numbers with Object.is: -0 and NaN are checked exactly.
      assert.deepEqual(decoded, value);
      assert.equal(hex(schema.toBytes(decoded)), hex(bytes));
    }),
    params(800),
  );
});

test("random wire Messages round-trip byte-exactly", () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const bytes = messageToBytes(m);
      const decoded = decodeMessage(bytes);
      assert.deepEqual(decoded, m);
      assert.equal(hex(messageToBytes(decoded)), hex(bytes));
    }),
    params(800),
  );
});

test("random byte strings round-trip through COBS and framing, at random chunkings", () => {
  fc.assert(
    fc.property(
      fc.array(cobsRawArb, { maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 6 }),
      (raws, chunkSizes) => {
        const parts = raws.map((r) => cobsEncode(r));
        for (let i = 0; i < raws.length; i++) {
          const raw = raws[i]!;
          const part = parts[i]!;
          assert.equal(part.indexOf(0), -1, "no zero inside an encoded frame");
          assert.ok(part.length <= cobsMaxEncodedLength(raw.length), "within cobsMaxEncodedLength");
          assert.deepEqual(cobsDecode(part), raw);
        }
        const stream = new Uint8Array(parts.reduce((n, p) => n + p.length + 1, 0));
        let at = 0;
        for (const p of parts) {
          stream.set(p, at);
          at += p.length + 1; // the 0x00 delimiter is already there
        }
        const frames: Uint8Array[] = [];
        feedFrames(stream, chunkSizes, 4096, (f) => frames.push(f));
        // Empty frames (an empty raw encodes to 01, a one-byte frame) survive; only 00 00 runs are skipped.
        assert.deepEqual(frames, raws);
      },
    ),
    params(500),
  );
});

// ---------------------------------------------------------------------------
// 2. hostile input: only typed errors
// ---------------------------------------------------------------------------

test("schema decoders on random bytes: a value or DecodeError, nothing else", () => {
  let values = 0;
  fc.assert(
    fc.property(schemaArb(3), fc.uint8Array({ maxLength: 64 }), (g, bytes) => {
      if (classify(`decode ${g.desc}`, bytes, () => g.schema.fromBytes(bytes)) === "value") values++;
    }),
    params(1000),
  );
  assert.ok(values > 0, "some random inputs decode (the oracle sees both outcomes)");
});

test("schema decoders on mutated valid encodings: a value or DecodeError, nothing else", () => {
  const outcomes = { value: 0, "typed-error": 0 };
  fc.assert(
    fc.property(sampleArb(3), mutationsArb, ({ schema, value, desc }, mutations) => {
      const bytes = mutate(schema.toBytes(value), mutations);
      outcomes[classify(`decode ${desc}`, bytes, () => schema.fromBytes(bytes))]++;
    }),
    params(1000),
  );
  assert.ok(outcomes.value > 0 && outcomes["typed-error"] > 0, `both outcomes occur: ${JSON.stringify(outcomes)}`);
});

test("decodeMessage on random and mutated bytes: a Message or DecodeError", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 48 }),
        fc.tuple(messageArb, mutationsArb).map(([m, muts]) => mutate(messageToBytes(m), muts)),
      ),
      (bytes) => {
        classify("decodeMessage", bytes, () => decodeMessage(bytes));
      },
    ),
    params(1000),
  );
});

test("cobsDecode and CobsFrameDecoder on random and mutated bytes: frames or FramingError", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 600 }),
        fc.tuple(cobsRawArb, mutationsArb).map(([raw, muts]) => mutate(cobsEncode(raw), muts)),
      ),
      fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 5 }),
      fc.integer({ min: 1, max: 700 }),
      (bytes, chunkSizes, limit) => {
        classify("cobsDecode", bytes, () => cobsDecode(bytes));
        classify("CobsFrameDecoder", bytes, () =>
          feedFrames(bytes, chunkSizes, limit, (f) => {
            // A frame never exceeds the limit (decoded is never longer than encoded).
            if (f.length > limit) throw new Error(`frame of ${f.length} bytes passed a ${limit}-byte limit`);
            classify("decodeMessage(frame)", f, () => decodeMessage(f));
          }),
        );
      },
    ),
    params(600),
  );
});
