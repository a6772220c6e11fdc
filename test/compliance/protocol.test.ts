/**
 * Port of roam's spec/spec-tests/tests/protocol.rs (13c25df0): handshake
 * and link-level violations. Same sequences, ids and expectations.
 */
import { describe, test } from "node:test";
import { awaitGoodbye, bytes, helloExchange, ms, ourHello, show, withSubject } from "./harness.js";

describe("compliance: protocol.rs", { timeout: 120_000 }, () => {
  // message.hello.timing, message.hello.structure, transport.bytestream.cobs
  test("handshake_subject_sends_hello_without_prompt", () =>
    withSubject({}, async (io) => {
      // We do NOT send our Hello yet: the subject must send its own at once.
      const m = await io.expectMessage(ms(250), "did not receive any message (expected Hello)");
      if (m.type !== "Hello") throw new Error(`first message must be Hello, got ${show(m)}`);
      if (m.version === 1) throw new Error("received Hello::V1, but V1 is no longer supported");
      if (m.version !== 2) throw new Error(`first message must be Hello::V2, got ${show(m)}`);
      io.send(ourHello(1024 * 1024));
    }));

  // message.hello.ordering
  test("handshake_no_non_hello_before_hello_exchange", () =>
    withSubject({}, async (io) => {
      const m = await io.expectMessage(ms(250), "did not receive any message (expected Hello)");
      if (m.type !== "Hello") throw new Error(`first message must be Hello, got ${show(m)}`);
      const extra = await io.recvTimeout(ms(100));
      if (extra !== null) throw new Error(`subject sent a message before hello exchange completed: ${show(extra)}`);
      io.send(ourHello(1024 * 1024));
    }));

  // message.hello.unknown-version, message.goodbye.send, core.error.goodbye-reason
  test("handshake_unknown_hello_variant_triggers_goodbye", () =>
    withSubject({}, async (io) => {
      // Message::Hello (0) carrying Hello variant 2: a version nobody knows yet.
      io.sendRaw(bytes([0x00, 0x02]));
      const reason = await awaitGoodbye(io); // the subject's own Hello may come first
      if (reason === null) throw new Error("expected Goodbye, got none");
      if (!reason.includes("message.hello.unknown-version")) {
        throw new Error(`Goodbye reason must mention message.hello.unknown-version, got ${JSON.stringify(reason)}`);
      }
    }));

  // flow.call.payload-limit, message.hello.negotiation
  test("rpc_payload_over_max_triggers_goodbye", () =>
    withSubject({}, async (io) => {
      await io.expectMessage(ms(250), "expected Hello from subject");
      io.send(ourHello(16));
      io.send({ type: "Request", connId: 0, requestId: 1, methodId: 1n, metadata: [], channels: [], payload: new Uint8Array(17) });
      const reason = await awaitGoodbye(io);
      if (reason === null) throw new Error("expected Goodbye after oversized Request");
      if (!reason.includes("flow.call.payload-limit")) {
        throw new Error(`Goodbye reason must mention flow.call.payload-limit, got ${JSON.stringify(reason)}`);
      }
    }));

  // channeling.id.zero-reserved (Close)
  test("channel_id_zero_triggers_goodbye", () =>
    withSubject({}, async (io) => {
      await io.expectMessage(ms(250), "expected Hello from subject");
      io.send(ourHello(1024 * 1024));
      io.send({ type: "Close", connId: 0, channelId: 0 });
      const reason = await awaitGoodbye(io);
      if (reason === null) throw new Error("expected Goodbye after channel_id=0");
      if (!reason.includes("channeling.id.zero-reserved") && !reason.includes("core.stream.id.zero-reserved")) {
        throw new Error(`Goodbye reason must mention a stream-id-zero rule id, got ${JSON.stringify(reason)}`);
      }
    }));

  // channeling.unknown
  test("stream_unknown_id_triggers_goodbye", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      // Channel 42 was never opened by any Request/Response.
      io.send({ type: "Data", connId: 0, channelId: 42, payload: new Uint8Array(4) });
      const reason = await awaitGoodbye(io);
      if (reason === null) throw new Error("expected Goodbye after unknown channel_id");
      if (!reason.includes("channeling.unknown")) {
        throw new Error(`Goodbye reason must mention channeling.unknown, got ${JSON.stringify(reason)}`);
      }
    }));

  // channeling.id.zero-reserved (Data)
  test("stream_data_id_zero_triggers_goodbye", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Data", connId: 0, channelId: 0, payload: new Uint8Array(4) });
      const reason = await awaitGoodbye(io);
      if (reason === null) throw new Error("expected Goodbye after channel_id=0 Data");
      if (!reason.includes("channeling.id.zero-reserved") && !reason.includes("core.stream.id.zero-reserved")) {
        throw new Error(`Goodbye reason must mention a stream-id-zero rule id, got ${JSON.stringify(reason)}`);
      }
    }));
});
