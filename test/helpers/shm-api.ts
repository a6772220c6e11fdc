/** A small service the SHM test guests serve besides Testbed. */
import { arg, defineService, method } from "../../src/service/define.js";
import { t } from "../../src/schema/index.js";

export const GuestTest = defineService("GuestTest", {
  /** Never answers (a call in flight when the guest dies). */
  hang: method([], t.unit),
  /** Calls the host's Testbed.echo on the same link and returns its answer. */
  callHost: method([arg("message", t.string)], t.string),
  /** Writes a malformed frame into the guest→host buffer, then answers (the answer never arrives). */
  writeMalformed: method([arg("kind", t.u32)], t.unit),
  /** Blocks the guest's event loop for `ms` (it consumes nothing meanwhile), then answers. */
  pause: method([arg("ms", t.u32)], t.unit),
  /** The guest's process id. */
  pid: method([], t.u32),
  /** Streams `count` byte blocks of `size` bytes to the host's Testbed.sum-like sink via a host call. */
  blocks: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.unit),
  /** Opens a virtual connection to the host and calls Testbed.echo on it. */
  viaVirtual: method([arg("message", t.string)], t.string),
  /** The guest transport's open channel count (after the calls settle). */
  openChannels: method([], t.u32),
  /** Receives byte blocks and returns their total length. */
  drain: method([arg("input", t.rx(t.bytes))], t.u64),
});
