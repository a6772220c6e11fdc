/**
 * The bridge's typed fetch client in a real browser: headless Debian Chromium
 * (playwright-core) loads dist/src/bridge/browser.js (the browser-safe entry)
 * and calls Testbed through a Node bridge: unary calls over fetch (HTTP/JSON),
 * generate/sum over the roam-bridge.v1 WebSocket with credit.
 *
 * One http.Server on 127.0.0.1 serves the page, its static files (dist/ and
 * the two bare imports, @noble/hashes and lossless-json, through the PTY web
 * server's guarded lookup) and the bridge under /api/.
 *
 * Fails when /usr/bin/chromium is missing unless ROAM_SKIP_BROWSER=1 opts out
 * (scripts/ensure-chromium.sh installs it when it can).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";

import type { Browser } from "playwright-core";

import { RoamBridge } from "../src/bridge/index.js";
import { serve } from "../src/session/serve.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { bounded, launchChromium, pageHandler, pageMounts, requireChromium, revive } from "./helpers/browser.js";

const PAGE_TIMEOUT_MS = 30_000;
const MOUNTS = pageMounts("lossless-json");

function pageHtml(): string {
  const importMap = {
    imports: {
      "roam-ts": "/dist/src/index.js",
      "@noble/hashes/": "/node_modules/@noble/hashes/",
      "lossless-json": "/node_modules/lossless-json/lib/esm/index.js",
    },
  };
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>roam bridge browser test</title><link rel="icon" href="data:,">
<script type="importmap">${JSON.stringify(importMap)}</script></head>
<body><pre id="log">running…</pre>
<script type="module">
const tagged = (_k, v) => (typeof v === "bigint" ? { $bigint: v.toString() } : v instanceof Uint8Array ? { $bytes: Array.from(v) } : v);
const results = {};
try {
  const { bridgeClient } = await import("/dist/src/bridge/browser.js");
  const { channel, UserError } = await import("/dist/src/index.js");
  const { Testbed } = await import("/dist/apps/testbed/testbed.js");
  const api = bridgeClient(Testbed, { baseUrl: "/api/" });
  const step = async (name, run) => {
    try { results[name] = { ok: await run() }; }
    catch (e) { results[name] = { err: { name: e?.name, error: e?.error, isUserError: e instanceof UserError } }; }
  };
  results.hasProcess = typeof process !== "undefined";
  await step("echo", () => api.echo("hello from chromium ✓"));
  await step("divide", () => api.divide(9007199254740993n, 1n));
  await step("divideByZero", () => api.divide(1n, 0n));
  await step("lookup", () => api.lookup(3));
  await step("processData", () => api.processMessage({ tag: "Data", value: Uint8Array.of(0, 1, 255) }));
  await step("createCanvas", () => api.createCanvas("w", [{ tag: "Circle", value: { radius: 1 } }, { tag: "Point" }], "Red"));
  await step("rawFetch", async () => (await fetch("/api/testbed/echo", { method: "POST", body: '["hello"]' })).text());
  await step("generate", async () => {
    const [tx, rx] = channel();
    const call = api.generate(3000, tx);
    let n = 0, ok = true;
    for await (const v of rx) { if (v !== n) ok = false; n++; }
    await call;
    return { n, ok };
  });
  await step("sum", async () => {
    const [tx, rx] = channel();
    const call = api.sum(rx);
    for (let i = 1; i <= 3000; i++) await tx.send(i);
    await tx.close();
    return await call;
  });
  api.close();
  window.__results = JSON.stringify(results, tagged);
} catch (e) {
  window.__error = String(e && e.stack ? e.stack : e);
}
window.__done = true;
</script></body></html>`;
}


let browser: Browser | undefined;
let server: http.Server | undefined;
let bridge: RoamBridge | undefined;
after(async () => {
  if (browser) await bounded(browser.close(), 10_000);
  if (bridge) await bounded(bridge.close(), 5_000);
  if (server) {
    const s = server;
    s.closeAllConnections();
    await bounded(new Promise<void>((r) => s.close(() => r())), 5_000);
  }
});

test("Chromium calls Testbed through the bridge with the typed fetch client (HTTP and WebSocket)", { timeout: 90_000 }, async (t) => {
  if (!requireChromium(t)) return;
  const b = new RoamBridge({ services: [Testbed], backend: serve(Testbed, testbedImpl), basePath: "/api/" });
  bridge = b;
  const bridgeRequests: string[] = [];
  const servePage = pageHandler(pageHtml, MOUNTS);
  const s = http.createServer((req, res) => {
    if (b.handle(req, res)) {
      bridgeRequests.push(`${req.method} ${req.url}`);
      return;
    }
    servePage(req, res);
  });
  server = s;
  s.on("upgrade", (req, socket, head) => {
    if (!b.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;

  browser = await launchChromium();
  const page = await browser.newPage();
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  await page.goto(`http://127.0.0.1:${port}/`, { timeout: PAGE_TIMEOUT_MS });
  try {
    await page.waitForFunction(() => (window as unknown as { __done?: boolean }).__done === true, undefined, { timeout: PAGE_TIMEOUT_MS });
  } catch (e) {
    throw new Error(`the page did not finish; console:\n${consoleLines.join("\n")}`, { cause: e });
  }
  const { error, json } = await page.evaluate(() => {
    const w = window as unknown as { __error?: string; __results?: string };
    return { error: w.__error, json: w.__results };
  });
  assert.equal(error, undefined, `the page failed: ${error}\nconsole:\n${consoleLines.join("\n")}`);
  const r = JSON.parse(json!, revive) as Record<string, unknown>;
  assert.equal(r["hasProcess"], false, "a real browser, not Node");
  assert.deepEqual(r["echo"], { ok: "hello from chromium ✓" });
  assert.deepEqual(r["divide"], { ok: 9007199254740993n }, "u64/i64 exact through JSON");
  assert.deepEqual(r["divideByZero"], { err: { name: "UserError", error: "DivisionByZero", isUserError: true } });
  assert.deepEqual(r["lookup"], { ok: { name: "Charlie", age: 35, email: "charlie@example.com" } });
  assert.deepEqual(r["processData"], { ok: { tag: "Data", value: Uint8Array.of(255, 1, 0) } });
  assert.deepEqual(r["createCanvas"], { ok: { name: "w", shapes: [{ tag: "Circle", value: { radius: 1 } }, { tag: "Point" }], background: "Red" } });
  assert.deepEqual(r["rawFetch"], { ok: '"hello"' });
  assert.deepEqual(r["generate"], { ok: { n: 3000, ok: true } });
  assert.deepEqual(r["sum"], { ok: 4501500n });
  // Unary calls went over HTTP POST to the bridge, streaming over its WebSocket.
  assert.ok(bridgeRequests.includes("POST /api/Testbed/echo"), bridgeRequests.join(", "));
  assert.ok(bridgeRequests.includes("POST /api/Testbed/divide"));
  assert.ok(!bridgeRequests.some((x) => x.includes("generate") || x.includes("sum")), "channel methods do not use HTTP POST");
});
