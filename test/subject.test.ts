/**
 * The conformance subject, driven exactly as a compliance suite would:
 * `sh -lc "npm run --silent subject"` with PEER_ADDR etc.; this test plays
 * the suite (it listens and is the link acceptor).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { Link } from "../src/session/link.js";
import { HelloHandshake } from "../src/session/handshake.js";
import { StreamTransport } from "../src/transport/stream.js";
import { client, serve } from "../src/session/serve.js";
import { channel } from "../src/session/channel/pair.js";
import { ConnectionRejectedError } from "../src/session/errors.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { within } from "./helpers/testbed-server.js";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

interface Suite {
  link: Promise<Link>;
  child: ChildProcess;
  exit: Promise<number | null>;
  stderr: () => string;
  close(): void;
}

async function runSubject(env: Record<string, string>, dispatcher = serve(Testbed, testbedImpl)): Promise<Suite> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const link = new Promise<Link>((resolve, reject) => {
    server.once("connection", (sock) => {
      sock.setNoDelay(true);
      const l = new Link(new StreamTransport(sock), {
        initiator: false,
        handshake: new HelloHandshake({ maxPayloadSize: 1024 * 1024, initialChannelCredit: 64 * 1024 }),
        dispatcher,
      });
      l.start().then(() => resolve(l), reject);
    });
  });
  const child = spawn("sh", ["-lc", "npm run --silent subject"], {
    cwd: repoRoot,
    env: { ...process.env, PEER_ADDR: `127.0.0.1:${port}`, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (d) => (err += d));
  child.stdout!.on("data", () => {});
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    link,
    child,
    exit,
    stderr: () => err,
    close: () => {
      server.close();
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

describe("conformance subject (npm run --silent subject)", { timeout: 120_000 }, () => {
  test("serves Testbed on connection 0 and exits 0 when the peer closes the link", async () => {
    const s = await runSubject({});
    try {
      const link = await within(s.link, 30_000, "subject connecting");
      const tb = client(Testbed, link.root);
      assert.equal(await tb.echo("hi"), "hi");
      assert.equal(await tb.reverse("abc"), "cba");
      assert.equal(await tb.divide(10n, 3n), 3n);
      await assert.rejects(tb.divide(1n, 0n), (e: unknown) => (e as { error?: unknown }).error === "DivisionByZero");
      assert.deepEqual(await tb.lookup(3), { name: "Charlie", age: 35, email: "charlie@example.com" });
      assert.deepEqual(await tb.getPoints(2), [{ x: 0, y: 0 }, { x: 1, y: 2 }]);
      assert.deepEqual(await tb.swapPair([1, "x"]), ["x", 1]);
      // Streaming methods.
      const [tx, rx] = channel<number>();
      const sum = tb.sum(rx);
      for (const n of [1, 2, 3]) await tx.send(n);
      await tx.close();
      assert.equal(await sum, 6n);
      const [gtx, grx] = channel<number>();
      const g = tb.generate(4, gtx);
      assert.deepEqual(await grx.collect(), [0, 1, 2, 3]);
      await g;
      // Not listening for virtual connections without ACCEPT_CONNECTIONS.
      await assert.rejects(link.connect(), (e: unknown) => e instanceof ConnectionRejectedError && e.reason === "not listening");
      link.close();
      assert.equal(await within(s.exit, 10_000, "subject exit"), 0, s.stderr());
    } finally {
      s.close();
    }
  });

  test("ACCEPT_CONNECTIONS=1 accepts virtual connections and serves Testbed on each", async () => {
    const s = await runSubject({ ACCEPT_CONNECTIONS: "1" });
    try {
      const link = await within(s.link, 30_000, "subject connecting");
      const c1 = await link.connect({ metadata: [["who", "suite"]] });
      const c2 = await link.connect();
      assert.notEqual(c1.connId, c2.connId);
      assert.equal(await client(Testbed, c1).echo("one"), "one");
      assert.equal(await client(Testbed, c2).echo("two"), "two");
      c1.close();
      assert.equal(await client(Testbed, c2).reverse("ab"), "ba");
      link.close();
      assert.equal(await within(s.exit, 10_000, "subject exit"), 0, s.stderr());
    } finally {
      s.close();
    }
  });

  for (const scenario of ["echo", "sum", "generate", "transform"]) {
    test(`SUBJECT_MODE=client CLIENT_SCENARIO=${scenario} calls the peer and exits 0`, async () => {
      const calls: string[] = [];
      const impl = {
        ...testbedImpl,
        echo: (m: string) => (calls.push(`echo:${m}`), m),
        sum: async (...a: Parameters<typeof testbedImpl.sum>) => {
          const r = await testbedImpl.sum(...a);
          calls.push(`sum:${r}`);
          return r;
        },
        generate: async (...a: Parameters<typeof testbedImpl.generate>) => {
          calls.push(`generate:${a[0]}`);
          return testbedImpl.generate(...a);
        },
        transform: async (...a: Parameters<typeof testbedImpl.transform>) => {
          calls.push("transform");
          return testbedImpl.transform(...a);
        },
      };
      const s = await runSubject({ SUBJECT_MODE: "client", CLIENT_SCENARIO: scenario }, serve(Testbed, impl));
      try {
        await within(s.link, 30_000, "subject connecting");
        assert.equal(await within(s.exit, 20_000, "subject exit"), 0, s.stderr());
        const expected = { echo: "echo:hello from client", sum: "sum:15", generate: "generate:5", transform: "transform" }[scenario]!;
        assert.ok(calls.includes(expected), `calls seen: ${JSON.stringify(calls)}`);
      } finally {
        s.close();
      }
    });
  }

  test("a failing scenario exits non-zero", async () => {
    const s = await runSubject({ SUBJECT_MODE: "client", CLIENT_SCENARIO: "echo" }, serve(Testbed, { ...testbedImpl, echo: () => "wrong" }));
    try {
      await within(s.link, 30_000, "subject connecting");
      const code = await within(s.exit, 20_000, "subject exit");
      assert.notEqual(code, 0);
    } finally {
      s.close();
    }
  });
});
