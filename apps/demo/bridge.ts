/**
 * Demo step: the HTTP/JSON bridge. Serves Testbed through the bridge on
 * 127.0.0.1, prints the curl command and runs exactly that command, then calls
 * through the typed fetch client (unary over HTTP, `generate` over the
 * roam-bridge.v1 WebSocket).
 *
 *   npm start                                   # part of the whole demo
 *   npx tsc -p . && node dist/apps/demo/bridge.js --serve [--port 8080]
 *                                               # keep a bridge running for your own curl/fetch
 */
import { execFile } from "node:child_process";
import WebSocket from "ws";
import { bridgeClient, type BridgeServer, listenBridge } from "roam-ts/bridge";
import { channel, serve } from "roam-ts";
import { Testbed } from "../testbed/testbed.js";
import { testbedImpl } from "../testbed/impl.js";
import type { Row, Tour, TourSection } from "./tour.js";

function startBridge(port = 0): Promise<BridgeServer> {
  return listenBridge({ services: [Testbed], backend: serve(Testbed, testbedImpl), port });
}

/** The curl line of the README, for a bridge at `url`. */
export function curlLine(url: string): string {
  return `curl -d '["hello"]' ${url}testbed/echo`;
}

function runCurl(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile("curl", ["-sS", "--max-time", "5", "-d", '["hello"]', `${url}testbed/echo`], { timeout: 10_000 }, (err, stdout) => {
      resolve(err ? null : stdout);
    });
  });
}

/** The tour section: the curl line run as printed, the typed client over HTTP and the bridge WebSocket. */
export const bridgeTourSection: TourSection = {
  title: "HTTP/JSON bridge",
  what: "Any roam service from curl, fetch and browsers: JSON over HTTP, streams over a WebSocket.",
  source: "apps/demo/bridge.ts, src/bridge/ (docs/http-bridge.md)",
  terms: { bridge: "an HTTP gateway in front of a roam service (http-spec bridge.*)" },
  run: async (tour: Tour) => {
    const rows: Row[] = [];
    const s = await startBridge();
    tour.onCleanup(() => s.close());
    tour.note(`$ ${curlLine(s.url)}`);
    const out = await runCurl(s.url);
    if (out === null) {
      // Not every machine has curl; send what `curl -d` sends (form content type) instead.
      const r = await fetch(`${s.url}testbed/echo`, { method: "POST", body: '["hello"]', headers: { "content-type": "application/x-www-form-urlencoded" } });
      const text = await r.text();
      rows.push({ ok: text === '"hello"', where: "http", what: "curl line (no curl here: same request from Node)", result: text });
    } else {
      rows.push({ ok: out === '"hello"', where: "http", what: "curl -d '[\"hello\"]' …/testbed/echo", result: out });
    }
    const api = bridgeClient(Testbed, { baseUrl: s.url, WebSocket: WebSocket as never });
    try {
      const q = await api.divide(9007199254740993n, 3n);
      rows.push({ ok: q === 3002399751580331n, where: "http", what: "typed fetch client: divide (i64 exact)", result: `${q}n` });
      try {
        await api.divide(1n, 0n);
        rows.push({ ok: false, where: "http", what: "divide by zero", result: "no error" });
      } catch (e) {
        rows.push({ ok: (e as { error?: unknown }).error === "DivisionByZero", where: "http", what: "divide by zero → user error", result: `${(e as Error).name} ${(e as { error?: unknown }).error}` });
      }
      const [tx, rx] = channel<number>();
      const call = api.generate(5, tx);
      const items = await rx.collect();
      await call;
      rows.push({ ok: items.join(",") === "0,1,2,3,4", where: "ws", what: "generate(5) over roam-bridge.v1", result: `[${items.join(", ")}]` });
    } finally {
      api.close();
    }
    return rows;
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes("--serve")) {
    const i = process.argv.indexOf("--port");
    const s = await startBridge(i > 0 ? Number(process.argv[i + 1]) : 0);
    console.log(`roam HTTP bridge serving Testbed at ${s.url} (pid ${process.pid}; Ctrl-C or kill ${process.pid} to stop)`);
    console.log(curlLine(s.url));
    const stop = () => void s.close().then(() => process.exit(0));
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  } else {
    const cleanups: (() => unknown)[] = [];
    const rows = await bridgeTourSection.run({ tempDir: () => "", onCleanup: (f) => cleanups.push(f), note: (l) => console.log(l) });
    for (const r of rows) console.log(`${r.ok ? "✓" : "✗"} ${r.where} ${r.what}: ${r.result}`);
    for (const f of cleanups.reverse()) await f();
    process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
  }
}
