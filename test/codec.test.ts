/**
 * Unit tests of the postcard codec (src/codec, src/schema) and COBS framing:
 * ranges of every primitive, rejection of malformed input with DecodeError
 * (and where it happened), EncodeError paths, and the frame splitter.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { DecodeError, EncodeError, FramingError } from "../src/codec/errors.js";
import { MAX_ZERO_SIZED_ELEMENTS, Reader } from "../src/codec/reader.js";
import { Writer } from "../src/codec/writer.js";
import { CobsFrameDecoder, cobsDecode, cobsEncode, cobsMaxEncodedLength } from "../src/codec/cobs.js";
import { MAX_RECURSION_DEPTH, t, type Schema } from "../src/schema/index.js";
import { UnknownMessageVariantError, decodeMessage, messageToBytes } from "../src/wire/message.js";
import { Canvas, Person, Shape } from "../apps/testbed/testbed.js";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

function b(...bytes: number[]): Uint8Array {
  return Uint8Array.from(bytes);
}
function hex(x: Uint8Array): string {
  return Buffer.from(x).toString("hex");
}
function unhex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
}

/** Runs `fn`, asserts it threw a DecodeError, and returns it. */
function decodeError(fn: () => unknown, detail?: RegExp): DecodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DecodeError, `expected DecodeError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (detail) assert.match(e.detail, detail);
    return e;
  }
  assert.fail("expected a DecodeError, but decoding succeeded");
}

function encodeError(fn: () => unknown, detail?: RegExp): EncodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EncodeError, `expected EncodeError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (detail) assert.match(e.detail, detail);
    return e;
  }
  assert.fail("expected an EncodeError, but encoding succeeded");
}

