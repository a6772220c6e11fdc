/**
 * roam-pty sessions: a shell's input and output round-trip, several clients
 * on one session, scrollback for a late client, sessions outliving their
 * clients, resize/kill/wait/remove, typed errors for bad input, the
 * configuration surface, and SDK auto-start of the daemon.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { ConfigError, DEFAULT_FLOW, flowFromEnv, parseSize, resolveFlow } from "../packages/roam-pty/src/config.js";
import { connectPty, isPtyError, type PtyError } from "../packages/roam-pty/src/sdk.js";
import { OutputStore } from "../packages/roam-pty/src/store.js";
import { UserError } from "../src/session/errors.js";
import { Collector, inProcessDaemon, processAlive, sleep, tempDir, waitFor } from "./helpers/pty.js";

const SH = { command: "sh", env: { PS1: "roam$ " } };

async function expectPtyError(p: Promise<unknown>, tag: PtyError["tag"]): Promise<PtyError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(isPtyError(e));
    assert.equal(e.error.tag, tag, `expected ${tag}, got ${JSON.stringify(e.error)}`);
    return e.error;
  }
  assert.fail(`expected a ${tag} error`);
}

describe("roam-pty sessions", { timeout: 60_000 }, () => {
  let env: Awaited<ReturnType<typeof inProcessDaemon>>;
  before(async () => {
    env = await inProcessDaemon();
  });
  after(async () => {
    await env?.close();
  });

  test("a session runs sh: input and output round-trip", async () => {
    const s = await env.pty.create(SH);
    assert.equal(s.status.tag, "Running");
    assert.ok(s.pid > 0);
    const a = await env.pty.attach(s.id);
    const out = new Collector(a);
    await out.waitFor(/roam\$ $/);
    await a.write("echo round-$((20+22))-trip\n");
    await out.waitFor(/round-42-trip\r\nroam\$ $/);
    // Input goes through the line discipline like a terminal: ^C interrupts.
    await a.write("sleep 30\n");
    await sleep(100);
    await a.write("\x03");
    await out.waitFor(/\^C\r?\n?roam\$ $|\r\nroam\$ $/, 5000, out.text.length - 40);
    await a.write("exit 7\n");
    const reason = await a.done;
    assert.deepEqual(reason, { tag: "SessionExited", value: { exitCode: 7, signal: null } });
    assert.deepEqual(await env.pty.wait(s.id), { exitCode: 7, signal: null });
    const info = await env.pty.info(s.id);
    assert.deepEqual(info.status, { tag: "Exited", value: { exitCode: 7, signal: null } });
  });

  test("two clients see the same output", async () => {
    const s = await env.pty.create(SH);
    const second = await env.connect();
    const a = await env.pty.attach(s.id);
    const b = await second.attach(s.id);
    const ca = new Collector(a);
    const cb = new Collector(b);
    await ca.waitFor(/roam\$ $/);
    await cb.waitFor(/roam\$ $/);
    // Either client may type; both see every byte.
    await a.write("for i in 1 2 3; do echo line-$i; done\n");
    await ca.waitFor(/line-3\r\nroam\$ $/);
    await cb.waitFor(/line-3\r\nroam\$ $/);
    await b.write("echo from-b\n");
    await ca.waitFor(/from-b\r\nroam\$ $/);
    await cb.waitFor(/from-b\r\nroam\$ $/);
    assert.equal(ca.text, cb.text, "both clients got identical output");
    const st = await env.pty.stats(s.id);
    assert.equal(st.clients.length, 2);
    assert.deepEqual(new Set(st.clients.map((c) => c.clientId)), new Set([a.clientId, b.clientId]));
    // Detaching one leaves the other and the session running.
    assert.deepEqual(await b.detach(), { tag: "Detached" });
    await a.write("echo still-here\n");
    await ca.waitFor(/still-here\r\nroam\$ $/);
    assert.equal((await env.pty.info(s.id)).clients, 1);
    await env.pty.kill(s.id, "SIGKILL");
    assert.deepEqual(await a.done, { tag: "SessionExited", value: { exitCode: 0, signal: "SIGKILL" } });
  });

  test("a client attaching late gets the scrollback; sessions survive client disconnects", async () => {
    const s = await env.pty.create(SH);
    const early = await env.connect();
    const a = await early.attach(s.id);
    const ca = new Collector(a);
    await a.write("echo early-$((1+1)); printf 'no newline yet'\n");
    await ca.waitFor(/no newline yetroam\$ $/);
    // The only client goes away with its whole connection: the session stays.
    early.close();
    await sleep(50);
    assert.equal((await env.pty.info(s.id)).status.tag, "Running");
    await waitFor("the client to be gone", async () => (await env.pty.info(s.id)).clients === 0);
    await env.pty.write(s.id, "echo while-nobody-watched\n");
    await sleep(200);
    const late = await env.pty.attach(s.id);
    assert.ok(late.replayBytes > 0);
    const cl = new Collector(late);
    await cl.waitFor(/while-nobody-watched\r\nroam\$ $/);
    assert.match(cl.text, /early-2/, "the scrollback includes output from before the late client attached");
    assert.ok(cl.text.startsWith(ca.text.slice(0, 20)), "replay starts at the beginning (scrollback not yet full)");
    // Without replay a client sees only new output.
    const fresh = await env.pty.attach(s.id, { replay: false });
    assert.equal(fresh.replayBytes, 0);
    const cf = new Collector(fresh);
    await late.write("echo after-fresh\n");
    await cf.waitFor(/after-fresh\r\nroam\$ $/);
    assert.doesNotMatch(cf.text, /early-2/);
    await late.detach();
    await fresh.detach();
    await env.pty.kill(s.id);
  });

  test("scrollback is a bounded ring", async () => {
    const small = await inProcessDaemon({ scrollbackBytes: 4096 });
    try {
      const s = await small.pty.create({ command: "sh", args: ["-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; sleep 30"] });
      await waitFor("the output", async () => (await small.pty.stats(s.id)).outputBytes >= 17_000);
      const st = await small.pty.stats(s.id);
      assert.ok(st.bufferedBytes <= 4096 + 4096, `held ${st.bufferedBytes} bytes with a 4096-byte scrollback`);
      const late = await small.pty.attach(s.id);
      assert.ok(late.replayBytes <= 4096 && late.replayBytes > 3000, `replayed ${late.replayBytes}`);
      const c = new Collector(late);
      await c.waitFor(/line-1999\r\n$/);
      assert.doesNotMatch(c.text, /line-10\r\n/, "old lines fell out of the ring");
      await late.detach();
      await small.pty.kill(s.id, "SIGKILL");
    } finally {
      await small.close();
    }
  });

  test("resize propagates to the process and to attached clients", async () => {
    const s = await env.pty.create({ ...SH, cols: 100, rows: 30 });
    const a = await env.pty.attach(s.id);
    const c = new Collector(a);
    const resized: string[] = [];
    a.onEvent((ev) => ev.tag === "Resized" && resized.push(`${ev.value.cols}x${ev.value.rows}`));
    await c.waitFor(/roam\$ $/);
    await a.write("stty size\n");
    await c.waitFor(/30 100\r\n/);
    await env.pty.resize(s.id, 132, 43);
    await a.write("stty size\n");
    await c.waitFor(/43 132\r\n/);
    await waitFor("the Resized event", () => resized.includes("132x43"));
    const info = await env.pty.info(s.id);
    assert.equal(info.cols, 132);
    assert.equal(info.rows, 43);
    await a.detach();
    await env.pty.kill(s.id); // SIGHUP (an interactive sh ignores SIGTERM)
    assert.deepEqual(await env.pty.wait(s.id, { timeout: 10_000 }), { exitCode: 0, signal: "SIGHUP" });
    await env.pty.remove(s.id);
    await expectPtyError(env.pty.info(s.id), "UnknownSession");
  });

  test("bad input gets typed errors, never a crash", async () => {
    const p = env.pty;
    assert.deepEqual(await expectPtyError(p.info(4242), "UnknownSession"), { tag: "UnknownSession", value: 4242 });
    await expectPtyError(p.write(4242, "x"), "UnknownSession");
    await expectPtyError(p.resize(4242, 80, 24), "UnknownSession");
    await expectPtyError(p.kill(4242), "UnknownSession");
    await expectPtyError(p.stats(4242), "UnknownSession");
    await expectPtyError(p.wait(4242), "UnknownSession");
    await expectPtyError(p.remove(4242), "UnknownSession");
    await expectPtyError(p.attach(4242), "UnknownSession");
    await expectPtyError(p.detach(4242, 1), "UnknownSession");

    const s = await p.create(SH);
    assert.deepEqual(await expectPtyError(p.resize(s.id, 0, 0), "InvalidSize"), { tag: "InvalidSize", value: { cols: 0, rows: 0 } });
    await expectPtyError(p.resize(s.id, 80, 0), "InvalidSize");
    await expectPtyError(p.resize(s.id, 5000, 10), "InvalidSize");
    await expectPtyError(p.attach(s.id, { cols: 0, rows: 5 }), "InvalidSize");
    await expectPtyError(p.kill(s.id, "SIGNOPE"), "InvalidSignal");
    await expectPtyError(p.detach(s.id, 999_999), "UnknownClient");
    await expectPtyError(p.remove(s.id), "SessionRunning");
    await expectPtyError(p.create({ command: "definitely-not-a-command-xyz" }), "SpawnFailed");
    await expectPtyError(p.create({ command: "/nonexistent/bin/thing" }), "SpawnFailed");
    await expectPtyError(p.create({ command: "sh", cwd: "/nonexistent/dir" }), "InvalidArgument");
    await expectPtyError(p.create({ command: "sh", env: { "A=B": "x" } }), "InvalidArgument");
    await expectPtyError(p.create({ command: "sh", cols: 0, rows: 9999 }), "InvalidSize");

    // An exited session: writing, resizing and signalling it are typed errors carrying the exit status.
    await p.write(s.id, "exit 5\n");
    assert.deepEqual(await p.wait(s.id), { exitCode: 5, signal: null });
    assert.deepEqual(await expectPtyError(p.write(s.id, "echo hi\n"), "SessionExited"), { tag: "SessionExited", value: { exitCode: 5, signal: null } });
    await expectPtyError(p.resize(s.id, 80, 24), "SessionExited");
    await expectPtyError(p.kill(s.id), "SessionExited");
    // Attaching to an exited session still works: replay, then SessionExited.
    const a = await p.attach(s.id);
    assert.deepEqual(await a.done, { tag: "SessionExited", value: { exitCode: 5, signal: null } });
    await p.remove(s.id);

    // The daemon is still fine.
    const again = await p.create(SH);
    assert.equal((await p.info(again.id)).status.tag, "Running");
    await p.kill(again.id, "SIGKILL");
    const info = await p.daemonInfo();
    assert.equal(info.pid, process.pid);
    assert.equal(info.flow.highWatermark, DEFAULT_FLOW.highWatermark);
  });
});

test("output store: offsets, views across chunks, trimming", () => {
  const s = new OutputStore();
  s.append(Uint8Array.of(1, 2, 3));
  s.append(Uint8Array.of(4, 5));
  s.append(Uint8Array.of(6, 7, 8, 9));
  assert.equal(s.head, 9);
  assert.deepEqual([...s.read(1, 4)], [2, 3, 4, 5]);
  assert.deepEqual([...s.read(4, 100)], [5, 6, 7, 8, 9]);
  assert.deepEqual([...s.tail(3).bytes], [7, 8, 9]);
  s.trimBefore(4);
  assert.equal(s.start, 3, "only whole chunks are dropped");
  assert.throws(() => s.read(2, 1), RangeError);
  assert.deepEqual([...s.read(3, 3)], [4, 5, 6]);
  s.trimBefore(9);
  assert.equal(s.size, 0);
  assert.equal(s.read(9, 10).length, 0);
});

test("flow configuration: defaults, ROAM_PTY_FLOW_* variables, options over environment", () => {
  assert.deepEqual(resolveFlow(), DEFAULT_FLOW);
  assert.equal(DEFAULT_FLOW.highWatermark, 100_000);
  assert.equal(DEFAULT_FLOW.lowWatermark, 5_000);
  const env = {
    ROAM_PTY_FLOW_HIGH_WATERMARK: "200k",
    ROAM_PTY_FLOW_LOW_WATERMARK: "10000",
    ROAM_PTY_FLOW_POLICY: "detach",
    ROAM_PTY_FLOW_DETACH_AFTER_MS: "2500",
    ROAM_PTY_FLOW_WINDOW: "64KiB",
    ROAM_PTY_SCROLLBACK: "2MiB",
    UNRELATED: "x",
  };
  assert.deepEqual(flowFromEnv(env), {
    highWatermark: 200_000,
    lowWatermark: 10_000,
    policy: "detach",
    detachAfterMs: 2500,
    windowBytes: 65536,
    scrollbackBytes: 2 * 1024 * 1024,
  });
  const c = resolveFlow({ highWatermark: 300_000 }, env);
  assert.equal(c.highWatermark, 300_000, "options win over the environment");
  assert.equal(c.lowWatermark, 10_000);
  assert.equal(parseSize("1MiB", "x"), 1048576);
  assert.throws(() => flowFromEnv({ ROAM_PTY_FLOW_TYPO: "1" }), ConfigError);
  assert.throws(() => flowFromEnv({ ROAM_PTY_FLOW_POLICY: "drop" }), ConfigError);
  assert.throws(() => resolveFlow({ lowWatermark: 200_000 }), /lowWatermark/);
  assert.throws(() => resolveFlow({ redThreshold: 10, yellowThreshold: 20 }), /yellowThreshold/);
});

test("the SDK auto-starts the daemon when asked", { timeout: 30_000 }, async () => {
  const tmp = tempDir();
  const socketPath = `${tmp.dir}/auto.sock`;
  let pid = 0;
  try {
    await assert.rejects(connectPty({ socketPath, timeoutMs: 2000 }), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
    const pty = await connectPty({ socketPath, autoStart: true, timeoutMs: 15_000, daemonEnv: { ...process.env, ROAM_PTY_FLOW_HIGH_WATERMARK: "123456" } });
    const info = await pty.daemonInfo();
    pid = info.pid;
    assert.notEqual(pid, process.pid, "a separate daemon process");
    assert.equal(info.socketPath, socketPath);
    assert.equal(info.flow.highWatermark, 123456, "the daemon read ROAM_PTY_FLOW_* from its environment");
    const s = await pty.create({ command: "sh", args: ["-c", "echo auto-started"] });
    const a = await pty.attach(s.id);
    const c = new Collector(a);
    await c.waitFor(/auto-started/);
    await a.done;
    pty.close();
    // A second connect reuses the running daemon.
    const again = await connectPty({ socketPath, autoStart: true });
    assert.equal((await again.daemonInfo()).pid, pid);
    again.close();
  } finally {
    if (pid > 0 && processAlive(pid)) {
      process.kill(pid, "SIGTERM");
      await waitFor("the daemon to exit", () => !processAlive(pid), 10_000).catch(() => process.kill(pid, "SIGKILL"));
    }
    tmp.remove();
  }
});

describe("roam-pty clients like tmux: names, size policy, read-only, detach others", { timeout: 60_000 }, () => {
  test("size policy smallest (default): the smallest client's columns and rows, recomputed on resize and leave", async () => {
    const env = await inProcessDaemon();
    try {
      const s = await env.pty.create({ ...SH, cols: 80, rows: 24 });
      const big = await env.pty.attach(s.id, { cols: 120, rows: 40 });
      assert.deepEqual([big.session.cols, big.session.rows], [120, 40], "the Attached event carries the new size");
      const other = await env.connect();
      const small = await other.attach(s.id, { cols: 100, rows: 50 });
      const size = async () => {
        const i = await env.pty.info(s.id);
        return `${i.cols}x${i.rows}`;
      };
      assert.equal(await size(), "100x40", "the smallest columns and the smallest rows");
      await small.resize(90, 30);
      assert.equal(await size(), "90x30");
      // A client without a size (a program, a logger) takes no part.
      const sizeless = await env.pty.attach(s.id);
      assert.equal(await size(), "90x30");
      await small.detach();
      await waitFor("the size to follow the remaining client", async () => (await size()) === "120x40");
      await sizeless.detach();
      assert.equal(await size(), "120x40");
      await big.detach();
    } finally {
      await env.close();
    }
  });

  test("size policy latest: the client that most recently attached, resized or typed", async () => {
    const tmp = tempDir();
    const { PtyDaemon } = await import("../packages/roam-pty/src/daemon.js");
    const daemon = new PtyDaemon({ env: {}, sizePolicy: "latest" });
    await daemon.listen({ socketPath: `${tmp.dir}/p.sock` });
    const c1 = await connectPty({ socketPath: `${tmp.dir}/p.sock` });
    const c2 = await connectPty({ socketPath: `${tmp.dir}/p.sock` });
    try {
      assert.equal((await c1.daemonInfo()).sizePolicy, "latest");
      const s = await c1.create({ ...SH, cols: 80, rows: 24 });
      const size = async () => {
        const i = await c1.info(s.id);
        return `${i.cols}x${i.rows}`;
      };
      const a = await c1.attach(s.id, { cols: 120, rows: 40 });
      const b = await c2.attach(s.id, { cols: 100, rows: 30 });
      assert.equal(await size(), "100x30", "the latest to attach");
      await a.write("true\n");
      assert.equal(await size(), "120x40", "typing makes a client the latest");
      await b.resize(90, 20);
      assert.equal(await size(), "90x20");
      await b.detach();
      await waitFor("the size to fall back to the other client", async () => (await size()) === "120x40");
      await a.detach();
    } finally {
      c1.close();
      c2.close();
      await daemon.close();
      tmp.remove();
    }
    assert.throws(() => new PtyDaemon({ env: { ROAM_PTY_SIZE_POLICY: "biggest" } }), /ROAM_PTY_SIZE_POLICY must be "smallest" or "latest"/);
  });

  test("names are unique and usable wherever an id is; default names do not clash", async () => {
    const env = await inProcessDaemon();
    try {
      const w = await env.pty.create({ ...SH, name: "work" });
      assert.equal(w.name, "work");
      await expectPtyError(env.pty.create({ ...SH, name: "work" }), "NameInUse");
      await expectPtyError(env.pty.create({ ...SH, name: "42" }), "InvalidArgument");
      await expectPtyError(env.pty.create({ ...SH, name: "two words" }), "InvalidArgument");
      assert.equal((await env.pty.find("work")).id, w.id);
      assert.equal((await env.pty.find(String(w.id))).name, "work");
      assert.deepEqual(await expectPtyError(env.pty.find("play"), "UnknownName"), { tag: "UnknownName", value: "play" });
      await expectPtyError(env.pty.find("9999"), "UnknownSession");
      const a = await env.pty.create(SH);
      const b = await env.pty.create(SH);
      assert.equal(a.name, "sh");
      assert.equal(b.name, `sh-${b.id}`);
      assert.equal(new Set((await env.pty.list()).map((s) => s.name)).size, 3);
      for (const s of [w, a, b]) await env.pty.kill(s.id, "SIGKILL");
    } finally {
      await env.close();
    }
  });

  test("read-only clients cannot type; detachOthers detaches every other client", async () => {
    const env = await inProcessDaemon();
    try {
      const s = await env.pty.create(SH);
      const writer = await env.pty.attach(s.id);
      const out = new Collector(writer);
      const viewer = await env.pty.attach(s.id, { readOnly: true });
      const seen = new Collector(viewer);
      await expectPtyError(viewer.write("echo from-viewer\n"), "ReadOnly");
      await writer.write("echo from-$((1+1))-writer\n");
      await seen.waitFor(/from-2-writer/);
      assert.doesNotMatch(out.text, /from-viewer/);
      assert.equal((await env.pty.stats(s.id)).clients.filter((c) => c.readOnly).length, 1);
      const takeover = await env.pty.attach(s.id, { detachOthers: true });
      assert.deepEqual(await writer.done, { tag: "Detached" });
      assert.deepEqual(await viewer.done, { tag: "Detached" });
      assert.equal((await env.pty.info(s.id)).clients, 1);
      await takeover.detach();
      await env.pty.kill(s.id, "SIGKILL");
    } finally {
      await env.close();
    }
  });
});
