/**
 * The HTTP/JSON bridge over plain HTTP (http-spec bridge.url.*, bridge.request.*,
 * bridge.response.*, bridge.json.channels-forbidden, bridge.nonce.*): every
 * Testbed method from Node's fetch and from curl, the error mapping, header ↔
 * metadata mapping, nonce pass-through with backend deduplication, limits,
 * CORS, an upstream roam connection as the backend, and mounting.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";

import { listenBridge, RoamBridge, bridgeClient, BridgeError, type BridgeServer } from "../src/bridge/index.js";
import { defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { serve } from "../src/session/serve.js";
import { UserError } from "../src/session/errors.js";
import type { Dispatcher } from "../src/session/connection.js";
import { connectTcp, listenTcp } from "../src/transport/node.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { backendDispatcher, curl, post, Probe, type ProbeState } from "./helpers/bridge.js";

const state: ProbeState = { bumps: 0 };
const servers: BridgeServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function start(o: Partial<Parameters<typeof listenBridge>[0]> = {}): Promise<BridgeServer> {
  const s = await listenBridge({ services: [Testbed, Probe], backend: backendDispatcher(state), onError: () => {}, ...o });
  servers.push(s);
  return s;
}

const main = await start();

/** [url method name, request body, expected response JSON] for every Testbed method without channels. */
const UNARY: [string, string, unknown][] = [
  ["echo", '["hello"]', "hello"],
  ["reverse", '["roam ✓"]', "✓ maor"],
  ["divide", "[-7, 2]", -3],
  ["lookup", "[2]", { name: "Bob", age: 25, email: null }],
  ["echo_point", '[{"x": -1, "y": 2147483647}]', { x: -1, y: 2147483647 }],
  ["create_person", '["Dee", 41, "d@example.com"]', { name: "Dee", age: 41, email: "d@example.com" }],
  ["rectangle_area", '[{"top_left": {"x": 0, "y": 0}, "bottom_right": {"x": 3, "y": -4}, "label": null}]', 12],
  ["parse_color", '["GREEN"]', "Green"],
  ["shape_area", '[{"Rectangle": {"width": 2.5, "height": 4}}]', 10],
  [
    "create_canvas",
    '["c", [{"Circle": {"radius": 1}}, "Point"], "Blue"]',
    { name: "c", shapes: [{ Circle: { radius: 1 } }, "Point"], background: "Blue" },
  ],
  ["process_message", '[{"Text": "hi"}]', { Text: "processed: hi" }],
  ["get_points", "[3]", [{ x: 0, y: 0 }, { x: 1, y: 2 }, { x: 2, y: 4 }]],
  ["swap_pair", '[[7, "seven"]]', ["seven", 7]],
];

test("bridge.url.methods / bridge.request.body / bridge.response.success: every Testbed method from fetch", async () => {
  const unary = Object.values(Testbed.methods).filter((m) => !m.hasChannels);
  assert.equal(UNARY.length, unary.length, "every unary Testbed method is covered");
  for (const [name, body, expected] of UNARY) {
    const r = await post(`${main.url}Testbed/${name}`, body);
    assert.equal(r.status, 200, `${name}: ${r.text}`);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/, "bridge.response.content-type");
    assert.deepEqual(r.json, expected, name);
    assert.equal(r.headers.get("x-roam-outcome"), "ok");
  }
});

test("every Testbed method from curl (kebab URLs, curl's default form content type)", async () => {
  for (const [name, body, expected] of UNARY) {
    const r = await curl(["-d", body, `${main.url}testbed/${name.replace(/_/g, "-")}`]);
    assert.equal(r.status, 200, `${name}: ${r.body}`);
    assert.deepEqual(JSON.parse(r.body), expected, name);
  }
  // The README line, as printed.
  const readme = await curl(["-d", '["hello"]', `${main.url}testbed/echo`]);
  assert.equal(readme.body, '"hello"');
  // curl with the spec's content type and a metadata header.
  const typed = await curl(["-H", "Content-Type: application/json", "-H", "Roam-Request-Id: r-1", "-d", '[[]]', `${main.url}Probe/meta`]);
  assert.deepEqual(JSON.parse(typed.body), [["request-id", "r-1"]]);
});

test("channel methods are refused on plain HTTP with 400 (bridge.json.channels-forbidden)", async () => {
  for (const name of ["sum", "generate", "transform"]) {
    const r = await post(`${main.url}Testbed/${name}`, name === "generate" ? "[3, 1]" : "[1]");
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: "bridge", message: "Channel methods require WebSocket", rule: "bridge.json.channels-forbidden" });
  }
});

