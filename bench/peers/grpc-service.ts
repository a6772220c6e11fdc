/**
 * Bench-only gRPC service definition, shared by grpc-server.ts and grpc.ts.
 *
 * No protobuf and no codegen: every method (de)serializes with the identity
 * function on raw Buffers. That is the cheapest gRPC possible — it skips all
 * message encoding work gRPC users normally pay — so it FAVOURS gRPC in any
 * comparison. What remains is the grpc-js framing, HTTP/2 and call machinery.
 */
import type * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

export const ECHO_PATH = '/roambench.Peer/Echo';
export const STREAM_PATH = '/roambench.Peer/Stream';

export const peerService: grpc.ServiceDefinition = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  Stream: {
    path: STREAM_PATH,
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export { identity };

/** Largest streamed message we allow (grpc-js default receive limit is 4 MiB). */
export const MAX_STREAM_MESSAGE = 4 * 1024 * 1024 - 64;
export const MAX_STREAM_COUNT = 1_000_000;

/** Stream request: u32 LE message count, u32 LE message size. */
export function encodeStreamRequest(count: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32LE(count, 0);
  b.writeUInt32LE(size, 4);
  return b;
}

export function decodeStreamRequest(b: Buffer): { count: number; size: number } {
  if (b.length !== 8) throw new Error(`bad stream request length ${b.length}`);
  const count = b.readUInt32LE(0);
  const size = b.readUInt32LE(4);
  if (count > MAX_STREAM_COUNT) throw new Error(`count ${count} > ${MAX_STREAM_COUNT}`);
  if (size < 1 || size > MAX_STREAM_MESSAGE) throw new Error(`bad message size ${size}`);
  return { count, size };
}
