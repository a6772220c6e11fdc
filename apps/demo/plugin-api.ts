/** The services of the plugin-host demo: what the host offers cells, and what each cell offers. */
import { arg, defineService, method, t } from "roam-ts";

/** Served by the host to every cell. */
export const HostApi = defineService("PluginHost", {
  /** A cell announces itself; the host answers with the greeting it should use. */
  hello: method([arg("cell", t.string), arg("pid", t.u32)], t.string),
  /** The host's view of the time, in milliseconds since the hub started. */
  uptime: method([], t.f64),
});

/** Served by each cell (a guest process or a worker thread). */
export const CellApi = defineService("PluginCell", {
  /** Name, kind and pid of the cell. */
  describe: method([], t.string),
  /** Calls back into the host (HostApi.hello) and returns what it said. */
  greetHost: method([], t.string),
  /** Streams `count` blocks of `size` bytes to the caller. */
  produce: method([arg("count", t.u32), arg("size", t.u32), arg("out", t.tx(t.bytes))], t.u64),
  /** Consumes blocks from the caller; returns the byte count. */
  consume: method([arg("input", t.rx(t.bytes))], t.u64),
});
