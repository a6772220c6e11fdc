/**
 * roam-pty output flow control, end to end:
 * - a client that stops reading pauses the PTY: the child's writes stop
 *   (its /proc wchar stands still), the daemon (a separate process) holds
 *   only a bounded amount of output and its RSS stays bounded; once the
 *   client reads again all 200 MB arrive intact and in order (SHA-256 of a
 *   deterministic pattern the child writes on a raw PTY);
 * - level events (green/yellow/red) fire at the configured thresholds;
 * - the detach policy detaches a client that stays behind instead of
 *   holding back the others.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { connectPty, type LevelEvent } from "../packages/roam-pty/src/sdk.js";
import { patternDigest } from "../packages/roam-pty/src/pattern.js";
import type { LevelChange } from "../src/session/pressure.js";
import { inProcessDaemon, patternCommand, sleep, startDaemonProcess, waitFor, waitGeneratorReady, wcharOf } from "./helpers/pty.js";

const MiB = 1024 * 1024;

/** The system call a blocked process sits in (/proc/PID/syscall), for write(2) on x64/arm64; null where unknown. */
function blockedSyscall(pid: number): string | null {
  const write = process.arch === "x64" ? 1 : process.arch === "arm64" ? 64 : null;
  if (write === null) return null;
  try {
    const nr = Number(readFileSync(`/proc/${pid}/syscall`, "utf8").split(" ")[0]);
    return nr === write ? "write" : `syscall ${nr}`;
  } catch {
    return null; // not readable here
  }
}

/** A consumer that can be stopped and resumed: it holds the chunk it took until opened. */
class GatedConsumer {
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;
  private readonly hash = createHash("sha256");
  bytes = 0;
  stop(): void {
    if (!this.gate) this.gate = new Promise((r) => (this.open = r));
  }
  resume(): void {
    const o = this.open;
    this.gate = null;
    this.open = null;
    o?.();
  }
  readonly onChunk = async (chunk: Uint8Array): Promise<void> => {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (this.gate) await this.gate;
  };
  digest(): string {
    return this.hash.digest("hex");
  }
}

