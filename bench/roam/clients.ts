/** roam measurements against a roam-server process (see roam-server.ts). */
import { measureConcurrent, measureSequential, measureThroughput, type ConcurrentResult, type MeasureOpts, type ThroughputOpts, type ThroughputResult } from "../lib/harness.js";
import { matchesPattern, POOL_PERIOD } from "../lib/pattern.js";
import { channel, client, connectTcp, connectUnix, connectWebSocket, type Link, type PeerOptions } from "roam-ts/node";
import { Bench } from "./bench-service.js";
import { startPeerServer, type PeerServer, type RpcTransport } from "../peers/peer-server.js";
import { Testbed } from "../../apps/testbed/testbed.js";

export function startRoamServer(t: RpcTransport, extraArgs: string[] = []): Promise<PeerServer> {
  return startPeerServer("bench/roam/roam-server.js", t, "roam.sock", extraArgs);
}

export async function connectRoam(server: PeerServer, o: PeerOptions = {}): Promise<Link> {
  if (server.transport === "unix") return connectUnix({ ...o, path: server.addr });
  if (server.transport === "ws") return connectWebSocket(server.addr, o);
  const i = server.addr.lastIndexOf(":");
  return connectTcp({ ...o, host: server.addr.slice(0, i), port: Number(server.addr.slice(i + 1)) });
}

/** Unary echo of a 16-byte string: sequential, or `inflight` calls outstanding. */
export async function runRoamUnary(server: PeerServer, inflight: number, opts: MeasureOpts, link?: Link): Promise<ConcurrentResult> {
  const owned = link === undefined;
  link ??= await connectRoam(server);
  try {
    const tb = client(Testbed, link.root);
    const msg = "0123456789abcdef";
    const call = async (): Promise<void> => {
      const r = await tb.echo(msg);
      if (r.length !== 16) throw new Error("bad echo");
    };
    return inflight === 1 ? { ...(await measureSequential(call, opts)), inflight: 1 } : await measureConcurrent(call, inflight, opts);
  } finally {
    if (owned) link.close();
  }
}

/**
 * One channel streaming `count` elements of `size` bytes (Bench.stream), every
 * element checked against the shared pattern (lost/reordered/corrupt → error).
 */
export async function runRoamStreaming(
  server: PeerServer,
  opts: ThroughputOpts & { count?: number; size?: number; verify?: boolean; credit?: number },
): Promise<ThroughputResult & { messages: number }> {
  const size = opts.size ?? 64 * 1024;
  const count = opts.count ?? 1024;
  const verify = opts.verify ?? true;
  const link = await connectRoam(server, { maxPayloadSize: 4 * 1024 * 1024, initialChannelCredit: opts.credit });
  try {
    const b = client(Bench, link.root);
    const transfer = async (): Promise<number> => {
      const [tx, rx] = channel<Uint8Array>();
      const done = b.stream(count, size, tx);
      let offset = 0;
      let n = 0;
      let bytes = 0;
      for (;;) {
        const r = await rx.next();
        if (r.done) break;
        const m = r.value;
        if (m.length !== size) throw new Error(`element ${n} has ${m.length} bytes`);
        if (verify && !matchesPattern(m, offset)) throw new Error(`element ${n} content mismatch (lost/reordered/corrupt)`);
        offset = (offset + size) % POOL_PERIOD;
        n++;
        bytes += m.length;
      }
      const sent = await done;
      if (n !== count || sent !== BigInt(bytes)) throw new Error(`got ${n}/${count} elements, ${bytes} bytes, server sent ${sent}`);
      return bytes;
    };
    const r = await measureThroughput(transfer, opts);
    return { ...r, messages: r.bytes / size };
  } finally {
    link.close();
  }
}
