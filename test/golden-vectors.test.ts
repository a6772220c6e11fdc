/**
 * Byte-exact interop with the Rust reference: every file under
 * test/fixtures/golden-vectors (see its MANIFEST.md) is encoded and decoded
 * here, and the suite fails if any file in that tree is not covered.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, relative } from "node:path";

import { DecodeError } from "../src/codec/errors.js";
import { Reader } from "../src/codec/reader.js";
import { Writer } from "../src/codec/writer.js";
import { CobsFrameDecoder, cobsDecode, cobsEncode } from "../src/codec/cobs.js";
import { t, type Schema } from "../src/schema/index.js";
import { decodeMessage, encodeMessage, messageToBytes, type Message } from "../src/wire/message.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { ProtocolViolation } from "../src/session/errors.js";

// The Rust reference's facts, copied into the repository (test/fixtures/README.md):
// dist/test/<file>.js -> <repo>/test/fixtures/. ROAM_FIXTURES_DIR points elsewhere (e.g. ../shared).
const SHARED_DIR = process.env["ROAM_FIXTURES_DIR"] ?? fileURLToPath(new URL("../../test/fixtures/", import.meta.url));
const VECTORS_DIR = join(SHARED_DIR, "golden-vectors");

/** Every file checked by some test, as a path relative to VECTORS_DIR. */
const checked = new Set<string>();

