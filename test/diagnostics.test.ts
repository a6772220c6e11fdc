/**
 * Diagnostics: the SIGUSR1 dump of a server process with a call in flight
 * and a paused channel names both; structured snapshots of links and
 * servers; the SHM host's per-guest state; the roam-pty daemon's snapshot.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { channel } from "../src/session/channel/pair.js";
import { client, serve } from "../src/session/serve.js";
import type { Link } from "../src/session/link.js";
import { connectTcp, listenTcp, type RoamServer } from "../src/transport/node.js";
import { formatDiagnostics, processDiagnostics } from "../src/session/diagnostics.js";
import { establishHostPeer, ShmHost } from "../src/transport/shm/index.js";
import { Slow } from "./helpers/diag-server.js";
import { GuestTest } from "./helpers/shm-api.js";
import { GUEST_SCRIPT, leftoverSegments, segmentPath, sleep } from "./helpers/shm-harness.js";
import { inProcessDaemon } from "./helpers/pty.js";

const DIAG_SERVER = fileURLToPath(new URL("./helpers/diag-server.js", import.meta.url));
const children: ChildProcess[] = [];
const links: Link[] = [];
const servers: RoamServer[] = [];
const hosts: ShmHost[] = [];
after(async () => {
  for (const l of links) l.close();
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(hosts.map((h) => h.close()));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  assert.deepEqual(leftoverSegments(), []);
});

function lineFrom(stream: NodeJS.ReadableStream, re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; got:\n${buf}`)), ms);
    stream.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

/** Sends 1 KiB elements (1022 bytes + 2-byte length) until a send stays pending (the window is used up). */
async function fillUntilPaused(send: (b: Uint8Array) => Promise<void>): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const p = send(new Uint8Array(1022));
    const settled = await Promise.race([p.then(() => true), sleep(200).then(() => false)]);
    if (!settled) {
      p.catch(() => {});
      return i;
    }
  }
  throw new Error("the channel never paused");
}

test("SIGUSR1 dumps a server's call in flight and its paused channel", async () => {
  const child = spawn(process.execPath, [DIAG_SERVER, "--serve"], { stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  const port = Number((await lineFrom(child.stdout!, /PORT (\d+)/, 10_000))[1]);
  const link = await connectTcp({ port });
  links.push(link);
  const slow = client(Slow, link.root);
  void slow.hang().catch(() => {});
  const [tx, rx] = channel<Uint8Array>();
  void slow.sink(rx).catch(() => {});
  const sent = await fillUntilPaused((b) => tx.send(b));
  assert.equal(sent, 64, "64 KiB window = 64 elements of 1 KiB");

  const dump = lineFrom(child.stderr!, /=== roam diagnostics[\s\S]*?channel \d+ receive[^\n]*\n/, 10_000);
  child.kill("SIGUSR1");
  const text = (await dump)[0];
  assert.match(text, /\[roam server tcp:\/\/127\.0\.0\.1:\d+\] 1 link\(s\)/);
  assert.match(text, /<- serving Slow\.hang #\d+ for \d+ ms/);
  assert.match(text, /<- serving Slow\.sink #\d+ for \d+ ms/);
  assert.match(text, /channel \d+ receive: red PAUSED, credit 0 B of 64\.0 KiB, buffered 64\.0 KiB/);

  // The calling side's own snapshot: both calls outgoing, its send channel paused too.
  const mine = link.diagnostics();
  const conn0 = mine.connections.find((c) => c.connId === 0)!;
  assert.deepEqual(conn0.calls.map((c) => `${c.direction} ${c.method}`).sort(), ["outgoing Slow.hang", "outgoing Slow.sink"]);
  const ch = conn0.channels.find((c) => c.direction === "send")!;
  assert.equal(ch.paused, true);
  assert.equal(ch.creditOutstanding, 0);
  assert.ok(ch.bufferedBytes >= 1024, "the blocked send is counted as buffered");
  child.stdin!.end();
});

test("server.diagnostics() and link.diagnostics(): structured, and empty once calls finish", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const server = await listenTcp({ port: 0, dispatcher: serve(Slow, { hang: () => gate, sink: () => Promise.resolve(0n) }) });
  servers.push(server);
  const link = await connectTcp({ port: server.port! });
  links.push(link);
  const pending = client(Slow, link.root).hang();
  for (let i = 0; i < 200 && server.diagnostics().links[0]?.connections[0]?.calls.length !== 1; i++) await sleep(10);
  await sleep(30);
  const d = server.diagnostics();
  assert.equal(d.kind, "server");
  assert.equal(d.links.length, 1);
  const calls = d.links[0]!.connections[0]!.calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.method, "Slow.hang");
  assert.equal(calls[0]!.direction, "incoming");
  assert.ok(calls[0]!.ageMs >= 20, `age ${calls[0]!.ageMs}`);
  // The process-wide view lists the server with its link, and our client link separately.
  const all = processDiagnostics();
  assert.ok(all.some((x) => x.kind === "server" && x.address === server.address));
  assert.ok(all.some((x) => x.kind === "link" && x.connections.some((c) => c.calls.some((k) => k.direction === "outgoing" && k.method === "Slow.hang"))));
  release();
  await pending;
  assert.deepEqual(server.diagnostics().links[0]!.connections[0]!.calls, []);
  assert.deepEqual(link.diagnostics().connections[0]!.calls, []);
});

test("the SHM host's snapshot has per-guest state: peer state, heartbeat age, slots owned, its link", async () => {
  const host = ShmHost.create({ path: segmentPath("diag"), heartbeatIntervalMs: 100 });
  hosts.push(host);
  const ticket = host.addPeer({ name: "diag-guest" });
  const child = ticket.spawn(process.execPath, [GUEST_SCRIPT], { stdio: ["ignore", "inherit", "inherit"] });
  children.push(child);
  const link = establishHostPeer(host, ticket.peerId, null);
  await host.waitAttached(ticket.peerId);
  void client(GuestTest, link.root).hang().catch(() => {});
  await sleep(250);
  const d = host.diagnostics();
  assert.equal(d.kind, "shm-host");
  assert.equal(d.path, host.path);
  const g = d.guests.find((x) => x.peerId === ticket.peerId)!;
  assert.equal(g.name, "diag-guest");
  assert.equal(g.peerState, "attached");
  assert.equal(g.kind, "process");
  assert.ok(g.heartbeatAgeMs !== null && g.heartbeatAgeMs < 1000, `heartbeat age ${g.heartbeatAgeMs}`);
  assert.equal(typeof g.slotsOwned, "number");
  assert.equal(g.link!.connections[0]!.calls[0]!.method, "GuestTest.hang");
  const text = formatDiagnostics(d);
  assert.match(text, /guest \d+ "diag-guest" \(process\): attached, heartbeat \d+ ms ago, owns \d+ slot\(s\)/);
  assert.match(text, /-> calling GuestTest\.hang/);
});

test("the roam-pty daemon reports its diagnostics (what `roam-pty info` prints)", async () => {
  const env = await inProcessDaemon();
  try {
    const d = await env.pty.diagnostics();
    assert.equal(d.length, 1);
    const server = d[0]!;
    assert.equal(server.kind, "server");
    assert.ok(server.kind === "server" && server.links[0]!.connections[0]!.calls.some((c) => c.method === "RoamPty.diagnostics" && c.direction === "incoming"));
  } finally {
    await env.close();
  }
});
