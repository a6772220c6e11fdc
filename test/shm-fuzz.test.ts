/**
 * The SHM segment fuzzer (stress/shm-attacks.ts) in a short run: a hostile
 * guest mutates fields of its own area and of the shared structures while a
 * bystander guest keeps calling; the host (its own process) must stay alive
 * and the bystander unaffected. `npm run stress` runs 10,000 cases.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { test } from "node:test";
import { nativeShm } from "../src/transport/shm/index.js";
import { shmFuzz } from "../stress/shm-attacks.js";

test("SHM fuzzer: 400 mutations, host alive, bystander unaffected", { skip: process.env.ROAM_SKIP_NATIVE === "1" && "ROAM_SKIP_NATIVE=1" }, async () => {
  const path = `/dev/shm/roam-test-fuzz-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const row = await shmFuzz(path, 400, 7);
    assert.ok(row.ok, row.outcome);
  } finally {
    fs.rmSync(path, { force: true });
  }
});
