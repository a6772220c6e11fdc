/**
 * Port of roam's spec/spec-tests/tests/channeling.rs (13c25df0): sum,
 * generate and transform driven on the wire.
 *
 * Harness vs spec: roam's harness listens (it is the link ACCEPTOR) yet
 * allocates channel ids 1 and 3, which r[channeling.id.parity] gives to the
 * link initiator. The reference implementations accept any id the peer is
 * not using, so the subject must too; we follow the harness (ids 1 and 3).
 */
import { describe, test } from "node:test";
import { bytes, decodeResult, helloExchange, methodId, ms, show, str, varint, withSubject, zigzag, Cursor } from "./harness.js";

describe("compliance: channeling.rs", { timeout: 120_000 }, () => {
  // channeling.type, channeling.data, channeling.close, channeling.allocation.caller
  test("streaming_sum_client_to_server", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      const channelId = 1; // the harness's choice (see the note on parity above)
      io.send({ type: "Request", connId: 0, requestId: 1, methodId: methodId("sum"), metadata: [], channels: [channelId], payload: bytes(varint(channelId)) });
      for (const n of [1, 2, 3, 4, 5]) io.send({ type: "Data", connId: 0, channelId, payload: bytes(zigzag(n)) });
      io.send({ type: "Close", connId: 0, channelId });
      const resp = await io.expectMessage(ms(500), "expected Response from subject");
      if (resp.type === "Goodbye") throw new Error(`unexpected Goodbye: ${resp.reason}`);
      if (resp.type !== "Response") throw new Error(`expected Response, got ${show(resp)}`);
      if (resp.requestId !== 1) throw new Error(`response request_id mismatch: ${resp.requestId}`);
      const r = decodeResult(resp.payload, (c: Cursor) => c.zigzag());
      if (!r.ok) throw new Error(`expected Ok response, got Err(${r.error})`);
      if (r.value !== 15n) throw new Error(`expected sum 15, got ${r.value}`);
    }));

  // channeling.type, channeling.data, channeling.close
  test("streaming_generate_server_to_client", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      const channelId = 1;
      const count = 5;
      io.send({ type: "Request", connId: 0, requestId: 1, methodId: methodId("generate"), metadata: [], channels: [channelId], payload: bytes(varint(count), varint(channelId)) });
      const received: bigint[] = [];
      let gotClose = false;
      let gotResponse = false;
      while (!gotClose || !gotResponse) {
        const m = await io.recvTimeout(ms(500));
        if (m === null) throw new Error(`connection closed unexpectedly (got_close=${gotClose}, got_response=${gotResponse}, received=${received})`);
        switch (m.type) {
          case "Data": {
            if (m.channelId !== channelId) throw new Error(`unexpected channel_id ${m.channelId}, expected ${channelId}`);
            if (gotResponse) throw new Error("received Data after Response - protocol violation");
            const c = new Cursor(m.payload);
            received.push(c.zigzag());
            c.end();
            break;
          }
          case "Close":
            if (m.channelId !== channelId) throw new Error(`close channel_id mismatch: ${m.channelId}`);
            if (gotResponse) throw new Error("received Close after Response - protocol violation");
            gotClose = true;
            break;
          case "Response":
            if (m.requestId !== 1) throw new Error(`response request_id mismatch: ${m.requestId}`);
            if (!gotClose) throw new Error(`received Response before Close - protocol violation (received so far: ${received})`);
            gotResponse = true;
            break;
          case "Goodbye":
            throw new Error(`unexpected Goodbye: ${m.reason}`);
          default:
            throw new Error(`unexpected message: ${show(m)}`);
        }
      }
      const expected = [0n, 1n, 2n, 3n, 4n];
      if (received.join() !== expected.join()) throw new Error(`expected ${expected}, got ${received}`);
    }));

  // channeling.type, channeling.lifecycle.immediate-data
  test("streaming_transform_bidirectional", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      const input = 1;
      const output = 3;
      io.send({ type: "Request", connId: 0, requestId: 1, methodId: methodId("transform"), metadata: [], channels: [input, output], payload: bytes(varint(input), varint(output)) });
      const messages = ["hello", "world", "test"];
      const received: string[] = [];
      for (const s of messages) {
        io.send({ type: "Data", connId: 0, channelId: input, payload: bytes(str(s)) });
        const m = await io.expectMessage(ms(500), "expected Data from subject");
        if (m.type !== "Data") throw new Error(`expected Data, got ${show(m)}`);
        if (m.channelId !== output) throw new Error(`unexpected channel_id ${m.channelId}, expected ${output}`);
        const c = new Cursor(m.payload);
        received.push(c.string());
        c.end();
      }
      io.send({ type: "Close", connId: 0, channelId: input });
      let gotClose = false;
      let gotResponse = false;
      while (!gotClose || !gotResponse) {
        const m = await io.expectMessage(ms(500), "expected Close/Response from subject");
        if (m.type === "Close") {
          if (m.channelId !== output) throw new Error(`close channel_id mismatch: ${m.channelId}, expected ${output}`);
          gotClose = true;
        } else if (m.type === "Response") {
          if (m.requestId !== 1) throw new Error(`response request_id mismatch: ${m.requestId}`);
          gotResponse = true;
        } else {
          throw new Error(`expected Close or Response, got ${show(m)}`);
        }
      }
      if (received.join("|") !== messages.join("|")) throw new Error(`expected ${messages}, got ${received}`);
    }));
});
