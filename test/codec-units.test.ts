/**
 * Unit tests of the codec building blocks themselves (Reader, Writer, the
 * error classes, the COBS functions and the stream kernel), at the edges the
 * schema-level tests in codec.test.ts do not reach: a Reader over a window of
 * a larger buffer or a subarray, a Writer that must grow mid-value, exact
 * boundaries (thresholds, the frame limit), and the return values and state
 * of the exported COBS step function. Fast: part of the codec mutation scope.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DecodeError, EncodeError, FramingError } from "../src/codec/errors.js";
import { Reader } from "../src/codec/reader.js";
import { Writer, checkI128, checkU128, varintLength } from "../src/codec/writer.js";
import { CobsFrameDecoder, cobsDecode, cobsDecodeInPlace, cobsDecodeStep, cobsEncode, cobsEncodeInPlace, cobsEncodeInto, cobsMaxEncodedLength } from "../src/codec/cobs.js";

function b(...bytes: number[]): Uint8Array {
  return Uint8Array.from(bytes);
}
function hex(x: Uint8Array): string {
  let s = "";
  for (const v of x) s += v.toString(16).padStart(2, "0");
  return s;
}
/** Runs `fn`, asserts it threw an instance of `cls` whose message matches `re`, returns it. */
function throws<E extends Error>(cls: new (...a: never[]) => E, fn: () => unknown, re?: RegExp): E {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (re) assert.match(e.message, re);
    return e;
  }
  assert.fail(`expected a ${cls.name}`);
}

// ---------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------

describe("error messages", () => {
  test("DecodeError: the path is joined with dots, indexes attach directly, none without a path", () => {
    assert.equal(new DecodeError("bad", 3).message, "postcard decode failed (byte 3): bad");
    assert.deepEqual(new DecodeError("bad", 3).path, []);
    const e = new DecodeError("bad", 7, ["[1]", "a", "[2]", "b"]);
    assert.equal(e.message, "postcard decode failed at [1].a[2].b (byte 7): bad");
    const outer = e.withOuterPath("list");
    assert.equal(outer.message, "postcard decode failed at list[1].a[2].b (byte 7): bad");
    assert.deepEqual(outer.path, ["list", "[1]", "a", "[2]", "b"]);
    assert.equal(outer.offset, 7);
    assert.equal(outer.detail, "bad");
  });

  test("EncodeError: the same path format, none without a path", () => {
    assert.equal(new EncodeError("bad").message, "postcard encode failed: bad");
    assert.deepEqual(new EncodeError("bad").path, []);
    const e = new EncodeError("bad", ["x"]).withOuterPath("[0]");
    assert.equal(e.message, "postcard encode failed at [0].x: bad");
    assert.deepEqual(e.path, ["[0]", "x"]);
  });
});

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

