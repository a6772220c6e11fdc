/**
 * Child process: receives 1 GiB over one channel from a roam-server while
 * consuming slowly, and reports its peak RSS above the baseline.
 *   node dist/bench/roam/slow-consumer.js --addr <unix path> [--mib 1024] [--rate-mbps 150]
 * Prints one JSON line: {"baselineRss","peakRss","bytes","seconds","window"}.
 */
import { parseArgs } from "../lib/harness.js";
import { matchesPattern, POOL_PERIOD } from "../lib/pattern.js";
import { channel, client, connectUnix } from "roam-ts/node";
import { Bench } from "./bench-service.js";

const args = parseArgs(process.argv.slice(2));
const mib = Number(args["mib"] ?? 1024);
const rate = Number(args["rate-mbps"] ?? 150) * 1e6; // bytes per second the consumer allows itself
const size = 64 * 1024;
const count = Math.floor((mib * 1024 * 1024) / size);

const link = await connectUnix({ path: args["addr"]!, maxPayloadSize: 4 * 1024 * 1024 });
const b = client(Bench, link.root);
// Warm up the code paths, then take the baseline.
{
  const [tx, rx] = channel<Uint8Array>();
  const d = b.stream(64, size, tx);
  await rx.collect();
  await d;
}
(globalThis as { gc?: () => void }).gc?.();
await new Promise((r) => setTimeout(r, 200));
const baselineRss = process.memoryUsage.rss();
let peakRss = baselineRss;
let peakBuffered = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 20);

const [tx, rx] = channel<Uint8Array>();
const t0 = performance.now();
const done = b.stream(count, size, tx);
let bytes = 0;
let offset = 0;
for (;;) {
  const r = await rx.next();
  if (r.done) break;
  if (!matchesPattern(r.value, offset)) throw new Error(`element at ${bytes} corrupt or reordered`);
  offset = (offset + size) % POOL_PERIOD;
  bytes += r.value.length;
  peakBuffered = Math.max(peakBuffered, rx.stats().bufferedBytes);
  // Consume slowly: never faster than `rate`.
  const ahead = bytes / rate - (performance.now() - t0) / 1000;
  if (ahead > 0.002) await new Promise((res) => setTimeout(res, ahead * 1000));
}
const sent = await done;
clearInterval(sampler);
peakRss = Math.max(peakRss, process.memoryUsage.rss());
if (BigInt(bytes) !== sent) throw new Error(`received ${bytes}, server sent ${sent}`);
console.log(
  JSON.stringify({ ready: true, addr: "done", baselineRss, peakRss, bytes, seconds: (performance.now() - t0) / 1000, window: link.limits.initialChannelCredit, peakBuffered }),
);
link.close();
