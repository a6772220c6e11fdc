/**
 * roam in a real browser: headless Debian Chromium (driven by playwright-core)
 * loads the compiled ES modules (dist/src/index.js, the browser-safe entry
 * point) and calls a Node Testbed server over WebSocket with
 * connectBrowserWebSocket.
 *
 * One http.Server on 127.0.0.1 serves both the page (an import map plus a
 * module script) with its static files and the roam WebSocket endpoint.
 * Static files come only from dist/ and node_modules/@noble/hashes/ (the one
 * bare import of the browser-safe graph), with a path-traversal guard.
 *
 * A missing Chromium fails the test unless ROAM_SKIP_BROWSER=1 opts out
 * (scripts/ensure-chromium.sh installs it when it can; helpers/browser.ts).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";

import type { Browser } from "playwright-core";

import { listenWebSocket, serve, type ImplementationOf, type RoamServer } from "../src/node.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { resolveAsset } from "../packages/roam-pty/src/web-server.js";
import { bounded, launchChromium, pageHandler, pageMounts, requireChromium, revive } from "./helpers/browser.js";

const TEST_TIMEOUT_MS = 60_000;
const PAGE_TIMEOUT_MS = 30_000;

/** The repository root (this file runs as dist/test/browser.test.js). */

/** URL prefix → directory. Nothing outside these directories is served. */
const MOUNTS = pageMounts();

/**
 * The page: an import map for the bare specifiers the browser-safe graph uses
 * (only @noble/hashes; src/ imports nothing else at runtime), then a module
 * script that runs the calls and publishes the outcome as tagged JSON.
 */
function pageHtml(): string {
  // apps/testbed imports roam-ts by its package name, as a user would.
  const importMap = { imports: { "roam-ts": "/dist/src/index.js", "@noble/hashes/": "/node_modules/@noble/hashes/" } };
  return `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>roam browser test</title>
<link rel="icon" href="data:,">
<script type="importmap">${JSON.stringify(importMap)}</script>
</head>
<body>
<pre id="log">running…</pre>
<script type="module">
const log = (s) => { document.getElementById("log").textContent += "\\n" + s; };
// bigint and Uint8Array survive as tagged objects; the test revives them.
const tagged = (_k, v) => (typeof v === "bigint" ? { $bigint: v.toString() } : v instanceof Uint8Array ? { $bytes: Array.from(v) } : v);
const results = {};
try {
  const roam = await import("/dist/src/index.js");
  const { Testbed } = await import("/dist/apps/testbed/testbed.js");
  const { connectBrowserWebSocket, client, channel, UserError } = roam;
  const describe = (e) => ({
    name: e?.name,
    code: e?.code,
    error: e?.error,
    isUserError: e instanceof UserError,
    isRoamError: e instanceof roam.RoamError,
  });
  const step = async (name, run) => {
    try {
      results[name] = { ok: await run() };
    } catch (e) {
      results[name] = { err: describe(e) };
    }
    log(name + " done");
  };

  const link = await connectBrowserWebSocket("ws://" + location.host + "/roam", { timeoutMs: 10000 });
  const tb = client(Testbed, link.root);
  results.hasWebSocket = typeof WebSocket === "function";
  results.hasProcess = typeof process !== "undefined";

  await step("echo", () => tb.echo("hello from chromium ✓"));
  await step("reverse", () => tb.reverse("roam"));
  await step("divide", () => tb.divide(-7n, 2n));
  await step("divideByZero", () => tb.divide(1n, 0n));
  await step("lookup", () => tb.lookup(1));
  await step("lookupBob", () => tb.lookup(2));
  await step("lookupMissing", () => tb.lookup(42));
  await step("createCanvas", () =>
    tb.createCanvas("web", [{ tag: "Circle", value: { radius: 2.5 } }, { tag: "Rectangle", value: { width: 3, height: 4 } }, { tag: "Point" }], "Green"),
  );
  await step("getPoints", () => tb.getPoints(4));
  await step("processData", () => tb.processMessage({ tag: "Data", value: Uint8Array.of(0, 1, 2, 250, 255) }));
  await step("processNumber", () => tb.processMessage({ tag: "Number", value: 21n }));
  await step("swapPair", () => tb.swapPair([-5, "five"]));
  await step("generate", async () => {
    const [tx, rx] = channel();
    const call = tb.generate(5, tx);
    const items = await rx.collect();
    const result = await call;
    return { items, result: result ?? null };
  });
  await step("sum", async () => {
    const [tx, rx] = channel();
    const call = tb.sum(rx);
    for (const n of [10, 20, 30, -1]) await tx.send(n);
    await tx.close();
    return await call;
  });
  await step("cancel", async () => {
    // sum() waits for more input forever: abort it while the server is in
    // the handler, then check the channel is dead and the link is not.
    const ac = new AbortController();
    const [tx, rx] = channel();
    const call = tb.sum(rx, { signal: ac.signal });
    await tx.send(1);
    setTimeout(() => ac.abort(), 20);
    let error;
    try {
      return { unexpected: await call };
    } catch (e) {
      error = describe(e);
    }
    let sendAfter;
    try {
      await tx.send(2);
      sendAfter = "sent";
    } catch (e) {
      sendAfter = e?.name;
    }
    return { error, sendAfter };
  });
  await step("afterCancel", () => tb.echo("still alive"));
  link.close();
  window.__results = JSON.stringify(results, tagged);
} catch (e) {
  window.__error = String(e && e.stack ? e.stack : e);
}
window.__done = true;
</script>
</body>
</html>
`;
}