describe("Reader over a window [start, end) of a larger buffer", () => {
  // Byte 9 before and byte 7 after the window must never be read.
  const input = b(9, 5, 0x81, 0x01, 7);

  test("remaining, u8 and varints stop at `end`, not at the buffer's length", () => {
    const r = new Reader(input, 1, 2);
    assert.equal(r.remaining, 1);
    assert.equal(r.u8(), 5);
    assert.equal(r.remaining, 0);
    assert.match(throws(DecodeError, () => r.u8()).detail, /end of input/);
    assert.match(throws(DecodeError, () => new Reader(input, 1, 2).rawView(2)).detail, /need 2 byte\(s\), 1 remaining/);
    // varint32 and varintSafe at the end of the window: the next byte (0x81) is outside.
    for (const read of [(x: Reader) => x.varint32(), (x: Reader) => x.varintSafe(), (x: Reader) => Number(x.varint64())]) {
      const w = new Reader(input, 0, 2);
      w.u8();
      assert.equal(read(w), 5);
      assert.match(throws(DecodeError, () => read(w)).detail, /end of input/);
    }
    // At the end of the window, with a one-byte value (7) right after it in the buffer.
    for (const read of [(x: Reader) => x.varint32(), (x: Reader) => x.varintSafe()]) {
      const w = new Reader(b(0x05, 0x07), 0, 1);
      assert.equal(read(w), 5);
      assert.match(throws(DecodeError, () => read(w)).detail, /end of input/);
    }
  });

  test("f32/f64 need their bytes inside the window, also after a prefix", () => {
    const f = new Uint8Array(16);
    new DataView(f.buffer).setFloat32(1, 1.5, true);
    new DataView(f.buffer).setFloat64(5, -2.25, true);
    const r = new Reader(f, 0, 13);
    r.u8();
    assert.equal(r.f32(), 1.5);
    assert.equal(r.f64(), -2.25);
    r.expectEnd();
    // 3 (resp. 7) bytes left after a prefix byte: refused, although the buffer goes on.
    const s = new Reader(f, 0, 4);
    s.u8();
    assert.match(throws(DecodeError, () => s.f32()).detail, /end of input in f32/);
    const d = new Reader(f, 0, 8);
    d.u8();
    assert.match(throws(DecodeError, () => d.f64()).detail, /end of input in f64/);
    // Exactly enough bytes is fine.
    assert.equal(new Reader(f, 1, 5).f32(), 1.5);
    assert.equal(new Reader(f, 5, 13).f64(), -2.25);
  });

  test("length() compares against the bytes left after the prefix, times the element size", () => {
    // After 1 prefix byte, 4 bytes remain in the window [1, 6): a length of 4 fits, 5 does not.
    assert.equal(new Reader(b(0xee, 4, 1, 2, 3, 4, 0xee), 1, 6).length(), 4);
    const e = throws(DecodeError, () => new Reader(b(0xee, 5, 1, 2, 3, 4, 0xee), 1, 6).length());
    assert.match(e.detail, /length 5 exceeds the 4 byte\(s\) remaining/);
    assert.equal(e.offset, 1);
    // Two 2-byte elements need 4 bytes: fit exactly; three do not.
    assert.equal(new Reader(b(2, 1, 2, 3, 4)).length(2), 2);
    assert.throws(() => new Reader(b(3, 1, 2, 3, 4, 5)).length(2), DecodeError);
  });

  test("rawView returns the next n bytes of the window as a view", () => {
    const r = new Reader(input, 1, 4);
    const v = r.rawView(3);
    assert.deepEqual(v, b(5, 0x81, 0x01));
    assert.equal(v.buffer, input.buffer);
    assert.equal(r.pos, 4);
    assert.deepEqual(r.rawView(0), b());
    assert.throws(() => r.rawView(1), DecodeError);
  });

  test("expectEnd reports the trailing bytes of the window", () => {
    const r = new Reader(input, 1, 3);
    r.u8();
    const e = throws(DecodeError, () => r.expectEnd());
    assert.match(e.detail, /^1 trailing byte/);
    assert.equal(e.offset, 2);
    r.u8();
    r.expectEnd();
  });
});

