#!/usr/bin/env node
// Builds every Node-API addon under native/*/binding.gyp with node-gyp. Uses the
// node-gyp that npm ships (npm passes its path in npm_config_node_gyp).
//
// `npm run build:native`: rebuilds them all; a failure is an error (exit 1).
// `--optional` (the package's "install" script, run by `npm ci` in this repository and
// by `npm install roam-ts` when the installing project allows roam-ts's scripts): the
// addons are optional (roam falls back to pure JS; only file-backed SHM segments need
// native/shm), so a machine without python3/make/g++ gets a warning, never a failed
// install; and an addon that is already built, newer than its sources and loadable is
// kept (npm runs this script twice in this repository: for the root and for its
// node_modules/roam-ts link). `npm test` still fails loudly on a missing addon.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const nativeDir = join(root, "native");

function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    const npmCli = process.env.npm_execpath;
    if (npmCli) candidates.push(join(dirname(npmCli), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  } catch {}
  for (const base of ["/usr/lib/node_modules", "/usr/local/lib/node_modules"]) {
    candidates.push(join(base, "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  }
  try {
    candidates.push(createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js"));
  } catch {}
  return candidates.find((c) => c && existsSync(c));
}

const optional = process.argv.includes("--optional");
const failExit = optional ? 0 : 1;

/** True when native/<name> has a built addon newer than its sources that loads in this Node. */
function upToDate(dir) {
  const release = join(dir, "build", "Release");
  const built = existsSync(release) ? readdirSync(release).filter((f) => f.endsWith(".node")) : [];
  if (built.length === 0) return false;
  const sources = readdirSync(dir).filter((f) => /\.(gyp|c|cc|h)$/.test(f));
  const newest = Math.max(...sources.map((f) => statSync(join(dir, f)).mtimeMs));
  return built.every((f) => {
    if (statSync(join(release, f)).mtimeMs < newest) return false;
    try {
      createRequire(import.meta.url)(join(release, f));
      return true;
    } catch {
      return false;
    }
  });
}

const gyp = findNodeGyp();
if (!gyp) {
  console.error("build-native: node-gyp not found (it ships with npm); native addons not built" + (optional ? " (optional: roam uses its pure-JS paths)" : ""));
  process.exit(failExit);
}
// Node's headers: npm passes its `nodedir` setting; outside npm, use the
// system headers when they are installed (no download).
const nodedir = process.env.npm_config_nodedir || (existsSync("/usr/include/node/node_api.h") ? "/usr" : "");
const gypArgs = ["rebuild", ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
let failed = 0;
for (const name of existsSync(nativeDir) ? readdirSync(nativeDir) : []) {
  const dir = join(nativeDir, name);
  if (!existsSync(join(dir, "binding.gyp"))) continue;
  if (optional && upToDate(dir)) {
    console.error(`build-native: native/${name} is up to date`);
    continue;
  }
  console.error(`build-native: building native/${name}`);
  const r = spawnSync(process.execPath, [gyp, ...gypArgs], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) {
    console.error(`build-native: native/${name} failed to build (exit ${r.status})`);
    failed++;
  }
}
if (failed > 0 && optional) {
  console.error("build-native: the optional native addons were not built (python3, make and g++ are needed); roam uses its pure-JS paths, file-backed SHM segments are unavailable");
}
process.exit(failed === 0 ? 0 : failExit);
