/**
 * Port of roam's spec/spec-tests/tests/client_mode.rs and the wire_server
 * of its harness (13c25df0): the suite listens, the subject connects in
 * SUBJECT_MODE=client and calls the suite's minimal wire-level Testbed
 * (echo, reverse, sum, generate; anything else gets UnknownMethod), then
 * closes the link and must exit 0.
 */
import { describe, test } from "node:test";
import { acceptSubject, bytes, Cursor, methodId, ms, ourHello, show, str, varint, zigzag, type CobsFramed } from "./harness.js";

function respond(io: CobsFramed, requestId: number, okPayload: number[]): void {
  io.send({ type: "Response", connId: 0, requestId, metadata: [], channels: [], payload: bytes([0x00], okPayload) });
}

/** `handle_requests`: serves until the subject disconnects (or 5 s pass without a message). */
async function handleRequests(io: CobsFramed): Promise<void> {
  const channels = new Map<number, bigint[]>();
  let pendingSum: { requestId: number; channelId: number } | null = null;
  for (;;) {
    const m = await io.recvTimeout(5000);
    if (m === null) return;
    switch (m.type) {
      case "Request": {
        const c = new Cursor(m.payload);
        if (m.methodId === methodId("echo")) {
          const s = c.string();
          c.end();
          respond(io, m.requestId, str(s));
        } else if (m.methodId === methodId("reverse")) {
          const s = c.string();
          c.end();
          respond(io, m.requestId, str([...s].reverse().join("")));
        } else if (m.methodId === methodId("sum")) {
          const channelId = Number(c.varint());
          c.end();
          channels.set(channelId, []);
          pendingSum = { requestId: m.requestId, channelId }; // answered on Close
        } else if (m.methodId === methodId("generate")) {
          const count = Number(c.varint());
          const channelId = Number(c.varint());
          c.end();
          for (let i = 0; i < count; i++) io.send({ type: "Data", connId: 0, channelId, payload: bytes(zigzag(i)) });
          io.send({ type: "Close", connId: 0, channelId });
          respond(io, m.requestId, []);
        } else if (m.methodId === methodId("transform")) {
          throw new Error("transform not yet implemented in wire server");
        } else {
          io.send({ type: "Response", connId: 0, requestId: m.requestId, metadata: [], channels: [], payload: bytes([0x01, 0x01]) });
        }
        break;
      }
      case "Data": {
        const data = channels.get(m.channelId);
        if (data) {
          const c = new Cursor(m.payload);
          data.push(c.zigzag());
          c.end();
        }
        break;
      }
      case "Close": {
        const p = pendingSum;
        pendingSum = null;
        if (p && p.channelId === m.channelId) {
          const total = (channels.get(m.channelId) ?? []).reduce((a, b) => a + b, 0n);
          channels.delete(m.channelId);
          respond(io, p.requestId, zigzag(total));
        }
        break;
      }
      case "Goodbye":
        return;
      default:
        break; // ignore other messages (Credit, ...)
    }
  }
}

/** `wire_server::run`. */
async function run(scenario: string): Promise<void> {
  const { io, subject } = await acceptSubject({ env: { SUBJECT_MODE: "client", CLIENT_SCENARIO: scenario } });
  try {
    io.send(ourHello(1024 * 1024));
    const m = await io.expectMessage(ms(5000), "connection closed before hello");
    if (m.type !== "Hello") throw new Error(`expected Hello, got ${show(m)}`);
    if (m.version === 1) throw new Error("received Hello::V1, but V1 is no longer supported");
    await handleRequests(io);
    const code = await Promise.race([subject.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms(5000)))]);
    if (code !== 0) throw new Error(`subject exited with ${code}; stderr: ${subject.stderr()}`);
  } finally {
    io.socket.destroy();
    await subject.kill();
  }
}

describe("compliance: client_mode.rs", { timeout: 120_000 }, () => {
  test("client_mode_echo", () => run("echo"));
  test("client_mode_sum", () => run("sum"));
  test("client_mode_generate", () => run("generate"));
});
