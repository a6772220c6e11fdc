/**
 * A guest written from the pinned SHM spec's rules (3e673433), not from
 * roam-ts's SHM code: it imports only the layout constants (field offsets and
 * sizes). The native addon is used only as `mmap` for the segment file.
 *
 * What it does, rule by rule:
 *   r[shm.spawn.args], r[shm.spawn.guest-init]: --hub-path/--peer-id/--doorbell-fd,
 *     Reserved → Attached by CAS, epoch + 1. It advertises NO roam-ts extension
 *     (its peer entry's reserved bytes stay zero).
 *   r[shm.bipbuf.grant|commit|read|release]: frames in and out of the rings.
 *   r[shm.doorbell.ring-integration], r[shm.wakeup.producer-wait]: rings the
 *     doorbell after every commit and every release. It never raises a
 *     "sleeping" word, and waits for frames ONLY on the doorbell (no polling):
 *     a host that does not ring after each commit leaves it asleep.
 *   r[shm.flow.channel-activate|remaining-credit|granted-total]: channel table
 *     credit; as a sender it waits for credit by polling granted_total
 *     (r[shm.wakeup.fallback]; JS cannot futex_wait across processes), as a
 *     receiver it adds to granted_total and futex-wakes it (Atomics.notify).
 *   r[shm.flow.channel-id-reuse]: as a receiver it sets the entry Free after Close.
 *   r[shm.goodbye.payload], r[shm.goodbye.guest]: Goodbye with a postcard String, state Goodbye.
 *
 * Frame payloads use the call envelope roam-ts and the reference share (conn
 * id, metadata, channel list, payload bytes; Data/Close/Reset carry the conn
 * id) — see docs/shm-compat.md for why the spec's own RequestPayload cannot
 * carry the channel list the core needs. Payloads stay under the inline
 * threshold (slots are not needed for this exchange).
 *
 * Scenario (argv after the ticket: `--scenario=calls`): call echo; answer the
 * host's echo; sum over a channel carrying 100x the initial credit; generate
 * 100x the initial credit back; Goodbye. Exit 0 on success, 1 with a message.
 */
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { fileURLToPath } from "node:url";
import { B, BIPBUF_HEADER_SIZE, CH, CHANNEL_ENTRY_SIZE, FRAME_HEADER_SIZE, H, MAGIC, P, PEER_ENTRY_SIZE } from "../../src/transport/shm/layout.js";
import { requireNativeShm } from "../../src/transport/shm/native.js";
import { Cursor as Cur, str, u64le, varint, zigzag } from "./postcard.js";

// `node --test dist/test/` also loads this file as if it were a test (it sits under test/): without the
// spawn arguments it is not a guest launch, so it ends at once, as test/helpers/shm-guest.ts does.
if (!process.argv.some((a) => a.startsWith("--hub-path="))) process.exit(0);

const ids = JSON.parse(readFileSync(fileURLToPath(new URL("../../../test/fixtures/testbed/method-ids.json", import.meta.url)), "utf8")) as Record<string, string>;
const ECHO = BigInt(ids["echo"]!);
const SUM = BigInt(ids["sum"]!);
const GENERATE = BigInt(ids["generate"]!);

// r[shm.desc.msg-type]
const T = { Request: 1, Response: 2, Cancel: 3, Data: 4, Close: 5, Reset: 6, Goodbye: 7 } as const;

function arg(name: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  if (!a) throw new Error(`missing --${name}=`);
  return a.slice(name.length + 3);
}

// ---- postcard by hand: test/helpers/postcard.ts ----
/** The call envelope: conn_id, metadata (empty), channels, payload bytes. */
function envelope(channels: number[], payload: number[]): number[] {
  return [...varint(0), ...varint(0), ...varint(channels.length), ...channels.flatMap((c) => varint(c)), ...varint(payload.length), ...payload];
}
function openEnvelope(p: Uint8Array): { channels: number[]; payload: Uint8Array } {
  const c = new Cur(p);
  if (c.varint() !== 0n) throw new Error("expected connection 0");
  const md = Number(c.varint());
  if (md !== 0) throw new Error(`metadata not expected here (${md} entries)`);
  const n = Number(c.varint());
  const channels: number[] = [];
  for (let i = 0; i < n; i++) channels.push(Number(c.varint()));
  return { channels, payload: c.bytes() };
}

