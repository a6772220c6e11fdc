/** The three servers a same-run comparison measures against, started and stopped together. */
import { startGrpcServer } from "../peers/grpc.js";
import type { PeerServer, Transport } from "../peers/peer-server.js";
import { startRawServer } from "../peers/raw-socket.js";
import { startRoamServer } from "../roam/clients.js";

export interface PeerSet {
  roam: PeerServer;
  grpc: PeerServer;
  raw: PeerServer;
}

/** Starts roam, grpc-js and raw-socket servers on `t`, runs `f`, then stops every server that started. */
export async function withPeerSet<T>(t: Transport, f: (s: PeerSet) => Promise<T>): Promise<T> {
  const started: PeerServer[] = [];
  const start = async (s: Promise<PeerServer>): Promise<PeerServer> => {
    const server = await s;
    started.push(server);
    return server;
  };
  try {
    const roam = await start(startRoamServer(t));
    const grpc = await start(startGrpcServer(t));
    const raw = await start(startRawServer(t));
    return await f({ roam, grpc, raw });
  } finally {
    await Promise.all(started.map((s) => s.stop()));
  }
}
