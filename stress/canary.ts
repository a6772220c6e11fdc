/**
 * A well-behaved client measuring what the attack costs everyone else:
 * `node dist/stress/canary.js tcp <port>` | `ws <url>`; one echo every 20 ms
 * (5 s timeout each). On "report" prints {"n":…,"p99Ms":…,"maxMs":…,"failures":…}.
 */
import * as readline from "node:readline";
import { Testbed } from "../apps/testbed/testbed.js";
import type { Link } from "../src/session/link.js";
import { client } from "../src/session/serve.js";
import { connectTcp, connectWebSocket } from "../src/transport/node.js";

const [kind, where] = [process.argv[2], process.argv[3]];
const lat: number[] = [];
let failures = 0;
let lastError = "";

async function main(): Promise<void> {
  const link: Link = kind === "ws" ? await connectWebSocket(String(where)) : await connectTcp({ port: Number(where) });
  const tb = client(Testbed, link.root);
  const tick = async () => {
    const t0 = performance.now();
    try {
      await tb.echo("canary", { timeout: 5000 });
      lat.push(performance.now() - t0);
    } catch (e) {
      failures++;
      lastError = String(e).slice(0, 200);
    }
  };
  setInterval(() => void tick(), 20);
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
}

function pct(p: number): number {
  if (lat.length === 0) return -1;
  const s = [...lat].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "report") {
    process.stdout.write(JSON.stringify({ n: lat.length, p99Ms: Math.round(pct(0.99)), maxMs: Math.round(pct(1)), failures, lastError }) + "\n");
  }
});
process.stdin.on("end", () => process.exit(0));
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