test("error mapping: user error, unknown method, handler failure (bridge.response.user-error / protocol-error)", async () => {
  let r = await post(`${main.url}Testbed/divide`, "[1, 0]");
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { error: "user", value: "DivisionByZero" });
  assert.equal(r.headers.get("x-roam-outcome"), "user");
  r = await post(`${main.url}Testbed/lookup`, "[99]");
  assert.deepEqual(r.json, { error: "user", value: "NotFound" });
  r = await post(`${main.url}Testbed/no_such_method`, "[]");
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { error: "unknown_method" });
  r = await post(`${main.url}Probe/boom`, "[]");
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { error: "cancelled", message: "Error: boom" });
});

test("protocol errors from the backend pass through: unknown_method, invalid_payload, cancelled", async () => {
  // A service the bridge knows but the backend does not serve.
  const Extra = defineService("Extra", { ping: method([], t.unit) });
  const raw = (payload: Uint8Array): Dispatcher => ({ dispatch: (call) => call.respond(payload) });
  const missing = await start({ services: [Extra], backend: serve(Testbed, testbedImpl) });
  assert.deepEqual((await post(`${missing.url}Extra/ping`, "[]")).json, { error: "unknown_method" });
  const invalid = await start({ services: [Extra], backend: raw(Uint8Array.of(1, 2)) });
  assert.deepEqual((await post(`${invalid.url}Extra/ping`, "[]")).json, { error: "invalid_payload" });
  const cancelled = await start({ services: [Extra], backend: raw(Uint8Array.of(1, 3)) });
  const c = await post(`${cancelled.url}Extra/ping`, "[]");
  assert.equal(c.status, 200);
  assert.deepEqual(c.json, { error: "cancelled" });
  // A response that does not decode as the schema is the backend's fault: 502.
  const garbage = await start({ services: [Extra], backend: raw(Uint8Array.of(7)) });
  const g = await post(`${garbage.url}Extra/ping`, "[]");
  assert.equal(g.status, 502);
  assert.equal((g.json as { error: string }).error, "bridge");
});

test("bridge errors: 502 unreachable backend, 504 timeout (bridge.response.bridge-error)", async () => {
  const down = await start({
    backend: () => {
      throw new Error("no route to backend");
    },
  });
  const r = await post(`${down.url}Testbed/echo`, '["x"]');
  assert.equal(r.status, 502);
  assert.deepEqual(r.json, { error: "bridge", message: "backend unavailable: no route to backend", rule: "bridge.response.bridge-error" });
  const slow = await start({ timeoutMs: 100 });
  const s = await post(`${slow.url}Probe/slow`, "[5000]");
  assert.equal(s.status, 504);
  assert.match((s.json as { message: string }).message, /within 100 ms/);
});

