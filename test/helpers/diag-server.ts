/**
 * A server process for the SIGUSR1 test: serves Slow over TCP with a small
 * channel window, installs the diagnostics signal, prints `PORT <n>`.
 */
import { arg, defineService, method } from "../../src/service/define.js";
import { t } from "../../src/schema/index.js";
import { serve } from "../../src/session/serve.js";
import { listenTcp } from "../../src/transport/node.js";
import { installDiagnosticsSignal } from "../../src/diagnostics/signal.js";

export const Slow = defineService("Slow", {
  /** Never answers. */
  hang: method([], t.unit),
  /** Takes a channel and never reads it: the sender runs out of credit. */
  sink: method([arg("input", t.rx(t.bytes))], t.u64),
});

if (process.argv.includes("--serve")) {
  const server = await listenTcp({
    port: 0,
    initialChannelCredit: 64 * 1024,
    dispatcher: serve(Slow, { hang: () => new Promise<void>(() => {}), sink: () => new Promise<bigint>(() => {}) }),
  });
  installDiagnosticsSignal();
  process.stdout.write(`PORT ${server.port}\n`);
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