/** Maps a request path to a file under one of MOUNTS, or null (404): the PTY web server's guarded lookup. */
const resolveStatic = (urlPath: string) => resolveAsset(urlPath, MOUNTS);

const staticHandler = pageHandler(pageHtml, MOUNTS);


// ---------------------------------------------------------------------------

let browser: Browser | undefined;
let roamServer: RoamServer | undefined;
let httpServer: http.Server | undefined;

after(async () => {
  if (browser) await bounded(browser.close(), 10_000);
  if (roamServer) await bounded(roamServer.close(), 5_000);
  if (httpServer) {
    const hs = httpServer;
    hs.closeAllConnections();
    await bounded(new Promise<void>((r) => hs.close(() => r())), 5_000);
  }
});

test("static server refuses path traversal and unknown files", () => {
  assert.equal(resolveStatic("/dist/../package.json"), null);
  assert.equal(resolveStatic("/dist/%2e%2e/package.json"), null);
  assert.equal(resolveStatic("/dist/src/..%2f..%2fpackage.json"), null);
  assert.equal(resolveStatic("/dist/src/%5c..%5cindex.js"), null);
  assert.equal(resolveStatic("/dist/src/index.js%00.js"), null);
  assert.equal(resolveStatic("/node_modules/@noble/hashes/../../ws/index.js"), null);
  assert.equal(resolveStatic("/node_modules/ws/index.js"), null);
  assert.equal(resolveStatic("/dist/src/index.d.ts"), null, "only script, style and source-map files are served");
  assert.equal(resolveStatic("/etc/passwd"), null);
  assert.equal(resolveStatic("/dist/src/nope.js"), null);
  assert.ok(resolveStatic("/dist/src/index.js"));
  assert.ok(resolveStatic("/node_modules/@noble/hashes/blake3.js"));
});

