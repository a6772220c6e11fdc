/**
 * A file-backed SHM hub in its own process, for tests that play a hostile
 * guest: it serves Testbed to every guest that attaches by path and reports
 * on stdout (one JSON object per line): {"ev":"ready"}, {"ev":"closed",
 * "peer":n,"reason":"..."}. It exits when its stdin ends. A crash (an
 * uncaught exception, a signal) is what the tests look for: nothing here
 * catches one.
 */
import { testbedImpl } from "../../apps/testbed/impl.js";
import { Testbed } from "../../apps/testbed/testbed.js";
import { serve } from "../../src/session/serve.js";
import { establishHostPeer, ShmHost } from "../../src/transport/shm/index.js";

const segPath = process.argv.find((a) => a.startsWith("--segment="))?.slice("--segment=".length);
if (segPath) {
  const emit = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");
  const host = ShmHost.create({
    path: segPath,
    maxGuests: 4,
    goodbyeTimeoutMs: 500,
    onAttach: (peerId) => {
      const link = establishHostPeer(host, peerId, serve(Testbed, testbedImpl));
      link.onClose((e) => emit({ ev: "closed", peer: peerId, reason: e.message }));
    },
  });
  emit({ ev: "ready" });
  process.stdin.resume();
  process.stdin.on("end", () => {
    void host.close().then(() => process.exit(0));
  });
}