// ---- the segment ----
const native = requireNativeShm();
const [fd, size] = native.openFile(arg("hub-path"));
const sab = native.map(fd, size, size);
const u8 = new Uint8Array(sab);
const dv = new DataView(sab);
const i32 = new Int32Array(sab);
for (let i = 0; i < 8; i++) if (u8[i] !== MAGIC[i]) throw new Error("bad magic (r[shm.segment.magic])");
if (dv.getUint32(H.version, true) !== 2) throw new Error("not a v2 segment");
const peerId = Number(arg("peer-id"));
const entry = Number(dv.getBigUint64(H.peerTableOffset, true)) + (peerId - 1) * PEER_ENTRY_SIZE;
const capacity = dv.getUint32(H.bipbufCapacity, true);
const initialCredit = dv.getUint32(H.initialCredit, true);
const inlineThreshold = dv.getUint32(H.inlineThreshold, true) || 256;
const area = Number(dv.getBigUint64(entry + P.ringOffset, true));
const table = Number(dv.getBigUint64(entry + P.channelTableOffset, true));
// r[shm.bipbuf.layout]: G→H first, then H→G.
const g2h = area;
const h2g = area + BIPBUF_HEADER_SIZE + capacity;

// r[shm.spawn.guest-init]
if (Atomics.compareExchange(i32, (entry + P.state) >> 2, 3, 1) !== 3) throw new Error("peer entry was not Reserved");
Atomics.add(i32, (entry + P.epoch) >> 2, 1);