test("Chromium calls a Node Testbed server over WebSocket", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  if (!requireChromium(t)) return;

  httpServer = http.createServer(staticHandler);
  const hs = httpServer;
  await new Promise<void>((ok, fail) => {
    hs.once("error", fail);
    hs.listen(0, "127.0.0.1", () => {
      hs.off("error", fail);
      ok();
    });
  });
  const port = (hs.address() as AddressInfo).port;
  const handlerErrors: unknown[] = [];
  const serverAborts: string[] = [];
  const impl: ImplementationOf<typeof Testbed> = {
    ...testbedImpl,
    sum: async (numbers, ctx) => {
      try {
        return await testbedImpl.sum(numbers, ctx);
      } finally {
        if (ctx.signal.aborted) serverAborts.push("sum");
      }
    },
  };
  roamServer = await listenWebSocket({
    server: hs,
    path: "/roam",
    dispatcher: serve(Testbed, impl),
    onHandlerError: (e) => handlerErrors.push(e),
  });

  // launch() runs Chromium on a fresh temporary profile and deletes it on close.
  browser = await launchChromium();
  const page = await browser.newPage();
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
  page.on("requestfailed", (r) => consoleLines.push(`[requestfailed] ${r.url()} ${r.failure()?.errorText ?? ""}`));
  page.on("response", (r) => {
    if (r.status() >= 400) consoleLines.push(`[http ${r.status()}] ${r.url()}`);
  });

  await page.goto(`http://127.0.0.1:${port}/`, { timeout: PAGE_TIMEOUT_MS });
  try {
    await page.waitForFunction(() => (window as unknown as { __done?: boolean }).__done === true, undefined, { timeout: PAGE_TIMEOUT_MS });
  } catch (e) {
    const log = await page.textContent("#log").catch(() => "");
    throw new Error(`the page did not finish within ${PAGE_TIMEOUT_MS} ms; page log:\n${log}\nconsole:\n${consoleLines.join("\n")}`, { cause: e });
  }
  const { error, json } = await page.evaluate(() => {
    const w = window as unknown as { __error?: string; __results?: string };
    return { error: w.__error, json: w.__results };
  });
  assert.equal(error, undefined, `the page failed: ${error}\nconsole:\n${consoleLines.join("\n")}`);
  assert.ok(json, "the page published no results");
  const r = JSON.parse(json, revive) as Record<string, unknown>;

  assert.equal(r["hasWebSocket"], true);
  assert.equal(r["hasProcess"], false, "a real browser, not Node");
  assert.deepEqual(r["echo"], { ok: "hello from chromium ✓" });
  assert.deepEqual(r["reverse"], { ok: "maor" });
  assert.deepEqual(r["divide"], { ok: -3n }, "i64 division truncates toward zero");
  assert.deepEqual(r["divideByZero"], {
    err: { name: "UserError", code: "user", error: "DivisionByZero", isUserError: true, isRoamError: true },
  });
  assert.deepEqual(r["lookup"], { ok: { name: "Alice", age: 30, email: "alice@example.com" } });
  assert.deepEqual(r["lookupBob"], { ok: { name: "Bob", age: 25, email: null } });
  assert.deepEqual(r["lookupMissing"], {
    err: { name: "UserError", code: "user", error: "NotFound", isUserError: true, isRoamError: true },
  });
  assert.deepEqual(r["createCanvas"], {
    ok: {
      name: "web",
      shapes: [{ tag: "Circle", value: { radius: 2.5 } }, { tag: "Rectangle", value: { width: 3, height: 4 } }, { tag: "Point" }],
      background: "Green",
    },
  });
  assert.deepEqual(r["getPoints"], {
    ok: [
      { x: 0, y: 0 },
      { x: 1, y: 2 },
      { x: 2, y: 4 },
      { x: 3, y: 6 },
    ],
  });
  assert.deepEqual(r["processData"], { ok: { tag: "Data", value: Uint8Array.of(255, 250, 2, 1, 0) } });
  assert.deepEqual(r["processNumber"], { ok: { tag: "Number", value: 42n } });
  assert.deepEqual(r["swapPair"], { ok: ["five", -5] });
  assert.deepEqual(r["generate"], { ok: { items: [0, 1, 2, 3, 4], result: null } });
  assert.deepEqual(r["sum"], { ok: 59n });
  assert.deepEqual(r["cancel"], {
    ok: { error: { name: "CancelledError", code: "cancelled", isUserError: false, isRoamError: true }, sendAfter: "CancelledError" },
  });
  // The server's handler saw the Cancel through ctx.signal.
  const deadline = Date.now() + 5_000;
  while (serverAborts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(serverAborts, ["sum"]);
  assert.deepEqual(r["afterCancel"], { ok: "still alive" });
  assert.deepEqual(handlerErrors, []);
  t.diagnostic(`browser: ${browser.version()}; ${Object.keys(r).length} results checked`);
});
