/**
 * The roam-pty web page in Chromium for a session it cannot show: an unknown
 * id, an unknown name, an exited session. Each is a clear error on the page
 * (status line and terminal) and no session is created; a good name attaches.
 * A missing Chromium fails the test unless ROAM_SKIP_BROWSER=1 opts out
 * (helpers/browser.ts).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";

import type { Browser } from "playwright-core";

import { connectPty, type PtyConnection } from "../packages/roam-pty/src/sdk.js";
import { startDaemonProcess, type DaemonProcess } from "./helpers/pty.js";
import { bounded, launchChromium, requireChromium } from "./helpers/browser.js";

let daemon: DaemonProcess | undefined;
let pty: PtyConnection | undefined;
let browser: Browser | undefined;

after(async () => {
  if (browser) await bounded(browser.close(), 10_000);
  pty?.close();
  if (daemon) await bounded(daemon.stop(), 10_000);
});

interface PageState {
  phase: string;
  error: string | null;
  sessionId: number | null;
}

test("web page: unknown id, unknown name and exited session are clear errors; a name attaches", { timeout: 120_000 }, async (t) => {
  if (!requireChromium(t)) return;
  daemon = await startDaemonProcess(["--web", "127.0.0.1:0"]);
  pty = await connectPty({ socketPath: daemon.socketPath });
  const info = await pty.daemonInfo();
  assert.ok(info.webUrl);
  const live = await pty.create({ command: "sh", name: "live", env: { PS1: "web$ " } });
  const dead = await pty.create({ command: "sh", args: ["-c", "exit 3"], name: "dead" });
  await pty.wait(dead.id, { timeout: 10_000 });
  browser = await launchChromium();
  const before = (await pty.list()).length;
  const open = async (session: string): Promise<{ state: PageState; status: string }> => {
    const page = await browser!.newPage({ viewport: { width: 800, height: 400 } });
    try {
      await page.goto(`${info.webUrl}&session=${encodeURIComponent(session)}`, { timeout: 30_000 });
      await page.waitForFunction(() => {
        const p = (window as unknown as { __roamPty?: { phase: string } }).__roamPty?.phase;
        return p !== undefined && p !== "connecting";
      }, undefined, { timeout: 30_000 });
      const state = await page.evaluate(() => {
        const s = (window as unknown as { __roamPty: PageState }).__roamPty;
        return { phase: s.phase, error: s.error, sessionId: s.sessionId };
      });
      return { state, status: (await page.textContent("#status")) ?? "" };
    } finally {
      await page.close();
    }
  };
  const cases: [string, RegExp][] = [
    ["9999", /^no session 9999$/],
    ["nosuchname", /^no session named "nosuchname"$/],
    ["dead", new RegExp(`^session ${dead.id} \\(dead\\) has exited \\(exit code 3\\)`)],
  ];
  for (const [session, expected] of cases) {
    const { state, status } = await open(session);
    assert.equal(state.phase, "error", `session=${session}`);
    assert.match(state.error ?? "", expected);
    assert.equal(status, `error: ${state.error}`);
  }
  const ok = await open("live");
  assert.equal(ok.state.phase, "attached", ok.state.error ?? "");
  assert.equal(ok.state.sessionId, live.id);
  assert.equal((await pty.list()).length, before, "no session was created for a bad URL");
});
