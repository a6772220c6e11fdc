import * as os from "node:os";
import * as path from "node:path";
import * as fs from "node:fs";
import { serve, ServiceDispatcher } from "../../src/session/serve.js";
import { connectTcp, connectUnix, connectWebSocket, listenTcp, listenUnix, listenWebSocket, type RoamServer, type ServerOptions } from "../../src/transport/node.js";
import type { Link } from "../../src/session/link.js";
import type { PeerOptions } from "../../src/transport/link-options.js";
import { testbedImpl } from "../../apps/testbed/impl.js";
import { Testbed } from "../../apps/testbed/testbed.js";

export type TransportKind = "tcp" | "unix" | "ws";
export const TRANSPORTS: TransportKind[] = ["tcp", "unix", "ws"];

export function tempDir(prefix = "roam-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function testbedDispatcher(): ServiceDispatcher {
  return serve(Testbed, testbedImpl);
}

/** Starts a server of `kind` and returns a connect function for it. */
export async function startServer(
  kind: TransportKind,
  options: ServerOptions = {},
): Promise<{ server: RoamServer; connect(o?: PeerOptions): Promise<Link>; cleanup(): Promise<void> }> {
  const o: ServerOptions = { dispatcher: testbedDispatcher(), ...options };
  if (kind === "tcp") {
    const server = await listenTcp({ ...o, port: 0 });
    return { server, connect: (c = {}) => connectTcp({ ...c, port: server.port! }), cleanup: () => server.close() };
  }
  if (kind === "unix") {
    const dir = tempDir();
    const server = await listenUnix({ ...o, path: path.join(dir, "roam.sock") });
    return {
      server,
      connect: (c = {}) => connectUnix({ ...c, path: server.path! }),
      cleanup: async () => {
        await server.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const server = await listenWebSocket({ ...o, port: 0 });
  return { server, connect: (c = {}) => connectWebSocket(server.address, c), cleanup: () => server.close() };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects if `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}
