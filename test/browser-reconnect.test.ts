/**
 * The reconnecting client in a real browser: headless Debian Chromium loads
 * the compiled modules (dist/src/index.js) and calls a Node Testbed server
 * over WebSocket through ReconnectingClient + browserWebSocketConnector. The
 * server is dropped mid-call and restarted on the same port; the in-flight
 * call completes, once, and later calls go through the new link.
 *
 * A missing Chromium fails the test unless ROAM_SKIP_BROWSER=1 opts out
 * (scripts/ensure-chromium.sh installs it when it can; helpers/browser.ts).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { serve, dedup, readNonce, type ImplementationOf } from "../src/index.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { RestartableServer, until, gate } from "./helpers/reconnect-fixture.js";
import { bounded, launchChromium, pageHandler, pageMounts, requireChromium } from "./helpers/browser.js";

const MOUNTS = pageMounts();

function pageHtml(wsPort: number): string {
  // apps/testbed imports roam-ts by its package name, as a user would.
  const importMap = { imports: { "roam-ts": "/dist/src/index.js", "@noble/hashes/": "/node_modules/@noble/hashes/" } };
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>roam reconnect</title><link rel="icon" href="data:,">
<script type="importmap">${JSON.stringify(importMap)}</script></head>
<body><pre id="log">running…</pre>
<script type="module">
const log = (s) => { document.getElementById("log").textContent += "\\n" + s; };
const r = { events: [] };
try {
  const roam = await import("/dist/src/index.js");
  const { Testbed } = await import("/dist/apps/testbed/testbed.js");
  const rc = new roam.ReconnectingClient(roam.browserWebSocketConnector("ws://127.0.0.1:${wsPort}/", { timeoutMs: 5000 }), {
    policy: { maxAttempts: 200, initialBackoffMs: 25, maxBackoffMs: 100 },
    onEvent: (e) => r.events.push(e.type),
  });
  const tb = roam.client(Testbed, rc);
  r.stateBefore = rc.state;
  r.one = await tb.echo("one");
  window.__phase = "one";
  r.two = await tb.echo("hold-two", { timeout: 20000 });
  r.three = await tb.echo("three");
  r.connects = rc.connects;
  r.stateAfter = rc.state;
  rc.close();
} catch (e) {
  r.error = String(e && e.stack ? e.stack : e);
}
window.__results = JSON.stringify(r);
window.__done = true;
</script></body></html>`;
}

let browser: Browser | undefined;
let httpServer: http.Server | undefined;
let srv: RestartableServer | undefined;

after(async () => {
  if (browser) await bounded(browser.close(), 10_000);
  if (srv) await bounded(srv.dispose(), 5_000);
  if (httpServer) {
    const hs = httpServer;
    hs.closeAllConnections();
    await bounded(new Promise<void>((r) => hs.close(() => r())), 5_000);
  }
});

test("Chromium's reconnecting client survives a server restart mid-call; every call completes once", { timeout: 90_000 }, async (t) => {
  if (!requireChromium(t)) return;
  const executions = new Map<string, number>();
  const arrivals: string[] = [];
  const hold = gate();
  const impl: ImplementationOf<typeof Testbed> = {
    ...testbedImpl,
    echo: async (m) => {
      executions.set(m, (executions.get(m) ?? 0) + 1);
      if (m.startsWith("hold")) await hold.promise;
      return m;
    },
  };
  const inner = dedup(serve(Testbed, impl));
  srv = new RestartableServer("ws", {
    dispatch(call) {
      arrivals.push(readNonce(call.request.metadata).kind);
      inner.dispatch(call);
    },
    connectionClosed: (c, e) => inner.connectionClosed(c, e),
  });
  await srv.start();
  const wsPort = srv.port;

  httpServer = http.createServer(pageHandler(() => pageHtml(wsPort), MOUNTS));
  const hs = httpServer;
  await new Promise<void>((ok) => hs.listen(0, "127.0.0.1", ok));
  const port = (hs.address() as AddressInfo).port;

  browser = await launchChromium();
  const page = await browser.newPage();
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  await page.goto(`http://127.0.0.1:${port}/`, { timeout: 30_000 });

  try {
    await until(() => executions.get("hold-two") === 1, 30_000, "the browser's hold-two call to reach the handler");
  } catch (e) {
    throw new Error(`${(e as Error).message}; console:\n${consoleLines.join("\n")}`);
  }
  // Drop every link mid-call, stay down 300 ms, listen again on the same port.
  await srv.restart("drop", 300);
  await until(() => arrivals.length === 3, 20_000, "the browser's retry of hold-two");
  hold.open();
  await page.waitForFunction(() => (window as unknown as { __done?: boolean }).__done === true, undefined, { timeout: 30_000 });
  const r = JSON.parse(await page.evaluate(() => (window as unknown as { __results: string }).__results)) as Record<string, unknown>;
  assert.equal(r["error"], undefined, `page failed: ${r["error"]}\n${consoleLines.join("\n")}`);
  assert.equal(r["stateBefore"], "idle");
  assert.equal(r["one"], "one");
  assert.equal(r["two"], "hold-two");
  assert.equal(r["three"], "three");
  assert.equal(r["connects"], 2);
  assert.equal(r["stateAfter"], "connected");
  const events = r["events"] as string[];
  assert.deepEqual(events.slice(0, 2), ["connecting", "connected"]);
  assert.ok(events.includes("disconnected"), events.join(","));
  assert.deepEqual(events.slice(-2), ["connected", "closed"]);
  // Every call ran exactly once; every request carried a nonce.
  assert.deepEqual(Object.fromEntries(executions), { one: 1, "hold-two": 1, three: 1 });
  assert.deepEqual(arrivals, ["ok", "ok", "ok", "ok"]);
  t.diagnostic(`events: ${events.join(" → ")}`);
});
