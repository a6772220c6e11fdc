/**
 * Child process of bench/bridge.ts: the three servers it compares, in one
 * process of their own (the client runs in the parent).
 *  - the roam HTTP bridge (local Testbed dispatcher) — POST /Testbed/echo
 *  - a roam WebSocket server (Testbed) — the same echo over plain roam
 *  - a minimal node:http JSON handler — read body, JSON.parse, JSON.stringify
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { listenBridge } from "roam-ts/bridge";
import { listenWebSocket, serve } from "roam-ts/node";
import { Testbed } from "../../apps/testbed/testbed.js";
import { testbedImpl } from "../../apps/testbed/impl.js";
import { announceReady, exitWithParent } from "../lib/harness.js";

const bridge = await listenBridge({ services: [Testbed], backend: serve(Testbed, testbedImpl) });
const roam = await listenWebSocket({ port: 0, dispatcher: serve(Testbed, testbedImpl) });
const plain = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const args = JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown[];
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(args[0]));
  });
});
await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));

exitWithParent(async () => {
  await bridge.close();
  await roam.close();
  plain.closeAllConnections();
  plain.close();
});
announceReady({ addr: bridge.url, bridge: bridge.url, roam: roam.address, plain: `http://127.0.0.1:${(plain.address() as AddressInfo).port}/` });
