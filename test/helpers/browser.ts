/**
 * Shared set-up of the browser tests: Debian's Chromium through
 * playwright-core, the suite's policy for a missing browser (the run fails
 * unless ROAM_SKIP_BROWSER=1 opts out), and bounded clean-up.
 */
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import type { Browser } from "playwright-core";
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