describe("Reader varints", () => {
  test("varint32 below 8 bits: a one-byte value must fit the width", () => {
    assert.equal(new Reader(b(0x0f)).varint32(4), 15);
    const e = throws(DecodeError, () => new Reader(b(0x10)).varint32(4));
    assert.match(e.detail, /exceeds u4/);
    assert.equal(e.offset, 0);
    assert.equal(new Reader(b(0x7f)).varint32(7), 127);
    // Two bytes never fit a 7-bit value.
    assert.match(throws(DecodeError, () => new Reader(b(0x80, 0x01)).varint32(7)).detail, /longer than 1 bytes/);
  });

  test("the first varint byte with the high bit clear ends a one-byte value; 0x80 continues", () => {
    const r = new Reader(b(0x80, 0x01, 0x7f));
    assert.equal(r.varint32(), 128);
    assert.equal(r.pos, 2);
    assert.equal(r.varint32(), 127);
    const s = new Reader(b(0x80, 0x01, 0x7f));
    assert.equal(s.varintSafe(), 128);
    assert.equal(s.pos, 2);
    assert.equal(s.varintSafe(), 127);
    assert.equal(s.pos, 3);
  });

  test("varint64/u128 of single bytes and of values spanning the 28-bit split", () => {
    assert.equal(new Reader(b(0)).varint64(), 0n);
    const cases: bigint[] = [1n, 127n, (1n << 28n) - 1n, 1n << 28n, 0x7fn << 28n, (1n << 35n) + 3n, (1n << 64n) - 1n];
    for (const v of cases) {
      const w = new Writer(1);
      w.varintBig(v);
      const r = new Reader(w.finish());
      assert.equal(r.varint64(), v, `varint64 of ${v}`);
      r.expectEnd();
    }
    const w = new Writer(1);
    w.varintBig((1n << 100n) + 5n);
    assert.equal(new Reader(w.finish()).varint64(128), (1n << 100n) + 5n);
  });

  test("zigzag: 0, ±1 and the extremes, 32-bit and 64-bit", () => {
    const pairs: [number, number][] = [
      [0, 0],
      [-1, 1],
      [1, 2],
      [-2, 3],
      [2 ** 31 - 1, 2 ** 32 - 2],
      [-(2 ** 31), 2 ** 32 - 1],
    ];
    for (const [v, u] of pairs) {
      const w = new Writer(0);
      w.zigzag(v);
      const r = new Reader(w.finish());
      assert.equal(r.varint32(), u, `zigzag(${v})`);
      assert.ok(Object.is(new Reader(w.finish()).zigzag32(), v), `unzigzag(${u})`);
      const big = new Writer(0);
      big.zigzagBig64(BigInt(v));
      assert.equal(hex(big.finish()), hex(w.finish()), `zigzagBig64(${v})`);
      assert.equal(new Reader(big.finish()).zigzag64(), BigInt(v));
    }
  });
});

describe("Reader bytes and strings", () => {
  test("bytes() copies by default; borrowBytes makes it a view", () => {
    const input = b(3, 1, 2, 3);
    const copy = new Reader(input).bytes();
    assert.notEqual(copy.buffer, input.buffer);
    const r = new Reader(input);
    r.borrowBytes = true;
    const view = r.bytes();
    assert.deepEqual(view, b(1, 2, 3));
    assert.equal(view.buffer, input.buffer);
    r.expectEnd();
  });

  test("borrowAtLeast: exactly the threshold is a view, one less is a copy", () => {
    const w = new Writer(0);
    w.bytes(b(1, 2, 3));
    w.bytes(b(4, 5, 6, 7));
    const input = w.finish();
    const r = new Reader(input);
    r.borrowAtLeast = 4;
    const small = r.bytes();
    const big = r.bytes();
    r.expectEnd();
    assert.deepEqual(small, b(1, 2, 3));
    assert.deepEqual(big, b(4, 5, 6, 7));
    assert.notEqual(small.buffer, input.buffer);
    assert.equal(big.buffer, input.buffer);
  });

  test("views and copies taken from a Reader over a subarray hold the right bytes", () => {
    // The backing buffer holds junk before the subarray (byteOffset 3) and between values.
    const backing = b(0xaa, 0xbb, 0xcc, 0xdd, 2, 10, 11, 3, 20, 21, 22, 2, 30, 31);
    const sub = backing.subarray(4);
    const r = new Reader(sub);
    assert.deepEqual(r.bytes(), b(10, 11)); // copy
    r.borrowAtLeast = 3;
    const borrowed = r.bytes(); // view through borrowAtLeast
    assert.deepEqual(borrowed, b(20, 21, 22));
    assert.equal(borrowed.byteOffset, 8);
    const view = r.bytesView();
    assert.deepEqual(view, b(30, 31));
    assert.equal(view.byteOffset, 12);
    r.expectEnd();
    // bytesView after a prefix inside a subarray.
    const s = new Reader(backing.subarray(7, 11));
    assert.deepEqual(s.bytesView(), b(20, 21, 22));
    s.expectEnd();
  });

  test("string: a 0x80 byte is not ASCII; short and long ASCII strings advance past the string", () => {
    for (const bad of [b(1, 0x80), b(2, 0x61, 0x80)]) {
      const e = throws(DecodeError, () => new Reader(bad).string());
      assert.match(e.detail, /invalid UTF-8/);
      assert.equal(e.offset, 1);
    }
    assert.equal(new Reader(b(2, 0xc2, 0x80)).string(), "\u0080");
    for (const n of [0, 1, 31, 32, 40]) {
      const w = new Writer(0);
      w.string("a".repeat(n));
      w.u8(0x7e);
      const r = new Reader(w.finish());
      assert.equal(r.string(), "a".repeat(n));
      assert.equal(r.u8(), 0x7e, `the byte after a ${n}-byte string`);
      r.expectEnd();
    }
  });
});

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

