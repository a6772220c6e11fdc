/**
 * gRPC (@grpc/grpc-js) peer baselines. The server runs in a separate process
 * (grpc-server.ts); the client runs in the calling (bench) process so that a
 * bench script can measure roam next to it in the same run.
 *
 * Serialization is the identity function on raw Buffers (no protobuf), which
 * is the cheapest possible gRPC and therefore favours gRPC — see
 * grpc-service.ts.
 */
import * as grpc from '@grpc/grpc-js';
import {
  measureConcurrent,
  measureSequential,
  measureThroughput,
  type ConcurrentResult,
  type MeasureOpts,
  type ThroughputOpts,
  type ThroughputResult,
} from '../lib/harness.js';
import { matchesPattern, POOL_PERIOD } from '../lib/pattern.js';
import { startPeerServer, useServer, type PeerServer, type Transport } from './peer-server.js';
import { ECHO_PATH, STREAM_PATH, encodeStreamRequest, identity } from './grpc-service.js';

export type { Transport, PeerServer };

/** Spawn dist/bench/peers/grpc-server.js on 127.0.0.1 (tcp) or a Unix socket in a fresh temp dir. */
export function startGrpcServer(transport: Transport): Promise<PeerServer> {
  return startPeerServer('bench/peers/grpc-server.js', transport, 'grpc.sock');
}

/**
 * @param flowControlWindow HTTP/2 receive window of the client (stream and
 *   connection), `grpc-node.flow_control_window`; unset = grpc-js's default
 *   (65,535 bytes). The window bounds how much the server may send ahead of
 *   the client's reads, as roam's channel credit does.
 */
function newClient(addr: string, flowControlWindow?: number): grpc.Client {
  return new grpc.Client(addr, grpc.credentials.createInsecure(), {
    // One connection, no retries/keepalive noise in a benchmark.
    'grpc.enable_retries': 0,
    ...(flowControlWindow !== undefined ? { 'grpc-node.flow_control_window': flowControlWindow } : {}),
  });
}

function waitForReady(client: grpc.Client, ms = 5000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + ms, (err) => (err ? reject(err) : resolve()));
  });
}

export interface GrpcUnaryOpts extends MeasureOpts {
  transport: Transport;
  /** Reuse a running server (from startGrpcServer); otherwise one is started and stopped. */
  server?: PeerServer;
  /** Request (= response) payload size. Default 16. */
  payloadBytes?: number;
  /** Calls kept in flight. 1 ⇒ strictly sequential. Default 1. */
  inflight?: number;
}

export interface GrpcUnaryResult extends ConcurrentResult {
  peer: 'grpc-js';
  transport: Transport;
  payloadBytes: number;
}

/** Unary echo round trips: ops/s and latency percentiles. */
export async function runGrpcUnary(opts: GrpcUnaryOpts): Promise<GrpcUnaryResult> {
  const payloadBytes = opts.payloadBytes ?? 16;
  const inflight = Math.max(1, opts.inflight ?? 1);
  const { server, owned } = await useServer(opts.transport, opts.server, startGrpcServer);
  const client = newClient(server.addr);
  try {
    await waitForReady(client);
    const payload = Buffer.alloc(payloadBytes, 0xab);
    const call = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        client.makeUnaryRequest<Buffer, Buffer>(ECHO_PATH, identity, identity, payload, (err, resp) => {
          if (err) reject(err);
          else if (!resp || resp.length !== payloadBytes) reject(new Error(`echo: bad response length ${resp?.length}`));
          else resolve();
        });
      });
    const r =
      inflight === 1
        ? { ...(await measureSequential(call, opts)), inflight: 1 }
        : await measureConcurrent(call, inflight, opts);
    return { ...r, peer: 'grpc-js', transport: opts.transport, payloadBytes };
  } finally {
    client.close();
    if (owned) await server.stop();
  }
}

export interface GrpcStreamingOpts extends ThroughputOpts {
  transport: Transport;
  server?: PeerServer;
  /** Size of each streamed message. Default 64 KiB. */
  messageBytes?: number;
  /** Messages per server-streaming call (one call = one timed transfer). Default 1024. */
  messagesPerCall?: number;
  /**
   * Check every message byte-for-byte against the deterministic pattern
   * (detects lost, duplicated, reordered or corrupt messages). Default true.
   */
  verify?: boolean;
  /** The client's HTTP/2 receive window in bytes (see newClient). Default: grpc-js's own (65,535). */
  flowControlWindow?: number;
}

export interface GrpcStreamingResult extends ThroughputResult {
  peer: 'grpc-js';
  transport: Transport;
  messageBytes: number;
  messagesPerCall: number;
  /** Messages received and verified in the timed phase. */
  messages: number;
  verified: boolean;
}

/** Server-streaming throughput: the server streams N messages of `messageBytes`. */
export async function runGrpcStreaming(opts: GrpcStreamingOpts): Promise<GrpcStreamingResult> {
  const size = opts.messageBytes ?? 64 * 1024;
  const count = opts.messagesPerCall ?? 1024;
  const verify = opts.verify ?? true;
  const { server, owned } = await useServer(opts.transport, opts.server, startGrpcServer);
  const client = newClient(server.addr, opts.flowControlWindow);
  try {
    await waitForReady(client);
    const request = encodeStreamRequest(count, size);
    const transfer = (): Promise<number> =>
      new Promise<number>((resolve, reject) => {
        const stream = client.makeServerStreamRequest<Buffer, Buffer>(STREAM_PATH, identity, identity, request);
        let received = 0;
        let bytes = 0;
        let offset = 0;
        let ended = false;
        let statusOk = false;
        let settled = false;
        const fail = (e: Error): void => {
          if (settled) return;
          settled = true;
          stream.cancel();
          reject(e);
        };
        const maybeDone = (): void => {
          if (settled || !ended || !statusOk) return;
          if (received !== count) return fail(new Error(`stream: got ${received} messages, expected ${count}`));
          settled = true;
          resolve(bytes);
        };
        stream.on('data', (m: Buffer) => {
          if (settled) return;
          if (m.length !== size) return fail(new Error(`stream: message ${received} has ${m.length} bytes, expected ${size}`));
          if (verify && !matchesPattern(m, offset))
            return fail(new Error(`stream: message ${received} content mismatch (lost/reordered/corrupt)`));
          offset = (offset + size) % POOL_PERIOD;
          received++;
          bytes += m.length;
        });
        stream.on('error', (e: Error) => fail(e));
        stream.on('status', (s: grpc.StatusObject) => {
          if (s.code !== grpc.status.OK) return fail(new Error(`stream: status ${s.code} ${s.details}`));
          statusOk = true;
          maybeDone();
        });
        stream.on('end', () => {
          ended = true;
          maybeDone();
        });
      });
    const r = await measureThroughput(transfer, opts);
    // Every transfer delivered exactly `count` verified messages of `size` bytes.
    const messages = r.bytes / size;
    return {
      ...r,
      peer: 'grpc-js',
      transport: opts.transport,
      messageBytes: size,
      messagesPerCall: count,
      messages,
      verified: verify,
    };
  } finally {
    client.close();
    if (owned) await server.stop();
  }
}
