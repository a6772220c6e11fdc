/**
 * The web terminal (runs in the browser): xterm.js attached to a roam-pty
 * session over roam WebSocket.
 *
 * Flow control comes from xterm's write callback: a chunk is taken from the
 * output channel (which grants the daemon credit) only after xterm has
 * parsed the previous one, so a flood of output can never pile up in the
 * page — it waits in the PTY (the child blocks on write) instead.
 *
 * URL: /?token=…[&session=ID-OR-NAME][&cols=C&rows=R]. Without a session a new
 * one running the daemon's default shell is created. An unknown session is an
 * error on the page (not a new session), and so is one that has exited.
 */
import { Terminal } from "@xterm/xterm";

import { connectBrowserWebSocket } from "roam-ts";
import { describeError, describeExit, PtyClient, type Attachment, type DetachReason } from "../sdk-core.js";

/** What the page exposes for tests and curious users (window.__roamPty). */
interface PageState {
  phase: "connecting" | "attached" | "ended" | "error";
  sessionId: number | null;
  clientId: number | null;
  /** Output bytes xterm has processed. */
  received: number;
  chunks: number;
  /** Level changes reported by the daemon, in order. */
  levels: string[];
  /** Animation frames seen (grows while the page is responsive). */
  frames: number;
  /** Longest single term.write() (ms from call to callback). */
  maxWriteMs: number;
  /** Total time xterm was busy with output, and total time the page waited for output. */
  busyMs: number;
  waitMs: number;
  reason: string | null;
  error: string | null;
  /** The terminal's visible lines as text. */
  screen(): string[];
}

const params = new URLSearchParams(location.search);
const statusEl = document.getElementById("status")!;
const levelEl = document.getElementById("level")!;
const term = new Terminal({ cursorBlink: true, fontSize: 14, fontFamily: "monospace", scrollback: 5000, allowProposedApi: false });

const state: PageState = {
  phase: "connecting",
  sessionId: null,
  clientId: null,
  received: 0,
  chunks: 0,
  levels: [],
  frames: 0,
  maxWriteMs: 0,
  busyMs: 0,
  waitMs: 0,
  reason: null,
  error: null,
  screen: () => {
    const buf = term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < term.rows; i++) lines.push(buf.getLine(buf.viewportY + i)?.translateToString(true) ?? "");
    return lines;
  },
};
(window as unknown as { __roamPty: PageState }).__roamPty = state;

const countFrames = () => {
  state.frames++;
  requestAnimationFrame(countFrames);
};
requestAnimationFrame(countFrames);

function setStatus(text: string): void {
  statusEl.textContent = text;
}

/** Terminal size that fits the container (approximate cell metrics; URL cols/rows override). */
function fitSize(): { cols: number; rows: number } {
  const el = document.getElementById("terminal")!;
  const ctx = document.createElement("canvas").getContext("2d");
  let cw = 8.4;
  if (ctx) {
    ctx.font = "14px monospace";
    cw = ctx.measureText("W").width || cw;
  }
  const ch = Math.ceil(14 * 1.2);
  const cols = Number(params.get("cols")) || Math.max(20, Math.floor((el.clientWidth - 8) / cw));
  const rows = Number(params.get("rows")) || Math.max(5, Math.floor((el.clientHeight - 8) / ch));
  return { cols: Math.min(cols, 1000), rows: Math.min(rows, 500) };
}

function describeReason(r: DetachReason): string {
  switch (r.tag) {
    case "SessionExited":
      return `session exited (${describeExit(r.value)})`;
    case "Detached":
      return "detached";
    case "TooSlow":
      return `detached: this terminal fell ${r.value.queuedBytes} bytes behind for ${r.value.behindMs} ms`;
    case "SessionClosed":
      return "session closed";
  }
}

async function main(): Promise<void> {
  term.open(document.getElementById("terminal")!);
  const size = fitSize();
  term.resize(size.cols, size.rows);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const token = params.get("token") ?? "";
  const link = await connectBrowserWebSocket(`${scheme}://${location.host}/roam/${encodeURIComponent(token)}`, { timeoutMs: 10_000 });
  const pty = new PtyClient(link.root);
  const wanted = params.get("session");
  let id: number;
  if (wanted === null || wanted === "") {
    const s = await pty.create({ cols: size.cols, rows: size.rows });
    id = s.id;
    params.set("session", String(id));
    history.replaceState(null, "", `?${params.toString()}`);
  } else {
    // "no session 99" / "no session named …" rather than a confusing failure later.
    const s = await pty.find(wanted);
    if (s.status.tag === "Exited") throw new Error(`session ${s.id} (${s.name}) has exited (${describeExit(s.status.value)}); \`roam-pty ls\` lists the sessions`);
    id = s.id;
  }
  const att: Attachment = await pty.attach(id, { cols: size.cols, rows: size.rows });
  state.sessionId = id;
  state.clientId = att.clientId;
  state.phase = "attached";
  document.title = `roam-pty: ${att.session.name} (${id})`;
  setStatus(`session ${id} · ${att.session.name} · client ${att.clientId}`);

  att.onLevel((ev) => {
    state.levels.push(ev.level);
    levelEl.textContent = ev.level;
    levelEl.className = `level ${ev.level}`;
    levelEl.title = `${ev.queuedBytes} bytes queued in the daemon${ev.sessionPaused ? " (PTY paused)" : ""}`;
  });
  term.onData((d) => void att.write(d).catch(() => undefined));
  term.onBinary((d) => {
    const bytes = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) bytes[i] = d.charCodeAt(i) & 0xff;
    void att.write(bytes).catch(() => undefined);
  });
  window.addEventListener("resize", () => {
    const s = fitSize();
    if (s.cols !== term.cols || s.rows !== term.rows) {
      term.resize(s.cols, s.rows);
      void att.resize(s.cols, s.rows).catch(() => undefined);
    }
  });
  term.focus();

  // The flow control: the next chunk is taken only once xterm processed this one.
  let idleSince = performance.now();
  const reason = await att.consume((chunk, done) => {
    const t0 = performance.now();
    state.waitMs += t0 - idleSince;
    term.write(chunk, () => {
      idleSince = performance.now();
      const ms = idleSince - t0;
      state.busyMs += ms;
      if (ms > state.maxWriteMs) state.maxWriteMs = ms;
      state.received += chunk.length;
      state.chunks++;
      done();
    });
  });
  state.reason = describeReason(reason);
  state.phase = "ended";
  setStatus(state.reason);
  term.write(`\r\n\x1b[2m[${state.reason}]\x1b[0m\r\n`);
  link.close();
}

main().catch((e: unknown) => {
  state.phase = "error";
  state.error = describeError(e);
  setStatus(`error: ${state.error}`);
  statusEl.classList.add("error");
  term.write(`\r\n\x1b[31m[roam-pty: ${state.error}]\x1b[0m\r\n`);
});
