/**
 * The frame of the guided tour (`npm start`): sections, output that fits in
 * 100 columns (long results wrap at word boundaries), and clean-up that runs
 * however the tour ends — normally, on Ctrl-C (SIGINT), SIGTERM, or when the
 * reader of stdout goes away (`npm start | head` gives EPIPE).
 *
 * A section is a small self-contained object; add one by writing a file that
 * exports a `TourSection` and listing it in `main.ts`:
 *
 *   export const mySection: TourSection = {
 *     title: "reconnect",
 *     what: "A link that drops comes back by itself: calls in flight fail typed, new ones succeed.",
 *     source: "apps/demo/reconnect.ts",
 *     async run(tour) { return [{ ok: true, where: "tcp", what: "…", result: "…" }]; },
 *   };
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Widest line the tour prints (narrower when the terminal is). */
export const MAX_WIDTH = 100;
export const width = Math.max(60, Math.min(MAX_WIDTH, process.stdout.isTTY ? process.stdout.columns || MAX_WIDTH : MAX_WIDTH));

const useColour = process.stdout.isTTY === true && !("NO_COLOR" in process.env);
const paint = (code: string) => (s: string) => (useColour ? `\x1b[${code}m${s}\x1b[0m` : s);
export const c = { bold: paint("1"), dim: paint("2"), red: paint("31"), green: paint("32"), yellow: paint("33"), cyan: paint("36") };

/** One checked step of a section. */
export interface Row {
  ok: boolean;
  /** Where it ran: a transport (tcp, unix, ws) or a plugin cell. */
  where: string;
  what: string;
  result: string;
  /** How long it took, already formatted (optional). */
  time?: string;
}

export interface TourSection {
  title: string;
  /** ONE line (≤ 100 columns): what the section shows and why that matters to you. */
  what: string;
  /** The file whose code the section runs, from the repository root. */
  source: string;
  /** Words the section's rows use that need one (term → a few words). */
  terms?: Record<string, string>;
  run(tour: Tour): Promise<Row[]>;
}

/** What sections get from the tour. */
export interface Tour {
  /** A fresh temporary directory, removed when the tour ends (however it ends). */
  tempDir(prefix?: string): string;
  /** Runs `fn` when the tour ends (last registered, first run); errors are ignored. */
  onCleanup(fn: () => unknown): void;
  /** A line to print after the section's table (wrapped to the tour's width). */
  note(line: string): void;
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return "";
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 100) return `${ms.toFixed(2)} ms`;
  return `${Math.round(ms)} ms`;
}

/** Visible width: ANSI colours take none; emoji and CJK take two columns. */
export function visibleWidth(s: string): number {
  let n = 0;
  // eslint-disable-next-line no-control-regex
  for (const ch of s.replace(/\x1b\[[0-9;]*m/g, "")) {
    const cp = ch.codePointAt(0)!;
    n += cp >= 0x1f300 || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xff00 && cp <= 0xff60) ? 2 : 1;
  }
  return n;
}

function pad(s: string, n: number, right = false): string {
  const fill = " ".repeat(Math.max(0, n - visibleWidth(s)));
  return right ? fill + s : s + fill;
}

/** Word-wraps plain text to `cols` columns; a word longer than a line is split. */
export function wrap(text: string, cols: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/ +/)) {
    let w = word;
    while (visibleWidth(w) > cols) {
      if (line) lines.push(line);
      line = "";
      lines.push(w.slice(0, cols));
      w = w.slice(cols);
    }
    if (!line) line = w;
    else if (visibleWidth(line) + 1 + visibleWidth(w) <= cols) line += ` ${w}`;
    else {
      lines.push(line);
      line = w;
    }
  }
  if (line || lines.length === 0) lines.push(line);
  return lines;
}

let outputClosed = false;

/** Prints a line (nothing once stdout's reader has gone). */
export function say(line = ""): void {
  if (!outputClosed) process.stdout.write(`${line}\n`);
}

