/**
 * A ChannelHost that records what bound Rx/Tx ends ask of their connection,
 * for unit tests of the channel ends (no link or transport).
 */
import assert from "node:assert/strict";
import type { ChannelHost } from "../../src/session/channel/host.js";
import type { RawChannelSink } from "../../src/session/channel/raw.js";
import { Rx } from "../../src/session/channel/rx.js";
import { Tx } from "../../src/session/channel/tx.js";
import { CreditMessageFlowControl } from "../../src/session/flow.js";
import { DEFAULT_THRESHOLDS, type PressureThresholds } from "../../src/session/pressure.js";
import { t } from "../../src/schema/index.js";

export interface Recorder extends ChannelHost {
  /** Channel messages in order: "data:<id>:<bytes>", "close:<id>", "reset:<id>", "release:<id>:<how>", "credit:<id>:<n>". */
  log: string[];
  /** Every Data element as sent (head ++ payload, copied at send time), and the raw arguments. */
  data: { element: Uint8Array; payload: Uint8Array; head: Uint8Array | undefined }[];
  /** What writable() returns next. */
  drain: Promise<void> | undefined;
}

export function recorder(opts: { window?: number; max?: number; thresholds?: PressureThresholds; connId?: number } = {}): Recorder {
  const h: Recorder = {
    connId: opts.connId ?? 4,
    maxPayloadSize: opts.max ?? 1 << 20,
    initialCredit: opts.window ?? 64,
    flow: new CreditMessageFlowControl((connId, id, n) => {
      assert.equal(connId, h.connId, "Credit names the channel's connection");
      h.log.push(`credit:${id}:${n}`);
    }),
    thresholds: opts.thresholds ?? DEFAULT_THRESHOLDS,
    log: [],
    data: [],
    drain: undefined,
    sendData(id, payload, head) {
      const element = new Uint8Array((head?.length ?? 0) + payload.length);
      if (head) element.set(head);
      element.set(payload, head?.length ?? 0);
      h.data.push({ element, payload, head });
      h.log.push(`data:${id}:${element.length}`);
    },
    writable: () => h.drain,
    sendClose: (id) => h.log.push(`close:${id}`),
    sendReset: (id) => h.log.push(`reset:${id}`),
    release: (id, how) => h.log.push(`release:${id}:${how}`),
  };
  return h;
}

/** A bytes element: varint length, then `n` bytes of `fill`. */
export function element(n: number, fill = 0): Uint8Array {
  assert.ok(n < 128);
  const e = new Uint8Array(n + 1).fill(fill);
  e[0] = n;
  return e;
}

/** Rejects if `p` is still pending after `ms` (instead of hanging the test). */
export function settled<T>(p: Promise<T>, ms = 2000): Promise<T> {
  return Promise.race([p, new Promise<T>((_r, reject) => setTimeout(() => reject(new Error("still pending")), ms).unref())]);
}

/** "pending" if `p` has not settled once the event loop turned (setImmediate), else its outcome. */
export async function state(p: Promise<unknown>): Promise<string> {
  return Promise.race([
    p.then(
      () => "resolved",
      (e: unknown) => `rejected:${(e as Error).name}`,
    ),
    new Promise<string>((r) => setImmediate(() => r("pending"))),
  ]);
}

export function boundRx(h: Recorder, id = 3): Rx<Uint8Array> {
  const rx = new Rx<Uint8Array>();
  rx.bind(h, id, t.bytes);
  return rx;
}

export function boundTx<T = Uint8Array>(h: Recorder, id = 3, schema: unknown = t.bytes): Tx<T> {
  const tx = new Tx<T>();
  tx.bind(h, id, schema as never);
  return tx;
}

/**
 * A raw channel sink that records what reaches it: "data:<bytes>", "close", "reset",
 * "credit:<n>", "fail:<what>", where <what> is `failAs(error)` (the message by default).
 */
export function recordingSink(failAs: (e: Error) => string = (e) => e.message): RawChannelSink & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    data: (p) => seen.push(`data:${p.length}`),
    close: () => seen.push("close"),
    reset: () => seen.push("reset"),
    credit: (n) => seen.push(`credit:${n}`),
    fail: (e) => seen.push(`fail:${failAs(e)}`),
  };
}

/**
 * From a fresh turn of the event loop, sends `value` `count` times on `tx` (awaiting each);
 * returns how many sends had completed when that turn's first setImmediate ran, i.e. where
 * the shared per-turn budget made the sender yield.
 */
export async function sendsBeforeYield<T>(tx: Tx<T>, value: T, count: number): Promise<number> {
  await new Promise<void>((r) => setImmediate(r)); // a fresh turn: the budget was reset
  let done = 0;
  let atImmediate = -1;
  setImmediate(() => (atImmediate = done));
  for (let i = 0; i < count; i++) {
    await tx.send(value);
    done++;
  }
  return atImmediate;
}
