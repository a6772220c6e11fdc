/**
 * The import-boundary check (.dependency-cruiser.cjs, run by scripts/test.sh
 * before the tests): the real tree passes, and each rule fails on a small
 * tree that breaks it (an upward import, a cycle, an app reaching into src/).
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CONFIG = path.join(ROOT, ".dependency-cruiser.cjs");
const DEPCRUISE = path.join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");

interface Run {
  code: number;
  out: string;
}

function depcruise(cwd: string, dirs: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [DEPCRUISE, "--config", CONFIG, "--output-type", "err", ...dirs],
      { cwd, env: { ...process.env, ...env }, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

/** A throwaway tree laid out like the repository: { "src/codec/a.ts": "..." }. */
function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "roam-bounds-"));
  const tsconfig = { compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", strict: true }, include: ["src", "apps", "bench"] };
  fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

async function check(files: Record<string, string>, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const dir = tree(files);
  try {
    const dirs = ["src", "apps", "bench"].filter((d) => fs.existsSync(path.join(dir, d)));
    return await depcruise(dir, dirs, env);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const LEAF = "export const x = 1;\n";

test("the repository passes the boundary check", { timeout: 300_000 }, async () => {
  const r = await depcruise(ROOT, ["src", "apps", "bench", "stress", "packages"]);
  assert.equal(r.code, 0, r.out);
});

// One tree per outcome (each run of dependency-cruiser costs seconds of start-up).

test("imports down the floors, through the entry points, and type-only cycles inside a folder pass", { timeout: 120_000 }, async () => {
  const r = await check(
    {
      "src/codec/writer.ts": LEAF,
      "src/wire/message.ts": 'export { x } from "../codec/writer.js";\n',
      "src/session/link.ts": 'export { x } from "../wire/message.js";\nimport type { D } from "./diagnostics.js";\nexport type L = { d: D };\n',
      "src/session/diagnostics.ts": 'import type { L } from "./link.js";\nexport type D = { l?: L };\n',
      "src/transport/node.ts": 'export { x } from "../session/link.js";\n',
      "src/node.ts": 'export { x } from "./transport/node.js";\n',
      "apps/demo/main.ts": 'import { x } from "../../src/node.js";\nconsole.log(x);\n',
      "bench/rpc.ts": 'import { x } from "../src/node.js";\nconsole.log(x);\n',
    },
    { ROAM_BOUNDARIES_ENTRY_POINTS: "1" },
  );
  assert.equal(r.code, 0, r.out);
});

test("every rule fails on an import that breaks it, naming the rule and the import", { timeout: 120_000 }, async () => {
  const r = await check(
    {
      // upward: codec importing the session
      "src/codec/writer.ts": 'import { x } from "../session/link.js";\nexport const y = x;\n',
      "src/session/link.ts": LEAF,
      // upward through a type-only import (as schema.ts naming Tx/Rx did)
      "src/wire/message.ts": 'import type { T } from "../session/types.js";\nexport type U = T;\n',
      "src/session/types.ts": "export type T = number;\n",
      // a cycle of runtime imports inside one folder
      "src/session/a.ts": 'import { b } from "./b.js";\nexport const a = () => b;\n',
      "src/session/b.ts": 'import { a } from "./a.js";\nexport const b = () => a;\n',
      // a type-only cycle across two folders of one floor
      "src/transport/a.ts": 'import type { B } from "../proxy/b.js";\nexport type A = { b: B };\n',
      "src/proxy/b.ts": 'import type { A } from "../transport/a.js";\nexport type B = { a?: A };\n',
      // the library reaching into an app
      "src/session/c.ts": 'import { z } from "../../apps/demo/main.js";\nexport const c = z;\n',
      "apps/demo/main.ts": "export const z = 1;\n",
      // bench past the entry points
      "bench/rpc.ts": 'import { x } from "../src/session/link.js";\nconsole.log(x);\n',
    },
    { ROAM_BOUNDARIES_ENTRY_POINTS: "1" },
  );
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /no-upward-import-from-codec: src\/codec\/writer\.ts → src\/session\/link\.ts/);
  assert.match(r.out, /no-upward-import-from-schema-wire: src\/wire\/message\.ts → src\/session\/types\.ts/);
  assert.match(r.out, /no-circular: src\/session\/(a|b)\.ts/);
  assert.match(r.out, /no-circular-across-folders: src\/(transport\/a|proxy\/b)\.ts/);
  assert.match(r.out, /src-does-not-import-apps-or-tests: src\/session\/c\.ts → apps\/demo\/main\.ts/);
  assert.match(r.out, /apps-bench-use-entry-points: bench\/rpc\.ts → src\/session\/link\.ts/);
});
