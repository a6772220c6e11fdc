// Plants, one at a time, the bugs issue 19 found unguarded, into the compiled
// code (dist/), runs the tests written to catch each one, and checks that they
// FAIL; then restores the file. Proof that each test earns its place.
//
//   npx tsc -p . && node scripts/planted-bugs.mjs [id...]      # ids like 1a, 9c
//
// Writes the failing output of every run to docs/planted-bugs.log. Exits
// non-zero if any planted bug went unnoticed (or could not be planted: the
// code it targets moved, so the list below needs updating).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { BUGS, patchesOf } from "./planted-bugs-list.mjs";

// A fake apt-get that always fails (for the install-script entries).
const fakeBin = process.env.PLANTED_FAKEBIN ?? "/tmp/roam-fake-apt";
fs.mkdirSync(fakeBin, { recursive: true });
fs.writeFileSync(`${fakeBin}/apt-get`, "#!/bin/sh\necho 'fake apt-get: failing on purpose' >&2\nexit 100\n", { mode: 0o755 });

const only = process.argv.slice(2);
const selected = only.length ? BUGS.filter((b) => only.includes(b.id)) : BUGS;
const logPath = process.env.PLANTED_BUGS_LOG ?? "docs/planted-bugs.log";
const log = [];
const out = (s) => {
  console.log(s);
  log.push(s);
};
let unnoticed = 0;
out(`# planted bugs, ${new Date().toISOString()}, node ${process.version}`);
for (const bug of selected) {
  const patches = patchesOf(bug);
  const originals = new Map();
  let planted = true;
  for (const p of patches) {
    const exists = fs.existsSync(p.file);
    if (exists && !originals.has(p.file)) originals.set(p.file, fs.readFileSync(p.file, "utf8"));
    const cur = exists ? fs.readFileSync(p.file, "utf8") : "";
    const count = exists ? cur.split(p.find).length - 1 : 0;
    if (count !== 1) {
      out(`\n## ${bug.id} (item ${bug.item}): ${bug.title}\nCANNOT PLANT: ${JSON.stringify(p.find)} occurs ${count} times in ${p.file}`);
      planted = false;
      break;
    }
    fs.writeFileSync(p.file, cur.replace(p.find, p.replace));
  }
  try {
    if (!planted) {
      unnoticed++;
      continue;
    }
    const files = (bug.tests ?? []).map((t) => `dist/test/${t}.test.js`);
    const args = ["--test", "--test-reporter=spec", "--test-timeout=120000"];
    if (bug.testName) args.push("--test-name-pattern", bug.testName);
    const [cmd, cmdArgs] = bug.command ? [bug.command[0], bug.command.slice(1)] : [process.execPath, [...args, ...files]];
    const r = spawnSync(cmd, cmdArgs, {
      encoding: "utf8",
      env: { ...process.env, ...(bug.env ?? {}) },
      timeout: 300_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const text = `${r.stdout}\n${r.stderr}`;
    const failing = text
      .split("\n")
      .filter((l) => /^\s*✖ /.test(l) && !/failing tests:/.test(l))
      .map((l) => l.trim());
    const reasons = text
      .split("\n")
      .filter((l) => /AssertionError|Error \[|Error:|ERROR|exceeds|expected|unavailable/i.test(l) && !/^\s*at /.test(l))
      .map((l) => l.trim())
      .filter((l, i, a) => a.indexOf(l) === i)
      .slice(0, 6);
    // A command (an install script) must exit non-zero; a test run must fail at least one test.
    const caught = r.status !== 0 && (bug.command ? true : failing.length > 0);
    if (!caught) unnoticed++;
    out(`\n## ${bug.id} (item ${bug.item}): ${bug.title}`);
    for (const p of patches) out(`planted in ${p.file}: ${JSON.stringify(p.find)} -> ${JSON.stringify(p.replace)}`);
    out(`ran: ${bug.command ? bug.command.join(" ") : `node ${args.join(" ")} ${files.join(" ")}`}${bug.env ? ` (env ${JSON.stringify(bug.env)})` : ""}`);
    out(`result: ${caught ? "CAUGHT" : "NOT CAUGHT"} (exit ${r.status}${r.signal ? `, ${r.signal}` : ""})`);
    for (const l of [...new Set(failing)].slice(0, 8)) out(`  ${l}`);
    for (const l of reasons) out(`    ${l.slice(0, 300)}`);
  } finally {
    for (const [file, text] of originals) fs.writeFileSync(file, text);
  }
}
out(`\n${selected.length - unnoticed}/${selected.length} planted bugs caught`);
if (!only.length || process.env.PLANTED_BUGS_LOG) fs.writeFileSync(logPath, log.join("\n") + "\n");
else fs.appendFileSync(logPath.replace(/\.log$/, ".partial.log"), log.join("\n") + "\n");
process.exit(unnoticed ? 1 : 0);
