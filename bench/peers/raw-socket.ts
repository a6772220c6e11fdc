/**
 * Raw Node `net` socket baselines — the floor. Server in a separate process
 * (raw-socket-server.ts), client in the calling process.
 *
 *  - ping-pong: `payloadBytes` (16) out, the same bytes echoed back; one round
 *    trip per op (optionally `inflight` outstanding on the one socket).
 *  - bulk: server writes N bytes as fast as backpressure allows; the client
 *    reads into a reused buffer (net `onread`), counts, and verifies every
 *    byte against the deterministic pattern (count + order + content).
 */
import * as net from 'node:net';
import {
  measureConcurrent,
  measureSequential,
  measureThroughput,
  withTimeout,
  type ConcurrentResult,
  type MeasureOpts,
  type ThroughputOpts,
  type ThroughputResult,
} from '../lib/harness.js';
import { matchesPattern } from '../lib/pattern.js';
import { startPeerServer, useServer, type PeerServer, type Transport } from './peer-server.js';

const MODE_ECHO = 0x50; // 'P' — keep in sync with raw-socket-server.ts
const MODE_BULK = 0x42; // 'B'

export type { Transport, PeerServer };

/** Spawn dist/bench/peers/raw-socket-server.js on 127.0.0.1 (tcp) or a Unix socket in a fresh temp dir. */
export function startRawServer(transport: Transport): Promise<PeerServer> {
  return startPeerServer('bench/peers/raw-socket-server.js', transport, 'raw.sock');
}

function connect(server: PeerServer, onread?: net.OnReadOpts): Promise<net.Socket> {
  return withTimeout(
    new Promise<net.Socket>((resolve, reject) => {
      let sock: net.Socket;
      if (server.transport === 'unix') {
        sock = onread ? net.connect({ path: server.addr, onread }) : net.connect({ path: server.addr });
      } else {
        const i = server.addr.lastIndexOf(':');
        const host = server.addr.slice(0, i);
        const port = Number(server.addr.slice(i + 1));
        sock = onread ? net.connect({ host, port, onread }) : net.connect({ host, port });
      }
      sock.once('connect', () => {
        sock.off('error', reject);
        sock.setNoDelay(true);
        resolve(sock);
      });
      sock.once('error', reject);
    }),
    5000,
    `connect ${server.addr}`,
  );
}

export interface RawPingPongOpts extends MeasureOpts {
  transport: Transport;
  server?: PeerServer;
  /** Bytes each way per round trip. Default 16. */
  payloadBytes?: number;
  /** Round trips outstanding on the socket. Default 1 (strict ping-pong). */
  inflight?: number;
}

export interface RawPingPongResult extends ConcurrentResult {
  peer: 'raw-net';
  transport: Transport;
  payloadBytes: number;
}

/** Raw socket ping-pong round trips/s and latency. */
export async function runRawPingPong(opts: RawPingPongOpts): Promise<RawPingPongResult> {
  const payloadBytes = Math.max(1, opts.payloadBytes ?? 16);
  const inflight = Math.max(1, opts.inflight ?? 1);
  const { server, owned } = await useServer(opts.transport, opts.server, startRawServer);
  let sock: net.Socket | undefined;
  try {
    sock = await connect(server);
    const s = sock;
    const waiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
    let buffered = 0; // echoed bytes not yet attributed to a round trip
    let dead: Error | undefined;
    const failAll = (e: Error): void => {
      dead ??= e;
      for (const w of waiters.splice(0)) w.reject(e);
    };
    s.on('data', (d: Buffer) => {
      buffered += d.length;
      while (buffered >= payloadBytes && waiters.length > 0) {
        buffered -= payloadBytes;
        waiters.shift()!.resolve();
      }
      if (buffered >= payloadBytes) failAll(new Error('ping-pong: unexpected extra bytes'));
    });
    s.on('error', (e) => failAll(e));
    s.on('close', () => failAll(new Error('ping-pong: socket closed')));
    s.write(Buffer.from([MODE_ECHO]));

    const payload = Buffer.alloc(payloadBytes, 0xcd);
    const call = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        if (dead) return reject(dead);
        waiters.push({ resolve, reject });
        s.write(payload);
      });
    const r =
      inflight === 1
        ? { ...(await measureSequential(call, opts)), inflight: 1 }
        : await measureConcurrent(call, inflight, opts);
    return { ...r, peer: 'raw-net', transport: opts.transport, payloadBytes };
  } finally {
    sock?.destroy();
    if (owned) await server.stop();
  }
}