describe("Writer", () => {
  test("u8 grows a full buffer; reset starts over; finish is a copy of exactly what was written", () => {
    const w = new Writer(0);
    for (let i = 1; i <= 70; i++) w.u8(i);
    const all = w.finish();
    assert.equal(all.length, 70);
    assert.equal(all[0], 1);
    assert.equal(all[69], 70);
    const one = new Writer(1);
    one.u8(1);
    one.u8(2);
    assert.deepEqual(one.finish(), b(1, 2));
    w.reset();
    w.u8(9);
    assert.deepEqual(w.finish(), b(9));
    assert.deepEqual(w.view(), b(9));
    const copy = w.finish();
    w.reset();
    w.u8(8);
    assert.deepEqual(copy, b(9), "finish() does not alias the writer's buffer");
  });

  test("growing keeps what was written and makes room for a large write at once", () => {
    const w = new Writer(2);
    w.u8(0xab);
    const big = new Uint8Array(1000).map((_, i) => (i % 250) + 1);
    w.raw(big);
    w.u8(0xcd);
    const out = w.finish();
    assert.equal(out.length, 1002);
    assert.equal(out[0], 0xab);
    assert.deepEqual(out.subarray(1, 1001), big);
    assert.equal(out[1001], 0xcd);
  });

  test("floats after a prefix land at the write position, also after growing", () => {
    const w = new Writer(1);
    w.u8(1);
    w.f32(1.5);
    w.f64(-2.25);
    const out = w.finish();
    assert.equal(out.length, 13);
    const r = new Reader(out);
    assert.equal(r.u8(), 1);
    assert.equal(r.f32(), 1.5);
    assert.equal(r.f64(), -2.25);
  });

  test("varint at the 7-bit and 32-bit edges", () => {
    const expect: [number, string][] = [
      [127, "7f"],
      [128, "8001"],
      [2 ** 32 - 1, "ffffffff0f"],
      [2 ** 32, "8080808010"],
      [2 ** 35, "808080808001"],
    ];
    for (const [v, h] of expect) {
      const w = new Writer(0);
      w.varint(v);
      assert.equal(hex(w.finish()), h, `varint(${v})`);
      const big = new Writer(0);
      big.varintBig(BigInt(v));
      assert.equal(hex(big.finish()), h, `varintBig(${v})`);
    }
  });

  test("strings: ASCII, U+0080 and non-ASCII from an empty Writer, and after a prefix", () => {
    const samples = ["", "abc", "a".repeat(63), "a".repeat(64), "a".repeat(130), "\u0080", "é".repeat(20), "é".repeat(70), "x".repeat(50) + "€", "🦀".repeat(40), "é".repeat(3000)];
    for (const s of samples) {
      const utf8 = new TextEncoder().encode(s);
      // A prefix longer than the string: the bytes moved to a shorter header are not
      // found by a copy range that only works relative to the end of the buffer.
      for (const prefix of [0, 5, 100]) {
        const w = new Writer(0);
        for (let i = 0; i < prefix; i++) w.u8(0xee);
        w.string(s);
        const out = w.finish();
        const r = new Reader(out);
        for (let i = 0; i < prefix; i++) assert.equal(r.u8(), 0xee);
        assert.equal(r.varintSafe(), utf8.length, `length of ${s.length} units`);
        assert.equal(hex(out.subarray(r.pos)), hex(utf8), `bytes of ${JSON.stringify(s.slice(0, 8))}… (prefix ${prefix})`);
      }
    }
  });

  test("varintLength", () => {
    for (const [v, n] of [[0, 1], [127, 1], [128, 2], [16383, 2], [16384, 3], [2 ** 32, 5], [Number.MAX_SAFE_INTEGER, 8]] as const) {
      assert.equal(varintLength(v), n, `varintLength(${v})`);
    }
  });

  test("u128/i128 range checks", () => {
    checkU128(0n);
    checkU128((1n << 128n) - 1n);
    assert.throws(() => checkU128(-1n), /u128 out of range/);
    assert.throws(() => checkU128(1 as unknown as bigint), /expected bigint for u128/);
    checkI128(-(1n << 127n));
    checkI128((1n << 127n) - 1n);
    assert.throws(() => checkI128(-(1n << 127n) - 1n), /i128 out of range/);
    assert.throws(() => checkI128(1n << 127n), /i128 out of range/);
    assert.throws(() => checkI128(1 as unknown as bigint), /expected bigint for i128/);
  });
});

