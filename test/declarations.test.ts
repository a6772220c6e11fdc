/**
 * The emitted declarations hold for a consumer (issue 13): with
 * `stripInternal` on, no public entry point may expose a declaration tagged
 * @internal (tsc would emit a .d.ts naming something it stripped). A strict
 * consumer program, with skipLibCheck off, is type-checked against
 * dist/src/*.d.ts; it also pins that Connection's internals are not public.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = join(root, "dist", "src");

test("the entry points' declarations compile for a strict consumer (skipLibCheck off)", () => {
  const dir = mkdtempSync(join(tmpdir(), "roam-dts-"));
  try {
    const entry = (p: string) => JSON.stringify(join(dist, p));
    writeFileSync(
      join(dir, "consumer.ts"),
      `
import * as roam from ${entry("index.js")};
import * as node from ${entry("node.js")};
import * as shm from ${entry("transport/shm/index.js")};
import * as tracing from ${entry("tracing/index.js")};
import * as otel from ${entry("otel/index.js")};
import * as bridge from ${entry("bridge/index.js")};
import * as browser from ${entry("bridge/browser.js")};
import { channel, Connection, type Tx, type Rx } from ${entry("index.js")};

const [tx, rx]: [Tx<number>, Rx<number>] = channel<number>();
void tx.send(1);
void rx.recv();
declare const conn: Connection;
const id: number = conn.rawChannels().allocate();
// @ts-expect-error the registry is private
void conn.channels;
// @ts-expect-error so is routing
void conn.handle;
// @ts-expect-error a connection is made by its link
new Connection();
void [id, roam, node, shm, tracing, otel, bridge, browser];
`,
    );
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          lib: ["ES2022", "DOM"],
          types: ["node"],
          typeRoots: [join(root, "node_modules", "@types")],
        },
        files: ["consumer.ts"],
      }),
    );
    let out = "";
    try {
      execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", dir], { encoding: "utf8", timeout: 120_000 });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? e);
    }
    assert.equal(out, "", `tsc reported:\n${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
