/** A service used only by benchmarks: bulk streaming with a verifiable pattern. */
import { arg, defineService, type ImplementationOf, method, t } from "roam-ts";
import { patternSlice, POOL_PERIOD } from "../lib/pattern.js";

export const Bench = defineService("Bench", {
  /** Streams `count` elements of `size` bytes of the shared pattern; returns the bytes sent. */
  stream: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.u64),
  /** Receives elements until close; returns the bytes received (and verifies them against the pattern). */
  sink: method([arg("input", t.rx(t.bytes))], t.u64),
  /** Unary echo of bytes. */
  echoBytes: method([arg("data", t.bytes)], t.bytes),
});

export const benchImpl: ImplementationOf<typeof Bench> = {
  stream: async (count, size, out) => {
    let off = 0;
    let sent = 0n;
    for (let i = 0; i < count; i++) {
      await out.send(patternSlice(off, size));
      off = (off + size) % POOL_PERIOD;
      sent += BigInt(size);
    }
    return sent;
  },
  sink: async (input) => {
    let n = 0n;
    for await (const b of input) n += BigInt(b.length);
    return n;
  },
  echoBytes: (data) => data,
};