// ---------------------------------------------------------------------------
// COBS
// ---------------------------------------------------------------------------

const ones = (n: number): Uint8Array => new Uint8Array(n).fill(1);

describe("COBS functions", () => {
  test("cobsMaxEncodedLength is an upper bound that zero-free worst cases reach within a byte", () => {
    assert.equal(cobsMaxEncodedLength(0), 1);
    for (const n of [1, 253, 254, 255, 508, 1000, 5000]) {
      const worst = cobsEncode(ones(n)).length;
      const max = cobsMaxEncodedLength(n);
      assert.ok(worst <= max && max - worst <= 1, `n=${n}: worst ${worst}, bound ${max}`);
    }
  });

  test("cobsEncodeInto writes at an offset, on both the short and the in-place path", () => {
    for (const raw of [b(1, 0, 2), new Uint8Array(600).map((_, i) => i % 5)]) {
      const dst = new Uint8Array(3 + cobsMaxEncodedLength(raw.length)).fill(0xee);
      const end = cobsEncodeInto(raw, dst, 3);
      const expected = cobsEncode(raw);
      assert.equal(end, 3 + expected.length);
      assert.deepEqual(dst.subarray(0, 3), b(0xee, 0xee, 0xee));
      assert.deepEqual(dst.subarray(3, end), expected);
      assert.deepEqual(cobsDecode(dst.subarray(3, end)), raw);
    }
  });

  test("cobsEncodeInPlace: full blocks, a zero after a full block, and many blocks (the scratch table grows)", () => {
    const withZeroAfterFull = new Uint8Array(600).fill(3);
    withZeroAfterFull[254] = 0;
    const inputs = [
      ones(762), // three full blocks, nothing after them
      ones(763),
      withZeroAfterFull,
      new Uint8Array(3000), // 3001 one-byte blocks
      new Uint8Array(2000).map((_, i) => (i % 300 === 299 ? 0 : 7)),
      new Uint8Array(1200).map((_, i) => (i % 2 ? 0 : 9)),
    ];
    for (const raw of inputs) {
      for (const at of [0, 2]) {
        const buf = new Uint8Array(at + cobsMaxEncodedLength(raw.length)).fill(0xee);
        buf.set(raw, at + 1);
        const end = cobsEncodeInPlace(buf, at, raw.length);
        const enc = buf.subarray(at, end);
        assert.equal(enc.indexOf(0), -1);
        assert.deepEqual(cobsDecode(enc), raw, `${raw.length} bytes at ${at}`);
        if (at > 0) assert.equal(buf[0], 0xee, "nothing written before `at`");
      }
    }
    // Byte-exact for three full blocks: 0xff + 254 ones, three times, no trailing block.
    const buf = new Uint8Array(cobsMaxEncodedLength(762));
    buf.set(ones(762), 1);
    const end = cobsEncodeInPlace(buf, 0, 762);
    assert.equal(end, 765);
    assert.deepEqual([buf[0], buf[255], buf[510]], [0xff, 0xff, 0xff]);
  });

  test("cobsDecode leaves its input untouched; cobsDecodeInPlace decodes to the start", () => {
    const enc = cobsEncode(b(1, 0, 2, 0, 0, 3));
    const before = hex(enc);
    assert.deepEqual(cobsDecode(enc), b(1, 0, 2, 0, 0, 3));
    assert.equal(hex(enc), before);
    const long = new Uint8Array(100).map((_, i) => (i === 40 ? 0 : i + 1));
    const buf = cobsEncode(long).slice();
    const n = cobsDecodeInPlace(buf);
    assert.deepEqual(buf.subarray(0, n), long);
    // A block that ends exactly at the end of the frame.
    assert.deepEqual(cobsDecode(b(3, 1, 2)), b(1, 2));
    throws(FramingError, () => cobsDecode(b(4, 1, 2)), /runs past the end/);
  });
});

