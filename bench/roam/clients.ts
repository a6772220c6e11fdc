/** roam measurements against a roam-server process (see roam-server.ts). */
import { measureConcurrent, measureSequential, type ConcurrentResult, type MeasureOpts } from "../lib/harness.js";
import { startPeerServer, type PeerServer, type Transport } from "../peers/peer-server.js";
import { client } from "../../src/session/serve.js";
import { connectTcp, connectUnix } from "../../src/transport/node.js";
import type { Link } from "../../src/session/link.js";
import type { PeerOptions } from "../../src/transport/link-options.js";
import { Testbed } from "../../apps/testbed/testbed.js";

export function startRoamServer(t: Transport, extraArgs: string[] = []): Promise<PeerServer> {
  void extraArgs;
  return startPeerServer("bench/roam/roam-server.js", t, "roam.sock");
}

export async function connectRoam(server: PeerServer, o: PeerOptions = {}): Promise<Link> {
  if (server.transport === "unix") return connectUnix({ ...o, path: server.addr });
  const i = server.addr.lastIndexOf(":");
  return connectTcp({ ...o, host: server.addr.slice(0, i), port: Number(server.addr.slice(i + 1)) });
}

/** Unary echo of a 16-byte string: sequential, or `inflight` calls outstanding. */
export async function runRoamUnary(server: PeerServer, inflight: number, opts: MeasureOpts): Promise<ConcurrentResult> {
  const link = await connectRoam(server);
  try {
    const tb = client(Testbed, link.root);
    const msg = "0123456789abcdef";
    const call = async (): Promise<void> => {
      const r = await tb.echo(msg);
      if (r.length !== 16) throw new Error("bad echo");
    };
    return inflight === 1 ? { ...(await measureSequential(call, opts)), inflight: 1 } : await measureConcurrent(call, inflight, opts);
  } finally {
    link.close();
  }
}
