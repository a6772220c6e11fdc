/**
 * Shared set-up of the browser tests: Debian's Chromium through
 * playwright-core, the suite's policy for a missing browser (the run fails
 * unless ROAM_SKIP_BROWSER=1 opts out), and bounded clean-up.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import type * as http from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import type { Browser } from "playwright-core";
import { resolveAsset, type Mount } from "../../packages/roam-pty/src/web-server.js";
import { requireOrOptOut } from "./requirements.js";

/** Debian's Chromium; ROAM_CHROMIUM names another binary. */
export const CHROMIUM = process.env["ROAM_CHROMIUM"] ?? "/usr/bin/chromium";

/**
 * Chromium on a fresh temporary profile (deleted on close). As root it needs
 * --no-sandbox, and on a closed network the background services must be off
 * or it stalls trying to reach them.
 */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--no-proxy-server", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** True when the test may run; skips on an explicit opt-out, throws when Chromium is missing. */
export function requireChromium(t: TestContext): boolean {
  const problem = existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing`;
  return requireOrOptOut(t, { what: "Chromium", problem, install: "as root: apt-get install -y chromium (npm test does it through scripts/ensure-chromium.sh)", optOut: "ROAM_SKIP_BROWSER" });
}

/** Waits for `p` at most `ms`; a failure or a stuck close must not hold the test run. */
export function bounded(p: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([p.catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
}

/** JSON reviver for pages that tag values JSON cannot carry: {$bigint: "…"} and {$bytes: [...]}. */
export function revive(_k: string, v: unknown): unknown {
  if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1) {
    const o = v as { $bigint?: unknown; $bytes?: unknown };
    if (typeof o.$bigint === "string") return BigInt(o.$bigint);
    if (Array.isArray(o.$bytes)) return Uint8Array.from(o.$bytes as number[]);
  }
  return v;
}

/** The repository root (this file runs from dist/test/helpers/). */
const ROOT = realpathSync(fileURLToPath(new URL("../../../", import.meta.url)));

/** What a test page loads: the compiled tree, @noble/hashes, and the named extra packages. */
export function pageMounts(...packages: string[]): Mount[] {
  const modules = ["@noble/hashes", ...packages].map((pkg) => ({ prefix: `/node_modules/${pkg}/`, dir: join(ROOT, "node_modules", ...pkg.split("/")) }));
  return [{ prefix: "/dist/", dir: join(ROOT, "dist") }, ...modules];
}

/**
 * Serves a test page: `page()` at / (and /index.html), the mounts' files
 * through roam-pty's guarded lookup, 404 for anything else, 405 for methods
 * other than GET and HEAD.
 */
export function pageHandler(page: () => string, mounts: Mount[]): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    const send = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff" });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n");
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname === "/" || url.pathname === "/index.html") return send(200, "text/html; charset=utf-8", page());
    const hit = resolveAsset(url.pathname, mounts);
    if (!hit) return send(404, "text/plain", "not found\n");
    send(200, hit.type, readFileSync(hit.file));
  };
}