describe("cobsDecodeStep (the pure-JS stream kernel)", () => {
  function step(src: Uint8Array, state = new Int32Array(4), dstLen = 64): { used: number; state: number[]; out: Uint8Array } {
    const dst = new Uint8Array(dstLen);
    const used = cobsDecodeStep(src, 0, src.length, dst, state);
    return { used, state: [...state], out: dst.subarray(0, state[2]) };
  }

  test("a frame ends at its delimiter: consumed through it, status 1, state reset for the next", () => {
    const r = step(b(3, 1, 2, 2, 5, 0, 9, 9));
    assert.equal(r.used, 6);
    assert.deepEqual(r.state, [0, 0, 4, 1]);
    assert.deepEqual(r.out, b(1, 2, 0, 5));
  });

  test("input used up inside a block: status 0, the block's remaining length and the pending zero kept", () => {
    const r = step(b(5, 1, 2));
    assert.equal(r.used, 3);
    assert.deepEqual(r.state, [2, 1, 2, 0]);
    // Resume with the rest of the frame.
    const st = Int32Array.from(r.state);
    const dst = new Uint8Array(64);
    dst.set(r.out);
    const used = cobsDecodeStep(b(3, 4, 2, 7, 0), 0, 5, dst, st);
    assert.equal(used, 5);
    assert.deepEqual([...st], [0, 0, 6, 1]);
    assert.deepEqual(dst.subarray(0, 6), b(1, 2, 3, 4, 0, 7));
  });

  test("a full block (0xff) adds no zero before the next block", () => {
    const raw = new Uint8Array(300).fill(4);
    const enc = cobsEncode(raw);
    const src = new Uint8Array(enc.length + 1);
    src.set(enc);
    const r = step(src, new Int32Array(4), 400);
    assert.equal(r.used, src.length);
    assert.deepEqual(r.state, [0, 0, 300, 1]);
    assert.deepEqual(r.out, raw);
  });

  test("a delimiter inside a block: status 2, consumed through the delimiter, state reset", () => {
    for (const src of [b(5, 1, 2, 0, 3, 3), Uint8Array.from([40, ...new Array<number>(30).fill(6), 0, 3, 3, ...new Array<number>(40).fill(8)])]) {
      const r = step(src, new Int32Array(4), 128);
      const zeroAt = src.indexOf(0);
      assert.equal(r.used, zeroAt + 1, "consumed through the delimiter");
      assert.equal(r.state[3], 2);
      assert.equal(r.state[0], 0);
      assert.equal(r.state[1], 0);
      assert.equal(r.state[2], zeroAt - 1);
    }
  });

  test("only src[start, end) is read, from the given output position", () => {
    const src = b(0xaa, 3, 1, 2, 0, 0xbb);
    const st = Int32Array.of(0, 0, 2, 0);
    const dst = new Uint8Array(8).fill(0xee);
    assert.equal(cobsDecodeStep(src, 1, 4, dst, st), 3);
    assert.deepEqual([...st], [0, 1, 4, 0]);
    assert.deepEqual(dst.subarray(0, 5), b(0xee, 0xee, 1, 2, 0xee));
  });

  test("long runs on the indexOf path: zero-free data, a run cut by the window, a delimiter inside", () => {
    // 200 data bytes in one 0xff block split over windows of 100: the kernel stops at `end`.
    const data = new Uint8Array(254).map((_, i) => (i % 200) + 1);
    const src = new Uint8Array(256);
    src[0] = 0xff;
    src.set(data, 1);
    src[255] = 0;
    const st = new Int32Array(4);
    const dst = new Uint8Array(300);
    assert.equal(cobsDecodeStep(src, 0, 100, dst, st), 100);
    assert.deepEqual([...st], [155, 0, 99, 0]);
    assert.equal(cobsDecodeStep(src, 100, 256, dst, st), 156);
    assert.deepEqual([...st], [0, 0, 254, 1]);
    assert.deepEqual(dst.subarray(0, 254), data);
    // Several long blocks in one call: each finds the next zero (cached across blocks).
    const raw = new Uint8Array(400).map((_, i) => (i % 50 === 49 ? 0 : (i % 7) + 1));
    const enc = cobsEncode(raw);
    const s2 = new Uint8Array(enc.length + 1);
    s2.set(enc);
    const st2 = new Int32Array(4);
    const d2 = new Uint8Array(500);
    assert.equal(cobsDecodeStep(s2, 0, s2.length, d2, st2), s2.length);
    assert.deepEqual(d2.subarray(0, st2[2]), raw);
    // A 100-byte block cut by a delimiter after 60 bytes, in a large window.
    const cut = new Uint8Array(120).fill(5);
    cut[0] = 101;
    cut[61] = 0;
    const st3 = new Int32Array(4);
    assert.equal(cobsDecodeStep(cut, 0, cut.length, new Uint8Array(200), st3), 62);
    assert.deepEqual([...st3], [0, 0, 60, 2]);
  });
});