function framingError(fn: () => unknown, detail?: RegExp): FramingError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FramingError, `expected FramingError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (detail) assert.match(e.message, detail);
    return e;
  }
  assert.fail("expected a FramingError");
}

function roundTrip<T>(s: Schema<T>, v: T, expectedHex?: string): void {
  const bytes = s.toBytes(v);
  if (expectedHex !== undefined) assert.equal(hex(bytes), expectedHex.replace(/\s+/g, ""), `encoding of ${String(v)}`);
  assert.deepEqual(s.fromBytes(bytes), v);
}

// ---------------------------------------------------------------------------
// integers and varints
// ---------------------------------------------------------------------------

describe("unsigned integers", () => {
  test("u8: full range as one raw byte, out-of-range rejected", () => {
    for (const v of [0, 1, 127, 128, 255]) roundTrip(t.u8, v, v.toString(16).padStart(2, "0"));
    for (const v of [256, -1, 1.5, NaN, Infinity]) encodeError(() => t.u8.toBytes(v), /u8/);
    encodeError(() => t.u8.toBytes("1" as unknown as number));
    decodeError(() => t.u8.fromBytes(b()), /end of input/);
  });

  test("u16: 0..65535 as varint; > u16, overlong and non-canonical varints rejected", () => {
    roundTrip(t.u16, 0, "00");
    roundTrip(t.u16, 300, "ac02");
    roundTrip(t.u16, 65535, "ffff03");
    for (const v of [65536, -1, 0.5]) encodeError(() => t.u16.toBytes(v));
    decodeError(() => t.u16.fromBytes(unhex("808004")), /exceeds u16/); // 65536
    decodeError(() => t.u16.fromBytes(unhex("ffff07")), /exceeds u16/); // 131071
    decodeError(() => t.u16.fromBytes(unhex("80808000")), /longer than 3 bytes/);
    decodeError(() => t.u16.fromBytes(unhex("8000")), /non-canonical/); // 0 written in two bytes
    decodeError(() => t.u16.fromBytes(unhex("ff8000")), /non-canonical/);
    decodeError(() => t.u16.fromBytes(unhex("ff")), /end of input/);
  });

  test("u32: 0..2^32-1; > u32, overlong and non-canonical varints rejected", () => {
    roundTrip(t.u32, 0, "00");
    roundTrip(t.u32, 2 ** 31, "8080808008");
    roundTrip(t.u32, 2 ** 32 - 1, "ffffffff0f");
    for (const v of [2 ** 32, -1, 1.25, NaN]) encodeError(() => t.u32.toBytes(v));
    decodeError(() => t.u32.fromBytes(unhex("8080808010")), /exceeds u32/); // 2^32
    decodeError(() => t.u32.fromBytes(unhex("ffffffff1f")), /exceeds u32/);
    decodeError(() => t.u32.fromBytes(unhex("808080808000")), /longer than 5 bytes/);
    decodeError(() => t.u32.fromBytes(unhex("8100")), /non-canonical/);
    decodeError(() => t.u32.fromBytes(unhex("80808000")), /non-canonical/);
  });

  test("u64: bigint 0..2^64-1; > u64, overlong and non-canonical varints rejected", () => {
    const max = (1n << 64n) - 1n;
    roundTrip(t.u64, 0n, "00");
    roundTrip(t.u64, 1n << 32n, "8080808010");
    roundTrip(t.u64, 1n << 53n, "80808080808080 10");
    roundTrip(t.u64, max, "ffffffffffffffffff01");
    encodeError(() => t.u64.toBytes(1n << 64n), /out of range/);
    encodeError(() => t.u64.toBytes(-1n), /out of range/);
    encodeError(() => t.u64.toBytes(5 as unknown as bigint), /bigint/);
    decodeError(() => t.u64.fromBytes(unhex("ffffffffffffffffff02")), /exceeds u64/); // 2^64
    decodeError(() => t.u64.fromBytes(unhex("ffffffffffffffffff7f")), /exceeds u64/);
    decodeError(() => t.u64.fromBytes(unhex("8080808080808080808000")), /longer than 10 bytes/);
    decodeError(() => t.u64.fromBytes(unhex("808000")), /non-canonical/);
    decodeError(() => t.u64.fromBytes(unhex("8080")), /end of input/);
  });

  test("u128: bigint 0..2^128-1 in up to 19 varint bytes", () => {
    const max = (1n << 128n) - 1n;
    const bytes = t.u128.toBytes(max);
    assert.equal(bytes.length, 19);
    assert.equal(bytes[18], 0x03);
    assert.equal(t.u128.fromBytes(bytes), max);
    roundTrip(t.u128, 1n << 64n, "808080808080808080 02");
    encodeError(() => t.u128.toBytes(1n << 128n), /out of range/);
    encodeError(() => t.u128.toBytes(-1n), /out of range/);
    const tooBig = bytes.slice();
    tooBig[18] = 0x04; // 2^128
    decodeError(() => t.u128.fromBytes(tooBig), /exceeds u128/);
    decodeError(() => t.u128.fromBytes(new Uint8Array([...new Array<number>(19).fill(0x80), 0x01])), /longer than 19 bytes/);
  });
});

describe("signed integers (zigzag)", () => {
  test("i8: one two's-complement byte", () => {
    roundTrip(t.i8, -128, "80");
    roundTrip(t.i8, -1, "ff");
    roundTrip(t.i8, 127, "7f");
    for (const v of [128, -129, 0.5]) encodeError(() => t.i8.toBytes(v), /i8/);
  });

  test("i16: -32768..32767, > i16 on the wire rejected", () => {
    roundTrip(t.i16, -32768, "ffff03");
    roundTrip(t.i16, 32767, "feff03");
    roundTrip(t.i16, -1, "01");
    for (const v of [32768, -32769]) encodeError(() => t.i16.toBytes(v), /i16/);
    decodeError(() => t.i16.fromBytes(unhex("808004")), /exceeds u16/);
  });

  test("i32: full range, > i32 on the wire rejected", () => {
    roundTrip(t.i32, -(2 ** 31), "ffffffff0f");
    roundTrip(t.i32, 2 ** 31 - 1, "feffffff0f");
    roundTrip(t.i32, -64, "7f");
    roundTrip(t.i32, 64, "8001");
    for (const v of [2 ** 31, -(2 ** 31) - 1, 0.5]) encodeError(() => t.i32.toBytes(v), /i32/);
    decodeError(() => t.i32.fromBytes(unhex("8080808010")), /exceeds u32/);
  });

  test("i64 and i128: bigint full range", () => {
    const i64max = (1n << 63n) - 1n;
    roundTrip(t.i64, -(1n << 63n), "ffffffffffffffffff01");
    roundTrip(t.i64, i64max, "feffffffffffffffff01");
    roundTrip(t.i64, -1n, "01");
    encodeError(() => t.i64.toBytes(1n << 63n), /out of range/);
    encodeError(() => t.i64.toBytes(-(1n << 63n) - 1n), /out of range/);
    encodeError(() => t.i64.toBytes(1 as unknown as bigint), /bigint/);
    const i128min = -(1n << 127n);
    const i128max = (1n << 127n) - 1n;
    assert.equal(t.i128.fromBytes(t.i128.toBytes(i128min)), i128min);
    assert.equal(t.i128.fromBytes(t.i128.toBytes(i128max)), i128max);
    assert.equal(t.i128.toBytes(i128min).length, 19);
    encodeError(() => t.i128.toBytes(1n << 127n), /out of range/);
  });
});

describe("Reader and Writer varints", () => {
  test("Writer.varint covers the whole safe-integer range and Reader reads it back", () => {
    const values = [0, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 5, 2 ** 49, Number.MAX_SAFE_INTEGER];
    for (const v of values) {
      const w = new Writer(4);
      w.varint(v);
      const big = new Writer(4);
      big.varintBig(BigInt(v));
      assert.equal(hex(w.finish()), hex(big.finish()), `varint(${v}) == varintBig(${v})`);
      const r = new Reader(w.finish());
      assert.equal(r.varintSafe(), v);
      r.expectEnd();
      assert.equal(new Reader(w.finish()).varint64(), BigInt(v));
    }
  });

  test("varintSafe rejects ids above 2^53-1", () => {
    const w = new Writer();
    w.varintBig(1n << 53n);
    decodeError(() => new Reader(w.finish()).varintSafe(), /2\^53-1/);
  });

  test("a Writer grows from any initial capacity, including 0", () => {
    const w = new Writer(0);
    const data = new Uint8Array(1000).map((_, i) => i & 0xff);
    w.bytes(data);
    w.string("x".repeat(300));
    const r = new Reader(w.finish());
    assert.deepEqual(r.bytes(), data);
    assert.equal(r.string(), "x".repeat(300));
    r.expectEnd();
  });
});

// ---------------------------------------------------------------------------
// floats, bool, char, strings, bytes, unit
// ---------------------------------------------------------------------------

describe("floats", () => {
  test("f32/f64 little-endian, incl. -0, NaN and infinities", () => {
    roundTrip(t.f32, 0.25, "0000803e");
    roundTrip(t.f64, -1, "000000000000f0bf");
    for (const s of [t.f32, t.f64]) {
      for (const v of [-0, NaN, Infinity, -Infinity]) {
        assert.ok(Object.is(s.fromBytes(s.toBytes(v)), v), `${s.kind} ${v}`);
      }
      encodeError(() => s.toBytes("1" as unknown as number), /number/);
    }
    // f32 rounds to the nearest 32-bit float.
    assert.equal(t.f32.fromBytes(t.f32.toBytes(0.1)), Math.fround(0.1));
    assert.equal(t.f64.fromBytes(t.f64.toBytes(0.1)), 0.1);
    decodeError(() => t.f32.fromBytes(b(0, 0, 0)), /end of input in f32/);
    decodeError(() => t.f64.fromBytes(b(0, 0, 0, 0, 0, 0, 0)), /end of input in f64/);
  });
});

describe("bool", () => {
  test("only 0 and 1 are valid", () => {
    roundTrip(t.bool, false, "00");
    roundTrip(t.bool, true, "01");
    for (const v of [2, 0x80, 0xff]) {
      const e = decodeError(() => t.bool.fromBytes(b(v)), /invalid bool/);
      assert.equal(e.offset, 0);
    }
    encodeError(() => t.bool.toBytes(1 as unknown as boolean), /boolean/);
  });
});

describe("char", () => {
  test("exactly one Unicode scalar value, as UTF-8 with a length prefix", () => {
    roundTrip(t.char, "a", "0161");
    roundTrip(t.char, "é", "02c3a9");
    roundTrip(t.char, "🦀", "04f09fa680");
    for (const v of ["", "ab", "\ud800", "\udc00", "a\u0301"]) encodeError(() => t.char.toBytes(v));
    decodeError(() => t.char.fromBytes(unhex("026162")), /exactly one Unicode scalar/);
    decodeError(() => t.char.fromBytes(unhex("00")), /exactly one Unicode scalar/);
    decodeError(() => t.char.fromBytes(unhex("03eda080")), /invalid UTF-8/); // encoded surrogate
  });
});

describe("strings", () => {
  test("ASCII and non-ASCII, short and long (every fast/slow path)", () => {
    const samples = [
      "",
      "hello",
      "x".repeat(31),
      "x".repeat(32),
      "x".repeat(63),
      "x".repeat(64),
      "x".repeat(200),
      "héllo 世界 🦀",
      "é".repeat(63), // 126 bytes: 2 header bytes reserved (3 per unit), 1 used
      "é".repeat(64), // 128 bytes: two-byte header
      "世".repeat(50),
      "🦀".repeat(40),
      "a".repeat(60) + "é",
      "é" + "a".repeat(100),
    ];
    for (const s of samples) {
      const bytes = t.string.toBytes(s);
      const utf8 = Buffer.from(s, "utf8");
      const r = new Reader(bytes);
      assert.equal(r.varintSafe(), utf8.length, `length prefix of ${JSON.stringify(s.slice(0, 10))}…`);
      assert.equal(hex(bytes.subarray(r.pos)), utf8.toString("hex"));
      assert.equal(t.string.fromBytes(bytes), s);
    }
  });

  test("a leading U+FEFF is content, not a stripped byte-order mark", () => {
    for (const s of ["\ufeff", "\ufeffabc", "\ufeff" + "x".repeat(50)]) {
      assert.equal(t.string.fromBytes(t.string.toBytes(s)), s);
    }
  });

  test("invalid UTF-8 is rejected with the offset of the string", () => {
    const invalid = [
      "02c328", // bad continuation
      "02c0af", // overlong '/'
      "03eda080", // UTF-16 surrogate encoded in UTF-8
      "04f4908080", // above U+10FFFF
      "01ff",
      "01c3", // truncated sequence
    ];
    for (const h of invalid) {
      const e = decodeError(() => t.string.fromBytes(unhex(h)), /invalid UTF-8/);
      assert.equal(e.offset, 1, `offset for ${h}`);
    }
    // Also on the slow path (>= 32 bytes) and inside a struct.
    const long = new Uint8Array([40, ...new Array<number>(39).fill(0x61), 0xff]);
    decodeError(() => t.string.fromBytes(long), /invalid UTF-8/);
    const e = decodeError(() => Person.fromBytes(unhex("02c328 1e 00")), /invalid UTF-8/);
    assert.deepEqual(e.path, ["name"]);
  });

  test("a lying length prefix fails before reading or allocating", () => {
    const e = decodeError(() => t.string.fromBytes(unhex("ffffffff0f 6162")), /exceeds the 2 byte\(s\) remaining/);
    assert.equal(e.offset, 0);
    decodeError(() => t.string.fromBytes(unhex("05 6162")), /exceeds/);
  });
});

describe("bytes and unit", () => {
  test("bytes: length-prefixed, decoded as a copy", () => {
    roundTrip(t.bytes, b(), "00");
    roundTrip(t.bytes, b(0xde, 0xad, 0xbe, 0xef), "04deadbeef");
    const input = unhex("03010203");
    const out = t.bytes.fromBytes(input);
    input[1] = 0x99;
    assert.deepEqual(out, b(1, 2, 3), "decoded bytes do not alias the input");
    decodeError(() => t.bytes.fromBytes(unhex("050102")), /exceeds the 2 byte/);
    decodeError(() => t.bytes.fromBytes(unhex("ffffffffffffffff7f")), /2\^53-1|exceeds/);
    encodeError(() => t.bytes.toBytes([1, 2] as unknown as Uint8Array), /Uint8Array/);
  });

  test("unit encodes to nothing", () => {
    assert.equal(t.unit.toBytes(undefined).length, 0);
    assert.equal(t.unit.fromBytes(b()), undefined);
    roundTrip(t.tuple(t.unit, t.u8, t.unit), [undefined, 7, undefined], "07");
  });
});

// ---------------------------------------------------------------------------
// containers
// ---------------------------------------------------------------------------

describe("option", () => {
  test("tags 0 and 1 only", () => {
    const s = t.option(t.u32);
    roundTrip(s, null, "00");
    roundTrip(s, 300, "01ac02");
    assert.equal(hex(s.toBytes(undefined as unknown as null)), "00", "undefined encodes as None");
    const e = decodeError(() => s.fromBytes(b(2, 0)), /invalid Option tag 2/);
    assert.equal(e.offset, 0);
    decodeError(() => s.fromBytes(b(0xff)), /invalid Option tag/);
    decodeError(() => s.fromBytes(b(1)), /end of input/);
  });

  test("nested options keep Some(None) apart from None", () => {
    const s = t.option(t.option(t.string));
    roundTrip(s, null, "00");
    roundTrip(s, { some: null }, "0100");
    roundTrip(s, { some: "x" }, "01010178");
    const s3 = t.option(t.option(t.option(t.u8)));
    roundTrip(s3, { some: { some: null } }, "010100");
    roundTrip(s3, { some: { some: 5 } }, "01010105");
  });

  test("Option<()>: Some(()) is 01, None is 00", () => {
    const s = t.option(t.unit);
    assert.equal(hex(s.toBytes(undefined)), "01");
    assert.equal(hex(s.toBytes(null)), "00");
    assert.equal(s.fromBytes(b(1)), undefined);
    assert.equal(s.fromBytes(b(0)), null);
  });
});

describe("lists, arrays, maps, sets, tuples", () => {
  test("round trips", () => {
    roundTrip(t.list(t.u32), [1, 2, 3], "03010203");
    roundTrip(t.list(t.u8), [1, 255], "0201ff");
    roundTrip(t.array(t.u8, 3), [1, 2, 3], "010203");
    roundTrip(t.array(t.string, 0), [], "");
    roundTrip(t.map(t.string, t.u8), new Map([["a", 1], ["b", 2]]), "02 016101 016202");
    roundTrip(t.set(t.u16), new Set([1, 300]), "0201ac02");
    roundTrip(t.tuple(t.i32, t.string), [42, "hello"], "540568656c6c6f");
    roundTrip(t.list(t.list(t.bool)), [[true], [], [false, true]], "03 0101 00 020001");
  });

  test("shape mismatches are EncodeErrors", () => {
    encodeError(() => t.array(t.u8, 3).toBytes([1, 2]), /array of length 3/);
    encodeError(() => t.tuple(t.u8, t.u8).toBytes([1] as unknown as [number, number]), /tuple of 2/);
    encodeError(() => t.list(t.u8).toBytes("abc" as unknown as number[]), /array/);
    encodeError(() => t.map(t.u8, t.u8).toBytes({} as unknown as Map<number, number>), /Map/);
    encodeError(() => t.set(t.u8).toBytes([1] as unknown as Set<number>), /Set/);
  });

  test("a lying length prefix is rejected up front, with no element decoded", () => {
    // 2^32-1 elements claimed, 3 bytes present.
    const lie = unhex("ffffffff0f 010203");
    for (const s of [t.list(t.u32), t.set(t.u32), t.list(t.string)] as Schema<unknown>[]) {
      const e = decodeError(() => s.fromBytes(lie), /length 4294967295 exceeds the 3 byte\(s\) remaining/);
      assert.equal(e.offset, 0);
      assert.deepEqual(e.path, [], "failed at the prefix, before any element");
    }
    decodeError(() => t.map(t.u8, t.u8).fromBytes(unhex("02 0102 03")), /length 2 exceeds/);
    // Elements with a larger minimum size are accounted for: 3 f64s need 24 bytes.
    decodeError(() => t.list(t.f64).fromBytes(new Uint8Array([3, ...new Array<number>(16).fill(0)])), /length 3 exceeds/);
    // ... also for structs, whose minimum size is the sum of their fields (Point: 2 bytes).
    const Point = t.struct({ x: t.i32, y: t.i32 });
    decodeError(() => t.list(Point).fromBytes(unhex("03 0000 0000 00")), /length 3 exceeds/);
    decodeError(() => t.array(t.f64, 2).fromBytes(new Uint8Array(15)), /array of 2 elements exceeds/);
  });

  test("zero-sized elements (Vec<()>) cannot make the decoder loop for a lying length", () => {
    const huge = unhex("ffffffffffffff0f"); // 2^53-1 units: no bytes to check it against
    const started = Date.now();
    for (const s of [t.list(t.unit), t.list(t.tuple()), t.list(t.struct({})), t.set(t.unit), t.map(t.unit, t.unit)] as Schema<unknown>[]) {
      decodeError(() => s.fromBytes(huge), /zero-sized elements exceed/);
    }
    // Nested: many inner lists of units share one budget per decode.
    const nested = new Uint8Array(1 + 100 * 3);
    nested[0] = 100;
    for (let i = 0; i < 100; i++) nested.set(unhex("ffff03"), 1 + i * 3); // 100 x 65535 units
    decodeError(() => t.list(t.list(t.unit)).fromBytes(nested), /zero-sized elements exceed/);
    assert.ok(Date.now() - started < 2000, "rejected quickly");
    // Legitimate lists of units still decode.
    assert.equal(t.list(t.unit).fromBytes(unhex("e807")).length, 1000);
    assert.equal(t.list(t.unit).fromBytes(t.list(t.unit).toBytes(new Array<undefined>(MAX_ZERO_SIZED_ELEMENTS).fill(undefined))).length, MAX_ZERO_SIZED_ELEMENTS);
  });

  test("trailing bytes after a whole value are rejected", () => {
    const e = decodeError(() => t.u8.fromBytes(b(1, 2)), /1 trailing byte/);
    assert.equal(e.offset, 1);
    decodeError(() => t.list(t.u8).fromBytes(unhex("0101 00")), /trailing/);
    decodeError(() => Person.fromBytes(unhex("0161 1e 00 00 00")), /2 trailing/);
  });
});

describe("enums and results", () => {
  const E = t.enum({ Unit: null, New: t.u8, Tup: [t.u8, t.string], Rec: { a: t.bool } }, "E");

  test("all variant shapes round-trip", () => {
    roundTrip(E, { tag: "Unit" }, "00");
    roundTrip(E, { tag: "New", value: 7 }, "0107");
    roundTrip(E, { tag: "Tup", value: [1, "x"] }, "02010178");
    roundTrip(E, { tag: "Rec", value: { a: true } }, "0301");
    roundTrip(t.literals(["Red", "Green", "Blue"]), "Blue", "02");
  });

  test("unknown discriminants are DecodeErrors", () => {
    const e = decodeError(() => E.fromBytes(b(4)), /unknown enum discriminant 4 for E/);
    assert.equal(e.offset, 0);
    decodeError(() => E.fromBytes(unhex("ffffffff0f")), /unknown enum discriminant/);
    decodeError(() => E.fromBytes(unhex("ffffffff1f")), /exceeds u32/);
    decodeError(() => t.literals(["A", "B"], "AB").fromBytes(b(2)), /unknown enum discriminant 2 for AB/);
    encodeError(() => E.toBytes({ tag: "Nope" } as unknown as { tag: "Unit" }), /unknown variant/);
    encodeError(() => t.literals(["A", "B"]).toBytes("C" as unknown as "A"), /unknown variant/);
  });

  test("Result: 0 = Ok, 1 = Err, anything else rejected", () => {
    const R = t.result(t.u8, t.string);
    roundTrip(R, { ok: true, value: 5 }, "0005");
    roundTrip(R, { ok: false, error: "e" }, "010165");
    decodeError(() => R.fromBytes(b(2, 0)), /invalid Result discriminant 2/);
    const e = decodeError(() => R.fromBytes(b(1, 5)), /exceeds/);
    assert.deepEqual(e.path, ["Err"]);
    encodeError(() => R.toBytes({ value: 1 } as unknown as { ok: true; value: number }));
  });
});

// ---------------------------------------------------------------------------
// error locations
// ---------------------------------------------------------------------------

describe("DecodeError and EncodeError report where", () => {
  const canvas = {
    name: "c",
    shapes: [
      { tag: "Point" as const },
      { tag: "Circle" as const, value: { radius: 2.5 } },
      { tag: "Rectangle" as const, value: { width: 1, height: 2 } },
    ],
    background: "Green" as const,
  };

  test("a truncated nested field reports shapes[1].Circle.radius", () => {
    const bytes = Canvas.toBytes(canvas);
    // name(2) + count(1) + Point(1) + Circle tag(1) = 5; cut inside the radius.
    const e = decodeError(() => Canvas.fromBytes(bytes.subarray(0, 8)), /end of input in f64/);
    assert.deepEqual(e.path, ["shapes", "[1]", "Circle", "radius"]);
    assert.equal(e.offset, 5);
    assert.match(e.message, /at shapes\[1\]\.Circle\.radius \(byte 5\)/);
  });

  test("a bad discriminant deep inside reports its element and offset", () => {
    // name(2) count(1) Point(1) Circle(1 + 8), then shapes[2]'s discriminant at byte 13.
    const bytes = Canvas.toBytes(canvas).slice();
    assert.equal(bytes[13], 1, "byte 13 is shapes[2]'s discriminant (Rectangle)");
    bytes[13] = 9;
    const e = decodeError(() => Canvas.fromBytes(bytes), /unknown enum discriminant 9 for Shape/);
    assert.deepEqual(e.path, ["shapes", "[2]"]);
    assert.equal(e.offset, 13);
    const bg = Canvas.toBytes(canvas).slice();
    bg[bg.length - 1] = 3;
    assert.deepEqual(decodeError(() => Canvas.fromBytes(bg), /discriminant 3 for Color/).path, ["background"]);
  });

  test("paths through options, maps, tuples, arrays and results", () => {
    const S = t.struct({
      m: t.map(t.string, t.option(t.tuple(t.u8, t.array(t.bool, 2)))),
    });
    const good = S.toBytes({ m: new Map([["k", [1, [true, false]]], ["j", null]]) });
    // count, "k", Some, u8 1, [true, false], "j", None
    assert.equal(hex(good), "02 016b 01 01 0100 016a 00".replace(/ /g, ""));
    const bad = good.slice();
    bad[6] = 7; // the second bool of the first entry
    const e = decodeError(() => S.fromBytes(bad), /invalid bool byte 0x7/);
    assert.deepEqual(e.path, ["m", "[0]", "some", "[1]", "[1]"]);
  });

  test("encode errors carry the path of the offending value", () => {
    const badCanvas = { ...canvas, shapes: [...canvas.shapes, { tag: "Circle" as const, value: { radius: "big" as unknown as number } }] };
    const e = encodeError(() => Canvas.toBytes(badCanvas), /expected number/);
    assert.deepEqual(e.path, ["shapes", "[3]", "Circle", "radius"]);
    assert.match(e.message, /at shapes\[3\]\.Circle\.radius/);
    assert.deepEqual(encodeError(() => Person.toBytes({ name: "a", age: 300, email: null })).path, ["age"]);
    assert.deepEqual(encodeError(() => Person.toBytes({ name: "a", age: 3, email: 5 as unknown as string })).path, ["email", "some"]);
    assert.deepEqual(encodeError(() => Shape.toBytes({ tag: "Circle", value: {} as { radius: number } })).path, ["Circle", "radius"]);
    assert.deepEqual(encodeError(() => t.map(t.string, t.u8).toBytes(new Map([["a", 1], ["b", -1]]))).path, ["[1]"]);
    assert.deepEqual(encodeError(() => Canvas.toBytes(null as unknown as typeof canvas)).path, []);
  });

  test("deep recursion through t.lazy is a DecodeError, not a stack overflow", () => {
    type Node = { next: Node | null };
    const Node: Schema<Node> = t.struct({ next: t.option(t.lazy(() => Node)) });
    // 100 levels round-trip...
    let v: Node = { next: null };
    for (let i = 0; i < 100; i++) v = { next: v };
    assert.deepEqual(Node.fromBytes(Node.toBytes(v)), v);
    // ...but a hostile 100k-deep input is refused.
    const deep = new Uint8Array(100_001).fill(1);
    deep[deep.length - 1] = 0;
    decodeError(() => Node.fromBytes(deep), new RegExp(`nesting deeper than ${MAX_RECURSION_DEPTH}`));
  });
});

// ---------------------------------------------------------------------------
// wire messages: malformed input
// ---------------------------------------------------------------------------

describe("decodeMessage rejects malformed messages", () => {
  test("unknown variants, bad ids, truncation and trailing bytes", () => {
    const e = decodeError(() => decodeMessage(b(12)), /unknown Message variant 12/);
    assert.ok(e instanceof UnknownMessageVariantError);
    assert.equal(e.discriminant, 12);
    decodeError(() => decodeMessage(b()), /end of input/);
    decodeError(() => decodeMessage(unhex("08 00 01 03 0102")), /exceeds/); // Data payload truncated
    decodeError(() => decodeMessage(unhex("07 00 63 00")), /trailing/); // Cancel + 1 byte
    decodeError(() => decodeMessage(unhex("07 8080808080808010 00")), /2\^53-1/); // conn id 2^53
    decodeError(() => decodeMessage(unhex("01 01 01 0161 03 00")), /unknown MetadataValue variant 3/);
    decodeError(() => decodeMessage(unhex("01 01 ffffffff0f")), /exceeds/); // metadata count lie
    decodeError(() => decodeMessage(unhex("05 00 01 2a 00 ffffffff0f")), /exceeds/); // channel count lie
  });

  test("Hello: V1 and V2 decode, unknown versions are reported not guessed", () => {
    const v1 = decodeMessage(unhex("00 00 800840"));
    assert.deepEqual(v1, { type: "Hello", version: 1, maxPayloadSize: 1024, initialChannelCredit: 64 });
    const v3 = decodeMessage(unhex("00 02 0102"));
    assert.equal(v3.type, "Hello");
    assert.ok(v3.type === "Hello" && v3.version === 3);
    assert.equal(hex(messageToBytes({ type: "Hello", version: 1, maxPayloadSize: 1, initialChannelCredit: 2 })), "00000102");
  });
});

// ---------------------------------------------------------------------------
// COBS
// ---------------------------------------------------------------------------

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function frame(raw: Uint8Array): Uint8Array {
  return concat([cobsEncode(raw), b(0)]);
}

function run(bytes: number, fill: (i: number) => number): Uint8Array {
  return new Uint8Array(bytes).map((_, i) => fill(i));
}

describe("COBS encode/decode", () => {
  test("encoding never contains a zero and stays within cobsMaxEncodedLength", () => {
    for (let n = 0; n <= 800; n += 1) {
      const raws = [run(n, () => 1), run(n, (i) => (i % 7 === 3 ? 0 : i & 0xff)), run(n, () => 0)];
      for (const raw of raws) {
        const enc = cobsEncode(raw);
        assert.equal(enc.indexOf(0), -1, `no zero in encoding of ${n} bytes`);
        assert.ok(enc.length <= cobsMaxEncodedLength(n), `length bound for ${n}`);
        assert.deepEqual(cobsDecode(enc), raw, `round trip of ${n} bytes`);
      }
    }
  });

  test("254/255/508-byte runs without zeros", () => {
    const ones = (n: number): number[] => new Array<number>(n).fill(1);
    // 254 bytes: one full block, no trailing empty block.
    assert.equal(hex(cobsEncode(run(254, () => 1))), hex(b(0xff, ...ones(254))));
    // 255 bytes: a full block, then a block of one.
    assert.equal(hex(cobsEncode(run(255, () => 1))), hex(b(0xff, ...ones(254), 0x02, 1)));
    // 508 bytes: two full blocks.
    assert.equal(hex(cobsEncode(run(508, () => 1))), hex(b(0xff, ...ones(254), 0xff, ...ones(254))));
    // The variant with a trailing empty block (older encoders emit it) decodes the same.
    assert.deepEqual(cobsDecode(b(0xff, ...ones(254), 0x01)), run(254, () => 1));
    assert.deepEqual(cobsDecode(b(0xff, ...ones(254), 0xff, ...ones(254), 0x01)), run(508, () => 1));
  });

  test("a zero right after a full 254-byte block is kept", () => {
    const ones = (n: number): number[] => new Array<number>(n).fill(1);
    const raw = b(...ones(254), 0);
    assert.equal(hex(cobsEncode(raw)), hex(b(0xff, ...ones(254), 0x01, 0x01)));
    for (const r of [raw, b(...ones(254), 0, 5), b(...ones(508), 0), b(...ones(254), 0, 0, ...ones(300))]) {
      assert.deepEqual(cobsDecode(cobsEncode(r)), r, `${r.length} bytes`);
    }
  });

  test("invalid COBS is a FramingError", () => {
    framingError(() => cobsDecode(b(0x05, 1, 2)), /runs past the end/);
    framingError(() => cobsDecode(b(0x02, 1, 0x03, 1)), /runs past the end/);
    framingError(() => cobsDecode(b(0x03, 1, 0)), /zero byte/);
    framingError(() => cobsDecode(b(0x00)), /zero byte/);
    assert.deepEqual(cobsDecode(b()), b(), "an empty frame decodes to nothing");
  });
});

describe("CobsFrameDecoder", () => {
  const raws = [b(1, 2, 3), b(), b(0), b(0, 0, 7), run(300, (i) => i & 0xff), run(254, () => 9), b(0x11)];
  const stream = concat(raws.map(frame));

  function collect(dec: CobsFrameDecoder, chunks: readonly Uint8Array[]): Uint8Array[] {
    const frames: Uint8Array[] = [];
    for (const c of chunks) dec.push(c.slice(), (f) => frames.push(f)); // push takes ownership
    return frames;
  }

  test("many frames in one chunk", () => {
    const frames = collect(new CobsFrameDecoder(1024), [stream]);
    assert.deepEqual(frames, raws);
  });

  test("split at every byte boundary, and byte by byte", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const dec = new CobsFrameDecoder(1024);
      const frames = collect(dec, [stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(frames, raws, `cut at ${cut}`);
      assert.equal(dec.buffered, 0);
    }
    for (let cut1 = 0; cut1 < stream.length; cut1 += 7) {
      for (let cut2 = cut1; cut2 <= stream.length; cut2 += 13) {
        const frames = collect(new CobsFrameDecoder(1024), [stream.subarray(0, cut1), stream.subarray(cut1, cut2), stream.subarray(cut2)]);
        assert.deepEqual(frames, raws, `cuts at ${cut1}, ${cut2}`);
      }
    }
    const bytewise = [...stream].map((x) => b(x));
    assert.deepEqual(collect(new CobsFrameDecoder(1024), bytewise), raws);
  });

  test("a chunk larger than a slab is decoded into several slabs, each below the allocator's mmap threshold", () => {
    // 24 frames of 40 KiB (one read of ~960 KiB): with the default slab every
    // frame lands in a slab under 128 KiB (heap memory, not fresh pages).
    const big = Array.from({ length: 24 }, (_, k) => run(40 * 1024, (i) => (i * 7 + k) & 0xff));
    const frames = collect(new CobsFrameDecoder(1 << 20), [concat(big.map(frame))]);
    assert.equal(frames.length, big.length);
    for (let k = 0; k < big.length; k++) {
      assert.ok(Buffer.from(frames[k]!).equals(big[k]!), `frame ${k} intact`);
      assert.ok(frames[k]!.buffer.byteLength < 128 * 1024, `frame ${k} in a ${frames[k]!.buffer.byteLength}-byte slab`);
    }
    // Frames larger than a (tiny) slab, many per chunk, chunks cut anywhere.
    const mixed = [run(300, (i) => i & 0xff), b(1), run(1000, (i) => (i * 3) & 0xff), b(), run(77, () => 0), run(10_000, (i) => (i * 5 + 1) & 0xff)];
    const enc = concat(mixed.map(frame));
    for (const cut of [1, 5, 64, 300, 999, 8192, enc.length]) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < enc.length; at += cut) chunks.push(enc.subarray(at, at + cut));
      const got = collect(new CobsFrameDecoder(1 << 20, undefined, 16), chunks);
      assert.deepEqual(got, mixed, `chunks of ${cut}`);
    }
  });

  test("empty input and empty frames produce nothing", () => {
    const dec = new CobsFrameDecoder(16);
    assert.deepEqual(collect(dec, [b(), b(), b(0, 0, 0)]), []);
    assert.equal(dec.buffered, 0);
  });

  test("push keeps no reference to the chunk: it may be reused at once, frames stay valid", () => {
    const dec = new CobsFrameDecoder(64, undefined, 16);
    const frames: Uint8Array[] = [];
    const reused = new Uint8Array(8);
    const feed = (...bytes: number[]) => {
      reused.set(bytes);
      dec.push(reused.subarray(0, bytes.length), (f) => frames.push(f));
      reused.fill(0xee); // the caller overwrites its buffer right away
    };
    feed(3, 1, 2, 0, 2, 9);
    feed(0); // completes "02 09"
    feed(4, 7, 7, 7, 0);
    // Enough frames to fill several 16-byte slabs, each split over two pushes
    // (so some are moved to a new slab half-decoded).
    for (let k = 1; k <= 6; k++) {
      feed(6, k, k, k);
      feed(k, k, 0);
    }
    const fives = Array.from({ length: 6 }, (_, i) => b(i + 1, i + 1, i + 1, i + 1, i + 1));
    assert.deepEqual(frames, [b(1, 2), b(9), b(7, 7, 7), ...fives]);
    assert.equal(dec.buffered, 0);
  });

  test("a hostile unterminated frame larger than the limit fails, and never buffers past the limit", () => {
    const limit = 1000;
    const dec = new CobsFrameDecoder(limit);
    const chunk = new Uint8Array(64).fill(0x01);
    let pushed = 0;
    let error: unknown;
    for (let i = 0; i < 100 && error === undefined; i++) {
      try {
        dec.push(chunk, () => assert.fail("no frame expected"));
        pushed += chunk.length;
      } catch (e) {
        error = e;
      }
      assert.ok(dec.buffered <= limit, `buffered ${dec.buffered} <= ${limit}`);
    }
    assert.ok(error instanceof FramingError, "FramingError once the limit is passed");
    assert.ok(pushed <= limit && pushed + chunk.length > limit, `failed on the chunk that crossed the limit (after ${pushed})`);

    // All at once: refused without buffering anything.
    const once = new CobsFrameDecoder(limit);
    framingError(() => once.push(new Uint8Array(10 * limit).fill(7), () => {}), /exceeds/);
    assert.equal(once.buffered, 0);

    // Terminated but too large, in one chunk and across chunks.
    const big = frame(run(2 * limit, () => 3));
    framingError(() => new CobsFrameDecoder(limit).push(big, () => {}), /exceeds/);
    const split = new CobsFrameDecoder(limit);
    split.push(big.subarray(0, 600), () => {});
    framingError(() => split.push(big.subarray(600), () => {}), /exceeds/);

    // Exactly at the limit is fine.
    const exact = new CobsFrameDecoder(limit);
    const raw = run(limit - 4, (i) => (i % 100) + 1); // encodes to limit-4+1+floor(996/254)=limit bytes
    const enc = cobsEncode(raw);
    assert.equal(enc.length, limit);
    assert.deepEqual(collect(exact, [concat([enc, b(0)])]), [raw]);
  });

  test("invalid COBS inside a frame is a FramingError, and later frames still decode", () => {
    const dec = new CobsFrameDecoder(64);
    framingError(() => dec.push(b(0x05, 1, 2, 0), () => {}), /runs past the end/);
    assert.deepEqual(collect(dec, [frame(b(4, 5))]), [b(4, 5)]);
  });
});

test("strings with lone surrogates are refused instead of silently altered", async () => {
  const { t } = await import("../src/schema/index.js");
  const { EncodeError } = await import("../src/codec/errors.js");
  assert.throws(() => t.string.toBytes("a\ud800b"), EncodeError);
  assert.throws(() => t.struct({ s: t.string }).toBytes({ s: "\udc00" }), (e: unknown) => e instanceof EncodeError && e.path[0] === "s");
  assert.deepEqual(t.string.fromBytes(t.string.toBytes("ok 🦀")), "ok 🦀");
});
