/**
 * The two packages as a user gets them. From a copy of the checkout (so the live dist/ is not
 * rebuilt under the other test files), `npm pack` builds and packs roam-ts and roam-pty; their
 * file lists hold only compiled output, README and LICENSE (and roam-ts's optional native
 * addons' sources); the two tarballs install into a fresh project (node-pty compiles there),
 * and a TypeScript ESM program against each is type-checked with `tsc --strict` (NodeNext)
 * and run: a TCP echo call through roam-ts, roam-pty's SDK types plus a check that needs no
 * daemon, and its `bin`.
 *
 * Needs git, npm and the npm registry or cache (`--prefer-offline`); a missing tool fails the
 * test. Takes about a minute, most of it node-pty's compile.
 *
 * Also here: the repository's own run-time resolution keeps ONE copy of each library module
 * (the package name, the relative paths and roam-pty's node_modules/roam-ts all reach dist/src).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import * as byName from "roam-ts";
import { Writer } from "../src/codec/writer.js";

const ROOT = fs.realpathSync(fileURLToPath(new URL("../../", import.meta.url)));
const TOTAL_MS = 540_000; // pack (two prepack builds), install (node-pty compiles), two strict checks: ~200 s at load 12

interface Run {
  stdout: string;
  stderr: string;
}

/** Runs a command; a failure (including a missing command) throws with its output. */
function run(cmd: string, args: string[], cwd: string, timeout = 240_000, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, timeout, env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        const why = e.code === "ENOENT" ? `${cmd} is not installed (needed by this test)` : e.killed ? `timed out after ${timeout} ms` : e.message;
        reject(new Error(`${cmd} ${args.join(" ")} (in ${cwd}): ${why}\n--- stdout\n${stdout.slice(-4000)}\n--- stderr\n${stderr.slice(-4000)}`));
      } else resolve({ stdout, stderr });
    });
  });
}

/** A copy of the checkout's files (tracked and untracked-but-not-ignored), without dist/ or node_modules/. */
async function stageCheckout(dest: string): Promise<void> {
  const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT);
  for (const rel of new Set(stdout.split("\0").filter(Boolean))) {
    const src = path.join(ROOT, rel);
    if (!fs.existsSync(src) || !fs.statSync(src).isFile()) continue; // deleted in the work tree
    fs.mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
    fs.copyFileSync(src, path.join(dest, rel));
  }
  // The checkout's installed tools (typescript, @types/node, …), linked entry by entry, and the
  // two workspace links `npm ci` makes: roam-ts → the root, roam-pty → packages/roam-pty.
  const nm = path.join(dest, "node_modules");
  fs.mkdirSync(nm);
  for (const entry of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (entry === "roam-ts" || entry === "roam-pty" || entry.startsWith(".package-lock")) continue;
    fs.symlinkSync(fs.realpathSync(path.join(ROOT, "node_modules", entry)), path.join(nm, entry));
  }
  fs.symlinkSync("..", path.join(nm, "roam-ts"));
  fs.symlinkSync(path.join("..", "packages", "roam-pty"), path.join(nm, "roam-pty"));
}

interface Packed {
  tarball: string;
  files: string[];
}

/** `npm pack` (which runs prepack: the build) into `dest`; its tarball and file list. */
async function pack(dir: string, dest: string): Promise<Packed> {
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dest], dir);
  // Lifecycle scripts may print before the JSON; it is the last top-level array.
  const json = JSON.parse(stdout.slice(stdout.lastIndexOf("\n[") + 1)) as { filename: string; files: { path: string }[] }[];
  assert.equal(json.length, 1);
  return { tarball: path.join(dest, json[0]!.filename), files: json[0]!.files.map((f) => f.path).sort() };
}