describe("CobsFrameDecoder edges", () => {
  function frame(raw: Uint8Array): Uint8Array {
    const enc = cobsEncode(raw);
    const out = new Uint8Array(enc.length + 1);
    out.set(enc);
    return out;
  }

  test("a frame of exactly the limit, its delimiter in the next chunk, is accepted", () => {
    const limit = 300;
    const raw = new Uint8Array(limit - 2).fill(9); // encodes to limit - 2 + 2 = limit bytes
    const f = frame(raw);
    assert.equal(f.length, limit + 1);
    const dec = new CobsFrameDecoder(limit);
    const got: Uint8Array[] = [];
    dec.push(f.subarray(0, limit), (x) => got.push(x));
    assert.equal(dec.buffered, limit);
    dec.push(f.subarray(limit), (x) => got.push(x));
    assert.deepEqual(got, [raw]);
    assert.equal(dec.buffered, 0);
    // One byte more is refused, split the same way.
    const over = frame(new Uint8Array(limit - 1).fill(9));
    const d2 = new CobsFrameDecoder(limit);
    d2.push(over.subarray(0, limit), () => assert.fail("no frame"));
    throws(FramingError, () => d2.push(over.subarray(limit), () => assert.fail("no frame")), /exceeds 300 bytes/);
    assert.equal(d2.buffered, 0);
  });

  test("frames larger than the slab, split over pushes, are moved whole into a new slab", () => {
    const dec = new CobsFrameDecoder(1 << 16, undefined, 32);
    const raws = [new Uint8Array(100).map((_, i) => (i % 9) + 1), new Uint8Array(700).map((_, i) => (i % 11 === 0 ? 0 : i & 0xff)), b(1, 2, 3), new Uint8Array(5000).fill(2)];
    const stream: number[] = [];
    for (const r of raws) stream.push(...frame(r));
    const all = Uint8Array.from(stream);
    for (const step of [7, 40, 333]) {
      const d = new CobsFrameDecoder(1 << 16, undefined, 32);
      const got: Uint8Array[] = [];
      for (let i = 0; i < all.length; i += step) d.push(all.slice(i, i + step), (x) => got.push(x));
      assert.deepEqual(got, raws, `chunks of ${step}`);
    }
    const got: Uint8Array[] = [];
    dec.push(all, (x) => got.push(x));
    assert.deepEqual(got, raws, "one chunk");
  });

  test("a long frame that starts mid-slab fills the room left, then continues in a new slab", () => {
    // Slabs of 8 KiB: the first frame leaves 4 KiB + 96 of room (kept: not less than it used),
    // the second frame, 10 000 bytes in the same chunk, must not be decoded past the slab's end.
    const first = new Uint8Array(4000).map((_, i) => (i % 200) + 1);
    const second = new Uint8Array(10_000).map((_, i) => (i % 150) + 3);
    const stream = Uint8Array.from([...frame(first), ...frame(second)]);
    const got: Uint8Array[] = [];
    new CobsFrameDecoder(1 << 20, undefined, 8192).push(stream, (x) => got.push(x));
    assert.deepEqual(got, [first, second]);
  });

  test("an oversized or malformed frame resets the decoder: the next frame decodes from a clean state", () => {
    const dec = new CobsFrameDecoder(16);
    const got: Uint8Array[] = [];
    dec.push(frame(b(1, 2)), (x) => got.push(x));
    // 20 encoded bytes inside one block, no delimiter: over the limit mid-block.
    throws(FramingError, () => dec.push(Uint8Array.from([30, ...new Array<number>(19).fill(4)]), () => assert.fail("no frame")), /exceeds 16 bytes/);
    assert.equal(dec.buffered, 0);
    dec.push(frame(b(5, 0, 6)), (x) => got.push(x));
    throws(FramingError, () => dec.push(b(9, 1, 1, 0), () => assert.fail("no frame")), /runs past the end/);
    dec.push(frame(b(7)), (x) => got.push(x));
    assert.deepEqual(got, [b(1, 2), b(5, 0, 6), b(7)]);
  });
});

