/**
 * The planted-bug list (scripts/planted-bugs-list.mjs, issue 19) must keep
 * pointing at real code: each bug is a text substitution in the compiled
 * output, and a refactor that moves the code makes scripts/planted-bugs.mjs
 * unable to plant it. This checks, on every `npm test`, that each `find` text
 * occurs exactly once in its compiled file and that each named test file and
 * test-name pattern still exists.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fs.realpathSync(fileURLToPath(new URL("../../", import.meta.url)));

interface Patch {
  file: string;
  find: string;
  replace: string;
}
interface Bug extends Partial<Patch> {
  id: string;
  item: number;
  patches?: Patch[];
  tests?: string[];
  testName?: string;
  command?: string[];
  env?: Record<string, string>;
}

test("every planted bug can still be planted, and the tests it names exist", async () => {
  const { BUGS, patchesOf } = (await import(pathToFileURL(path.join(ROOT, "scripts/planted-bugs-list.mjs")).href)) as {
    BUGS: Bug[];
    patchesOf: (bug: Bug) => Patch[];
  };
  assert.ok(BUGS.length >= 30, `the list has ${BUGS.length} entries`);
  const items = new Set(BUGS.map((b) => b.item));
  for (let i = 1; i <= 12; i++) assert.ok(items.has(i), `issue 19 item ${i} has a planted bug`);
  const problems: string[] = [];
  for (const bug of BUGS) {
    const patches = patchesOf(bug);
    if (patches.length === 0 && !bug.command && !bug.env) problems.push(`${bug.id}: plants nothing (no patch, command or env)`);
    for (const p of patches) {
      const file = path.join(ROOT, p.file);
      if (!fs.existsSync(file)) {
        problems.push(`${bug.id}: ${p.file} does not exist`);
        continue;
      }
      const n = fs.readFileSync(file, "utf8").split(p.find).length - 1;
      if (n !== 1) problems.push(`${bug.id}: ${JSON.stringify(p.find)} occurs ${n} times in ${p.file}`);
    }
    const sources = (bug.tests ?? []).map((t) => path.join(ROOT, "test", `${t}.test.ts`));
    for (const s of sources) if (!fs.existsSync(s)) problems.push(`${bug.id}: no test file ${path.relative(ROOT, s)}`);
    if (bug.testName && !sources.some((s) => fs.existsSync(s) && fs.readFileSync(s, "utf8").includes(bug.testName!))) {
      problems.push(`${bug.id}: no test named like ${JSON.stringify(bug.testName)} in ${bug.tests?.join(", ")}`);
    }
  }
  assert.deepEqual(problems, [], "update scripts/planted-bugs-list.mjs to where the code now is");
});
