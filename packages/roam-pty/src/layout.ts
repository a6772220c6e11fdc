/**
 * Where roam-pty's own files are. The same compiled code runs in two layouts:
 *
 * - the package (`npm pack`, then installed): `<package>/dist/*.js`, with the web page's static
 *   files copied into `dist/web/` by the package build;
 * - the repository's build (`tsc -p .` at the root, which the tests run):
 *   `dist/packages/roam-pty/src/*.js`, while package.json and the static files stay in
 *   `packages/roam-pty/`.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The directory of the compiled modules (web-server.js, sdk-core.js, web/main.js, …). */
export const CODE_DIR = dirname(fileURLToPath(import.meta.url));

function isRoamPty(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: unknown }).name === "roam-pty";
  } catch {
    return false;
  }
}

/** roam-pty's package directory (holds its package.json), or null when it cannot be found. */
export const PACKAGE_DIR: string | null =
  [new URL("../", import.meta.url), new URL("../../../../packages/roam-pty/", import.meta.url)].map((u) => fileURLToPath(u)).find(isRoamPty) ?? null;

/** The web page's static files (index.html, style.css): next to web/main.js in the package, in the sources in the repository. */
export const WEB_STATIC_DIR: string =
  [join(CODE_DIR, "web"), ...(PACKAGE_DIR ? [join(PACKAGE_DIR, "src", "web")] : [])].find((d) => existsSync(join(d, "index.html"))) ?? join(CODE_DIR, "web");
