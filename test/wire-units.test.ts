/**
 * src/wire/message.ts facts the golden vectors and wire-facts do not pin,
 * each against a fixed byte sequence or an exact boundary:
 *   - every Message variant's encoding, byte for byte (field order, the Hello
 *     V1/V2 tag, a Data payload head joined into one element, id lists);
 *   - method ids out of u64 range are refused, also on the cached path;
 *   - a metadata value of another JS type is refused (TypeError);
 *   - decoding: Hello V2 reads its fields, an unknown Hello version stops;
 *     Request/Response channel lists; Credit bytes; every variant round-trips;
 *   - call.metadata.limits at each boundary: entries, key bytes, value bytes
 *     (UTF-8 bytes, not UTF-16 units, from U+0080 up), total bytes with a U64
 *     counting 8.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EncodeError } from "../src/codec/errors.js";
import { Writer } from "../src/codec/writer.js";
import {
  checkMetadataLimits,
  dataPayload,
  decodeMessage,
  encodeMessage,
  messageToBytes,
  METADATA_LIMITS,
  writeMetadata,
  type Message,
  type Metadata,
} from "../src/wire/message.js";

const enc = (s: string) => [...new TextEncoder().encode(s)];
const bytesOf = (m: Message) => [...messageToBytes(m)];

describe("encodeMessage: every variant byte for byte", () => {
  const cases: [Message, number[]][] = [
    [{ type: "Hello", version: 2, maxPayloadSize: 300, initialChannelCredit: 5 }, [0, 1, 0xac, 0x02, 5]],
    [{ type: "Hello", version: 1, maxPayloadSize: 7, initialChannelCredit: 8 }, [0, 0, 7, 8]],
    [{ type: "Connect", requestId: 3, metadata: [["a", "b"]] }, [1, 3, 1, 1, ...enc("a"), 0, 1, ...enc("b")]],
    [{ type: "Accept", requestId: 3, connId: 4, metadata: [] }, [2, 3, 4, 0]],
    [{ type: "Reject", requestId: 6, reason: "no", metadata: [] }, [3, 6, 2, ...enc("no"), 0]],
    [{ type: "Goodbye", connId: 9, reason: "bye" }, [4, 9, 3, ...enc("bye")]],
    [
      { type: "Request", connId: 1, requestId: 2, methodId: 0xffff_ffff_ffff_ffffn, metadata: [], channels: [3, 300], payload: Uint8Array.of(9) },
      [5, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 2, 3, 0xac, 0x02, 1, 9],
    ],
    [{ type: "Response", connId: 1, requestId: 2, metadata: [["k", 1n]], channels: [5], payload: Uint8Array.of(0, 4) }, [6, 1, 2, 1, 1, ...enc("k"), 2, 1, 1, 5, 2, 0, 4]],
    [{ type: "Cancel", connId: 2, requestId: 3 }, [7, 2, 3]],
    [{ type: "Data", connId: 1, channelId: 3, payload: Uint8Array.of(7, 8) }, [8, 1, 3, 2, 7, 8]],
    [{ type: "Close", connId: 1, channelId: 5 }, [9, 1, 5]],
    [{ type: "Reset", connId: 2, channelId: 7 }, [10, 2, 7]],
    [{ type: "Credit", connId: 3, channelId: 9, bytes: 1000 }, [11, 3, 9, 0xe8, 0x07]],
  ];
  for (const [m, want] of cases) {
    test(`${m.type}${m.type === "Hello" ? ` V${m.version}` : ""}`, () => {
      assert.deepEqual(bytesOf(m), want);
      // And back: every field where it was.
      assert.deepEqual(decodeMessage(Uint8Array.from(want)), m);
    });
  }

  test("Data with a payload head: one element, head then payload; dataPayload joins them the same way", () => {
    const m: Message = { type: "Data", connId: 2, channelId: 4, payload: Uint8Array.of(5, 6, 7), payloadHead: Uint8Array.of(1, 2) };
    assert.deepEqual(bytesOf(m), [8, 2, 4, 5, 1, 2, 5, 6, 7]);
    // Appended to a writer that already holds bytes: nothing before it is touched.
    const w = new Writer(4);
    w.u8(0xaa);
    encodeMessage(w, m);
    assert.deepEqual([...w.finish()], [0xaa, 8, 2, 4, 5, 1, 2, 5, 6, 7]);
    assert.deepEqual([...dataPayload(m)], [1, 2, 5, 6, 7]);
    const plain = Uint8Array.of(3, 4);
    assert.equal(dataPayload({ type: "Data", connId: 0, channelId: 1, payload: plain }), plain, "no head: the payload itself, not a copy");
  });

  test("method ids: out-of-range ids are refused, a repeated id encodes the same (cached) bytes", () => {
    assert.throws(() => messageToBytes({ type: "Request", connId: 0, requestId: 1, methodId: 1n << 64n, metadata: [], channels: [], payload: new Uint8Array() }), EncodeError);
    assert.throws(() => messageToBytes({ type: "Request", connId: 0, requestId: 1, methodId: -1n, metadata: [], channels: [], payload: new Uint8Array() }), EncodeError);
    const req = (methodId: bigint): Message => ({ type: "Request", connId: 0, requestId: 1, methodId, metadata: [], channels: [], payload: new Uint8Array() });
    const first = bytesOf(req(0x1234_5678_9abcn));
    assert.deepEqual(bytesOf(req(0x1234_5678_9abcn)), first);
    assert.deepEqual(decodeMessage(Uint8Array.from(first)), req(0x1234_5678_9abcn));
    // More distinct ids than the cache keeps: every one still encodes right.
    for (let i = 0; i < 4200; i += 1) {
      const id = 0x1_0000_0000n + BigInt(i) * 7919n;
      const m = decodeMessage(messageToBytes(req(id)));
      assert.ok(m.type === "Request" && m.methodId === id, `method id ${id}`);
    }
  });

  test("metadata: a value that is not a string, Uint8Array or bigint is refused; U64 values are range-checked", () => {
    assert.throws(() => writeMetadata(new Writer(), [["n", 5 as unknown as bigint]]), TypeError);
    assert.throws(() => writeMetadata(new Writer(), [["n", -1n]]), EncodeError);
    assert.throws(() => writeMetadata(new Writer(), [["n", 1n << 64n]]), EncodeError);
    const w = new Writer();
    writeMetadata(w, [["n", (1n << 64n) - 1n]]);
    assert.deepEqual([...w.finish()], [1, 1, ...enc("n"), 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });
});

describe("decodeMessage: Hello versions and lists", () => {
  test("Hello V2 (tag 1) reads both limits and must end there", () => {
    assert.deepEqual(decodeMessage(Uint8Array.of(0, 1, 0x80, 0x08, 0x40)), { type: "Hello", version: 2, maxPayloadSize: 1024, initialChannelCredit: 64 });
    assert.throws(() => decodeMessage(Uint8Array.of(0, 1, 1, 2, 3)), /trailing/);
  });

  test("an unknown Hello version (tag 2 and up) stops after the tag, whatever follows", () => {
    assert.deepEqual(decodeMessage(Uint8Array.of(0, 2)), { type: "Hello", version: 3, maxPayloadSize: 0, initialChannelCredit: 0 });
    assert.deepEqual(decodeMessage(Uint8Array.of(0, 7, 0xff, 0xff)), { type: "Hello", version: 8, maxPayloadSize: 0, initialChannelCredit: 0 });
  });

  test("Request and Response carry their channel lists in order", () => {
    const req = decodeMessage(Uint8Array.of(5, 0, 1, 42, 0, 3, 1, 0xac, 0x02, 5, 0));
    assert.ok(req.type === "Request");
    assert.deepEqual(req.channels, [1, 300, 5]);
    const resp = decodeMessage(Uint8Array.of(6, 0, 1, 0, 2, 7, 9, 1, 0xee));
    assert.ok(resp.type === "Response");
    assert.deepEqual(resp.channels, [7, 9]);
    assert.deepEqual([...resp.payload], [0xee]);
  });
});

describe("checkMetadataLimits (call.metadata.limits): each limit at its boundary", () => {
  const L = METADATA_LIMITS;
  const ascii = (n: number, c = "a") => c.repeat(n);

  test("the limits are the spec's", () => {
    assert.deepEqual({ ...L }, { maxEntries: 128, maxKeyBytes: 256, maxValueBytes: 16 * 1024, maxTotalBytes: 64 * 1024 });
  });

  test("entries: 128 pass, 129 do not", () => {
    const md = (n: number): Metadata => Array.from({ length: n }, (_, i) => [`k${i}`, ""] as const);
    assert.equal(checkMetadataLimits(md(L.maxEntries)), undefined);
    assert.match(checkMetadataLimits(md(L.maxEntries + 1)) ?? "", /^129 entries/);
    assert.equal(checkMetadataLimits([]), undefined);
  });

  test("key bytes: 256 pass, 257 do not; counted in UTF-8 bytes from U+0080 up", () => {
    assert.equal(checkMetadataLimits([[ascii(256), "v"]]), undefined);
    assert.match(checkMetadataLimits([[ascii(257), "v"]]) ?? "", /^key of 257 bytes/);
    // U+0080 is two bytes in UTF-8: 128 of them are 256 bytes, 129 are 258.
    assert.equal(checkMetadataLimits([["\u0080".repeat(128), "v"]]), undefined);
    assert.match(checkMetadataLimits([["\u0080".repeat(129), "v"]]) ?? "", /^key of 258 bytes/);
    // An ASCII run then one wide character: the whole key is measured in UTF-8.
    assert.match(checkMetadataLimits([[ascii(255) + "é", "v"]]) ?? "", /^key of 257 bytes/);
    assert.match(checkMetadataLimits([["€" + ascii(254), "v"]]) ?? "", /^key of 257 bytes/);
  });

  test("value bytes: 16 KiB pass, one more does not, for a string (UTF-8 bytes) and for bytes", () => {
    assert.equal(checkMetadataLimits([["k", ascii(L.maxValueBytes)]]), undefined);
    assert.match(checkMetadataLimits([["k", ascii(L.maxValueBytes + 1)]]) ?? "", /^value of 16385 bytes/);
    assert.equal(checkMetadataLimits([["k", "é".repeat(L.maxValueBytes / 2)]]), undefined);
    assert.match(checkMetadataLimits([["k", "é".repeat(L.maxValueBytes / 2) + "x"]]) ?? "", /^value of 16385 bytes/);
    assert.equal(checkMetadataLimits([["k", new Uint8Array(L.maxValueBytes)]]), undefined);
    assert.match(checkMetadataLimits([["k", new Uint8Array(L.maxValueBytes + 1)]]) ?? "", /^value of 16385 bytes/);
    assert.equal(checkMetadataLimits([["k", (1n << 64n) - 1n]]), undefined);
  });

  test("total bytes: keys plus values, a U64 counting 8; 64 KiB pass, one more does not", () => {
    // 3 x (1 + 16384) + (1 + 8) + (1 + 16371) = 65536.
    const base: [string, Uint8Array | string | bigint][] = [
      ["a", new Uint8Array(L.maxValueBytes)],
      ["b", ascii(L.maxValueBytes)],
      ["c", "é".repeat(L.maxValueBytes / 2)],
      ["u", 5n],
    ];
    assert.equal(checkMetadataLimits([...base, ["d", ascii(16371)]]), undefined);
    assert.match(checkMetadataLimits([...base, ["d", ascii(16372)]]) ?? "", /^65537 bytes in total/);
    assert.match(checkMetadataLimits([...base, ["dd", ascii(16371)]]) ?? "", /^65537 bytes in total/);
  });
});