export interface RawBulkOpts extends ThroughputOpts {
  transport: Transport;
  server?: PeerServer;
  /** Bytes per timed transfer. Default 256 MiB. */
  bytesPerTransfer?: number;
  /** Size of each server write(). Default 256 KiB. */
  writeChunkBytes?: number;
  /** Client's reused read buffer (net `onread`). Default 256 KiB. */
  readBufferBytes?: number;
  /** Verify every byte against the pattern. Default true. */
  verify?: boolean;
}

export interface RawBulkResult extends ThroughputResult {
  peer: 'raw-net';
  transport: Transport;
  bytesPerTransfer: number;
  writeChunkBytes: number;
  readBufferBytes: number;
  verified: boolean;
}

/** Raw socket bulk copy throughput (server → client). */
export async function runRawBulk(opts: RawBulkOpts): Promise<RawBulkResult> {
  const total = Math.max(1, Math.floor(opts.bytesPerTransfer ?? 256 * 1024 * 1024));
  const writeChunk = opts.writeChunkBytes ?? 256 * 1024;
  const readBufferBytes = opts.readBufferBytes ?? 256 * 1024;
  const verify = opts.verify ?? true;
  const { server, owned } = await useServer(opts.transport, opts.server, startRawServer);
  let sock: net.Socket | undefined;
  try {
    interface Transfer {
      got: number;
      resolve(n: number): void;
      reject(e: Error): void;
    }
    let cur: Transfer | undefined;
    let dead: Error | undefined;
    const fail = (e: Error): void => {
      dead ??= e;
      const t = cur;
      cur = undefined;
      t?.reject(e);
      sock?.destroy();
    };
    const readBuf = Buffer.allocUnsafe(readBufferBytes);
    sock = await connect(server, {
      buffer: readBuf,
      callback(n: number): boolean {
        const t = cur;
        if (!t) {
          fail(new Error('bulk: unexpected data between transfers'));
          return false;
        }
        if (verify && !matchesPattern(readBuf.subarray(0, n), t.got)) {
          fail(new Error(`bulk: content mismatch at stream offset ${t.got} (lost/reordered/corrupt)`));
          return false;
        }
        t.got += n;
        if (t.got > total) {
          fail(new Error(`bulk: received ${t.got} bytes, expected ${total}`));
          return false;
        }
        if (t.got === total) {
          cur = undefined;
          t.resolve(total);
        }
        return true;
      },
    });
    const s = sock;
    s.on('error', (e) => fail(e));
    s.on('close', () => fail(new Error('bulk: socket closed')));
    s.write(Buffer.from([MODE_BULK]));

    const req = Buffer.allocUnsafe(12);
    req.writeBigUInt64LE(BigInt(total), 0);
    req.writeUInt32LE(writeChunk, 8);
    const transfer = (): Promise<number> =>
      new Promise<number>((resolve, reject) => {
        if (dead) return reject(dead);
        cur = { got: 0, resolve, reject };
        s.write(req);
      });
    const r = await measureThroughput(transfer, opts);
    return {
      ...r,
      peer: 'raw-net',
      transport: opts.transport,
      bytesPerTransfer: total,
      writeChunkBytes: writeChunk,
      readBufferBytes,
      verified: verify,
    };
  } finally {
    sock?.destroy();
    if (owned) await server.stop();
  }
}
