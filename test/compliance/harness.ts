/**
 * A raw-wire port of roam's compliance harness (spec/spec-tests/src/harness.rs
 * at the pinned commit 13c25df0): the suite LISTENS on 127.0.0.1, runs the
 * subject with `sh -lc "$SUBJECT_CMD"` and PEER_ADDR, accepts the subject's
 * connection (the subject is the link initiator) and then speaks COBS-framed
 * postcard messages by hand. No roam-ts session code is used here: messages
 * are encoded with the wire codec alone (held byte-exact to the Rust
 * reference by test/golden-vectors.test.ts, as roam's harness uses roam_wire),
 * and call payloads are written byte by byte below.
 *
 * SUBJECT_CMD defaults to `npm run --silent subject` (this repository's
 * subject, scripts/subject.sh); set it to test another implementation.
 *
 * Timing: roam's harness waits 250/500 ms for each expected message. This
 * machine runs test files in parallel on 2 shared cores, so every wait is
 * scaled by ROAM_COMPLIANCE_TIME_SCALE (default 4). A longer wait for an
 * expected message only tolerates slowness; a longer "nothing may arrive"
 * window (handshake ordering) makes that check stricter, not looser.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { CobsFrameDecoder, cobsEncode } from "../../src/codec/cobs.js";
import { decodeMessage, messageToBytes, type Message } from "../../src/wire/message.js";
import { Cursor } from "../helpers/postcard.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const SCALE = Number(process.env["ROAM_COMPLIANCE_TIME_SCALE"] ?? "4");

/** A timeout of the Rust harness, in ms, scaled for this machine. */
export function ms(harnessMs: number): number {
  return harnessMs * SCALE;
}

export function subjectCmd(): string {
  const s = process.env["SUBJECT_CMD"];
  return s !== undefined && s.trim() !== "" ? s : "npm run --silent subject";
}

/** Testbed method ids as the Rust reference computes them (test/fixtures/testbed). */
const ids = JSON.parse(readFileSync(fileURLToPath(new URL("../../../test/fixtures/testbed/method-ids.json", import.meta.url)), "utf8")) as Record<string, string>;
export function methodId(name: string): bigint {
  const v = ids[name];
  if (v === undefined) throw new Error(`no Testbed method ${name} in method-ids.json`);
  return BigInt(v);
}

/** Our Hello, as `our_hello` builds it: V2 with 64 KiB initial credit. */
export function ourHello(maxPayloadSize: number): Message {
  return { type: "Hello", version: 2, maxPayloadSize, initialChannelCredit: 64 * 1024 };
}

// ---- postcard, by hand (call payloads): test/helpers/postcard.ts ----

export { bytes, Cursor, str, varint, zigzag } from "../helpers/postcard.js";

/**
 * Decodes `Result<T, RoamError<E>>`: Ok(T) or the RoamError variant
 * (User=0 with E, UnknownMethod=1, InvalidPayload=2, Cancelled=3).
 */
export function decodeResult<T, E = never>(
  payload: Uint8Array,
  ok: (c: Cursor) => T,
  user?: (c: Cursor) => E,
): { ok: true; value: T } | { ok: false; error: "User"; user: E } | { ok: false; error: "UnknownMethod" | "InvalidPayload" | "Cancelled" } {
  const c = new Cursor(payload);
  const tag = c.byte();
  if (tag === 0) {
    const value = ok(c);
    c.end();
    return { ok: true, value };
  }
  if (tag !== 1) throw new Error(`postcard resp: Result tag ${tag}`);
  const e = Number(c.varint());
  const names = ["User", "UnknownMethod", "InvalidPayload", "Cancelled"] as const;
  const name = names[e];
  if (name === undefined) throw new Error(`postcard resp: RoamError variant ${e}`);
  if (name === "User") {
    if (!user) throw new Error("postcard resp: User error for a method without one (Never)");
    const u = user(c);
    c.end();
    return { ok: false, error: "User", user: u };
  }
  c.end();
  return { ok: false, error: name };
}

/** `msg` for error messages: like Rust's {:?}, enough to see what came. */
export function show(m: Message): string {
  return JSON.stringify(m, (_k, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v instanceof Uint8Array ? `[${v.length} bytes]` : v));
}

// ---- framing (CobsFramed) ----