function listFiles(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** Reads a vector as a plain Uint8Array (not a Buffer, so deepEqual with decoded views works). */
function readVector(sub: string, file: string): Uint8Array {
  return new Uint8Array(readFileSync(join(VECTORS_DIR, sub, file)));
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(hex(actual), hex(expected), `${what}: bytes differ`);
}

function bytes(...b: number[]): Uint8Array {
  return Uint8Array.from(b);
}

// ---------------------------------------------------------------------------
// varint/
// ---------------------------------------------------------------------------

test("varint/: every u64 vector via t.u64, Writer.varint and Reader", () => {
  const files = listFiles(join(VECTORS_DIR, "varint"));
  assert.ok(files.length >= 11, `expected the 11 manifest values, found ${files.length} files`);
  for (const file of files) {
    const m = /^u64_(\d+)\.bin$/.exec(file);
    assert.ok(m, `unexpected file varint/${file}`);
    const value = BigInt(m[1]!);
    const golden = readVector("varint", file);

    assertBytes(t.u64.toBytes(value), golden, `t.u64(${value})`);
    assert.equal(t.u64.fromBytes(golden), value, `t.u64 decode of ${file}`);

    const w = new Writer(1);
    w.varint(Number(value));
    assertBytes(w.finish(), golden, `Writer.varint(${value})`);
    const wb = new Writer(1);
    wb.varintBig(value);
    assertBytes(wb.finish(), golden, `Writer.varintBig(${value})`);

    const r = new Reader(golden);
    assert.equal(r.varintSafe(), Number(value), `Reader.varintSafe of ${file}`);
    r.expectEnd();
    checked.add(`varint/${file}`);
  }
});

// ---------------------------------------------------------------------------
// primitives/
// ---------------------------------------------------------------------------

interface PrimitiveCase {
  readonly schemaName: string;
  encode(): Uint8Array;
  decode(b: Uint8Array): unknown;
  readonly value: unknown;
}

function pc<T>(schema: Schema<T>, schemaName: string, value: T): PrimitiveCase {
  return {
    schemaName,
    value,
    encode: () => schema.toBytes(value),
    decode: (b) => schema.fromBytes(b),
  };
}

const I64_MAX = (1n << 63n) - 1n;
const I64_MIN = -(1n << 63n);

/** Each primitives/ file name (without .bin) and the value it holds (MANIFEST.md: "names say the value"). */
const PRIMITIVES: Record<string, PrimitiveCase> = {
  bool_false: pc(t.bool, "bool", false),
  bool_true: pc(t.bool, "bool", true),
  bytes_deadbeef: pc(t.bytes, "bytes", bytes(0xde, 0xad, 0xbe, 0xef)),
  bytes_empty: pc(t.bytes, "bytes", new Uint8Array(0)),
  f32_0: pc(t.f32, "f32", 0),
  f32_0_25: pc(t.f32, "f32", 0.25),
  f32_1: pc(t.f32, "f32", 1),
  f32_1_5: pc(t.f32, "f32", 1.5),
  f32_neg1: pc(t.f32, "f32", -1),
  f64_0: pc(t.f64, "f64", 0),
  f64_0_25: pc(t.f64, "f64", 0.25),
  f64_1: pc(t.f64, "f64", 1),
  f64_1_5: pc(t.f64, "f64", 1.5),
  f64_neg1: pc(t.f64, "f64", -1),
  i16_0: pc(t.i16, "i16", 0),
  i16_1: pc(t.i16, "i16", 1),
  i16_127: pc(t.i16, "i16", 127),
  i16_128: pc(t.i16, "i16", 128),
  i16_max: pc(t.i16, "i16", 32767),
  i16_min: pc(t.i16, "i16", -32768),
  i16_neg1: pc(t.i16, "i16", -1),
  i32_0: pc(t.i32, "i32", 0),
  i32_1: pc(t.i32, "i32", 1),
  i32_127: pc(t.i32, "i32", 127),
  i32_128: pc(t.i32, "i32", 128),
  i32_max: pc(t.i32, "i32", 2147483647),
  i32_min: pc(t.i32, "i32", -2147483648),
  i32_neg1: pc(t.i32, "i32", -1),
  i32_neg128: pc(t.i32, "i32", -128),
  i64_0: pc(t.i64, "i64", 0n),
  i64_1: pc(t.i64, "i64", 1n),
  i64_15: pc(t.i64, "i64", 15n),
  i64_42: pc(t.i64, "i64", 42n),
  i64_max: pc(t.i64, "i64", I64_MAX),
  i64_min: pc(t.i64, "i64", I64_MIN),
  i64_neg1: pc(t.i64, "i64", -1n),
  i8_0: pc(t.i8, "i8", 0),
  i8_127: pc(t.i8, "i8", 127),
  i8_neg1: pc(t.i8, "i8", -1),
  i8_neg128: pc(t.i8, "i8", -128),
  option_none_string: pc(t.option(t.string), "Option<String>", null),
  option_none_u32: pc(t.option(t.u32), "Option<u32>", null),
  option_some_string: pc(t.option(t.string), "Option<String>", "hello"),
  option_some_u32_42: pc(t.option(t.u32), "Option<u32>", 42),
  result_err_string: pc(t.result(t.string, t.string), "Result<String, String>", { ok: false, error: "error message" }),
  result_ok_i64_42: pc(t.result(t.i64, t.string), "Result<i64, String>", { ok: true, value: 42n }),
  result_ok_string: pc(t.result(t.string, t.string), "Result<String, String>", { ok: true, value: "hello" }),
  string_empty: pc(t.string, "String", ""),
  string_hello: pc(t.string, "String", "hello world"),
  string_unicode: pc(t.string, "String", "héllo 世界 🦀"),
  tuple_i32_string: pc(t.tuple(t.i32, t.string), "(i32, String)", [42, "hello"]),
  tuple_string_i32: pc(t.tuple(t.string, t.i32), "(String, i32)", ["hello", 42]),
  u16_0: pc(t.u16, "u16", 0),
  u16_127: pc(t.u16, "u16", 127),
  u16_128: pc(t.u16, "u16", 128),
  u16_255: pc(t.u16, "u16", 255),
  u16_256: pc(t.u16, "u16", 256),
  u16_max: pc(t.u16, "u16", 65535),
  u32_0: pc(t.u32, "u32", 0),
  u32_1: pc(t.u32, "u32", 1),
  u32_127: pc(t.u32, "u32", 127),
  u32_128: pc(t.u32, "u32", 128),
  u32_255: pc(t.u32, "u32", 255),
  u32_256: pc(t.u32, "u32", 256),
  u32_max: pc(t.u32, "u32", 4294967295),
  u64_0: pc(t.u64, "u64", 0n),
  u64_1: pc(t.u64, "u64", 1n),
  u64_127: pc(t.u64, "u64", 127n),
  u64_128: pc(t.u64, "u64", 128n),
  u64_max: pc(t.u64, "u64", (1n << 64n) - 1n),
  u8_0: pc(t.u8, "u8", 0),
  u8_127: pc(t.u8, "u8", 127),
  u8_255: pc(t.u8, "u8", 255),
  vec_empty_u32: pc(t.list(t.u32), "Vec<u32>", []),
  vec_i32_neg1_0_1: pc(t.list(t.i32), "Vec<i32>", [-1, 0, 1]),
  vec_string: pc(t.list(t.string), "Vec<String>", ["a", "b"]),
  vec_u32_1_2_3: pc(t.list(t.u32), "Vec<u32>", [1, 2, 3]),
};

test("primitives/: every named value encodes byte-exactly and decodes back", () => {
  const files = listFiles(join(VECTORS_DIR, "primitives"));
  const names = new Set<string>();
  for (const file of files) {
    assert.match(file, /\.bin$/, `unexpected file primitives/${file}`);
    const name = file.slice(0, -4);
    names.add(name);
    const c = PRIMITIVES[name];
    assert.ok(c, `primitives/${file} has no expected value in this test; add it to PRIMITIVES`);
    const golden = readVector("primitives", file);
    assertBytes(c.encode(), golden, `${name} as ${c.schemaName}`);
    assert.deepEqual(c.decode(golden), c.value, `${name}: decoded value`);
    checked.add(`primitives/${file}`);
  }
  for (const name of Object.keys(PRIMITIVES)) {
    assert.ok(names.has(name), `expected vector primitives/${name}.bin is missing`);
  }
});

test("primitives/: the f32 vectors really are 32-bit (Vec<u8> and f32 are not confused)", () => {
  // A guard on the table above: f32 files are 4 bytes, f64 files are 8.
  for (const [name, c] of Object.entries(PRIMITIVES)) {
    if (name.startsWith("f32_")) assert.equal(c.encode().length, 4, name);
    if (name.startsWith("f64_")) assert.equal(c.encode().length, 8, name);
  }
});

// ---------------------------------------------------------------------------
// wire/
// ---------------------------------------------------------------------------

const NO_METADATA = [] as const;

/**
 * wire/message_*.bin: whole `Message` values (MANIFEST.md, field order as
 * written there). The manifest writes payload bytes in hex, like
 * `[DE AD BE EF]`: its `payload: [42]` is the byte 0x42, as the files show.
 */
const MESSAGES: Record<string, Message> = {
  message_hello_small: { type: "Hello", version: 2, maxPayloadSize: 1024, initialChannelCredit: 64 },
  message_hello_typical: { type: "Hello", version: 2, maxPayloadSize: 1048576, initialChannelCredit: 65536 },
  message_connect_empty: { type: "Connect", requestId: 1, metadata: NO_METADATA },
  message_connect_with_metadata: { type: "Connect", requestId: 2, metadata: [["auth", "token123"]] },
  message_accept: { type: "Accept", requestId: 1, connId: 1, metadata: NO_METADATA },
  message_reject: { type: "Reject", requestId: 1, reason: "not listening", metadata: NO_METADATA },
  message_goodbye_conn0: { type: "Goodbye", connId: 0, reason: "test" },
  message_goodbye_conn1: { type: "Goodbye", connId: 1, reason: "done" },
  message_request_empty: {
    type: "Request", connId: 0, requestId: 1, methodId: 42n, metadata: NO_METADATA, channels: [], payload: bytes(),
  },
  message_request_with_payload: {
    type: "Request", connId: 0, requestId: 1, methodId: 42n, metadata: NO_METADATA, channels: [],
    payload: bytes(0xde, 0xad, 0xbe, 0xef),
  },
  message_request_with_metadata: {
    type: "Request", connId: 0, requestId: 5, methodId: 100n, metadata: [["key", "value"]], channels: [], payload: bytes(),
  },
  message_request_with_channels: {
    type: "Request", connId: 0, requestId: 6, methodId: 200n, metadata: NO_METADATA, channels: [1, 3], payload: bytes(0x42),
  },
  message_request_conn1: {
    type: "Request", connId: 1, requestId: 1, methodId: 42n, metadata: NO_METADATA, channels: [], payload: bytes(0x42),
  },
  message_response: { type: "Response", connId: 0, requestId: 1, metadata: NO_METADATA, channels: [], payload: bytes(0x42) },
  message_cancel: { type: "Cancel", connId: 0, requestId: 99 },
  message_data: { type: "Data", connId: 0, channelId: 1, payload: bytes(1, 2, 3) },
  message_close: { type: "Close", connId: 0, channelId: 7 },
  message_reset: { type: "Reset", connId: 0, channelId: 5 },
  message_credit: { type: "Credit", connId: 0, channelId: 3, bytes: 4096 },
};

/** wire/hello_*.bin: bare `Hello` values (no Message discriminant in front). */
const HELLOS: Record<string, { version: number; maxPayloadSize: number; initialChannelCredit: number }> = {
  hello_v2_small: { version: 2, maxPayloadSize: 1024, initialChannelCredit: 64 },
  hello_v2_typical: { version: 2, maxPayloadSize: 1048576, initialChannelCredit: 65536 },
  // Legacy Hello::V1 (variant 0): must decode as version 1 so the session can refuse it.
  hello_v1_small: { version: 1, maxPayloadSize: 1024, initialChannelCredit: 64 },
  hello_v1_typical: { version: 1, maxPayloadSize: 1048576, initialChannelCredit: 65536 },
};

/** Encodes a bare Hello: the Message encoding without its leading discriminant (Hello = 0). */
function helloBytes(m: Message): Uint8Array {
  const whole = messageToBytes(m);
  assert.equal(whole[0], 0, "Message::Hello discriminant");
  return whole.subarray(1);
}

/** Decodes a bare Hello by putting the Message::Hello discriminant in front. */
function decodeHello(hello: Uint8Array): Message {
  const framed = new Uint8Array(hello.length + 1);
  framed.set(hello, 1);
  return decodeMessage(framed);
}

test("wire/: every Message vector, byte-exact both ways", () => {
  const files = listFiles(join(VECTORS_DIR, "wire"));
  const seen = new Set<string>();
  for (const file of files) {
    assert.match(file, /\.bin$/, `unexpected file wire/${file}`);
    const name = file.slice(0, -4);
    const golden = readVector("wire", file);

    const message = MESSAGES[name];
    if (message !== undefined) {
      assertBytes(messageToBytes(message), golden, `messageToBytes(${name})`);
      const w = new Writer(2);
      w.u8(0xaa); // encodeMessage appends: check it does not touch what is before
      encodeMessage(w, message);
      assertBytes(w.view().subarray(1), golden, `encodeMessage(${name})`);
      assert.equal(w.view()[0], 0xaa);
      const decoded = decodeMessage(golden);
      assert.deepEqual(decoded, message, `decodeMessage(${name})`);
      // Re-encoding the decoded value (payloads are views into `golden`) is stable.
      assertBytes(messageToBytes(decoded), golden, `re-encode of ${name}`);
      seen.add(name);
      checked.add(`wire/${file}`);
      continue;
    }

    const hello = HELLOS[name];
    if (hello !== undefined) {
      const m: Message = { type: "Hello", ...hello };
      assertBytes(helloBytes(m), golden, `Hello bytes of ${name}`);
      const decoded = decodeHello(golden);
      assert.deepEqual(decoded, m, `decoded ${name}`);
      if (name.startsWith("hello_v1_")) {
        assert.ok(decoded.type === "Hello");
        assert.equal(decoded.version, 1, `${name} must be recognised as the legacy V1`);
        assert.equal(golden[0], 0, "Hello::V1 is variant 0");
      } else {
        assert.equal(golden[0], 1, "Hello::V2 is variant 1");
      }
      seen.add(name);
      checked.add(`wire/${file}`);
      continue;
    }

    if (name === "message_goodbye") {
      // Pre-v2 Goodbye (no conn_id, old variant index): must not pass as a v2 Goodbye.
      let decoded: Message | undefined;
      try {
        decoded = decodeMessage(golden);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
      }
      if (decoded !== undefined) {
        assert.notDeepEqual(decoded, { type: "Goodbye", connId: 0, reason: "test" }, "a pre-v2 Goodbye must not pass as v2");
      }
      seen.add(name);
      checked.add(`wire/${file}`);
      continue;
    }

    assert.fail(`wire/${file} is not covered by this test; add its value to MESSAGES or HELLOS`);
  }
  for (const name of [...Object.keys(MESSAGES), ...Object.keys(HELLOS), "message_goodbye"]) {
    assert.ok(seen.has(name), `expected vector wire/${name}.bin is missing`);
  }
});

test("wire/: a v2 session accepts the Hello V2 vectors and refuses the legacy V1 ones", () => {
  const local = { maxPayloadSize: 1 << 20, initialChannelCredit: 1 << 16 };
  for (const size of ["small", "typical"]) {
    const v2 = decodeHello(readVector("wire", `hello_v2_${size}.bin`));
    const negotiated = new HelloHandshake(local).receive(v2);
    assert.ok(v2.type === "Hello");
    assert.equal(negotiated.maxPayloadSize, Math.min(local.maxPayloadSize, v2.maxPayloadSize));

    const v1 = decodeHello(readVector("wire", `hello_v1_${size}.bin`));
    assert.throws(
      () => new HelloHandshake(local).receive(v1),
      (e: unknown) => e instanceof ProtocolViolation && e.rule === "message.hello.unknown-version",
      `hello_v1_${size} must be refused citing message.hello.unknown-version`,
    );
  }
});

test("wire/: the Message and bare Hello vectors agree (Message::Hello = 0x00 + Hello)", () => {
  for (const size of ["small", "typical"]) {
    const message = readVector("wire", `message_hello_${size}.bin`);
    const hello = readVector("wire", `hello_v2_${size}.bin`);
    assertBytes(message.subarray(1), hello, size);
    assert.equal(message[0], 0);
  }
});

// ---------------------------------------------------------------------------
// cobs/
// ---------------------------------------------------------------------------

test("cobs/: every <name>_raw.bin encodes to <name>_encoded.bin and back", () => {
  const files = listFiles(join(VECTORS_DIR, "cobs"));
  const pairs = new Set<string>();
  for (const file of files) {
    const m = /^(.*)_(raw|encoded|framed)\.bin$/.exec(file);
    assert.ok(m, `unexpected file cobs/${file}`);
    if (m[2] !== "framed") pairs.add(m[1]!);
  }
  assert.ok(pairs.size >= 7, `expected at least the 7 manifest pairs, found ${pairs.size}`);
  for (const name of pairs) {
    assert.ok(files.includes(`${name}_raw.bin`), `cobs/${name}_raw.bin missing`);
    assert.ok(files.includes(`${name}_encoded.bin`), `cobs/${name}_encoded.bin missing`);
    const raw = readVector("cobs", `${name}_raw.bin`);
    const encoded = readVector("cobs", `${name}_encoded.bin`);
    assertBytes(cobsEncode(raw), encoded, `cobsEncode(${name})`);
    assertBytes(cobsDecode(encoded), raw, `cobsDecode(${name})`);
    assert.equal(encoded.indexOf(0), -1, `${name}: an encoded frame contains no zero byte`);
    checked.add(`cobs/${name}_raw.bin`);
    checked.add(`cobs/${name}_encoded.bin`);
  }
});

test("cobs/: every _framed file splits into its frame with CobsFrameDecoder, at any chunking", () => {
  const framedFiles = listFiles(join(VECTORS_DIR, "cobs")).filter((f) => f.endsWith("_framed.bin"));
  assert.ok(framedFiles.length >= 1, "expected message_hello_typical_framed.bin");
  for (const file of framedFiles) {
    const name = file.slice(0, -"_framed.bin".length);
    const framed = readVector("cobs", file);
    const raw = readVector("cobs", `${name}_raw.bin`);
    const encoded = readVector("cobs", `${name}_encoded.bin`);
    assertBytes(framed.subarray(0, framed.length - 1), encoded, `${name}: framed = encoded + delimiter`);
    assert.equal(framed[framed.length - 1], 0, `${name}: ends with the 0x00 delimiter`);

    // Whole, and split in two at every boundary.
    for (let cut = 0; cut <= framed.length; cut++) {
      const dec = new CobsFrameDecoder(1024);
      const frames: Uint8Array[] = [];
      dec.push(framed.slice(0, cut), (f) => frames.push(f)); // push takes ownership: fresh chunks
      dec.push(framed.slice(cut), (f) => frames.push(f));
      assert.equal(frames.length, 1, `${name}, cut at ${cut}: one frame`);
      assertBytes(frames[0]!, raw, `${name}, cut at ${cut}`);
      assert.equal(dec.buffered, 0);
    }
    // Byte by byte.
    const dec = new CobsFrameDecoder(1024);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < framed.length; i++) dec.push(framed.slice(i, i + 1), (f) => frames.push(f));
    assert.equal(frames.length, 1);
    assertBytes(frames[0]!, raw, `${name}, byte by byte`);
    // The frame is a Message: it decodes as the matching wire vector.
    if (name.startsWith("message_")) {
      assert.deepEqual(decodeMessage(frames[0]!), MESSAGES[name], `${name} frame as a Message`);
    }
    checked.add(`cobs/${file}`);
  }
});

// ---------------------------------------------------------------------------
// Coverage: nothing in golden-vectors/ goes unchecked.
// ---------------------------------------------------------------------------

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(relative(VECTORS_DIR, p).split("\\").join("/"));
  }
  return out.sort();
}

test("every file in golden-vectors/ was checked by a test above", () => {
  const all = walk(VECTORS_DIR).filter((f) => f !== "MANIFEST.md");
  assert.ok(all.length > 100, `expected the whole vector set, found ${all.length} files`);
  const unchecked = all.filter((f) => !checked.has(f));
  assert.deepEqual(unchecked, [], "golden vectors not covered by any test");
});
