/**
 * `installDiagnosticsSignal()`: on SIGUSR1 (like the Rust reference), print
 * what every live server, SHM host and link of this process has in flight
 * to stderr — calls with their age, channels with their credit and whether
 * they are paused. `kill -USR1 <pid>` on a hung process shows where it hangs.
 */
import { formatDiagnostics, processDiagnostics, type Diagnostics } from "../session/diagnostics.js";

export interface DiagnosticsSignalOptions {
  /** Default "SIGUSR1". */
  signal?: NodeJS.Signals;
  /** Where the text goes (default: process.stderr). */
  write?: (text: string) => void;
  /** What to dump (default: everything live in the process). */
  snapshot?: () => Diagnostics[];
}

/** Installs the handler; returns a function that removes it. */
export function installDiagnosticsSignal(options: DiagnosticsSignalOptions = {}): () => void {
  const signal = options.signal ?? "SIGUSR1";
  const write = options.write ?? ((text: string) => void process.stderr.write(text));
  const snapshot = options.snapshot ?? processDiagnostics;
  const handler = () => {
    let text: string;
    try {
      const snaps = snapshot();
      text = `=== roam diagnostics (pid ${process.pid}, ${new Date().toISOString()}) ===\n` + (snaps.length === 0 ? "nothing live\n" : formatDiagnostics(snaps));
    } catch (e) {
      text = `=== roam diagnostics failed: ${(e as Error)?.stack ?? String(e)}\n`;
    }
    write(text);
  };
  process.on(signal, handler);
  return () => void process.off(signal, handler);
}

export { formatDiagnostics, processDiagnostics };
export type { Diagnostics };
