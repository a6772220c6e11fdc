/** The roam-pty package version, read once from its package.json. */
import * as fs from "node:fs";
import { join } from "node:path";

import { PACKAGE_DIR } from "./layout.js";

let cached: string | null = null;

export function packageVersion(): string {
  if (cached === null) {
    try {
      if (PACKAGE_DIR === null) throw new Error("no package.json");
      const pkg = JSON.parse(fs.readFileSync(join(PACKAGE_DIR, "package.json"), "utf8")) as { version?: unknown };
      cached = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      cached = "unknown";
    }
  }
  return cached;
}
