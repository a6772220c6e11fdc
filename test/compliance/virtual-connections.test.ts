/**
 * Port of roam's spec/spec-tests/tests/virtual_connections.rs (13c25df0):
 * Connect/Accept/Reject, Goodbye per connection and on the root.
 */
import { describe, test } from "node:test";
import type { Message } from "../../src/wire/message.js";
import { bytes, helloExchange, methodId, ms, show, str, withSubject, type CobsFramed } from "./harness.js";

function echoRequest(connId: number, requestId: number, text: string): Message {
  return { type: "Request", connId, requestId, methodId: methodId("echo"), metadata: [], channels: [], payload: bytes(str(text)) };
}

async function openConnections(io: CobsFramed, n: number): Promise<number[]> {
  const connIds: number[] = [];
  for (let requestId = 1; requestId <= n; requestId++) {
    io.send({ type: "Connect", requestId, metadata: [] });
    const m = await io.expectMessage(ms(500), `expected Accept for request ${requestId}`);
    if (m.type === "Reject") throw new Error(`unexpected Reject: ${m.reason}`);
    if (m.type !== "Accept") throw new Error(`expected Accept, got ${show(m)}`);
    connIds.push(m.connId);
  }
  return connIds;
}

describe("compliance: virtual_connections.rs", { timeout: 180_000 }, () => {
  // core.conn.accept-required, message.reject.response, message.reject.reason
  test("connect_rejected_when_not_listening", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Connect", requestId: 1, metadata: [] });
      const m = await io.expectMessage(ms(500), "expected Reject from subject");
      if (m.type !== "Reject") throw new Error(`expected Reject, got ${show(m)}`);
      if (m.requestId !== 1) throw new Error(`request_id mismatch: expected 1, got ${m.requestId}`);
      // The harness accepts any reason (it only notes one without "listening").
    }));

  // core.conn.open, message.accept.response, core.conn.id-allocation
  test("connect_accept_flow", () =>
    withSubject({ acceptConnections: true }, async (io) => {
      await helloExchange(io);
      io.send({ type: "Connect", requestId: 1, metadata: [] });
      const m = await io.expectMessage(ms(500), "expected Accept from subject");
      if (m.type === "Reject") throw new Error(`unexpected Reject: ${m.reason}`);
      if (m.type !== "Accept") throw new Error(`expected Accept, got ${show(m)}`);
      if (m.requestId !== 1) throw new Error(`request_id mismatch: expected 1, got ${m.requestId}`);
      if (m.connId === 0) throw new Error("conn_id should not be 0 (reserved for root)");
    }));

  // core.conn.open, core.conn.id-allocation
  test("multiple_virtual_connections", () =>
    withSubject({ acceptConnections: true }, async (io) => {
      await helloExchange(io);
      const ids = await openConnections(io, 3);
      if (ids.includes(0)) throw new Error("conn_id should not be 0");
      if (new Set(ids).size !== ids.length) throw new Error(`connection IDs should be unique: ${ids}`);
    }));

  // core.conn.lifecycle, core.conn.independence
  test("virtual_connection_goodbye_independence", () =>
    withSubject({ acceptConnections: true }, async (io) => {
      await helloExchange(io);
      const ids = await openConnections(io, 2);
      io.send({ type: "Goodbye", connId: ids[0]!, reason: "test closing first connection" });
      io.send(echoRequest(0, 100, "still working"));
      const m = await io.expectMessage(ms(500), "expected response on root connection");
      if (m.type !== "Response" || m.requestId !== 100) throw new Error(`expected Response, got ${show(m)}`);
      if (m.connId !== 0) throw new Error(`response should be on root connection, got ${m.connId}`);
    }));

  // message.connect.request-id, message.connect.metadata
  test("connect_message_structure", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Connect", requestId: 42, metadata: [["auth", "token123"], ["version", 2n]] });
      const m = await io.expectMessage(ms(500), "expected response to Connect");
      if (m.type !== "Accept" && m.type !== "Reject") throw new Error(`expected Accept or Reject, got ${show(m)}`);
      if (m.requestId !== 42) throw new Error(`request_id mismatch: expected 42, got ${m.requestId}`);
    }));

  // core.conn.independence, message.goodbye.connection-zero
  test("goodbye_on_root_closes_link", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Goodbye", connId: 0, reason: "test complete" });
      await new Promise((r) => setTimeout(r, ms(100)));
      // Closed, the subject's own Goodbye, or nothing at all: all fine. Anything else is not.
      const m = await io.recvTimeout(ms(200));
      if (m !== null && m.type !== "Goodbye") throw new Error(`expected connection to close after Goodbye, got ${show(m)}`);
    }));

  // core.conn.id-allocation, message.accept.response: request ids echoed
  test("connect_request_id_echoed_in_reject", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      for (const requestId of [100, 200, 300]) io.send({ type: "Connect", requestId, metadata: [] });
      const got: number[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await io.expectMessage(ms(500), "expected response to Connect");
        if (m.type !== "Accept" && m.type !== "Reject") throw new Error(`expected Accept or Reject, got ${show(m)}`);
        got.push(m.requestId);
      }
      got.sort((a, b) => a - b);
      if (got.join() !== "100,200,300") throw new Error(`expected request_ids [100, 200, 300], got ${got}`);
    }));

  // message.goodbye.receive, message.goodbye.graceful
  test("goodbye_processed_gracefully", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send(echoRequest(0, 1, "hello"));
      const m = await io.expectMessage(ms(500), "expected response");
      if (m.type !== "Response" || m.requestId !== 1) throw new Error(`expected Response for request 1, got ${show(m)}`);
      io.send({ type: "Goodbye", connId: 0, reason: "test complete" });
      await new Promise((r) => setTimeout(r, ms(100)));
    }));

  // message.conn-id, core.link.connection-zero
  test("messages_on_root_connection", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send(echoRequest(0, 1, "test message"));
      const m = await io.expectMessage(ms(500), "expected response");
      if (m.type !== "Response") throw new Error(`expected Response, got ${show(m)}`);
      if (m.connId !== 0) throw new Error(`expected response on root connection, got conn_id=${m.connId}`);
    }));

  // core.conn.lifecycle: Goodbye on a connection that was never opened
  test("goodbye_on_nonexistent_connection_ignored", () =>
    withSubject({}, async (io) => {
      await helloExchange(io);
      io.send({ type: "Goodbye", connId: 42, reason: "closing nonexistent" });
      io.send(echoRequest(0, 1, "still alive"));
      const m = await io.expectMessage(ms(500), "expected response - link should still be alive");
      if (m.type === "Response" && m.requestId === 1) return;
      if (m.type === "Goodbye") {
        // The harness also accepts closing the link over it, if on the root.
        if (m.connId !== 0) throw new Error(`Goodbye should be on root connection, got ${m.connId}`);
        return;
      }
      throw new Error(`expected Response or Goodbye, got ${show(m)}`);
    }));
});
