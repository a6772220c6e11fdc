/**
 * `roam-pty attach` in a real terminal: tmux runs the CLI in a pane
 * (send-keys types, capture-pane reads the screen). Covers the prompt, a
 * typed command's output, raw mode (^C reaches the session, not the CLI),
 * window-size propagation, the detach key, and `new`/`ls`/`kill` from the
 * command line. tmux runs on its own socket in a temp dir and is killed at
 * the end. A missing tmux fails the test unless ROAM_SKIP_TMUX=1 opts out
 * (scripts/ensure-tmux.sh installs it when it can).
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, test } from "node:test";

import { connectPty, type PtyConnection } from "../packages/roam-pty/src/sdk.js";
import { CLI, sleep, startDaemonProcess, tempDir, waitFor, type DaemonProcess } from "./helpers/pty.js";
import { requireOrOptOut } from "./helpers/requirements.js";

function which(cmd: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/** tmux; ROAM_TMUX overrides it (e.g. to check the missing-tmux path). */
const TMUX = process.env["ROAM_TMUX"] !== undefined ? (fs.existsSync(process.env["ROAM_TMUX"]) ? process.env["ROAM_TMUX"] : null) : which("tmux");
const tmp = tempDir("roam-pty-tmux-");
const tmuxSocket = path.join(tmp.dir, "tmux.sock");
let daemon: DaemonProcess | undefined;
let pty: PtyConnection | undefined;
let tmuxStarted = false;

function tmux(...args: string[]): string {
  return execFileSync(TMUX!, ["-S", tmuxSocket, ...args], { encoding: "utf8", timeout: 10_000 });
}

function capture(target = "t"): string {
  return tmux("capture-pane", "-p", "-J", "-t", target);
}

async function screenMatches(re: RegExp, timeoutMs = 10_000, target = "t"): Promise<string> {
  let last = "";
  await waitFor(`the tmux pane to show ${re}`, () => re.test((last = capture(target))), timeoutMs, 50).catch((e: Error) => {
    throw new Error(`${e.message}\n--- pane ---\n${last}\n------------`);
  });
  return last;
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, args[0]!, "--socket", daemon!.socketPath, ...args.slice(1)], { timeout: 15_000, env: { ...process.env, ROAM_PTY_NO_AUTOSTART: "1" } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

after(async () => {
  if (tmuxStarted) {
    try {
      tmux("kill-server");
    } catch {
      // already gone
    }
  }
  pty?.close();
  await daemon?.stop();
  tmp.remove();
});

test("roam-pty attach in tmux: prompt, typed command, raw mode, resize, detach key; new/ls/kill", { timeout: 90_000 }, async (t) => {
  if (!requireOrOptOut(t, { what: "tmux", problem: TMUX ? null : "no tmux on PATH", install: "as root: apt-get install -y tmux (npm test does it through scripts/ensure-tmux.sh)", optOut: "ROAM_SKIP_TMUX" })) return;
  daemon = await startDaemonProcess();
  pty = await connectPty({ socketPath: daemon.socketPath });
  const s = await pty.create({ command: "sh", env: { PS1: "roam$ " }, cols: 80, rows: 24 });

  // A tmux server of our own; panes stay after their command exits so we can read the last words.
  const conf = path.join(tmp.dir, "tmux.conf");
  fs.writeFileSync(conf, "set -g remain-on-exit on\nset -g status off\nset -g history-limit 2000\n");
  const attachCmd = `'${process.execPath}' '${CLI}' attach ${s.id} --socket '${daemon.socketPath}'`;
  tmux("-f", conf, "new-session", "-d", "-s", "t", "-x", "100", "-y", "30", attachCmd);
  tmuxStarted = true;

  // Attaching resized the session to the pane.
  await screenMatches(/roam\$ $/m);
  await waitFor("the session to take the pane's size", async () => {
    const info = await pty!.info(s.id);
    return info.cols === 100 && info.rows === 30;
  });
  assert.equal((await pty.info(s.id)).clients, 1);

  // A typed command and its output.
  tmux("send-keys", "-t", "t", "echo typed-$((6*7))", "Enter");
  await screenMatches(/^typed-42$/m);

  // Raw mode: ^C goes to the session (interrupting sleep), the CLI stays attached.
  tmux("send-keys", "-t", "t", "sleep 30", "Enter");
  await sleep(300);
  tmux("send-keys", "-t", "t", "C-c");
  await screenMatches(/\^C[\s\S]*roam\$\s*$/); // the prompt is back (no type-ahead)
  tmux("send-keys", "-t", "t", "echo after-interrupt", "Enter");
  await screenMatches(/^after-interrupt$/m);

  // Window size propagation: tmux resizes the pane, the CLI forwards it.
  tmux("resize-window", "-t", "t", "-x", "90", "-y", "25");
  await waitFor("the session to follow the window size", async () => {
    const info = await pty!.info(s.id);
    return info.cols === 90 && info.rows === 25;
  });
  tmux("send-keys", "-t", "t", "stty size", "Enter");
  await screenMatches(/^25 90$/m);

  // The detach key (Ctrl-\) detaches; the session keeps running.
  tmux("send-keys", "-t", "t", "C-\\");
  await screenMatches(new RegExp(`\\[detached from session ${s.id}\\]`));
  await waitFor("the client to be gone", async () => (await pty!.info(s.id)).clients === 0);
  assert.equal((await pty.info(s.id)).status.tag, "Running");

  // ls shows it; a second pane attaches again and gets the scrollback.
  const ls = await cli(["ls"]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`^${s.id}\\s+sh\\s+\\d+\\s+90x25\\s+0\\s+running`, "m"));
  tmux("new-window", "-t", "t", "-n", "again", attachCmd);
  await screenMatches(/^typed-42$/m, 10_000, "t:again");
  tmux("send-keys", "-t", "t:again", "exit 3", "Enter");
  await screenMatches(new RegExp(`\\[session ${s.id} exited: exit code 3\\]`), 10_000, "t:again");

  // new -d / kill from the command line.
  const created = await cli(["new", "-d", "-n", "sleeper", "--", "sleep", "60"]);
  assert.equal(created.code, 0, created.stderr);
  const id = Number(created.stdout.trim());
  assert.ok(Number.isInteger(id) && id > s.id, created.stdout);
  assert.match((await cli(["ls"])).stdout, new RegExp(`^${id}\\s+sleeper\\s`, "m"));
  const killed = await cli(["kill", String(id), "-s", "SIGTERM"]);
  assert.equal(killed.code, 0, killed.stderr);
  assert.deepEqual(await pty.wait(id, { timeout: 10_000 }), { exitCode: 0, signal: "SIGTERM" });
  const bad = await cli(["kill", "999"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no session 999/);
});