/** The rows as a table within `width` columns; the result column wraps. */
export function printTable(rows: Row[]): void {
  if (rows.length === 0) return;
  const head = ["", "where", "what", "result", "time"];
  const cells = rows.map((r) => [r.ok ? c.green("✓") : c.red("✗"), r.where, r.what, r.result, r.time ?? ""]);
  const widths = head.map((h, i) => Math.max(visibleWidth(h), ...cells.map((row) => visibleWidth(row[i]!))));
  const fixed = 2 + widths[0]! + widths[1]! + widths[2]! + widths[4]! + 2 * 4;
  widths[3] = Math.max(20, Math.min(widths[3]!, width - fixed));
  const line = (cols: string[]) => ("  " + cols.map((col, i) => pad(col, widths[i]!, i === 4)).join("  ")).trimEnd();
  say(c.dim(line(head)));
  say(c.dim("  " + widths.map((w) => "─".repeat(w)).join("  ")));
  for (const row of cells) {
    const plain = row[3]!.replace(/\x1b\[[0-9;]*m/g, "");
    const coloured = plain !== row[3];
    const parts = visibleWidth(row[3]!) <= widths[3]! ? [row[3]!] : wrap(plain, widths[3]!).map((p) => (coloured ? c.yellow(p) : p));
    say(line([row[0]!, row[1]!, row[2]!, parts[0]!, row[4]!]));
    for (const more of parts.slice(1)) say(line(["", "", "", more, ""]));
  }
}

/** Section heading: number, title, the one-line why, the source file, and the terms it uses. */
function printHeading(n: number, of: number, s: TourSection): void {
  say();
  say(c.bold(`▸ ${n}/${of} ${s.title}`));
  for (const l of wrap(s.what, width - 2)) say(`  ${l}`);
  say(c.dim(`  source: ${s.source}`));
  for (const [term, meaning] of Object.entries(s.terms ?? {})) {
    const lines = wrap(`${term}: ${meaning}`, width - 4);
    lines.forEach((l, i) => say(c.dim(`${i === 0 ? "  · " : "    "}${l}`)));
  }
}

/**
 * Runs the sections in order and returns the number of failed checks. Clean-up
 * (temp dirs, servers, child processes) runs at the end, on SIGINT/SIGTERM, and
 * when stdout's reader goes away.
 */
export async function runTour(intro: string[], sections: TourSection[]): Promise<number> {
  const cleanups: (() => unknown)[] = [];
  const dirs: string[] = [];
  let notes: string[] = [];
  let cleaned: Promise<void> | null = null;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const fn of cleanups.reverse()) {
        try {
          await fn();
        } catch {
          // best effort: the next one still runs
        }
      }
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    })());
  const tour: Tour = {
    tempDir(prefix = "roam-demo-") {
      const d = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
    onCleanup(fn) {
      cleanups.push(fn);
    },
    note(line) {
      notes.push(line);
    },
  };
  // Leaving early: clean up, then exit (130 for Ctrl-C as shells expect; 0 when the reader left).
  const leave = (code: number) => {
    const hard = setTimeout(() => process.exit(code), 3000);
    hard.unref();
    void cleanup().finally(() => process.exit(code));
  };
  const onSigint = () => leave(130);
  const onSigterm = () => leave(143);
  process.once("SIGINT", onSigint);
  process.once("SIGTERM", onSigterm);
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
    outputClosed = true;
    leave(0);
  });
  // Last resort for the temp dirs (an exception between here and the end).
  process.once("exit", () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const started = performance.now();
  let failures = 0;
  try {
    for (const l of intro) say(l);
    for (const [i, s] of sections.entries()) {
      printHeading(i + 1, sections.length, s);
      let rows: Row[];
      try {
        rows = await s.run(tour);
      } catch (e) {
        rows = [{ ok: false, where: "-", what: "(section failed)", result: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }];
      }
      printTable(rows);
      if (notes.length > 0) say();
      for (const n of notes) for (const l of wrap(n, width - 2)) say(`  ${l}`);
      notes = [];
      failures += rows.filter((r) => !r.ok).length;
    }
  } finally {
    await cleanup();
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
  }
  const took = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  say();
  if (failures === 0) say(c.green(c.bold("all checks passed")) + c.dim(` (${took})`));
  else say(c.red(c.bold(`${failures} check(s) FAILED`)) + c.dim(` (${took})`));
  return failures;
}