export class CobsFramed {
  private readonly decoder = new CobsFrameDecoder(64 * 1024 * 1024);
  private readonly frames: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private eof = false;
  private error: Error | null = null;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      try {
        this.decoder.push(chunk, (frame) => this.frames.push(frame.slice()));
      } catch (e) {
        this.error = e as Error;
      }
      this.notify();
    });
    socket.on("end", () => {
      this.eof = true;
      this.notify();
    });
    socket.on("close", () => {
      this.eof = true;
      this.notify();
    });
    socket.on("error", () => {
      this.eof = true;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  send(m: Message): void {
    this.sendRaw(messageToBytes(m));
  }

  /** One COBS frame of exactly these postcard bytes (for malformed messages). */
  sendRaw(payload: Uint8Array): void {
    const enc = cobsEncode(payload);
    const out = Buffer.alloc(enc.length + 1);
    out.set(enc);
    this.socket.write(out);
  }

  /**
   * Like `recv_timeout`: the next message, or null when the peer closed the
   * stream or nothing arrived in time. A frame that does not decode throws.
   */
  async recvTimeout(timeoutMs: number): Promise<Message | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.error) throw this.error;
      const f = this.frames.shift();
      if (f !== undefined) return decodeMessage(f);
      if (this.eof) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.wake = null;
          resolve();
        }, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** Like recvTimeout, but "nothing" is an error naming `what`. */
  async expectMessage(timeoutMs: number, what: string): Promise<Message> {
    const m = await this.recvTimeout(timeoutMs);
    if (m === null) throw new Error(what);
    return m;
  }
}

// ---- the subject process ----

export interface Subject {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
  /** Like `child.kill()`: stops the subject's whole process group (sh, npm, node) by its id. */
  kill(): Promise<void>;
}

function spawnSubject(peerAddr: string, env: Record<string, string>): Subject {
  // Its own process group, so the shell's children (npm, node) are stopped with it.
  const child = spawn("sh", ["-lc", subjectCmd()], {
    cwd: repoRoot,
    env: { ...process.env, PEER_ADDR: peerAddr, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  child.stdout!.on("data", () => {});
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    exited,
    stderr: () => err,
    kill: async () => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    },
  };
}

/**
 * `accept_subject_with_options`: listen on 127.0.0.1:0, spawn the subject
 * with PEER_ADDR (and ACCEPT_CONNECTIONS=1 if asked, or the given client-mode
 * variables), accept its connection within 5 s (scaled: npm + node start-up).
 */
export async function acceptSubject(opts: { acceptConnections?: boolean; env?: Record<string, string> } = {}): Promise<{ io: CobsFramed; subject: Subject }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const env: Record<string, string> = { ...opts.env };
  if (opts.acceptConnections) env["ACCEPT_CONNECTIONS"] = "1";
  const subject = spawnSubject(`127.0.0.1:${port}`, env);
  try {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`subject did not connect within ${ms(5000)} ms; stderr: ${subject.stderr()}`)), ms(5000));
      server.once("connection", (s) => {
        clearTimeout(t);
        resolve(s);
      });
      void subject.exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`subject exited with ${code} before connecting; stderr: ${subject.stderr()}`));
      });
    });
    return { io: new CobsFramed(sock), subject };
  } catch (e) {
    await subject.kill();
    throw e;
  } finally {
    server.close();
  }
}

/** Runs one scenario body with a fresh subject; always stops the subject. */
export async function withSubject(
  opts: { acceptConnections?: boolean; env?: Record<string, string> },
  body: (io: CobsFramed, subject: Subject) => Promise<void>,
): Promise<void> {
  const { io, subject } = await acceptSubject(opts);
  try {
    await body(io, subject);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    err.message += subject.stderr() ? `\nsubject stderr:\n${subject.stderr()}` : "";
    throw err;
  } finally {
    io.socket.destroy();
    await subject.kill();
  }
}

/** Reads up to 10 messages (each within 250 ms, scaled) looking for a Goodbye, as the harness does. */
export async function awaitGoodbye(io: CobsFramed): Promise<string | null> {
  for (let i = 0; i < 10; i++) {
    const m = await io.recvTimeout(ms(250));
    if (m === null) return null;
    if (m.type === "Goodbye") return m.reason;
  }
  return null;
}

/** The subject's Hello must come first, as Hello::V2. */
export async function expectSubjectHello(io: CobsFramed): Promise<Extract<Message, { type: "Hello" }>> {
  const m = await io.expectMessage(ms(250), "expected Hello from subject");
  if (m.type !== "Hello") throw new Error(`first message must be Hello, got ${show(m)}`);
  if (m.version === 1) throw new Error("received Hello::V1, but V1 is no longer supported");
  if (m.version !== 2) throw new Error(`expected Hello::V2, got ${show(m)}`);
  return m;
}

/** `hello_exchange` / `complete_hello_handshake`: their Hello, then ours (1 MiB). */
export async function helloExchange(io: CobsFramed): Promise<Extract<Message, { type: "Hello" }>> {
  const h = await expectSubjectHello(io);
  io.send(ourHello(1024 * 1024));
  return h;
}
