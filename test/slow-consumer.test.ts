/**
 * A consumer that keeps reading, but slower than its producer, on every
 * transport (TCP, Unix socket, WebSocket, SHM with a worker-thread guest).
 * At every take the receiver's buffer plus the credit the sender still holds
 * must stay within one window (flow.channel.*): the receiver must count what
 * it still buffers before it grants more. A paused consumer (the other tests)
 * does not show this: the bug only appears while data keeps being consumed.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { arg, defineService, method } from "../src/service/define.js";
import { t } from "../src/schema/index.js";
import { channel } from "../src/session/channel/pair.js";
import type { Rx } from "../src/session/channel/rx.js";
import { client, serve } from "../src/session/serve.js";
import { establishHostPeer, ShmHost } from "../src/transport/shm/index.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { GuestTest } from "./helpers/shm-api.js";
import { GUEST_SCRIPT } from "./helpers/shm-harness.js";
import { startServer, TRANSPORTS, within } from "./helpers/testbed-server.js";

const WINDOW = 4096;
const COUNT = 300;
const SIZE = 256; // 300 x 256 B = 75 KiB, ~19 windows

const Producer = defineService("Producer", {
  blocks: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.unit),
});
const producerImpl = {
  blocks: async (count: number, size: number, out: { send(b: Uint8Array): Promise<void> }) => {
    for (let i = 0; i < count; i++) await out.send(new Uint8Array(size).fill(i & 0xff));
  },
};

/** A short pause per element: the producer is always ahead of this consumer. */
const lag = () => new Promise<void>((r) => setTimeout(r, 1));

/** Takes every element slowly, checking the bound before and after each take. */
async function consumeSlowly(rx: Rx<Uint8Array>, byteOf: (n: number) => number): Promise<{ peakBuffered: number; peakInUse: number; n: number }> {
  let peakBuffered = 0;
  let peakInUse = 0;
  let n = 0;
  const check = (when: string) => {
    const st = rx.stats();
    assert.equal(st.window, WINDOW);
    peakBuffered = Math.max(peakBuffered, st.bufferedBytes);
    peakInUse = Math.max(peakInUse, st.bufferedBytes + st.creditOutstanding);
    assert.ok(
      st.bufferedBytes + st.creditOutstanding <= st.window,
      `${when} element ${n}: buffered ${st.bufferedBytes} + outstanding ${st.creditOutstanding} exceeds the window ${st.window}`,
    );
  };
  for (;;) {
    check("before");
    const r = await rx.next();
    if (r.done) break;
    assert.equal(r.value.length, SIZE);
    assert.equal(r.value[0], byteOf(n), "in order, intact");
    n++;
    check("after");
    await lag();
  }
  return { peakBuffered, peakInUse, n };
}

describe("a slow but steady consumer bounds the buffer to one window", () => {
  for (const kind of TRANSPORTS) {
    test(`over ${kind}`, async () => {
      const env = await startServer(kind, { dispatcher: serve(Producer, producerImpl), initialChannelCredit: WINDOW });
      try {
        const link = await env.connect({ initialChannelCredit: WINDOW });
        const [tx, rx] = channel<Uint8Array>();
        const done = client(Producer, link.root).blocks(COUNT, SIZE, tx);
        const r = await within(consumeSlowly(rx, (n) => n & 0xff), 60_000, "slow consumer");
        await done;
        assert.equal(r.n, COUNT);
        assert.ok(r.peakBuffered > 0, "data did queue up at the receiver");
        link.close();
      } finally {
        await env.cleanup();
      }
    });
  }

  const hosts: ShmHost[] = [];
  after(async () => {
    await Promise.all(hosts.map((h) => h.close()));
  });
  test("over SHM (worker-thread guest)", async () => {
    const host = ShmHost.create({ backing: "memory", initialCredit: WINDOW });
    hosts.push(host);
    const ticket = host.addPeer({ name: "slow-consumer" });
    const worker = ticket.spawnWorker(GUEST_SCRIPT);
    try {
      const link = establishHostPeer(host, ticket.peerId, serve(Testbed, testbedImpl));
      await host.waitAttached(ticket.peerId, 10_000);
      const [tx, rx] = channel<Uint8Array>();
      const done = client(GuestTest, link.root).blocks(COUNT, SIZE, tx);
      const r = await within(consumeSlowly(rx, () => 7), 60_000, "slow consumer over SHM");
      await done;
      assert.equal(r.n, COUNT);
      assert.ok(r.peakBuffered > 0, "data did queue up at the receiver");
      link.close();
    } finally {
      await worker.terminate();
    }
  });
});
