/** A standalone bridge server: `node:http` on 127.0.0.1 with the bridge mounted. */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { RoamBridge, type BridgeOptions } from "./http.js";

export interface BridgeServer {
  readonly bridge: RoamBridge;
  readonly server: http.Server;
  readonly port: number;
  /** `http://host:port{basePath}` */
  readonly url: string;
  close(): Promise<void>;
}

/** Starts an HTTP server serving only the bridge (port 0 picks a free port). */
export async function listenBridge(o: BridgeOptions & { port?: number; host?: string }): Promise<BridgeServer> {
  const bridge = new RoamBridge(o);
  const server = http.createServer();
  bridge.attach(server);
  const host = o.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    bridge,
    server,
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}${bridge.options.basePath}`,
    close: async () => {
      await bridge.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
