#!/usr/bin/env node
// Builds every Node-API addon under native/*/binding.gyp with node-gyp
// (run by `npm ci` through the "install" script). Uses the node-gyp that npm
// ships (npm passes its path in npm_config_node_gyp), so nothing is fetched.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
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

const gyp = findNodeGyp();
if (!gyp) {
  console.error("build-native: node-gyp not found (it ships with npm); native addons not built");
  process.exit(1);
}
// Node's headers: npm passes its `nodedir` setting; outside npm, use the
// system headers when they are installed (no download).
const nodedir = process.env.npm_config_nodedir || (existsSync("/usr/include/node/node_api.h") ? "/usr" : "");
const gypArgs = ["rebuild", ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
let failed = 0;
for (const name of existsSync(nativeDir) ? readdirSync(nativeDir) : []) {
  const dir = join(nativeDir, name);
  if (!existsSync(join(dir, "binding.gyp"))) continue;
  console.error(`build-native: building native/${name}`);
  const r = spawnSync(process.execPath, [gyp, ...gypArgs], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  if (r.status !== 0) {
    console.error(`build-native: native/${name} failed to build (exit ${r.status})`);
    failed++;
  }
}
process.exit(failed === 0 ? 0 : 1);
