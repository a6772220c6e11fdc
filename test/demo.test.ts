/**
 * The guided tour (`npm start`) as a reader meets it: it passes every check,
 * every line fits in 100 columns, every section names a source file that
 * exists and explains itself in one line; piped into `head` it stops quietly
 * (no EPIPE crash) and Ctrl-C ends it with exit 130 — and neither leaves a
 * temp dir behind (the child gets a TMPDIR of its own to check).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { MAX_WIDTH, visibleWidth } from "../apps/demo/tour.js";

const ROOT = fs.realpathSync(fileURLToPath(new URL("../../", import.meta.url)));
const MAIN = path.join(ROOT, "dist", "apps", "demo", "main.js");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  leftovers: string[];
}

/** Runs the tour with a private TMPDIR; `drive` may act on the child as output arrives. */
function runTour(drive: (out: string, child: ReturnType<typeof spawn>) => void = () => {}, timeoutMs = 120_000): Promise<Run> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "roam-demo-test-"));
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, TMPDIR: tmp, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (d: string) => {
    stdout += d;
    drive(stdout, child);
  });
  child.stdout!.on("error", () => undefined);
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const leftovers = fs.readdirSync(tmp);
      fs.rmSync(tmp, { recursive: true, force: true });
      resolve({ code, signal, stdout, stderr, leftovers });
    });
  });
}

test("the tour passes, fits in 100 columns, and every section says why and where", { timeout: 150_000 }, async () => {
  const r = await runTour();
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout.slice(-2000)}\n${r.stderr}`);
  assert.match(r.stdout, /all checks passed/);
  assert.doesNotMatch(r.stdout, /✗/);
  const lines = r.stdout.split("\n");
  const wide = lines.filter((l) => visibleWidth(l) > MAX_WIDTH);
  assert.deepEqual(wide, [], "lines wider than 100 columns");
  const headings = lines.flatMap((l, i) => (/^▸ \d+\/\d+ /.test(l) ? [i] : []));
  assert.ok(headings.length >= 8, `${headings.length} sections`);
  for (const i of headings) {
    const why = lines[i + 1]!;
    const source = lines[i + 2]!;
    assert.match(why, /^ {2}\S/, `section "${lines[i]}" explains itself in one line`);
    assert.match(source, /^ {2}source: /, `section "${lines[i]}" names its source`);
    for (const file of source.replace(/^ {2}source: /, "").replace(/ \([^)]*\)/g, "").split(", ")) {
      const p = file.trim();
      assert.ok(fs.existsSync(path.join(ROOT, p)), `source file ${p} exists`);
    }
  }
  assert.deepEqual(r.leftovers, [], "temp dirs left behind");
});

test("piped into head: stops quietly, cleans up", { timeout: 60_000 }, async () => {
  // What `npm start | head -3` does: the reader goes away after a few lines.
  const r = await runTour((out, child) => {
    if (out.split("\n").length > 12 && !child.stdout!.destroyed) child.stdout!.destroy();
  });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EPIPE|Error/);
  assert.deepEqual(r.leftovers, [], "temp dirs left behind");
});

test("Ctrl-C: exit 130, servers closed, temp dir removed", { timeout: 60_000 }, async () => {
  let sent = false;
  const r = await runTour((out, child) => {
    // Interrupted in the middle of the RPC sections (servers up, a Unix socket in the temp dir).
    if (!sent && /▸ 3\/\d+ /.test(out)) {
      sent = true;
      child.kill("SIGINT");
    }
  });
  assert.ok(sent, "the tour reached section 3");
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stderr, "");
  assert.deepEqual(r.leftovers, [], "temp dirs left behind");
});
