/**
 * The fixtures in test/fixtures are copies of the shared interop contract
 * (test/fixtures/README.md). When that contract is checked out next to the
 * repository (../shared), every copied file must be byte-identical to it.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const FIXTURES = fileURLToPath(new URL("../../test/fixtures/", import.meta.url));
const SHARED = process.env["ROAM_SHARED_DIR"] ?? fileURLToPath(new URL("../../../shared/", import.meta.url));

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

test("fixtures hold the golden vectors and Testbed ids", () => {
  const files = walk(FIXTURES).map((p) => relative(FIXTURES, p));
  assert.ok(files.includes("golden-vectors/MANIFEST.md"));
  assert.ok(files.includes("testbed/method-ids.json"));
  assert.ok(files.filter((f) => f.startsWith("golden-vectors/wire/")).length >= 20, "wire vectors present");
});

test("fixtures equal ../shared byte for byte (when ../shared is present)", (t) => {
  if (!existsSync(join(SHARED, "golden-vectors"))) {
    t.skip(`no shared interop contract at ${SHARED}: nothing to compare against (the fixtures themselves are used)`);
    return;
  }
  for (const sub of ["golden-vectors", "testbed"]) {
    const shared = walk(join(SHARED, sub)).map((p) => relative(SHARED, p));
    const ours = walk(join(FIXTURES, sub)).map((p) => relative(FIXTURES, p));
    if (sub === "golden-vectors") assert.deepEqual(ours, shared, "same file list");
    for (const f of sub === "testbed" ? ["testbed/method-ids.json"] : shared) {
      assert.ok(readFileSync(join(FIXTURES, f)).equals(readFileSync(join(SHARED, f))), `${f} differs from ${SHARED}`);
    }
  }
});