// ---- doorbell ----
const bell = new net.Socket({ fd: Number(arg("doorbell-fd")), readable: true, writable: true });
let wake: (() => void) | null = null;
let rings = 0;
bell.on("data", () => {
  const w = wake;
  wake = null;
  w?.();
});
bell.on("error", () => {});
function ring(): void {
  rings++;
  bell.write(Buffer.of(1));
}
/** Waits for the doorbell only (no polling), failing loudly after `ms`. */
function doorbell(what: string, ms = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no doorbell within ${ms} ms while waiting for ${what}`)), ms);
    wake = () => {
      clearTimeout(t);
      resolve();
    };
  });
}

// ---- BipBuffers ----
const ld = (off: number): number => Atomics.load(i32, off >> 2) >>> 0;
const st = (off: number, v: number): void => void Atomics.store(i32, off >> 2, v | 0);
const data = (hdr: number): number => hdr + BIPBUF_HEADER_SIZE;

/** r[shm.bipbuf.grant]: reserve n bytes in G→H; -1 when full. */
function grant(n: number): number {
  const w = ld(g2h + B.write);
  const r = ld(g2h + B.read);
  if (w >= r) {
    if (capacity - w >= n) return w;
    if (r > 0) {
      st(g2h + B.watermark, w);
      st(g2h + B.write, 0);
      if (n < r) return 0;
      st(g2h + B.write, w);
      st(g2h + B.watermark, 0);
      return -1;
    }
    return -1;
  }
  return w + n < r ? w : -1;
}

async function sendFrame(type: number, id: number, methodId: bigint, payload: number[]): Promise<void> {
  if (FRAME_HEADER_SIZE + payload.length > inlineThreshold) throw new Error(`payload of ${payload.length} bytes needs a slot (this helper sends inline only)`);
  const total = (FRAME_HEADER_SIZE + payload.length + 3) & ~3;
  for (;;) {
    const at = grant(total);
    if (at >= 0) {
      const base = data(g2h) + at;
      u8.fill(0, base, base + total);
      dv.setUint32(base, total, true);
      u8[base + 4] = type;
      dv.setUint32(base + 8, id, true);
      dv.setBigUint64(base + 12, methodId, true);
      dv.setUint32(base + 20, payload.length, true);
      u8.set(payload, base + FRAME_HEADER_SIZE);
      st(g2h + B.write, at + total); // r[shm.bipbuf.commit] (Atomics.store: release)
      ring(); // r[shm.doorbell.ring-integration]
      return;
    }
    await doorbell("room in the G→H buffer"); // r[shm.bipbuf.full]: the host rings after releasing
  }
}

interface Frame {
  type: number;
  id: number;
  methodId: bigint;
  payload: Uint8Array;
}

/** r[shm.bipbuf.read] + release: every frame available now. */
function readFrames(): Frame[] {
  const out: Frame[] = [];
  for (;;) {
    let r = ld(h2g + B.read);
    const wm = ld(h2g + B.watermark);
    let end: number;
    if (wm !== 0) {
      if (r >= wm) {
        st(h2g + B.read, 0);
        st(h2g + B.watermark, 0);
        continue;
      }
      end = wm;
    } else {
      end = ld(h2g + B.write);
      if (r >= end) break;
    }
    const base = data(h2g) + r;
    const total = dv.getUint32(base, true);
    if (total < FRAME_HEADER_SIZE || r + total > end) throw new Error(`bad frame length ${total}`);
    const flags = u8[base + 5]!;
    if (flags & 1) throw new Error("the host sent a slot-ref frame; this helper reads inline frames only");
    const plen = dv.getUint32(base + 20, true);
    out.push({ type: u8[base + 4]!, id: dv.getUint32(base + 8, true), methodId: dv.getBigUint64(base + 12, true), payload: u8.slice(base + 24, base + 24 + plen) });
    r += total;
    // r[shm.bipbuf.release]
    if (wm !== 0 && r >= wm) {
      st(h2g + B.read, 0);
      st(h2g + B.watermark, 0);
    } else st(h2g + B.read, r);
  }
  if (out.length > 0) ring(); // r[shm.wakeup.producer-wait]: the host may wait for room
  return out;
}

// ---- channels (r[shm.flow.*]) ----
const entryOf = (ch: number): number => table + ch * CHANNEL_ENTRY_SIZE;
function activate(ch: number): void {
  st(entryOf(ch) + CH.grantedTotal, initialCredit);
  st(entryOf(ch) + CH.state, 1);
}
const granted = (ch: number): number => ld(entryOf(ch) + CH.grantedTotal);

// ---- the conversation ----
const inbox: Frame[] = [];
async function next(what: string, accept: (f: Frame) => boolean): Promise<Frame> {
  for (;;) {
    inbox.push(...readFrames());
    const i = inbox.findIndex(accept);
    if (i >= 0) return inbox.splice(i, 1)[0]!;
    const other = inbox.find((f) => f.type === T.Goodbye);
    if (other) throw new Error(`host said Goodbye while waiting for ${what}`);
    await doorbell(what);
  }
}
function serveHostCalls(): void {
  // The host's calls to us: echo only.
  for (let i = 0; i < inbox.length; i++) {
    const f = inbox[i]!;
    if (f.type !== T.Request) continue;
    inbox.splice(i--, 1);
    const { payload } = openEnvelope(f.payload);
    if (f.methodId === ECHO) {
      const s = new Cur(payload).string();
      void sendFrame(T.Response, f.id, 0n, envelope([], [0, ...str(s)]));
    } else {
      void sendFrame(T.Response, f.id, 0n, envelope([], [1, 1])); // UnknownMethod
    }
  }
}

async function call(requestId: number, method: bigint, channels: number[], args: number[]): Promise<Uint8Array> {
  await sendFrame(T.Request, requestId, method, envelope(channels, args));
  const f = await next(`Response ${requestId}`, (x) => x.type === T.Response && x.id === requestId);
  const { payload } = openEnvelope(f.payload);
  if (payload[0] !== 0) throw new Error(`call ${requestId} failed: ${Buffer.from(payload).toString("hex")}`);
  return payload.subarray(1);
}

async function main(): Promise<void> {
  // 1. A call to the host.
  const echoed = new Cur(await call(1, ECHO, [], str("from a spec-only guest"))).string();
  if (echoed !== "from a spec-only guest") throw new Error(`echo returned ${JSON.stringify(echoed)}`);

  // 2. The host calls us (it waits for our "ready" echo above, then calls).
  inbox.unshift(await next("the host's echo call", (f) => f.type === T.Request));
  serveHostCalls();

  // 3. sum over channel 1 (ours: guest ids are odd, r[shm.id.channel-parity]), 100x the credit.
  const ch = 1;
  activate(ch);
  const goal = 100 * initialCredit;
  let sent = 0;
  let expected = 0n;
  const sumReq = sendFrame(T.Request, 2, SUM, envelope([ch], varint(ch)));
  await sumReq;
  for (let v = 1; sent < goal; v++) {
    const el = zigzag(v);
    // r[shm.flow.remaining-credit]: granted_total - sent_total (wrapping, as i32)
    for (let spins = 0; ((granted(ch) - sent) | 0) < el.length; spins++) {
      if (spins > 20_000) throw new Error(`no credit on channel ${ch} after ${sent} bytes`);
      inbox.push(...readFrames());
      serveHostCalls();
      await new Promise((r) => setTimeout(r, spins < 100 ? 0 : 1)); // r[shm.wakeup.fallback]: poll with backoff
    }
    await sendFrame(T.Data, ch, 0n, [...u64le(0), ...el]);
    sent += el.length;
    expected += BigInt(v);
  }
  await sendFrame(T.Close, ch, 0n, u64le(0));
  const sumResp = await next("sum Response", (f) => f.type === T.Response && f.id === 2);
  const total = new Cur(openEnvelope(sumResp.payload).payload.subarray(1)).zigzag();
  if (total !== expected) throw new Error(`sum returned ${total}, expected ${expected}`);

  // 3b. r[shm.flow.channel-id-reuse]: the host (receiver) sets entry 1 Free after our Close; reuse it.
  await waitFree(ch, "entry 1 after the sum");
  activate(ch);
  await sendFrame(T.Request, 10, SUM, envelope([ch], varint(ch)));
  await sendFrame(T.Data, ch, 0n, [...u64le(0), ...zigzag(41)]);
  await sendFrame(T.Close, ch, 0n, u64le(0));
  const again = await next("second sum Response", (f) => f.type === T.Response && f.id === 10);
  const t2 = new Cur(openEnvelope(again.payload).payload.subarray(1)).zigzag();
  if (t2 !== 41n) throw new Error(`second sum on the reused entry returned ${t2}`);

  // 4. generate into channel 3: the host sends 100x the credit; we grant as we consume.
  const gch = 3;
  await generateInto(gch, 3, Math.ceil((100 * initialCredit) / 2)); // elements of 1-2 bytes
  // 4b. We freed entry 3 as its receiver; reuse it: the host must not think it is still in use.
  await generateInto(gch, 11, 5);
  const count = Math.ceil((100 * initialCredit) / 2);
  const got = count;

  // 5. Goodbye (r[shm.goodbye.payload]: a postcard String) and detach.
  await sendFrame(T.Goodbye, 0, 0n, str("spec guest done"));
  st(entry + P.state, 2);
  process.stdout.write(JSON.stringify({ ok: true, sent, got, rings }) + "\n");
}

async function waitFree(ch: number, what: string): Promise<void> {
  for (let i = 0; ld(entryOf(ch) + CH.state) !== 0; i++) {
    if (i > 3000) throw new Error(`${what} was never set Free`);
    inbox.push(...readFrames());
    serveHostCalls();
    await new Promise((r) => setTimeout(r, i < 50 ? 0 : 2));
  }
}

/** generate(count) into our entry `gch`: we grant as we consume and free the entry at Close. */
async function generateInto(gch: number, requestId: number, count: number): Promise<void> {
  activate(gch);
  await sendFrame(T.Request, requestId, GENERATE, envelope([gch], [...varint(count), ...varint(gch)]));
  let got = 0;
  let closed = false;
  while (!closed) {
    const f = await next("generate Data/Close", (x) => (x.type === T.Data || x.type === T.Close) && x.id === gch);
    if (f.type === T.Close) {
      closed = true;
      st(entryOf(gch) + CH.state, 0); // r[shm.flow.channel-id-reuse]: the receiver frees the entry
      break;
    }
    const c = new Cur(f.payload.subarray(8));
    const v = Number(c.zigzag());
    if (v !== got) throw new Error(`generate: got ${v}, expected ${got}`);
    got++;
    // r[shm.flow.ordering.receiver]: add what we consumed, then wake a futex waiter.
    Atomics.add(i32, (entryOf(gch) + CH.grantedTotal) >> 2, f.payload.length - 8);
    Atomics.notify(i32, (entryOf(gch) + CH.grantedTotal) >> 2);
  }
  await next("generate Response", (f) => f.type === T.Response && f.id === requestId);
  if (got !== count) throw new Error(`generate: ${got} values, expected ${count}`);
}

/** `--scenario=over-limit`: a call one byte over max_payload_size; expects the host's Goodbye. */
async function overLimit(): Promise<void> {
  const max = dv.getUint32(H.maxPayloadSize, true);
  const body = new Array<number>(max + 1).fill(0);
  await sendFrame(T.Request, 1, ECHO, envelope([], body));
  const g = await next("the host's Goodbye", (f) => f.type === T.Goodbye);
  // r[shm.goodbye.payload]: a postcard String.
  const c = new Cur(g.payload);
  const reason = c.string();
  if (c.pos !== g.payload.length) throw new Error("Goodbye payload is not exactly one postcard String");
  process.stdout.write(JSON.stringify({ ok: true, reason }) + "\n");
}

const scenario = process.argv.find((a) => a.startsWith("--scenario="))?.slice("--scenario=".length) ?? "calls";
(scenario === "over-limit" ? overLimit() : main()).then(
  () => {
    bell.destroy();
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`spec guest failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
