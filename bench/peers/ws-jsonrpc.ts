/**
 * JSON-RPC 2.0 over WebSocket (`ws`, text frames) peer: unary echo of a
 * 16-character string against ws-jsonrpc-server.ts in another process,
 * sequential or with `inflight` calls outstanding on the one socket.
 */
import { WebSocket } from 'ws';
import { measureConcurrent, measureSequential, withTimeout, type ConcurrentResult, type MeasureOpts } from '../lib/harness.js';
import { startPeerServer, type PeerServer } from './peer-server.js';

export function startWsJsonRpcServer(): Promise<PeerServer> {
  return startPeerServer('bench/peers/ws-jsonrpc-server.js', 'tcp', '');
}

export async function runWsJsonRpcUnary(server: PeerServer, inflight: number, opts: MeasureOpts): Promise<ConcurrentResult> {
  const ws = new WebSocket(server.addr);
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    }),
    5000,
    `connect ${server.addr}`,
  );
  const pending = new Map<number, { resolve(): void; reject(e: Error): void }>();
  let dead: Error | undefined;
  ws.on('message', (data) => {
    const res = JSON.parse(data.toString()) as { id: number; result?: string };
    const p = pending.get(res.id);
    if (!p) return;
    pending.delete(res.id);
    if (typeof res.result === 'string' && res.result.length === 16) p.resolve();
    else p.reject(new Error('bad echo'));
  });
  ws.on('close', () => {
    dead = new Error('ws closed');
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
  });
  let nextId = 1;
  const msg = '0123456789abcdef';
  const call = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (dead) return reject(dead);
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'echo', params: [msg] }));
    });
  try {
    return inflight === 1 ? { ...(await measureSequential(call, opts)), inflight: 1 } : await measureConcurrent(call, inflight, opts);
  } finally {
    ws.close();
  }
}