describe("roam-pty flow control", { timeout: 900_000 }, () => {
  test("a stopped client pauses the PTY with bounded daemon memory; 200 MB arrive intact after resuming", { timeout: 480_000 }, async (t) => {
    const TOTAL = 200_000_000;
    const expected = patternDigest(TOTAL); // computed before the daemon runs: no CPU contention later
    const daemon = await startDaemonProcess();
    const pty = await connectPty({ socketPath: daemon.socketPath });
    try {
      const info = await pty.daemonInfo();
      const flow = info.flow;
      assert.equal(flow.policy, "pause");
      assert.equal(info.pid, daemon.pid);
      const idleRss = daemon.rss();
      let peakRss = idleRss;
      const sampler = setInterval(() => {
        try {
          peakRss = Math.max(peakRss, daemon.rss());
        } catch {
          // exiting
        }
      }, 50);
      try {
        const s = await pty.create({ ...patternCommand(TOTAL), cols: 80, rows: 24 });
        const a = await pty.attach(s.id, { replay: false });
        const levels: LevelEvent[] = [];
        a.onLevel((l) => levels.push(l));
        const consumer = new GatedConsumer();
        const done = a.consume(consumer.onChunk);
        await waitGeneratorReady(s.pid); // stty raw -echo has run
        const t0 = Date.now();
        await pty.write(s.id, "g");
        await waitFor("output to flow", () => consumer.bytes > 4 * MiB, 20_000);

        // The client stops reading.
        consumer.stop();
        const paused = await waitFor("the PTY to pause", async () => {
          const st = await pty.stats(s.id);
          return st.paused ? st : null;
        });
        const pausedAt = paused.outputBytes;
        // The child is blocked in write(2): its output rate is zero.
        await sleep(300);
        const w1 = wcharOf(s.pid);
        const o1 = (await pty.stats(s.id)).outputBytes;
        await sleep(700);
        const w2 = wcharOf(s.pid);
        const st = await pty.stats(s.id);
        // (wchar counts completed write(2) calls: the generator writes 64 KiB at a time.)
        assert.equal(w2 - w1, 0, `the child wrote ${w2 - w1} bytes in 700 ms while paused`);
        const sys = blockedSyscall(s.pid);
        if (sys !== null) assert.equal(sys, "write", "the child sits in write(2)");
        assert.equal(st.outputBytes - o1, 0, "the daemon read nothing from the PTY while paused");
        assert.ok(st.paused && st.pausedMs >= 900, `paused for ${st.pausedMs} ms`);
        assert.ok(st.outputBytes < TOTAL / 2, "the child is far from done");
        // Memory: the daemon holds the scrollback plus at most about a watermark for the slow client.
        const bound = flow.scrollbackBytes + flow.highWatermark + 256 * 1024;
        assert.ok(st.bufferedBytes <= bound, `daemon buffers ${st.bufferedBytes} bytes (bound ${bound})`);
        const c = st.clients[0]!;
        assert.ok(c.queuedBytes >= flow.highWatermark && c.queuedBytes <= flow.highWatermark + 256 * 1024, `client queued ${c.queuedBytes}`);
        assert.equal(c.level, "red");
        assert.ok(c.inFlightBytes <= c.window, "in flight within the credit window");
        assert.equal(a.level?.level, "red", "the client was told it is red");
        const pausedRss = daemon.rss();
        assert.ok(pausedRss - idleRss < 64 * MiB, `daemon RSS grew ${((pausedRss - idleRss) / MiB).toFixed(1)} MiB while paused`);
        t.diagnostic(
          `paused after ${pausedAt} bytes; buffered ${st.bufferedBytes} B; client queued ${c.queuedBytes} B, in flight ${c.inFlightBytes}/${c.window}; ` +
            `RSS idle ${(idleRss / MiB).toFixed(1)} MiB, paused ${(pausedRss / MiB).toFixed(1)} MiB`,
        );

        // The client reads again: everything arrives, in order.
        consumer.resume();
        const reason = await done;
        const secs = (Date.now() - t0) / 1000;
        assert.deepEqual(reason, { tag: "SessionExited", value: { exitCode: 0, signal: null } });
        assert.equal(consumer.bytes, TOTAL, "byte count");
        assert.equal(consumer.digest(), expected, "SHA-256 of 200 MB: nothing lost or reordered");
        const end = await pty.stats(s.id);
        assert.equal(end.outputBytes, TOTAL);
        assert.ok(end.pauseCount >= 1);
        assert.ok(levels.some((l) => l.level === "red") && levels[levels.length - 1]!.level === "green", `levels ${levels.map((l) => l.level).join(",")}`);
        assert.ok(peakRss - idleRss < 128 * MiB, `daemon peak RSS grew ${((peakRss - idleRss) / MiB).toFixed(1)} MiB for 200 MB of output`);
        t.diagnostic(`200 MB in ${secs.toFixed(1)} s incl. the pause; ${end.pauseCount} pauses, ${Math.round(end.pausedMs)} ms paused; peak RSS ${(peakRss / MiB).toFixed(1)} MiB`);
      } finally {
        clearInterval(sampler);
      }
    } finally {
      pty.close();
      await daemon.stop();
    }
  });

  test("a child that exits while its PTY is paused loses nothing of its output", { timeout: 120_000 }, async () => {
    const flow = { highWatermark: 20_000, lowWatermark: 1_000, windowBytes: 16_384, chunkBytes: 4096 };
    const env = await inProcessDaemon(flow);
    try {
      const TOTAL = 200_000;
      const expected = patternDigest(TOTAL);
      // Timing decides whether the child's exit falls into a pause; under load a run
      // may miss it (everything is read first), so up to 5 runs — each checked too.
      let exitedWhilePaused = false;
      for (let attempt = 0; attempt < 5 && !exitedWhilePaused; attempt++) {
        const s = await env.pty.create(patternCommand(TOTAL));
        const a = await env.pty.attach(s.id, { replay: false });
        const consumer = new GatedConsumer();
        consumer.stop();
        const done = a.consume(consumer.onChunk);
        await waitGeneratorReady(s.pid);
        await env.pty.write(s.id, "g");
        const childGone = () => {
          try {
            process.kill(s.pid, 0);
            return false;
          } catch {
            return true;
          }
        };
        // Let the client read in small steps until the child's last bytes fit in the
        // kernel's PTY buffers: then it exits while the PTY is paused.
        for (let step = 0; step < 200; step++) {
          await waitFor("the PTY to pause", async () => (await env.pty.stats(s.id)).paused || childGone());
          await sleep(50);
          if (childGone()) {
            // The case under test: exited while paused, with output still in the kernel.
            const st = await env.pty.stats(s.id);
            exitedWhilePaused = st.paused && st.outputBytes < TOTAL;
            break;
          }
          // Exactly one more batch (at most a window) is taken, then the consumer holds again.
          consumer.resume();
          consumer.stop();
        }
        if (exitedWhilePaused) {
          // node-pty would have destroyed the PTY stream 200 ms after the exit.
          await sleep(1000);
          const st = await env.pty.stats(s.id);
          assert.ok(st.paused, "still paused: the client has not read");
          assert.ok(st.outputBytes < TOTAL, `the daemon has read ${st.outputBytes} of ${TOTAL} bytes so far`);
        }
        consumer.resume();
        assert.deepEqual(await done, { tag: "SessionExited", value: { exitCode: 0, signal: null } });
        assert.equal(consumer.bytes, TOTAL, "every byte the child wrote before exiting arrived");
        assert.equal(consumer.digest(), expected);
      }
      assert.ok(exitedWhilePaused, "in one of 5 runs the child exited while the PTY was paused");
    } finally {
      await env.close();
    }
  });

  test("level events fire at the thresholds, both on the daemon's side and locally", { timeout: 120_000 }, async () => {
    // Small chunks so the local receive buffer can fill to the window while the consumer holds one.
    const flow = { highWatermark: 60_000, lowWatermark: 2_000, yellowThreshold: 20_000, redThreshold: 40_000, hysteresis: 2_000, windowBytes: 16_384, chunkBytes: 512 };
    const env = await inProcessDaemon(flow);
    try {
      const TOTAL = 3 * MiB;
      const s = await env.pty.create(patternCommand(TOTAL));
      const a = await env.pty.attach(s.id, { replay: false });
      assert.equal(a.localStats().window, 16_384, "the daemon's window applies to the link");
      const levels: LevelEvent[] = [];
      const local: LevelChange[] = [];
      a.onLevel((l) => levels.push(l));
      a.onLocalLevel((c) => local.push(c));
      const consumer = new GatedConsumer();
      consumer.stop(); // stopped from the start: takes one value (no batching), then holds it
      const done = a.consume(consumer.onChunk, { maxBatchBytes: 0 });
      await waitGeneratorReady(s.pid);
      await env.pty.write(s.id, "g");
      await waitFor("red", () => levels.some((l) => l.level === "red"));
      await waitFor("the PTY to pause", async () => (await env.pty.stats(s.id)).paused);
      await waitFor("the paused flag in a level event", () => levels.some((l) => l.sessionPaused));

      // Every event is consistent with its figure and the thresholds.
      for (const l of levels) {
        if (l.level === "red") assert.ok(l.queuedBytes >= flow.redThreshold, JSON.stringify(l));
        if (l.level === "yellow") assert.ok(l.queuedBytes >= flow.yellowThreshold - flow.hysteresis && l.queuedBytes < flow.redThreshold, JSON.stringify(l));
      }
      const firstUp = levels.find((l) => l.level !== "green")!;
      assert.ok(firstUp.queuedBytes >= flow.yellowThreshold, `first warning at ${firstUp.queuedBytes} bytes`);
      assert.ok(firstUp.queuedBytes < flow.yellowThreshold + 65_536, `first warning soon after the threshold (${firstUp.queuedBytes})`);
      const red = levels.find((l) => l.level === "red")!;
      assert.ok(red.queuedBytes < flow.redThreshold + 65_536, `red soon after the threshold (${red.queuedBytes})`);
      // Locally: the receive buffer fills up to the window (the Rx gauge, 0.5/0.9 of the window).
      await waitFor(`local red (local levels ${JSON.stringify(local)})`, () => local.some((c) => c.to === "red"));
      assert.equal(a.localStats().bufferedBytes + a.localStats().creditOutstanding <= 16_384, true);

      const beforeResume = levels.length;
      consumer.resume();
      const reason = await done;
      assert.equal(reason.tag, "SessionExited");
      assert.equal(consumer.bytes, TOTAL);
      assert.equal(consumer.digest(), patternDigest(TOTAL));
      const after = levels.slice(beforeResume);
      assert.ok(after.length > 0, "levels came back down");
      for (const l of after) if (l.level === "green") assert.ok(l.queuedBytes + flow.hysteresis < flow.yellowThreshold, JSON.stringify(l));
      assert.equal(levels[levels.length - 1]!.level, "green");
      assert.ok(local.some((c) => c.to === "green" && c.from !== "green"), "local level returned to green");
    } finally {
      await env.close();
    }
  });

  test("the detach policy detaches a client that stays behind instead of pausing the others", { timeout: 120_000 }, async () => {
    const flow = { policy: "detach" as const, detachAfterMs: 3000, highWatermark: 50_000, lowWatermark: 1_000, maxBufferBytes: 8 * MiB, windowBytes: 32_768 };
    const env = await inProcessDaemon(flow);
    try {
      const TOTAL = 4 * MiB; // below the hard cap: the timer, not the cap, detaches
      const s = await env.pty.create(patternCommand(TOTAL));
      const other = await env.connect();
      const fast = await env.pty.attach(s.id, { replay: false });
      const slow = await other.attach(s.id, { replay: false });
      const fastConsumer = new GatedConsumer();
      const slowConsumer = new GatedConsumer();
      slowConsumer.stop();
      const fastDone = fast.consume(fastConsumer.onChunk);
      void slow.consume(slowConsumer.onChunk); // stuck in its callback: watch slow.done instead
      const slowDone = slow.done;
      slowDone.catch(() => undefined); // awaited below; a failure before that must not surface as unhandled
      await waitGeneratorReady(s.pid);
      await env.pty.write(s.id, "g");

      // The fast client is not held back: it gets everything while the slow one is stuck.
      const fastReason = await fastDone;
      assert.equal(fastReason.tag, "SessionExited");
      assert.equal(fastConsumer.bytes, TOTAL);
      assert.equal(fastConsumer.digest(), patternDigest(TOTAL));
      const st = await env.pty.stats(s.id);
      assert.equal(st.pauseCount, 0, "the PTY was never paused");
      // "Not held back" is counted, not timed: the PTY never paused and the fast client got
      // everything. On a loaded machine the fast client may need longer than detachAfterMs;
      // then the slow one is gone already, and its TooSlow reason (below) carries its backlog.
      const slowStats = st.clients.find((c) => c.clientId === slow.clientId);
      if (slowStats) assert.ok(slowStats.queuedBytes >= flow.highWatermark, `slow client queued ${slowStats.queuedBytes}`);

      // The slow client is detached once it stayed behind for detachAfterMs.
      const slowReason = await slowDone;
      assert.equal(slowReason.tag, "TooSlow", JSON.stringify(slowReason));
      if (slowReason.tag === "TooSlow") {
        assert.ok(slowReason.value.behindMs >= flow.detachAfterMs - 20, `behind ${slowReason.value.behindMs} ms`);
        assert.ok(slowReason.value.queuedBytes >= flow.highWatermark);
      }
      assert.ok(slowConsumer.bytes < TOTAL);
      assert.equal((await env.pty.stats(s.id)).clients.length, 0);
      // The detached client may attach again and gets the scrollback.
      const back = await other.attach(s.id);
      assert.ok(back.replayBytes > 0);
      await back.detach();
    } finally {
      await env.close();
    }
  });

  test("the detach policy's hard cap bounds the backlog even before the timer", { timeout: 120_000 }, async () => {
    const flow = { policy: "detach" as const, detachAfterMs: 60_000, highWatermark: 50_000, lowWatermark: 1_000, maxBufferBytes: 1 * MiB, windowBytes: 32_768 };
    const env = await inProcessDaemon(flow);
    try {
      const TOTAL = 8 * MiB;
      const s = await env.pty.create(patternCommand(TOTAL));
      const slow = await env.pty.attach(s.id, { replay: false });
      const consumer = new GatedConsumer();
      consumer.stop();
      void slow.consume(consumer.onChunk);
      await waitGeneratorReady(s.pid);
      await env.pty.write(s.id, "g");
      const reason = await slow.done;
      assert.equal(reason.tag, "TooSlow");
      if (reason.tag === "TooSlow") assert.ok(reason.value.queuedBytes >= flow.maxBufferBytes && reason.value.queuedBytes < flow.maxBufferBytes + 256 * 1024);
      // With nobody attached the session runs to the end, keeping only its scrollback.
      assert.deepEqual(await env.pty.wait(s.id, { timeout: 20_000 }), { exitCode: 0, signal: null });
      const st = await env.pty.stats(s.id);
      assert.equal(st.outputBytes, TOTAL);
      assert.ok(st.bufferedBytes <= env.daemon.flow.scrollbackBytes + 65_536, `holds ${st.bufferedBytes}`);
    } finally {
      await env.close();
    }
  });
});
