/**
 * A hand-driven roam peer for tests: it speaks raw COBS frames over a
 * socket so a test can send exactly the bytes it wants (including invalid
 * ones) and read what the implementation under test sends back.
 */
import * as net from "node:net";
import { CobsFrameDecoder, cobsEncode } from "../../src/codec/cobs.js";
import { decodeMessage, messageToBytes, type Message } from "../../src/wire/message.js";

export class RawPeer {
  private readonly decoder = new CobsFrameDecoder(64 * 1024 * 1024);
  private readonly queue: Message[] = [];
  private waiters: ((m: Message | null) => void)[] = [];
  private ended = false;
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk) => {
      this.decoder.push(chunk, (frame) => {
        const m = decodeMessage(frame);
        const w = this.waiters.shift();
        if (w) w(m);
        else this.queue.push(m);
      });
    });
    this.closed = new Promise((resolve) => {
      socket.on("close", () => {
        this.ended = true;
        for (const w of this.waiters) w(null);
        this.waiters = [];
        resolve();
      });
    });
    socket.on("error", () => {});
  }

  /** Sends one message (encoded by the project's own wire codec). */
  send(m: Message): void {
    this.sendFrame(messageToBytes(m));
  }

  /** Sends raw postcard bytes as one COBS frame. */
  sendFrame(raw: Uint8Array): void {
    const enc = cobsEncode(raw);
    const out = new Uint8Array(enc.length + 1);
    out.set(enc);
    this.socket.write(out);
  }

  /** Sends bytes exactly as given (no framing). */
  sendBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  hello(maxPayloadSize = 1024 * 1024, initialChannelCredit = 64 * 1024): void {
    this.send({ type: "Hello", version: 2, maxPayloadSize, initialChannelCredit });
  }

  /** Next message, or null once the socket closed. Rejects after `timeoutMs`. */
  next(timeoutMs = 5000): Promise<Message | null> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (msg: Message | null) => {
        clearTimeout(timer);
        resolve(msg);
      };
      this.waiters.push(waiter);
    });
  }

  /** Reads messages until one of `type` arrives (others are returned in `skipped`). */
  async expect<T extends Message["type"]>(type: T, timeoutMs = 5000): Promise<Extract<Message, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const m = await this.next(Math.max(1, deadline - Date.now()));
      if (m === null) throw new Error(`socket closed while waiting for ${type}`);
      if (m.type === type) return m as Extract<Message, { type: T }>;
    }
    throw new Error(`no ${type} within 10000 messages`);
  }

  /** Waits for a Goodbye and then for the socket to close; returns the Goodbye. */
  async expectGoodbyeAndClose(timeoutMs = 5000): Promise<Extract<Message, { type: "Goodbye" }>> {
    const g = await this.expect("Goodbye", timeoutMs);
    await Promise.race([
      this.closed,
      new Promise((_, reject) => setTimeout(() => reject(new Error("socket not closed after Goodbye")), timeoutMs)),
    ]);
    return g;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Connects a raw peer to a roam server at `port`. */
export function rawConnect(port: number): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => resolve(new RawPeer(s)));
    s.once("error", reject);
  });
}

/** A raw listening peer: the implementation under test connects to it. */
export async function rawListen(): Promise<{ port: number; accept(): Promise<RawPeer>; close(): void }> {
  const pending: RawPeer[] = [];
  const waiters: ((p: RawPeer) => void)[] = [];
  const server = net.createServer((s) => {
    const p = new RawPeer(s);
    const w = waiters.shift();
    if (w) w(p);
    else pending.push(p);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    accept: () => {
      const p = pending.shift();
      if (p) return Promise.resolve(p);
      return new Promise((r) => waiters.push(r));
    },
    close: () => server.close(),
  };
}
