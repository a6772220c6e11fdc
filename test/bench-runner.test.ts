/**
 * `npm run bench` (bench/run-all.ts) without running any benchmark: it finds
 * every bench script (and no helper), and turns the ratio columns of a
 * script's printed tables into rows when the script reports none itself.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { discover, ratiosFromTables } from "../bench/run-all.js";

test("the runner picks up every benchmark script and none of the helpers", () => {
  const found = discover();
  for (const name of ["rpc", "streaming", "shm", "codec", "pty"]) assert.ok(found.includes(name), `${name} is run`);
  for (const helper of ["run-all", "rpc-client", "streaming-client", "codec-arbitraries", "fuzz-codec"]) assert.ok(!found.includes(helper), `${helper} is not run`);
  assert.deepEqual(found.slice(0, 5), ["rpc", "streaming", "shm", "codec", "pty"]);
});

test("ratio columns of a printed table become rows", () => {
  const stdout = [
    "### Unary echo (same run)",
    "",
    "| case             | calls/s (median) | p50     | × node:http JSON | × roam WebSocket |",
    "|------------------|------------------|---------|------------------|------------------|",
    "| HTTP bridge      | 12.0k/s          | 80.1 µs | 1.52×            | 0.61×            |",
    "| node:http JSON   | 7.9k/s           | 120 µs  | 1.00×            | 0.40×            |",
    "",
    "not a table | 3.00×",
  ].join("\n");
  const rows = ratiosFromTables("bridge", stdout);
  assert.deepEqual(
    rows.map((r) => [r.work, r.roam, r.peer, r.ratio]),
    [
      ["HTTP bridge", "12.0k/s", "node:http JSON", 1.52],
      ["HTTP bridge", "12.0k/s", "roam WebSocket", 0.61],
      ["node:http JSON", "7.9k/s", "node:http JSON", 1],
      ["node:http JSON", "7.9k/s", "roam WebSocket", 0.4],
    ],
  );
  assert.ok(rows.every((r) => r.bench === "bridge"));
});
