/**
 * gRPC peer server (separate process). Usage:
 *   node dist/bench/peers/grpc-server.js --transport tcp
 *   node dist/bench/peers/grpc-server.js --transport unix --socket /tmp/x/grpc.sock
 * Prints {"ready":true,"addr":"127.0.0.1:PORT" | "unix:/path"} when listening.
 *
 * Methods (see grpc-service.ts; identity serialization, no protobuf):
 *   Echo   — unary, returns the request bytes.
 *   Stream — server-streaming; request = (count, size); streams `count`
 *            messages of `size` bytes whose concatenation is the shared
 *            deterministic pattern (bench/lib/pattern.ts), respecting
 *            backpressure (write() === false ⇒ wait for 'drain').
 */
import * as grpc from '@grpc/grpc-js';
import { announceReady, exitWithParent, parseArgs, removeSocketAndDir } from '../lib/harness.js';
import { patternSlice, POOL_PERIOD } from '../lib/pattern.js';
import { decodeStreamRequest, peerService } from './grpc-service.js';

const args = parseArgs(process.argv.slice(2));
const transport = args['transport'] ?? 'tcp';

const server = new grpc.Server();

function waitDrain(call: grpc.ServerWritableStream<Buffer, Buffer>): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      call.off('error', done);
      resolve();
    };
    const t = setTimeout(done, 30_000); // bounded; loop re-checks call.cancelled
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
    call.on('error', done);
  });
}

server.addService(peerService, {
  Echo(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
    callback(null, call.request);
  },
  Stream(call: grpc.ServerWritableStream<Buffer, Buffer>) {
    void (async () => {
      let req: { count: number; size: number };
      try {
        req = decodeStreamRequest(call.request);
      } catch (e) {
        call.destroy(Object.assign(new Error(String(e)), { code: grpc.status.INVALID_ARGUMENT }));
        return;
      }
      let offset = 0;
      for (let k = 0; k < req.count; k++) {
        if (call.cancelled || call.destroyed) return;
        const ok = call.write(patternSlice(offset, req.size));
        offset = (offset + req.size) % POOL_PERIOD;
        if (!ok) await waitDrain(call);
      }
      call.end();
    })();
  },
});

const bindAddr = transport === 'unix' ? `unix:${args['socket'] ?? ''}` : '127.0.0.1:0';
if (transport === 'unix' && !args['socket']) {
  console.error('grpc-server: --socket required for unix transport');
  process.exit(2);
}

server.bindAsync(bindAddr, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error('grpc-server: bind failed:', err.message);
    process.exit(1);
  }
  const addr = transport === 'unix' ? bindAddr : `127.0.0.1:${port}`;
  announceReady({ addr, transport, pid: process.pid });
});

exitWithParent(async () => {
  await new Promise<void>((resolve) => {
    server.tryShutdown(() => resolve());
    setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, 500).unref();
  });
  if (transport === 'unix' && args['socket']) removeSocketAndDir(args['socket']);
});