test("without Node's Buffer (as in browsers) COBS encodes and decodes the same bytes", async () => {
  // A second instance of the module, loaded while globalThis.Buffer is absent:
  // it scans with Uint8Array#indexOf and allocates plain Uint8Arrays.
  const url = `${new URL("../src/codec/cobs.js", import.meta.url).href}?without-buffer`;
  const g = globalThis as { Buffer?: unknown };
  const saved = g.Buffer;
  delete g.Buffer;
  try {
    assert.equal(g.Buffer, undefined);
    const m = (await import(url)) as typeof import("../src/codec/cobs.js");
    const raws = [b(1, 0, 2), new Uint8Array(700).map((_, i) => (i % 97 === 5 ? 0 : (i % 13) + 1)), new Uint8Array(300).fill(6)];
    const stream: number[] = [];
    for (const raw of raws) {
      const enc = m.cobsEncode(raw);
      assert.equal(hex(enc), hex(cobsEncode(raw)));
      assert.deepEqual(m.cobsDecode(enc), raw);
      stream.push(...enc, 0);
    }
    const got: Uint8Array[] = [];
    const dec = new m.CobsFrameDecoder(4096, undefined, 64);
    const all = Uint8Array.from(stream);
    for (let i = 0; i < all.length; i += 200) dec.push(all.subarray(i, i + 200), (f) => got.push(f));
    assert.deepEqual(got, raws);
  } finally {
    g.Buffer = saved;
  }
});
