/**
 * Security options that only show when they are checked: a handler's
 * exception text stays on the server with `exposeHandlerErrors: false`; the
 * roam-pty socket directory is 0700 and its socket 0600; an SHM segment file
 * is 0600 (other local users must not read or join the link).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { RemoteHandlerError } from "../src/session/errors.js";
import { client, serve } from "../src/session/serve.js";
import { connectTcp, listenTcp } from "../src/transport/node.js";
import { ShmHost } from "../src/transport/shm/index.js";
import { PtyDaemon } from "../packages/roam-pty/src/daemon.js";
import { segmentPath } from "./helpers/shm-harness.js";
import { tempDir } from "./helpers/testbed-server.js";

const Secret = defineService("Secret", { leak: method([arg("x", t.u32)], t.u32) });
const failing = serve(Secret, {
  leak: () => {
    throw new Error("db password is hunter2");
  },
});

describe("exposeHandlerErrors", () => {
  for (const expose of [true, false]) {
    test(`exposeHandlerErrors: ${expose}`, async () => {
      const seen: unknown[] = [];
      const server = await listenTcp({ port: 0, dispatcher: failing, exposeHandlerErrors: expose, onHandlerError: (e) => seen.push(e) });
      try {
        const link = await connectTcp({ port: server.port! });
        const e = await client(Secret, link.root).leak(1).catch((x: unknown) => x);
        assert.ok(e instanceof RemoteHandlerError, String(e));
        if (expose) {
          assert.equal(e.remoteMessage, "Error: db password is hunter2");
        } else {
          assert.equal(e.remoteMessage, "internal error");
          assert.doesNotMatch(e.message, /hunter2/);
        }
        // The server's own hook always sees the real error.
        assert.equal(seen.length, 1);
        assert.match(String(seen[0]), /hunter2/);
        link.close();
      } finally {
        await server.close();
      }
    });
  }
});

test("roam-pty: the socket directory is 0700 and the socket 0600", async () => {
  const tmp = tempDir("roam-perm-");
  const socketPath = path.join(tmp, "run", "roam-pty", "pty.sock");
  const daemon = new PtyDaemon({ env: {} });
  try {
    await daemon.listen({ socketPath });
    assert.equal(fs.statSync(path.dirname(socketPath)).mode & 0o777, 0o700, "socket directory mode");
    assert.equal(fs.statSync(socketPath).mode & 0o777, 0o600, "socket mode");
  } finally {
    await daemon.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test("SHM: the segment file is created 0600", async () => {
  const p = segmentPath("perm");
  const host = ShmHost.create({ backing: "file", path: p });
  try {
    assert.equal(fs.statSync(p).mode & 0o777, 0o600, "segment file mode");
  } finally {
    await host.close();
  }
  assert.equal(fs.existsSync(p), false, "the host removed its segment file");
});
