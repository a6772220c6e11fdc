/** Shared types/helpers for peer server processes. */
import { makeTempDir, spawnNode } from '../lib/harness.js';

export type Transport = 'tcp' | 'unix';
/** Transports roam's own bench server also listens on. */
export type RpcTransport = Transport | 'ws';

/** A running peer server process. */
export interface PeerServer {
  transport: RpcTransport;
  /** gRPC: "127.0.0.1:PORT" | "unix:/path";  raw socket: "127.0.0.1:PORT" | "/path". */
  addr: string;
  pid: number | undefined;
  /** Kill the process (SIGTERM, then SIGKILL) and remove its temp dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Spawn `dist/<script>` with `--transport tcp|unix [--socket <tmpdir>/<socketName>]`
 * and wait for its ready line.
 */
export async function startPeerServer(script: string, transport: RpcTransport, socketName: string, extraArgs: string[] = []): Promise<PeerServer> {
  const tmp = transport === 'unix' ? makeTempDir('roam-bench-') : undefined;
  const args = ['--transport', transport, ...extraArgs];
  if (tmp) args.push('--socket', `${tmp.dir}/${socketName}`);
  try {
    const s = await spawnNode(script, args);
    let stopping: Promise<void> | undefined;
    return {
      transport,
      addr: s.ready.addr,
      pid: s.child.pid,
      stop() {
        stopping ??= s.stop().finally(() => tmp?.remove());
        return stopping;
      },
    };
  } catch (e) {
    tmp?.remove();
    throw e;
  }
}

/** Use `server` if given (checking its transport), else start one that the caller owns. */
export async function useServer(
  transport: Transport,
  server: PeerServer | undefined,
  start: (t: Transport) => Promise<PeerServer>,
): Promise<{ server: PeerServer; owned: boolean }> {
  if (server) {
    if (server.transport !== transport) throw new Error(`server transport ${server.transport} ≠ ${transport}`);
    return { server, owned: false };
  }
  return { server: await start(transport), owned: true };
}
