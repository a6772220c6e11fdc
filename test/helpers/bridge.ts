/** Shared setup of the bridge tests: a Probe service and small HTTP helpers. */
import { execFile } from "node:child_process";
import { arg, defineService, method } from "../../src/service/define.js";
import { t } from "../../src/schema/index.js";
import { serve } from "../../src/session/serve.js";
import type { Dispatcher } from "../../src/session/connection.js";
import { dedup } from "../../src/nonce/dedup.js";
import type { ImplementationOf } from "../../src/session/serve.js";
import { Testbed } from "../../apps/testbed/testbed.js";
import { testbedImpl } from "../../apps/testbed/impl.js";

/** Shows what the handler saw, and misbehaves on request. */
export const Probe = defineService("Probe", {
  /** The request metadata as [key, value] (bytes as hex), and response metadata set from `reply`. */
  meta: method([arg("reply", t.list(t.tuple(t.string, t.string)))], t.list(t.tuple(t.string, t.string))),
  /** Sleeps, then returns. */
  slow: method([arg("ms", t.u32)], t.unit),
  /** Throws. */
  boom: method([], t.unit),
  /** Counts calls (the backend deduplicates by `roam-nonce`: backendDispatcher). */
  bump: method([], t.u32),
  /** A u64 that is not a safe double. */
  big: method([arg("x", t.u64)], t.u64),
});

export interface ProbeState {
  bumps: number;
}

export function probeImpl(state: ProbeState): ImplementationOf<typeof Probe> {
  return {
    meta: (reply, ctx) => {
      for (const [k, v] of reply) ctx.responseMetadata.push([k, k.endsWith("-bin") ? Buffer.from(v) : v]);
      return ctx.metadata.map(([k, v]) => [k, typeof v === "string" ? v : v instanceof Uint8Array ? "hex:" + Buffer.from(v).toString("hex") : String(v)] as [string, string]);
    },
    slow: async (ms, ctx) => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        ctx.signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
    },
    boom: () => {
      throw new Error("boom");
    },
    bump: () => ++state.bumps,
    big: (x) => x + 1n,
  };
}

/** Testbed and Probe behind issue 14's nonce deduplication (core.nonce), as a real backend would be. */
export function backendDispatcher(state: ProbeState): Dispatcher {
  return dedup(serve(Testbed, testbedImpl).add(Probe, probeImpl(state)));
}

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export async function post(url: string, body: string, headers: Record<string, string> = { "content-type": "application/json" }): Promise<HttpResult> {
  const res = await fetch(url, { method: "POST", body, headers });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Runs curl (a test dependency: fails loudly when missing) and returns status and body. */
export function curl(args: string[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["-sS", "--max-time", "10", "-w", "\n%{http_code}", ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl failed: ${err.message} ${stderr}`));
      const i = stdout.lastIndexOf("\n");
      resolve({ body: stdout.slice(0, i), status: Number(stdout.slice(i + 1)) });
    });
  });
}
