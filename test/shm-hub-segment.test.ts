/**
 * The hub's segment before any peer (transport/shm/hub-segment.ts): the
 * config from the host's options, the backing (file or memory), the file's
 * mode and removal.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { hubConfig, openHubBacking, removeHubFile } from "../src/transport/shm/hub-segment.js";
import { DEFAULT_SEGMENT_CONFIG } from "../src/transport/shm/layout.js";

test("hub config: the defaults, overridden field by field; size classes copied, not shared", () => {
  const d = hubConfig({});
  assert.deepEqual(d, { ...DEFAULT_SEGMENT_CONFIG, sizeClasses: DEFAULT_SEGMENT_CONFIG.sizeClasses.map((k) => ({ ...k })) });
  assert.notEqual(d.sizeClasses[0], DEFAULT_SEGMENT_CONFIG.sizeClasses[0]);
  const c = hubConfig({ maxGuests: 3, maxChannels: 64, initialCredit: 4096, maxPayloadSize: 1 << 20 });
  assert.equal(c.maxGuests, 3);
  assert.equal(c.maxChannels, 64);
  assert.equal(c.initialCredit, 4096);
  assert.equal(c.maxPayloadSize, 1 << 20);
  assert.equal(c.bipbufCapacity, DEFAULT_SEGMENT_CONFIG.bipbufCapacity);
});

test("hub backing: memory has no file; a file is created with mode 0600 and removed by removeHubFile", (t) => {
  const config = hubConfig({ maxGuests: 1, maxPayloadSize: 64 * 1024, sizeClasses: [{ slotSize: 160 * 1024, count: 2 }] });
  const mem = openHubBacking({ backing: "memory" }, config);
  assert.equal(mem.path, null);
  mem.close();
  const dir = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const p = path.join(dir, `roam-hub-segment-test-${process.pid}`);
  t.after(() => fs.rmSync(p, { force: true }));
  const file = openHubBacking({ path: p }, config);
  assert.equal(file.path, p);
  assert.equal(fs.statSync(p).mode & 0o777, 0o600);
  file.close();
  removeHubFile(p);
  assert.equal(fs.existsSync(p), false);
});
