/**
 * roam-pty with tmux habits, driven through tmux (send-keys / capture-pane):
 * a daemon started from a terminal survives that terminal being closed (the
 * pane is killed: SIGHUP), logs to a file and not into the terminal, and
 * keeps its sessions; names work wherever an id does; two clients of
 * different sizes give the smallest size, recomputed when one leaves or
 * resizes; `attach -d` detaches the others and `attach -r` sends no keys;
 * `web` of an unknown session, `ls` without a server, `--version`, a
 * misspelled flag, and `kill-server`.
 *
 * Every daemon is stopped by its pid (pid file) at the end, whatever happens.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, test } from "node:test";

import { connectPty, type PtyConnection } from "../packages/roam-pty/src/sdk.js";
import { CLI, processAlive, sleep, tempDir, waitFor } from "./helpers/pty.js";
import { requireOrOptOut } from "./helpers/requirements.js";

function which(cmd: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      return path.join(dir, cmd);
    } catch {
      // next
    }
  }
  return null;
}

const TMUX = which("tmux");
const tmp = tempDir("roam-pty-tmuxd-");
const tmuxSocket = path.join(tmp.dir, "tmux.sock");
const socket = path.join(tmp.dir, "pty.sock");
const pidFile = `${socket}.pid`;
const logFile = `${socket}.log`;
const conf = path.join(tmp.dir, "tmux.conf");
fs.writeFileSync(conf, "set -g remain-on-exit on\nset -g status off\nset -g history-limit 2000\n");
const daemonPids = new Set<number>();
let tmuxStarted = false;
let pty: PtyConnection | undefined;

function tmux(...args: string[]): string {
  // -f: every time, since closing the last session (the terminal) ends the tmux server.
  return execFileSync(TMUX!, ["-f", conf, "-S", tmuxSocket, ...args], { encoding: "utf8", timeout: 10_000 });
}

function capture(target: string): string {
  return tmux("capture-pane", "-p", "-J", "-t", target);
}

async function screenMatches(target: string, re: RegExp, timeoutMs = 15_000): Promise<string> {
  let last = "";
  await waitFor(`pane ${target} to show ${re}`, () => re.test((last = capture(target))), timeoutMs, 50).catch((e: Error) => {
    throw new Error(`${e.message}\n--- pane ${target} ---\n${last}\n------------`);
  });
  return last;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** The CLI as typed in a pane. */
const roamPty = (...args: string[]) => [process.execPath, CLI, ...args].map(q).join(" ");