test("malformed, mistyped and oversized JSON get the bridge error, never a crash (bridge.request.body)", async () => {
  const small = await start({ maxBodyBytes: 1024 });
  const cases: [string, RegExp][] = [
    ["[1,", /malformed JSON/],
    ["{}", /expected an array of 1 element/],
    ['[{"x": 1}]', /args\[0\]: expected string/],
    ['"hello"', /expected an array/],
    ["", /malformed JSON/],
    ["[" + "[".repeat(5000) + "]".repeat(5000) + "]", /expected string/],
  ];
  for (const [body, re] of cases) {
    const r = await post(`${main.url}Testbed/echo`, body);
    assert.equal(r.status, 400, body.slice(0, 20));
    assert.equal((r.json as { error: string }).error, "bridge");
    assert.equal((r.json as { rule: string }).rule, "bridge.request.body");
    assert.match((r.json as { message: string }).message, re);
  }
  const path = await post(`${main.url}Testbed/create_canvas`, '["c", [{"Circle": {"radius": "big"}}], "Red"]');
  assert.match((path.json as { message: string }).message, /args\[1\]\[0\]\.Circle\.radius: expected f64, got string/);
  const bad8 = await fetch(`${main.url}Testbed/echo`, { method: "POST", body: Buffer.from([0x5b, 0x22, 0xff, 0x22, 0x5d]), headers: { "content-type": "application/json" } });
  assert.equal(bad8.status, 400);
  // Oversized: 413 with the bridge error, declared or streamed.
  const big = '["' + "x".repeat(4000) + '"]';
  const o = await post(`${small.url}Testbed/echo`, big);
  assert.equal(o.status, 413);
  assert.deepEqual(Object.keys(o.json as object).sort(), ["error", "message", "rule"]);
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${small.url}Testbed/echo`, { method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.write('["');
    req.write("y".repeat(3000));
    req.end('"]');
  });
  assert.equal(chunked, 413);
  // The server is still fine.
  assert.equal((await post(`${small.url}Testbed/echo`, '["ok"]')).json, "ok");
});

test("method, content type and URL checks (bridge.request.method, bridge.request.content-type, bridge.url.*)", async () => {
  const get = await fetch(`${main.url}Testbed/echo`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST, OPTIONS");
  assert.equal((await post(`${main.url}Testbed/echo`, '["x"]', { "content-type": "multipart/form-data; boundary=x" })).status, 415);
  assert.equal((await post(`${main.url}Testbed/echo`, '["x"]', { "content-type": "application/json; charset=utf-8" })).json, "x");
  const unknown = await post(`${main.url}Nope/echo`, "[]");
  assert.equal(unknown.status, 404);
  assert.equal((unknown.json as { rule: string }).rule, "bridge.url.methods");
  assert.equal((await post(`${main.url}Testbed/echo/extra`, "[]")).status, 404);
  const ws = await fetch(`${main.url}@ws`);
  assert.equal(ws.status, 426, "bridge.url.websocket: @ws is the WebSocket endpoint");
});

test("header ↔ metadata: Roam-* prefix, traceparent/tracestate/authorization as-is, response metadata as Roam-* (bridge.request.metadata*, bridge.response.metadata)", async () => {
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const r = await post(`${main.url}Probe/meta`, JSON.stringify([[["served-by", "probe"], ["blob-bin", "AB"]]]), {
    "content-type": "application/json",
    traceparent,
    tracestate: "congo=t61rcWkgMzE",
    authorization: "Bearer t0ken",
    "Roam-Request-Id": "abc123",
    "Roam-Deadline": "1704067200",
    "x-other": "not metadata",
  });
  assert.equal(r.status, 200);
  const seen = new Map(r.json as [string, string][]);
  assert.equal(seen.get("traceparent"), traceparent);
  assert.equal(seen.get("tracestate"), "congo=t61rcWkgMzE");
  assert.equal(seen.get("authorization"), "Bearer t0ken");
  assert.equal(seen.get("request-id"), "abc123");
  assert.equal(seen.get("deadline"), "1704067200");
  assert.equal(seen.has("x-other"), false);
  assert.equal(seen.has("content-type"), false);
  assert.equal(r.headers.get("roam-served-by"), "probe");
  assert.equal(r.headers.get("roam-blob-bin"), Buffer.from("AB").toString("base64"));
});

test("Roam-Nonce is decoded to 16 bytes and passed as roam-nonce (bridge.request.nonce, bridge.nonce.passthrough)", async () => {
  const nonce = Buffer.from("00112233445566778899aabbccddeeff", "hex");
  const r = await post(`${main.url}Probe/meta`, "[[]]", { "content-type": "application/json", "Roam-Nonce": nonce.toString("base64") });
  assert.deepEqual(r.json, [["roam-nonce", "hex:00112233445566778899aabbccddeeff"]]);
  for (const bad of ["not base64!", Buffer.alloc(8).toString("base64"), "AAAAAAAAAAAAAAAAAAAAAA"]) {
    const b = await post(`${main.url}Probe/meta`, "[[]]", { "content-type": "application/json", "Roam-Nonce": bad });
    assert.equal(b.status, 400, bad);
    assert.equal((b.json as { rule: string }).rule, "bridge.request.nonce");
  }
});

test("a retried POST with the same Roam-Nonce runs the handler once when the backend deduplicates (bridge.nonce.backend, bridge.nonce.retry-safe)", async () => {
  const nonce = Buffer.alloc(16, 7).toString("base64");
  const before = state.bumps;
  const a = await post(`${main.url}Probe/bump`, "[]", { "content-type": "application/json", "Roam-Nonce": nonce });
  const b = await post(`${main.url}Probe/bump`, "[]", { "content-type": "application/json", "Roam-Nonce": nonce });
  assert.equal(a.json, before + 1);
  assert.equal(b.json, before + 1, "the retry got the first call's result");
  assert.equal(state.bumps, before + 1, "the handler ran once");
  const c = await post(`${main.url}Probe/bump`, "[]", { "content-type": "application/json", "Roam-Nonce": Buffer.alloc(16, 8).toString("base64") });
  assert.equal(c.json, before + 2, "another nonce is another call");
  // The typed client retries a lost response with the same nonce.
  let attempts = 0;
  const flaky: typeof fetch = async (input, init) => {
    attempts++;
    const res = await fetch(input, init);
    if (attempts === 1) {
      await res.text();
      throw new TypeError("fetch failed: connection reset (response lost)");
    }
    return res;
  };
  const api = bridgeClient(Probe, { baseUrl: main.url, fetch: flaky });
  const got = await api.bump({ nonce: true });
  assert.equal(attempts, 2);
  assert.equal(got, before + 3);
  assert.equal(state.bumps, before + 3, "the request reached the backend twice and ran once");
});

test("the typed fetch client: values, typed errors, metadata and u64 precision over HTTP", async () => {
  const api = bridgeClient(Testbed, { baseUrl: main.url });
  assert.equal(await api.echo("hi"), "hi");
  assert.equal(await api.divide(-9n, 2n), -4n);
  await assert.rejects(api.divide(1n, 0n), (e: unknown) => e instanceof UserError && e.error === "DivisionByZero");
  assert.deepEqual(await api.processMessage({ tag: "Data", value: Uint8Array.of(1, 2, 3) }), { tag: "Data", value: Uint8Array.of(3, 2, 1) });
  assert.deepEqual(await api.lookup(1), { name: "Alice", age: 30, email: "alice@example.com" });
  const probe = bridgeClient(Probe, { baseUrl: main.url });
  assert.equal(await probe.big(18446744073709551614n), 18446744073709551615n);
  assert.deepEqual(await probe.meta([], { metadata: [["trace-id", "t1"], ["traceparent", "00-x"]] }), [["traceparent", "00-x"], ["trace-id", "t1"]]);
  const slow = await start({ timeoutMs: 50 });
  await assert.rejects(bridgeClient(Probe, { baseUrl: slow.url }).slow(2000), (e: unknown) => e instanceof BridgeError && e.status === 504);
});

test("CORS: allow-listed origins only, never reflected for others; preflight; same-origin passes", async () => {
  const app = "http://app.example";
  const s = await start({ cors: { origins: [app] } });
  const ok = await post(`${s.url}Testbed/echo`, '["x"]', { "content-type": "application/json", origin: app });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), app);
  assert.equal(ok.headers.get("vary"), "Origin");
  assert.match(ok.headers.get("access-control-expose-headers") ?? "", /x-roam-outcome/);
  const evil = await post(`${s.url}Testbed/echo`, '["x"]', { "content-type": "text/plain", origin: "http://evil.example" });
  assert.equal(evil.status, 403, "a simple cross-origin POST from an unknown page does not run");
  assert.equal(evil.headers.get("access-control-allow-origin"), null);
  const pre = await fetch(`${s.url}Testbed/echo`, {
    method: "OPTIONS",
    headers: { origin: app, "access-control-request-method": "POST", "access-control-request-headers": "content-type, roam-request-id, traceparent" },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), app);
  assert.equal(pre.headers.get("access-control-allow-headers"), "content-type, roam-request-id, traceparent");
  const preEvil = await fetch(`${s.url}Testbed/echo`, { method: "OPTIONS", headers: { origin: "http://evil.example", "access-control-request-method": "POST" } });
  assert.equal(preEvil.status, 403);
  assert.equal(preEvil.headers.get("access-control-allow-origin"), null);
  const same = await post(`${s.url}Testbed/echo`, '["x"]', { "content-type": "application/json", origin: `http://127.0.0.1:${s.port}` });
  assert.equal(same.status, 200);
  assert.throws(() => new RoamBridge({ services: [], backend: serve(Testbed, testbedImpl), cors: { origins: ["*"] } }), /not allowed/);
});

