/**
 * A test guest of the SHM hub: a child process (spawned with a ticket) or a
 * worker thread (spawnWorker). Serves Testbed and GuestTest; exits when it
 * detaches.
 */
import { isMainThread } from "node:worker_threads";
import { testbedImpl } from "../../apps/testbed/impl.js";
import { Testbed } from "../../apps/testbed/testbed.js";
import { client, serve } from "../../src/session/serve.js";
import type { Link } from "../../src/session/link.js";
import { establishGuest, ShmGuest, type ShmTransport } from "../../src/transport/shm/index.js";
import { GuestTest } from "./shm-api.js";

// `node --test dist/test/` also runs this file on its own: without a ticket it does nothing.
const launched = ShmGuest.isWorkerGuest() || process.argv.some((a) => a.startsWith("--hub-path=") || a.startsWith("--attach="));
if (launched) start();

function start(): void {
  const attachArg = process.argv.find((a) => a.startsWith("--attach="));
  const guest = ShmGuest.isWorkerGuest()
    ? ShmGuest.fromWorkerData()
    : attachArg
      ? ShmGuest.attachPath(attachArg.slice("--attach=".length))
      : ShmGuest.fromArgs();
  let link: Link;

  const dispatcher = serve(Testbed, testbedImpl).add(GuestTest, {
    hang: () => new Promise<void>(() => {}),
    callHost: (message, ctx) => client(Testbed, ctx.connection).echo(message),
    writeMalformed: (kind) => {
      const g2h = guest.segment.guest(guest.peerId).g2h;
      const off = g2h.grant(24);
      if (off < 0) throw new Error("ring full");
      const dv = guest.segment.dv;
      const base = g2h.data + off;
      dv.setUint32(base, kind === 1 ? 20 : 24, true); // kind 1: bad length; else unknown msg_type
      dv.setUint32(base + 4, kind === 1 ? 1 : 99, true);
      dv.setUint32(base + 8, 1, true);
      dv.setBigUint64(base + 12, 0n, true);
      dv.setUint32(base + 20, 0, true);
      g2h.commit(24);
    },
    pid: () => process.pid,
    pause: (ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        // busy: this guest reads nothing until it returns
      }
    },
    viaVirtual: async (message) => {
      const conn = await link.connect({ metadata: [["from", "guest"]] });
      try {
        return await client(Testbed, conn).echo(message);
      } finally {
        conn.close();
      }
    },
    openChannels: () => (link.transport as ShmTransport).stats.channelsOpen,
    blocks: async (count, size, out) => {
      const block = new Uint8Array(size).fill(7);
      for (let i = 0; i < count; i++) await out.send(block);
    },
    drain: async (input) => {
      let n = 0n;
      for await (const b of input) n += BigInt(b.length);
      return n;
    },
  });

  const spin = process.env.ROAM_SHM_SPIN;
  link = establishGuest(guest, dispatcher, {
    ...(spin !== undefined ? { spinMicros: Number(spin) } : {}),
    acceptConnections: () => dispatcher,
  });
  guest.onDetach(() => {
    if (isMainThread) setTimeout(() => process.exit(0), 20).unref();
  });
}