function checkFiles(name: string, files: string[], allowed: RegExp[], required: string[]): void {
  const stray = files.filter((f) => !allowed.some((re) => re.test(f)));
  assert.deepEqual(stray, [], `${name} packs only its compiled output, README and LICENSE`);
  for (const f of required) assert.ok(files.includes(f), `${name} packs ${f} (packed: ${files.length} files)`);
  assert.ok(!files.some((f) => /(^|\/)(test|bench|stress|apps)\//.test(f) || (/\.ts$/.test(f) && !/\.d\.ts$/.test(f))), `${name}: no tests, benches or sources`);
}

const RPC_PROGRAM = `
import { arg, client, defineService, method, serve, t, type ImplementationOf } from "roam-ts";
import { connectTcp, listenTcp } from "roam-ts/node";

const Echo = defineService("PackEcho", {
  echo: method((message = arg(t.string)) => t.string),
  add: method((a = arg(t.u64), b = arg(t.u64)) => t.u64),
});
const impl: ImplementationOf<typeof Echo> = {
  echo: (message) => message,
  add: (a, b) => a + b,
};

const server = await listenTcp({ port: 0, dispatcher: serve(Echo, impl) });
const link = await connectTcp({ port: server.port! });
const echo = client(Echo, link.root);
const said: string = await echo.echo("hello from a packed roam-ts");
const sum: bigint = await echo.add(2n ** 60n, 1n);
// @ts-expect-error: the argument is typed (a string, not a number)
void (() => echo.echo(42));
link.close();
await server.close();
console.log(JSON.stringify({ said, sum: sum.toString() }));
`;

const PTY_PROGRAM = `
import { connectPty, describeExit, isPtyError, type PtyConnection, type PtyError } from "roam-pty";
import { PtyClient, UnknownSessionCheck } from "./pty-core.js";

const e: PtyError = { tag: "UnknownSession", value: 7 };
// @ts-expect-error: PtyError is a typed enum, not any
const notAnError: PtyError = { tag: "NoSuchTag", value: 7 };
void notAnError;
const useIt: (c: PtyConnection) => Promise<unknown> = (c) => c.list();
void useIt;

let refused = "";
try {
  await connectPty({ socketPath: "/nonexistent-roam-pty-dir/daemon.sock", timeoutMs: 2000 });
} catch (err) {
  refused = (err as NodeJS.ErrnoException).code ?? String(err);
}
console.log(JSON.stringify({
  exit: describeExit({ exitCode: 3, signal: null }),
  isPtyError: isPtyError(e),
  core: typeof PtyClient,
  check: UnknownSessionCheck,
  refused,
}));
`;

const PTY_CORE_PROGRAM = `
// The browser-safe part of the SDK.
export { PtyClient } from "roam-pty/core";
import type { PtyError } from "roam-pty/core";
export const UnknownSessionCheck: PtyError["tag"] = "UnknownSession";
`;

test("the repository runs one copy of each library module", () => {
  assert.equal(byName.Writer, Writer, "roam-ts (package self-reference) and ../src/… are the same module");
  let viaWorkspace: string;
  try {
    viaWorkspace = createRequire(path.join(ROOT, "packages", "roam-pty", "package.json")).resolve("roam-ts");
  } catch (e) {
    assert.fail(`roam-pty cannot resolve roam-ts (node_modules/roam-ts, a link to the root, is made by \`npm ci\`): ${(e as Error).message}`);
  }
  assert.equal(fs.realpathSync(viaWorkspace), path.join(ROOT, "dist", "src", "index.js"));
});

test("npm pack of roam-ts and roam-pty, installed into a fresh project, type-checked and run", { timeout: TOTAL_MS }, async (t) => {
  const started = Date.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "roam-packages-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const stage = path.join(tmp, "checkout");
  const tarballs = path.join(tmp, "tarballs");
  const app = path.join(tmp, "app");
  fs.mkdirSync(tarballs);
  fs.mkdirSync(app);

  await stageCheckout(stage);
  const lib = await pack(stage, tarballs);
  checkFiles(
    "roam-ts",
    lib.files,
    [/^package\.json$/, /^README\.md$/, /^LICENSE$/, /^dist\/src\/.+\.(js|d\.ts)$/, /^native\/[^/]+\/(binding\.gyp|[^/]+\.(c|cc|h))$/, /^scripts\/build-native\.mjs$/],
    ["LICENSE", "README.md", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/node.js", "dist/src/transport/shm/index.d.ts", "dist/src/bridge/browser.js", "native/cobs/binding.gyp"],
  );
  const pty = await pack(path.join(stage, "packages", "roam-pty"), tarballs);
  checkFiles(
    "roam-pty",
    pty.files,
    [/^package\.json$/, /^README\.md$/, /^LICENSE$/, /^dist\/.+\.(js|d\.ts)$/, /^dist\/web\/(index\.html|style\.css)$/],
    ["LICENSE", "README.md", "dist/sdk.js", "dist/sdk.d.ts", "dist/sdk-core.js", "dist/cli.js", "dist/web/main.js", "dist/web/index.html", "dist/web/style.css"],
  );
  const libManifest = JSON.parse(fs.readFileSync(path.join(stage, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  assert.deepEqual(Object.keys(libManifest.dependencies).sort(), ["@noble/hashes", "@types/ws", "lossless-json", "ws"], "roam-ts's dependencies");
  const packedAt = Date.now();

  // A fresh ESM TypeScript project. npm 11 runs a dependency's install script only when the
  // project allows it: node-pty needs its build; roam-ts's native addons are optional.
  fs.writeFileSync(
    path.join(app, "package.json"),
    JSON.stringify({ name: "roam-pack-check", private: true, type: "module", allowScripts: { "node-pty": true, "roam-ts": true } }, null, 2),
  );
  const version = (p: string) => (JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", p, "package.json"), "utf8")) as { version: string }).version;
  await run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", lib.tarball, pty.tarball, `typescript@${version("typescript")}`, `@types/node@${version("@types/node")}`],
    app,
  );
  const installedAt = Date.now();
  assert.ok(!fs.lstatSync(path.join(app, "node_modules", "roam-ts")).isSymbolicLink(), "roam-ts is installed from its tarball");
  assert.ok(!fs.existsSync(path.join(app, "node_modules", "roam-ts", "node_modules", "node-pty")), "roam-ts does not bring node-pty");

  fs.writeFileSync(
    path.join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, skipLibCheck: false, types: ["node"], outDir: "out" },
      include: ["*.ts"],
    }),
  );
  fs.writeFileSync(path.join(app, "rpc.ts"), RPC_PROGRAM);
  fs.writeFileSync(path.join(app, "pty.ts"), PTY_PROGRAM);
  fs.writeFileSync(path.join(app, "pty-core.ts"), PTY_CORE_PROGRAM);
  await run(process.execPath, [path.join(app, "node_modules", "typescript", "bin", "tsc"), "-p", "."], app);

  const rpc = JSON.parse((await run(process.execPath, ["out/rpc.js"], app, 30_000)).stdout) as { said: string; sum: string };
  assert.deepEqual(rpc, { said: "hello from a packed roam-ts", sum: (2n ** 60n + 1n).toString() });
  const ptyOut = JSON.parse((await run(process.execPath, ["out/pty.js"], app, 30_000)).stdout) as Record<string, unknown>;
  assert.deepEqual(ptyOut, { exit: "exit code 3", isPtyError: false, core: "function", check: "UnknownSession", refused: "ENOENT" });
  // The bin, as npm linked it.
  const bin = path.join(app, "node_modules", ".bin", "roam-pty");
  assert.match((await run(bin, ["--version"], app, 30_000)).stdout, /^roam-pty 0\.1\.0\n$/);
  await assert.rejects(run(bin, ["ls", "--socket", path.join(tmp, "none.sock")], app, 30_000), /no server running/);

  t.diagnostic(`pack ${((packedAt - started) / 1000).toFixed(1)} s, install ${((installedAt - packedAt) / 1000).toFixed(1)} s, check ${((Date.now() - installedAt) / 1000).toFixed(1)} s`);
});
