/**
 * JSON-RPC 2.0 over WebSocket (the `ws` package, text frames) peer server in
 * its own process: what a Node developer writes without an RPC framework.
 *   node dist/bench/peers/ws-jsonrpc-server.js
 * Prints {"ready":true,"addr":"ws://127.0.0.1:PORT/"} when listening.
 * Method `echo(s)` returns its one parameter.
 */
import { WebSocketServer } from 'ws';
import { announceReady, exitWithParent } from '../lib/harness.js';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const req = JSON.parse(data.toString()) as { id: number; method: string; params: unknown[] };
    const res =
      req.method === 'echo'
        ? { jsonrpc: '2.0', id: req.id, result: req.params[0] }
        : { jsonrpc: '2.0', id: req.id, error: { code: -32601, message: 'Method not found' } };
    ws.send(JSON.stringify(res));
  });
});
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
const port = (wss.address() as { port: number }).port;
exitWithParent(() => new Promise<void>((resolve) => wss.close(() => resolve())));
announceReady({ addr: `ws://127.0.0.1:${port}/` });