function cli(args: string[], socketPath = socket): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // --socket right after the command: after `--` it would belong to the session's command.
    execFile(process.execPath, [CLI, args[0]!, "--socket", socketPath, ...args.slice(1)], { timeout: 15_000, env: { ...process.env, ROAM_PTY_SOCKET: socketPath } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function readPid(): number {
  const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
  assert.ok(Number.isInteger(pid) && pid > 0, `pid file holds ${pid}`);
  daemonPids.add(pid);
  return pid;
}

after(async () => {
  pty?.close();
  if (tmuxStarted) {
    try {
      tmux("kill-server");
    } catch {
      // already gone
    }
  }
  try {
    daemonPids.add(Number(fs.readFileSync(pidFile, "utf8").trim()));
  } catch {
    // no pid file: the daemon stopped (or never started)
  }
  for (const pid of daemonPids) {
    if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) continue;
    process.kill(pid, "SIGTERM");
    await waitFor(`daemon ${pid} to stop`, () => !processAlive(pid), 5000).catch(() => process.kill(pid, "SIGKILL"));
  }
  tmp.remove();
});

test("roam-pty behaves like tmux: detached daemon survives its terminal, names, size policy, -r/-d, errors, kill-server", { timeout: 120_000 }, async (t) => {
  if (!requireOrOptOut(t, { what: "tmux", problem: TMUX ? null : "no tmux on PATH", install: "as root: apt-get install -y tmux (npm test does it through scripts/ensure-tmux.sh)", optOut: "ROAM_SKIP_TMUX" })) return;
  // A terminal with a shell, as a user has one.
  tmux("new-session", "-d", "-s", "term", "-x", "100", "-y", "30", "env PS1='term$ ' sh");
  tmuxStarted = true;
  await screenMatches("term", /term\$ $/m);
  const t0 = Date.now();

  // ls before any daemon: tmux's answer, exit 1, and no daemon started.
  const none = await cli(["ls"]);
  assert.equal(none.code, 1);
  assert.equal(none.stderr, `roam-pty: no server running on ${socket}\n`);
  assert.equal(fs.existsSync(socket), false, "ls did not start a daemon");

  // `daemon` from the terminal: it returns at once and says where things are.
  tmux("send-keys", "-t", "term", `${roamPty("daemon", "--socket", socket)}; echo "rc=$?"`, "Enter");
  await screenMatches("term", /^rc=0$/m);
  const daemonPid = readPid();
  t.diagnostic(`daemon up after ${Date.now() - t0} ms`);
  const shown = capture("term");
  assert.match(shown, new RegExp(`^roam-pty daemon ${daemonPid} listening on ${socket.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  assert.match(shown, /^log: .*pty\.sock\.log$/m);
  tmux("send-keys", "-t", "term", `${roamPty("new", "-d", "-n", "work", "--socket", socket, "--", "sh")}; echo "rc=$?"`, "Enter");
  await screenMatches("term", /^1\nrc=0$/m);

  // Detached for real: a session leader without a controlling terminal (what makes a closing
  // terminal's SIGHUP miss it), in no process group of the terminal's shell.
  const stat = fs.readFileSync(`/proc/${daemonPid}/stat`, "utf8");
  const [, , pgrp, sid, ttyNr] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  assert.deepEqual({ pgrp, sid, ttyNr }, { pgrp: daemonPid, sid: daemonPid, ttyNr: 0 });

  // Close the terminal: its processes get SIGHUP. The daemon is in a session of its own.
  tmux("kill-window", "-t", "term");
  await sleep(500);
  assert.ok(processAlive(daemonPid), "the daemon survived the terminal that started it");
  const ls = await cli(["ls"]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^1\s+work\s+\d+\s+\d+x\d+\s+0\s+running/m);
  const log = fs.readFileSync(logFile, "utf8");
  assert.match(log, /session 1: .*sh/, "the daemon logs to its log file");
  assert.doesNotMatch(shown, /roam-pty: (listening|session|flow)/, "no log line reached the terminal");

  t.diagnostic(`terminal closed, sessions alive after ${Date.now() - t0} ms`);
  // Two clients by name, of different sizes: the session takes the smallest of each.
  pty = await connectPty({ socketPath: socket });
  const size = async () => {
    const i = await pty!.find("work");
    return `${i.cols}x${i.rows}`;
  };
  tmux("new-session", "-d", "-s", "big", "-x", "110", "-y", "30", roamPty("attach", "work", "--socket", socket));
  await waitFor("the first client", async () => (await size()) === "110x30");
  tmux("new-session", "-d", "-s", "small", "-x", "90", "-y", "35", roamPty("attach", "work", "--socket", socket));
  await waitFor("the smallest columns and rows", async () => (await size()) === "90x30");
  tmux("send-keys", "-t", "small", "stty size", "Enter");
  await screenMatches("small", /^30 90$/m);
  // The small one grows: recomputed on resize.
  tmux("resize-window", "-t", "small", "-x", "140", "-y", "45");
  await waitFor("the size after a resize", async () => (await size()) === "110x30");
  tmux("resize-window", "-t", "small", "-x", "80", "-y", "24");
  await waitFor("the size after a resize", async () => (await size()) === "80x24");
  // The small one leaves (its terminal closes): recomputed on leave.
  tmux("kill-session", "-t", "small");
  await waitFor("the size after a client left", async () => (await size()) === "110x30");
  assert.equal((await pty.find("work")).clients, 1);

  t.diagnostic(`size policy checked after ${Date.now() - t0} ms`);
  // attach -r: a viewer; its keys do not reach the session (only the detach key counts).
  tmux("new-session", "-d", "-s", "viewer", "-x", "120", "-y", "40", roamPty("attach", "-r", "work", "--socket", socket));
  await waitFor("the viewer", async () => (await pty!.find("work")).clients === 2);
  tmux("send-keys", "-t", "viewer", "echo from-viewer", "Enter");
  tmux("send-keys", "-t", "big", "echo from-$((2+3))-writer", "Enter");
  await screenMatches("viewer", /^from-5-writer$/m);
  assert.doesNotMatch(capture("big"), /from-viewer/);
  tmux("send-keys", "-t", "viewer", "C-\\");
  await screenMatches("viewer", /\[detached from session 1\]/);

  // attach -d: take the session over; the other client is detached.
  tmux("new-session", "-d", "-s", "takeover", "-x", "100", "-y", "28", roamPty("attach", "-d", "work", "--socket", socket));
  await screenMatches("big", /\[detached from session 1\]/);
  await waitFor("only the new client", async () => (await pty!.find("work")).clients === 1 && (await size()) === "100x28");

  // web of an unknown session (and of a name nobody has): refused.
  const web = await cli(["web", "99"]);
  assert.equal(web.code, 1);
  assert.equal(web.stderr, "roam-pty: no session 99\n");
  assert.equal(web.stdout, "");
  assert.equal((await cli(["web", "play"])).stderr, 'roam-pty: no session named "play"\n');

  // --version, and a misspelled flag is an error with a suggestion (and creates nothing).
  const version = await cli(["--version"]);
  assert.match(version.stdout, /^roam-pty \d+\.\d+\.\d+\n$/);
  const typo = await cli(["new", "--detach", "-n", "x"]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /new: unknown option --detach \(did you mean --detached\?\)/);
  assert.equal((await pty.list()).length, 1);
  const dup = await cli(["new", "-d", "-n", "work", "--", "true"]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /a session named "work" already exists/);

  // kill-server: the daemon stops, its pid file and socket go.
  pty.close();
  pty = undefined;
  const killed = await cli(["kill-server"]);
  assert.equal(killed.code, 0, killed.stderr);
  assert.equal(processAlive(daemonPid), false);
  assert.equal(fs.existsSync(pidFile), false, "pid file removed");
  assert.equal(fs.existsSync(socket), false, "socket removed");
  await screenMatches("takeover", /\[session 1 closed\]|\[server exited: daemon shutting down\]/);
  assert.equal((await cli(["kill-server"])).stderr, `roam-pty: no server running on ${socket}\n`);
});
