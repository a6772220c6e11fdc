/**
 * Raw Node `net` peer server (separate process) — the floor any RPC stack on
 * Node sits on. Usage:
 *   node dist/bench/peers/raw-socket-server.js --transport tcp
 *   node dist/bench/peers/raw-socket-server.js --transport unix --socket /tmp/x/raw.sock
 * Prints {"ready":true,"addr":"127.0.0.1:PORT" | "/path"} when listening.
 *
 * Per connection, the first byte selects the mode:
 *   'P'  echo: every following byte is written straight back (ping-pong).
 *   'B'  bulk: a sequence of 12-byte requests [u64 LE total][u32 LE chunk];
 *        for each, the server writes `total` bytes of the shared deterministic
 *        pattern (bench/lib/pattern.ts, stream offset restarting at 0) in
 *        `chunk`-byte zero-copy slices as fast as it can, respecting
 *        backpressure (write() === false ⇒ wait for 'drain').
 */
import * as net from 'node:net';
import { announceReady, exitWithParent, parseArgs, removeSocketAndDir } from '../lib/harness.js';
import { patternSlice, POOL_PERIOD } from '../lib/pattern.js';

const MODE_ECHO = 0x50; // 'P'
const MODE_BULK = 0x42; // 'B'
const MAX_TOTAL = 2 ** 40; // 1 TiB bound per request
const REQ_LEN = 12;

const args = parseArgs(process.argv.slice(2));
const transport = args['transport'] ?? 'tcp';
const socketPath = args['socket'];

function drainOrClose(sock: net.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      sock.off('drain', done);
      sock.off('close', done);
      sock.off('error', done);
      resolve();
    };
    const t = setTimeout(done, 30_000);
    sock.on('drain', done);
    sock.on('close', done);
    sock.on('error', done);
  });
}

function handle(sock: net.Socket): void {
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  let mode = -1;
  let pending: Buffer = Buffer.alloc(0);
  let pumping = false;

  const pump = async (): Promise<void> => {
    pumping = true;
    try {
      while (pending.length >= REQ_LEN && !sock.destroyed) {
        const total = Number(pending.readBigUInt64LE(0));
        const chunk = pending.readUInt32LE(8);
        pending = pending.subarray(REQ_LEN);
        if (total > MAX_TOTAL || chunk < 1 || chunk > POOL_PERIOD) {
          sock.destroy();
          return;
        }
        let sent = 0;
        let off = 0;
        while (sent < total) {
          if (sock.destroyed) return;
          const n = Math.min(chunk, total - sent);
          const ok = sock.write(patternSlice(off, n));
          sent += n;
          off = (off + n) % POOL_PERIOD;
          if (!ok) await drainOrClose(sock);
        }
      }
    } finally {
      pumping = false;
    }
  };

  sock.on('data', (d: Buffer) => {
    if (mode < 0) {
      mode = d[0]!;
      d = d.subarray(1);
      if (mode !== MODE_ECHO && mode !== MODE_BULK) {
        sock.destroy();
        return;
      }
    }
    if (mode === MODE_ECHO) {
      if (d.length > 0 && !sock.write(d)) {
        sock.pause();
        sock.once('drain', () => sock.resume());
      }
      return;
    }
    pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
    if (pending.length > 1 << 20) {
      sock.destroy(); // client is not following the protocol
      return;
    }
    if (!pumping) void pump();
  });
}

const server = net.createServer(handle);
const sockets = new Set<net.Socket>();
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});
server.on('error', (e) => {
  console.error('raw-socket-server:', e.message);
  process.exit(1);
});

if (transport === 'unix') {
  if (!socketPath) {
    console.error('raw-socket-server: --socket required for unix transport');
    process.exit(2);
  }
  server.listen(socketPath, () => announceReady({ addr: socketPath, transport, pid: process.pid }));
} else {
  server.listen(0, '127.0.0.1', () => {
    const a = server.address() as net.AddressInfo;
    announceReady({ addr: `127.0.0.1:${a.port}`, transport, pid: process.pid });
  });
}

exitWithParent(() => {
  for (const s of sockets) s.destroy();
  server.close();
  if (socketPath) removeSocketAndDir(socketPath);
});
