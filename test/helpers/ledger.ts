/** The service the multi-process dedup tests and their server processes share. */
import { t, defineService, method, arg } from "../../src/index.js";

export const Ledger = defineService("Ledger", {
  /** Appends `start`/`done` lines to the journal file; returns who ran it. */
  pay: method([arg("id", t.string), arg("cents", t.u32)], t.string),
});