test("in front of an upstream roam connection (TCP); 502 once it is gone", async () => {
  const upstream = await listenTcp({ port: 0, dispatcher: serve(Testbed, testbedImpl) });
  const link = await connectTcp({ port: upstream.port! });
  const s = await start({ services: [Testbed], backend: link.root });
  assert.equal((await post(`${s.url}Testbed/reverse`, '["abc"]')).json, "cba");
  assert.deepEqual((await post(`${s.url}Testbed/divide`, "[5, 0]")).json, { error: "user", value: "DivisionByZero" });
  // Schema-aware only for the services registered with it.
  assert.equal((await post(`${s.url}Probe/bump`, "[]")).status, 404);
  link.close();
  await link.closed();
  await upstream.close();
  const gone = await post(`${s.url}Testbed/echo`, '["x"]');
  assert.equal(gone.status, 502);
  assert.match((gone.json as { message: string }).message, /backend connection closed/);
});

test("mountable under a base path in an existing server (bridge.url.base)", async () => {
  const bridge = new RoamBridge({ services: [Testbed], backend: serve(Testbed, testbedImpl), basePath: "/api/roam" });
  const server = http.createServer((req, res) => {
    if (bridge.handle(req, res)) return;
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("app route");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const port = (server.address() as AddressInfo).port;
    assert.equal((await post(`http://127.0.0.1:${port}/api/roam/Testbed/echo`, '["mounted"]')).json, "mounted");
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/Testbed/echo`, { method: "POST", body: "[]" })).text(), "app route");
  } finally {
    await bridge.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});
