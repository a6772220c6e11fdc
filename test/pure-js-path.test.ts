/**
 * The pure-JS codec/stream path (no native COBS addon, ROAM_NO_NATIVE=1) is
 * what browsers and machines without a compiler run. `npm test` loads the
 * addon, so this file runs the stream-level tests a second time in a child
 * with ROAM_NO_NATIVE=1 (the addon is chosen once, at module load).
 *
 * In that child, this file itself checks the JS encoder on the paths that
 * the native one takes otherwise: messages around the 512-byte switch and
 * large Data encoded in place, over a real socket, both directions.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { channel } from "../src/session/channel/pair.js";
import { client, serve } from "../src/session/serve.js";
import { nativeCobs } from "../src/transport/native-cobs.js";
import { connectTcp, listenTcp } from "../src/transport/node.js";
import { within } from "./helpers/testbed-server.js";

const inChild = process.env["ROAM_NO_NATIVE"] === "1";
/** The stream-level test files that run again without the addon. */
const FILES = ["pure-js-path", "stream-transport", "wire-facts", "session-protocol"];

test("npm test also runs the stream-level tests on the pure-JS path (ROAM_NO_NATIVE=1)", { skip: inChild && "this is the pure-JS child" }, async () => {
  const dir = fileURLToPath(new URL(".", import.meta.url));
  const child = spawn(process.execPath, ["--test", "--test-reporter=spec", "--test-concurrency=1", ...FILES.map((f) => `${dir}${f}.test.js`)], {
    // NODE_TEST_CONTEXT would make the nested runner report to ours in its internal format.
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NODE_TEST_CONTEXT")), ROAM_NO_NATIVE: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const code = await within(new Promise<number | null>((r) => child.on("exit", r)), 240_000, "the pure-JS pass").catch((e) => {
    child.kill("SIGKILL");
    throw e;
  });
  const failed = out.split("\n").filter((l) => /^\s*✖/.test(l));
  assert.equal(code, 0, `the pure-JS pass failed:\n${failed.join("\n")}\n${out.slice(-4000)}`);
  assert.match(out, /ℹ pass [1-9]/);
  assert.match(out, /pure-JS child: the native addon is not loaded/, "the child ran this file's own checks");
});

const Bulk = defineService("Bulk", {
  echoBytes: method([arg("b", t.bytes)], t.bytes),
  stream: method([arg("sizes", t.list(t.u32)), arg("out", t.tx(t.bytes))], t.u32),
  sink: method([arg("input", t.rx(t.bytes))], t.list(t.u32)),
});
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed + (i >> 8)) & 0xff || 1);
const SIZES = [0, 1, 253, 254, 255, 500, 511, 512, 513, 1000, 4096, 65_535, 65_536, 200_000];

test("pure-JS child: the native addon is not loaded", { skip: !inChild && "runs in the ROAM_NO_NATIVE=1 child" }, () => {
  assert.equal(nativeCobs, null);
});

test("pure-JS child: payloads around the 512-byte switch and large Data round-trip over TCP, both directions", { skip: !inChild && "runs in the ROAM_NO_NATIVE=1 child" }, async () => {
  const server = await listenTcp({
    port: 0,
    dispatcher: serve(Bulk, {
      echoBytes: (b) => b,
      stream: async (sizes, out) => {
        for (const [i, n] of sizes.entries()) await out.send(pattern(n, i));
        return sizes.length;
      },
      sink: async (input) => {
        const got: number[] = [];
        let i = 0;
        for await (const b of input) {
          assert.deepEqual(b, pattern(b.length, i++), `element ${i} intact`);
          got.push(b.length);
        }
        return got;
      },
    }),
  });
  try {
    const link = await connectTcp({ port: server.port! });
    const c = client(Bulk, link.root);
    for (const n of SIZES) assert.deepEqual(await c.echoBytes(pattern(n, 3)), pattern(n, 3), `${n} B echoed`);
    const [tx, rx] = channel<Uint8Array>();
    const p = c.stream(SIZES, tx);
    let i = 0;
    for await (const b of rx) {
      assert.deepEqual(b, pattern(SIZES[i]!, i), `streamed element ${i} intact`);
      i++;
    }
    assert.equal(await p, SIZES.length);
    const [stx, srx] = channel<Uint8Array>();
    const s = c.sink(srx);
    for (const [k, n] of SIZES.entries()) await stx.send(pattern(n, k));
    await stx.close();
    assert.deepEqual(await s, SIZES);
    link.close();
  } finally {
    await server.close();
  }
});
