/**
 * The limits path in a real browser (issue 11, item 3): Chromium's own
 * WebSocket, through connectBrowserWebSocket, makes 4 MiB and 16 MiB calls
 * and sends 4 MiB and 16 MiB channel elements when both sides allow them;
 * a raw browser WebSocket sending one byte over the negotiated limit gets
 * the rule-id Goodbye. (Same page setup as test/browser.test.ts.)
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { listenWebSocket, serve, type RoamServer } from "../src/node.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { bounded, launchChromium, pageHandler, pageMounts, requireChromium } from "./helpers/browser.js";

const MOUNTS = pageMounts();
const MiB = 1024 * 1024;
const BIG = 16 * MiB + 1024;
const LIMIT = 4 * MiB;

function pageHtml(smallPort: number): string {
  // apps/testbed imports roam-ts by its package name, as a user would.
  const importMap = { imports: { "roam-ts": "/dist/src/index.js", "@noble/hashes/": "/node_modules/@noble/hashes/" } };
  return `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">${JSON.stringify(importMap)}</script></head>
<body><pre id="log"></pre>
<script type="module">
const results = {};
try {
  const roam = await import("/dist/src/index.js");
  const { Testbed } = await import("/dist/apps/testbed/testbed.js");
  const { messageToBytes, decodeMessage } = await import("/dist/src/wire/message.js");
  const MiB = ${MiB}, BIG = ${BIG}, LIMIT = ${LIMIT};
  const link = await roam.connectBrowserWebSocket("ws://" + location.host + "/big", { maxPayloadSize: BIG, initialChannelCredit: BIG, timeoutMs: 10000 });
  const tb = roam.client(Testbed, link.root);
  for (const n of [4 * MiB, 16 * MiB]) {
    const data = new Uint8Array(n);
    data[0] = 1; data[n - 1] = 2;
    const r = await tb.processMessage({ tag: "Data", value: data });
    results["call" + n] = { length: r.value.length, first: r.value[0], last: r.value[n - 1] };
  }
  const [inTx, inRx] = roam.channel();
  const [outTx, outRx] = roam.channel();
  const done = tb.transform(inRx, outTx);
  const collected = outRx.collect();
  await inTx.send("a".repeat(4 * MiB));
  await inTx.send("b".repeat(16 * MiB));
  await inTx.close();
  await done;
  results.channel = (await collected).map((s) => s.length);
  link.close();
  // One byte over: a raw browser WebSocket speaking the wire by hand.
  results.overLimit = await new Promise((resolve, reject) => {
    const ws = new WebSocket("ws://127.0.0.1:${smallPort}/");
    ws.binaryType = "arraybuffer";
    const t = setTimeout(() => reject(new Error("no Goodbye")), 20000);
    ws.onopen = () => {
      ws.send(messageToBytes({ type: "Hello", version: 2, maxPayloadSize: BIG, initialChannelCredit: BIG }).slice());
      ws.send(messageToBytes({ type: "Request", connId: 0, requestId: 1, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: new Uint8Array(LIMIT + 1) }).slice());
    };
    ws.onmessage = (ev) => {
      const m = decodeMessage(new Uint8Array(ev.data));
      if (m.type === "Goodbye") { clearTimeout(t); resolve(m.reason); ws.close(); }
    };
    ws.onerror = () => {};
  });
  window.__results = JSON.stringify(results);
} catch (e) {
  window.__error = String(e && e.stack ? e.stack : e);
}
window.__done = true;
</script></body></html>`;
}

let browser: Browser | undefined;
const servers: RoamServer[] = [];
let httpServer: http.Server | undefined;
after(async () => {
  if (browser) await bounded(browser.close(), 10_000);
  for (const s of servers) await bounded(s.close(), 5_000);
  if (httpServer) {
    const hs = httpServer;
    hs.closeAllConnections();
    await bounded(new Promise<void>((r) => hs.close(() => r())), 5_000);
  }
});

test("Chromium: 4/16 MiB calls and channel elements; one byte over the limit gets the rule-id Goodbye", { timeout: 120_000 }, async (t) => {
  if (!requireChromium(t)) return;
  const small = await listenWebSocket({ port: 0, dispatcher: serve(Testbed, testbedImpl), maxPayloadSize: LIMIT });
  servers.push(small);
  httpServer = http.createServer(pageHandler(() => pageHtml(small.port!), MOUNTS));
  const hs = httpServer;
  await new Promise<void>((ok) => hs.listen(0, "127.0.0.1", () => ok()));
  const port = (hs.address() as AddressInfo).port;
  // The page's server allows 16 MiB; a second one (its own port: ws servers
  // sharing one HTTP server refuse each other's paths) allows 4 MiB.
  servers.push(await listenWebSocket({ server: hs, path: "/big", dispatcher: serve(Testbed, testbedImpl), maxPayloadSize: BIG, initialChannelCredit: BIG }));
  browser = await launchChromium();
  const page = await browser.newPage();
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  await page.goto(`http://127.0.0.1:${port}/`, { timeout: 30_000 });
  await page.waitForFunction(() => (window as unknown as { __done?: boolean }).__done === true, undefined, { timeout: 90_000 });
  const { error, json } = await page.evaluate(() => {
    const w = window as unknown as { __error?: string; __results?: string };
    return { error: w.__error, json: w.__results };
  });
  assert.equal(error, undefined, `the page failed: ${error}\n${consoleLines.join("\n")}`);
  const r = JSON.parse(json!) as Record<string, unknown>;
  assert.deepEqual(r[`call${4 * MiB}`], { length: 4 * MiB, first: 2, last: 1 });
  assert.deepEqual(r[`call${16 * MiB}`], { length: 16 * MiB, first: 2, last: 1 });
  assert.deepEqual(r["channel"], [4 * MiB, 16 * MiB]);
  assert.ok(String(r["overLimit"]).startsWith("message.hello.enforcement"), String(r["overLimit"]));
});
