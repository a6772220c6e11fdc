/**
 * External requirements of a test (Chromium, tmux, a native addon). A missing
 * one FAILS the test with a message that says how to install it; it is
 * skipped only when the machine explicitly opts out with the named env var
 * (e.g. ROAM_SKIP_BROWSER=1), which scripts/test.sh prints in its summary.
 * Never a silent skip: a green run means the test really ran.
 */
import type { TestContext } from "node:test";

export interface Requirement {
  /** What the test needs, e.g. "Chromium (/usr/bin/chromium)". */
  what: string;
  /** Why it is not available, or null when it is. */
  problem: string | null;
  /** How to install it. */
  install: string;
  /** The env var that opts out explicitly, e.g. ROAM_SKIP_BROWSER. */
  optOut: string;
}

/** Returns true when the test may run; skips (opt-out) or throws (missing) otherwise. */
export function requireOrOptOut(t: TestContext, r: Requirement): boolean {
  if (r.problem === null) return true;
  if (process.env[r.optOut] === "1") {
    const msg = `${r.what} is unavailable (${r.problem}); SKIPPED because ${r.optOut}=1`;
    console.error(`\n${"#".repeat(78)}\n# ${msg}\n${"#".repeat(78)}\n`);
    t.skip(msg);
    return false;
  }
  throw new Error(`${r.what} is unavailable: ${r.problem}. Install it: ${r.install}. A machine that cannot may opt out explicitly with ${r.optOut}=1.`);
}

/** The describe/test `skip` option for a requirement checked once per file (opt-out only). */
export function optedOut(r: Requirement): string | false {
  return r.problem !== null && process.env[r.optOut] === "1" ? `${r.what} is unavailable (${r.problem}); SKIPPED because ${r.optOut}=1` : false;
}
