/**
 * A host written from the pinned SHM spec's rules (3e673433), not from
 * roam-ts's SHM code: it imports only the layout constants (field offsets and
 * sizes). The native addon is used only to create and `mmap` the segment
 * file; the doorbell is a plain Node child-process socket (an extra 'pipe'
 * stdio slot is a Unix socketpair). It is a library: importing it runs
 * nothing (node --test may load this file), the test drives it.
 *
 * What it does, rule by rule:
 *   r[shm.segment.header], r[shm.file.create]: the header's fields, the reserved
 *     area 96..127 left ZERO (no size-class count, no guest-areas offset, no
 *     roam-ts extension word), the magic written last.
 *   r[shm.segment.peer-table], r[shm.bipbuf.layout]: guest areas placed where
 *     this host chooses (right after the peer table, before the pool — not
 *     where roam-ts would compute them); a guest finds its area only through
 *     its peer entry's ring_offset and channel_table_offset.
 *   r[shm.varslot.extents], r[shm.varslot.freelist]: a VarSlotPool at
 *     var_slot_pool_offset with the spec's size-class header as it reads
 *     (slot_size, slots_per_extent, extent_count, extent_offsets[], then
 *     free_head) — the spec places neither the class count nor the free-list
 *     head, so a guest cannot use this pool. The host never needs it: it
 *     declares a max_payload_size that goes inline (r[shm.frame.threshold]).
 *   r[shm.spawn.ticket|args|reserved-state]: Empty → Reserved, then
 *     --hub-path/--peer-id/--doorbell-fd for the guest it spawns.
 *   r[shm.bipbuf.grant|commit|read|release]: frames in and out of the rings.
 *   r[shm.doorbell.ring-integration], r[shm.wakeup.producer-wait]: rings
 *     after every commit and every release, and waits for frames ONLY on the
 *     doorbell (no polling): a guest that does not ring per the spec leaves it
 *     asleep and the scenario times out.
 *   r[shm.flow.channel-activate|remaining-credit|granted-total]: as a sender
 *     it waits for credit by polling granted_total (r[shm.wakeup.fallback]:
 *     JS cannot futex_wait across processes); as a receiver it adds to
 *     granted_total, futex-wakes it and rings.
 *   r[shm.flow.channel-id-reuse]: as a receiver it sets the entry Free at
 *     Close; as the allocator it reuses an entry only once it is Free.
 *   r[shm.goodbye.payload], r[shm.goodbye.host]: a Goodbye frame with a
 *     postcard String, then host_goodbye = 1.
 *
 * Frame payloads use the Rust reference's call envelope (conn id, metadata,
 * channel list, payload bytes; Data/Close/Reset carry an 8-byte conn id): the
 * spec's RequestPayload has no channel list, so there is no spec-only
 * envelope a channel call could use (docs/shm-compat.md, row 5).
 */
import { readFileSync, unlinkSync } from "node:fs";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import {
  B,
  BIPBUF_HEADER_SIZE,
  CH,
  CHANNEL_ENTRY_SIZE,
  CLASS_HEADER_SIZE,
  EXTENT_HEADER_SIZE,
  FRAME_HEADER_SIZE,
  H,
  HEADER_SIZE,
  MAGIC,
  MAX_EXTENTS_PER_CLASS,
  P,
  PAGE,
  PEER_ENTRY_SIZE,
  SLOT_META_SIZE,
} from "../../src/transport/shm/layout.js";
import { requireNativeShm, type NativeShm } from "../../src/transport/shm/native.js";
import { Cursor as Cur, str, u64le, varint, zigzag } from "./postcard.js";

// r[shm.desc.msg-type]
export const T = { Request: 1, Response: 2, Cancel: 3, Data: 4, Close: 5, Reset: 6, Goodbye: 7 } as const;

const ids = JSON.parse(readFileSync(fileURLToPath(new URL("../../../test/fixtures/testbed/method-ids.json", import.meta.url)), "utf8")) as Record<string, string>;
export const TESTBED = { echo: BigInt(ids["echo"]!), sum: BigInt(ids["sum"]!), generate: BigInt(ids["generate"]!) };

// ---- postcard by hand: test/helpers/postcard.ts ----
export { Cursor as Cur, str, varint, zigzag } from "./postcard.js";
/** The reference's call envelope: conn_id, metadata (empty), channels, payload bytes. */
function envelope(channels: number[], payload: number[]): number[] {
  return [...varint(0), ...varint(0), ...varint(channels.length), ...channels.flatMap((c) => varint(c)), ...varint(payload.length), ...payload];
}
function openEnvelope(p: Uint8Array): { channels: number[]; payload: Uint8Array } {
  const c = new Cur(p);
  if (c.varint() !== 0n) throw new Error("expected connection 0");
  const md = Number(c.varint());
  if (md !== 0) throw new Error(`metadata not expected here (${md} entries)`);
  const n = Number(c.varint());
  if (n > 16) throw new Error(`${n} channels in one call`);
  const channels: number[] = [];
  for (let i = 0; i < n; i++) channels.push(Number(c.varint()));
  return { channels, payload: c.bytes() };
}

export interface Frame {
  type: number;
  id: number;
  methodId: bigint;
  payload: Uint8Array;
}

export interface SpecHostConfig {
  maxPayloadSize: number;
  initialCredit: number;
  maxGuests: number;
  bipbufCapacity: number;
  inlineThreshold: number;
  maxChannels: number;
}

const align = (v: number, a: number): number => Math.ceil(v / a) * a;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One size class of this host's pool (it allocates nothing from it). */
const POOL_SLOT_SIZE = 4096;
const POOL_SLOTS = 4;

export class SpecHost {
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly i32: Int32Array;
  private readonly native: NativeShm;
  readonly sab: SharedArrayBuffer;
  private fd: number;
  private closed = false;
  /** Where this host put things (for the test's checks). */
  readonly placed: { peerTable: number; areas: number[]; tables: number[]; pool: number; totalSize: number };

  // per guest 1 (this helper drives one guest)
  private bell: Socket | null = null;
  private wake: (() => void) | null = null;
  bellGone: string | null = null;
  rings = 0;
  private inbox: Frame[] = [];
  /** Echo calls of the guest this host answered. */
  answered = 0;

  private constructor(
    readonly path: string,
    readonly cfg: SpecHostConfig,
  ) {
    this.native = requireNativeShm();
    const cap = cfg.bipbufCapacity;
    const peerTable = HEADER_SIZE;
    const guestArea = align(2 * (BIPBUF_HEADER_SIZE + cap), 64) + align(cfg.maxChannels * CHANNEL_ENTRY_SIZE, 64);
    const areasStart = align(peerTable + cfg.maxGuests * PEER_ENTRY_SIZE, 64);
    const areas: number[] = [];
    const tables: number[] = [];
    for (let i = 0; i < cfg.maxGuests; i++) {
      areas.push(areasStart + i * guestArea);
      tables.push(areasStart + i * guestArea + align(2 * (BIPBUF_HEADER_SIZE + cap), 64));
    }
    const pool = align(areasStart + cfg.maxGuests * guestArea, 64);
    const extent0 = pool + CLASS_HEADER_SIZE;
    const metas = extent0 + EXTENT_HEADER_SIZE;
    const data = align(metas + POOL_SLOTS * SLOT_META_SIZE, 64);
    const totalSize = align(data + POOL_SLOTS * POOL_SLOT_SIZE, PAGE);
    this.placed = { peerTable, areas, tables, pool, totalSize };

    // r[shm.file.create]: create, size, map; the file starts zeroed (every BipBuffer zeroed: r[shm.bipbuf.initialization]).
    this.fd = this.native.createFile(path, totalSize, 0o600);
    this.sab = this.native.map(this.fd, totalSize, totalSize);
    this.u8 = new Uint8Array(this.sab);
    this.dv = new DataView(this.sab);
    this.i32 = new Int32Array(this.sab);
    const dv = this.dv;

    // Header (r[shm.segment.header]); bytes 96..127 stay zero.
    dv.setUint32(H.version, 2, true);
    dv.setUint32(H.headerSize, HEADER_SIZE, true);
    dv.setBigUint64(H.totalSize, BigInt(totalSize), true);
    dv.setUint32(H.maxPayloadSize, cfg.maxPayloadSize, true);
    dv.setUint32(H.initialCredit, cfg.initialCredit, true);
    dv.setUint32(H.maxGuests, cfg.maxGuests, true);
    dv.setUint32(H.bipbufCapacity, cap, true);
    dv.setBigUint64(H.peerTableOffset, BigInt(peerTable), true);
    dv.setBigUint64(H.slotRegionOffset, 0n, true);
    dv.setUint32(H.slotSize, 0, true);
    dv.setUint32(H.inlineThreshold, cfg.inlineThreshold, true);
    dv.setUint32(H.maxChannels, cfg.maxChannels, true);
    dv.setUint32(H.hostGoodbye, 0, true);
    dv.setBigUint64(H.heartbeatInterval, 0n, true);
    dv.setBigUint64(H.varSlotPoolOffset, BigInt(pool), true);
    dv.setBigUint64(H.currentSize, BigInt(totalSize), true);

    // Peer table (r[shm.segment.peer-table]): all Empty, each entry pointing at its area.
    for (let i = 0; i < cfg.maxGuests; i++) {
      const e = peerTable + i * PEER_ENTRY_SIZE;
      dv.setBigUint64(e + P.ringOffset, BigInt(areas[i]!), true);
      dv.setBigUint64(e + P.channelTableOffset, BigInt(tables[i]!), true);
      // BipBufHeader.capacity (r[shm.bipbuf.header]), both directions.
      dv.setUint32(areas[i]! + B.capacity, cap, true);
      dv.setUint32(areas[i]! + BIPBUF_HEADER_SIZE + cap + B.capacity, cap, true);
    }

    // The pool, one class, as the spec's SizeClassHeader reads: slot_size, slots_per_extent,
    // extent_count, extent_offsets[MAX_EXTENTS], free_head (after them; packed index << 32 | generation).
    dv.setUint32(pool, POOL_SLOT_SIZE, true);
    dv.setUint32(pool + 4, POOL_SLOTS, true);
    dv.setUint32(pool + 8, 1, true);
    dv.setBigUint64(pool + 16, BigInt(extent0), true);
    dv.setBigUint64(pool + 16 + 8 * MAX_EXTENTS_PER_CLASS, 0n, true); // free_head = slot 0, generation 0
    // Extent 0 (r[shm.varslot.extent-layout]): header (class, index, slot count), SlotMeta[], data.
    dv.setUint32(extent0, 0, true);
    dv.setUint32(extent0 + 4, 0, true);
    dv.setUint32(extent0 + 8, POOL_SLOTS, true);
    for (let i = 0; i < POOL_SLOTS; i++) {
      const m = metas + i * SLOT_META_SIZE; // generation, state Free, owner 0, next_free
      dv.setUint32(m + 12, i + 1 < POOL_SLOTS ? i + 1 : 0xffffffff, true);
    }
    // r[shm.file.create] step 5: the magic last.
    Atomics.store(this.i32, H.version >> 2, 2);
    this.u8.set(MAGIC, 0);
  }

  static create(path: string, cfg: SpecHostConfig): SpecHost {
    return new SpecHost(path, cfg);
  }

  // ---- peers ----
  entry(peerId: number): number {
    return this.placed.peerTable + (peerId - 1) * PEER_ENTRY_SIZE;
  }
  peerState(peerId: number): number {
    return Atomics.load(this.i32, (this.entry(peerId) + P.state) >> 2);
  }
  epoch(peerId: number): number {
    return Atomics.load(this.i32, (this.entry(peerId) + P.epoch) >> 2) >>> 0;
  }
  /** r[shm.spawn.ticket] step 1 / r[shm.spawn.reserved-state]: Empty → Reserved. */
  reserve(peerId: number): void {
    if (Atomics.compareExchange(this.i32, (this.entry(peerId) + P.state) >> 2, 0, 3) !== 0) throw new Error(`peer entry ${peerId} is not Empty`);
  }
  /** r[shm.spawn.args]; the doorbell is the child's fd 3. */
  ticketArgs(peerId: number): string[] {
    return [`--hub-path=${this.path}`, `--peer-id=${peerId}`, "--doorbell-fd=3"];
  }
  /** Our end of the guest's doorbell (r[shm.doorbell.socketpair]). */
  useDoorbell(sock: Socket): void {
    this.bell = sock;
    sock.on("data", () => {
      const w = this.wake;
      this.wake = null;
      w?.();
    });
    const gone = (why: string) => {
      this.bellGone ??= why;
      const w = this.wake;
      this.wake = null;
      w?.();
    };
    sock.on("end", () => gone("the doorbell hung up (r[shm.doorbell.death])"));
    sock.on("close", () => gone("the doorbell closed"));
    sock.on("error", (e) => gone(`doorbell error: ${e.message}`));
  }
  /** r[shm.doorbell.signal] */
  ring(): void {
    if (this.bell === null || this.bellGone !== null) return;
    this.rings++;
    this.bell.write(Buffer.of(1));
  }
  /** Waits for the doorbell only (no polling), failing after `ms`. */
  private doorbell(what: string, ms = 15_000): Promise<void> {
    if (this.bellGone !== null) return Promise.reject(new Error(`${this.bellGone} while waiting for ${what}`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.wake = null;
        reject(new Error(`no doorbell within ${ms} ms while waiting for ${what}`));
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        if (this.bellGone !== null) reject(new Error(`${this.bellGone} while waiting for ${what}`));
        else resolve();
      };
    });
  }

  // ---- BipBuffers of guest 1 (r[shm.bipbuf.layout]: G→H first, then H→G) ----
  private get cap(): number {
    return this.cfg.bipbufCapacity;
  }
  private get g2h(): number {
    return this.placed.areas[0]!;
  }
  private get h2g(): number {
    return this.placed.areas[0]! + BIPBUF_HEADER_SIZE + this.cap;
  }
  private ld(off: number): number {
    return Atomics.load(this.i32, off >> 2) >>> 0;
  }
  private st(off: number, v: number): void {
    Atomics.store(this.i32, off >> 2, v | 0);
  }

  /** r[shm.bipbuf.grant] in H→G: offset of n bytes, or -1 when full. */
  private grant(n: number): number {
    const b = this.h2g;
    const w = this.ld(b + B.write);
    const r = this.ld(b + B.read);
    if (w > this.cap || r > this.cap) throw new Error(`H→G positions out of range (write ${w}, read ${r})`);
    if (w >= r) {
      if (this.cap - w >= n) return w;
      if (r > 0) {
        this.st(b + B.watermark, w);
        this.st(b + B.write, 0);
        if (n < r) return 0;
        this.st(b + B.write, w);
        this.st(b + B.watermark, 0);
        return -1;
      }
      return -1;
    }
    return w + n < r ? w : -1;
  }

  async send(type: number, id: number, methodId: bigint, payload: number[]): Promise<void> {
    const inline = this.cfg.inlineThreshold || 256;
    if (FRAME_HEADER_SIZE + payload.length > inline) throw new Error(`payload of ${payload.length} bytes needs a slot (this host sends inline only)`);
    const total = (FRAME_HEADER_SIZE + payload.length + 3) & ~3;
    for (let tries = 0; tries < 1000; tries++) {
      const at = this.grant(total);
      if (at >= 0) {
        const base = this.h2g + BIPBUF_HEADER_SIZE + at;
        this.u8.fill(0, base, base + total);
        this.dv.setUint32(base, total, true);
        this.u8[base + 4] = type;
        this.dv.setUint32(base + 8, id, true);
        this.dv.setBigUint64(base + 12, methodId, true);
        this.dv.setUint32(base + 20, payload.length, true);
        this.u8.set(payload, base + FRAME_HEADER_SIZE);
        this.st(this.h2g + B.write, at + total); // r[shm.bipbuf.commit]
        this.ring(); // r[shm.doorbell.ring-integration]
        return;
      }
      await this.doorbell("room in the H→G buffer"); // r[shm.wakeup.producer-wait]: the guest rings after releasing
    }
    throw new Error("the H→G buffer stayed full");
  }

  /**
   * A frame whose payload is in a VarSlotPool slot (r[shm.frame.slot-ref]): what
   * r[shm.payload.slot] demands for a payload above the inline threshold. The
   * reference names slot 0 of class 0, extent 0 of this host's pool.
   */
  async sendSlotRef(type: number, id: number, payloadLen: number): Promise<void> {
    const total = FRAME_HEADER_SIZE + 12;
    const at = this.grant(total);
    if (at < 0) throw new Error("H→G is full");
    const base = this.h2g + BIPBUF_HEADER_SIZE + at;
    this.u8.fill(0, base, base + total);
    this.dv.setUint32(base, total, true);
    this.u8[base + 4] = type;
    this.u8[base + 5] = 1; // FLAG_SLOT_REF
    this.dv.setUint32(base + 8, id, true);
    this.dv.setUint32(base + 20, payloadLen, true);
    this.dv.setUint32(base + 32, 1, true); // slot_generation
    this.st(this.h2g + B.write, at + total);
    this.ring();
  }

  /** Bytes the guest committed to G→H so far (its write position). */
  guestWritePosition(): number {
    return this.ld(this.g2h + B.write);
  }

  /** r[shm.bipbuf.read] + r[shm.bipbuf.release] on G→H: every frame available now. */
  private readFrames(): Frame[] {
    const b = this.g2h;
    const data = b + BIPBUF_HEADER_SIZE;
    const out: Frame[] = [];
    for (let guard = 0; guard < 100_000; guard++) {
      let r = this.ld(b + B.read);
      const wm = this.ld(b + B.watermark);
      let end: number;
      if (wm !== 0) {
        if (wm > this.cap) throw new Error(`G→H watermark ${wm} beyond capacity`);
        if (r >= wm) {
          this.st(b + B.read, 0);
          this.st(b + B.watermark, 0);
          continue;
        }
        end = wm;
      } else {
        end = this.ld(b + B.write);
        if (end > this.cap) throw new Error(`G→H write ${end} beyond capacity`);
        if (r >= end) break;
      }
      if (end - r < FRAME_HEADER_SIZE) throw new Error(`a partial frame header at ${r}`);
      const base = data + r;
      const total = this.dv.getUint32(base, true);
      if (total < FRAME_HEADER_SIZE || total % 4 !== 0 || r + total > end) throw new Error(`bad frame length ${total}`);
      const flags = this.u8[base + 5]!;
      if (flags & 1) throw new Error("the guest sent a slot-ref frame; this host reads inline frames only");
      const plen = this.dv.getUint32(base + 20, true);
      if (FRAME_HEADER_SIZE + plen > total) throw new Error(`payload_len ${plen} beyond the frame (${total})`);
      out.push({
        type: this.u8[base + 4]!,
        id: this.dv.getUint32(base + 8, true),
        methodId: this.dv.getBigUint64(base + 12, true),
        payload: this.u8.slice(base + FRAME_HEADER_SIZE, base + FRAME_HEADER_SIZE + plen),
      });
      r += total;
      if (wm !== 0 && r >= wm) {
        this.st(b + B.read, 0);
        this.st(b + B.watermark, 0);
      } else this.st(b + B.read, r);
    }
    if (out.length > 0) this.ring(); // r[shm.wakeup.producer-wait]: the guest may wait for room
    return out;
  }

  // ---- channel table of guest 1 (r[shm.flow.*]) ----
  private chEntry(ch: number): number {
    if (ch <= 0 || ch >= this.cfg.maxChannels) throw new Error(`channel ${ch} is outside 1..${this.cfg.maxChannels - 1}`);
    return this.placed.tables[0]! + ch * CHANNEL_ENTRY_SIZE;
  }
  /** r[shm.flow.channel-activate] */
  activate(ch: number): void {
    this.st(this.chEntry(ch) + CH.grantedTotal, this.cfg.initialCredit);
    this.st(this.chEntry(ch) + CH.state, 1);
  }
  channelState(ch: number): number {
    return this.ld(this.chEntry(ch) + CH.state);
  }
  granted(ch: number): number {
    return this.ld(this.chEntry(ch) + CH.grantedTotal);
  }

  // ---- the conversation ----
  async next(what: string, accept: (f: Frame) => boolean, ms = 15_000): Promise<Frame> {
    const deadline = Date.now() + ms;
    for (;;) {
      this.inbox.push(...this.readFrames());
      this.serveGuestCalls();
      const i = this.inbox.findIndex(accept);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const bye = this.inbox.find((f) => f.type === T.Goodbye);
      if (bye) throw new Error(`the guest said Goodbye (${JSON.stringify(Buffer.from(bye.payload).toString())}) while the host waited for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await this.doorbell(what, left);
    }
  }

  /** The guest's calls to this host: Testbed.echo only. */
  private serveGuestCalls(): void {
    for (let i = 0; i < this.inbox.length; i++) {
      const f = this.inbox[i]!;
      if (f.type !== T.Request) continue;
      this.inbox.splice(i--, 1);
      const { payload } = openEnvelope(f.payload);
      if (f.methodId === TESTBED.echo) {
        this.answered++;
        void this.send(T.Response, f.id, 0n, envelope([], [0, ...str(new Cur(payload).string())]));
      } else {
        void this.send(T.Response, f.id, 0n, envelope([], [1, 1])); // RoamError::UnknownMethod
      }
    }
  }

  /** A call to the guest; resolves with the Ok payload (after the Result tag). */
  async call(requestId: number, method: bigint, channels: number[], args: number[]): Promise<Uint8Array> {
    await this.send(T.Request, requestId, method, envelope(channels, args));
    const f = await this.next(`Response ${requestId}`, (x) => x.type === T.Response && x.id === requestId);
    const { payload } = openEnvelope(f.payload);
    if (payload[0] !== 0) throw new Error(`call ${requestId} failed: ${Buffer.from(payload).toString("hex")}`);
    return payload.subarray(1);
  }

  /**
   * Testbed.sum over our channel `ch` (host ids are even, r[shm.id.channel-parity]):
   * sends values until `bytes` element bytes went out, within the guest's credit.
   */
  async sumOver(requestId: number, ch: number, bytes: number): Promise<{ sent: number; creditWaits: number }> {
    this.activate(ch);
    await this.send(T.Request, requestId, TESTBED.sum, envelope([ch], varint(ch)));
    let sent = 0;
    let expected = 0n;
    let creditWaits = 0;
    for (let v = 1; sent < bytes; v++) {
      const el = zigzag(v);
      // r[shm.flow.remaining-credit]: granted_total - sent_total, wrapping, as i32.
      for (let spins = 0; ((this.granted(ch) - sent) | 0) < el.length; spins++) {
        if (spins === 0) creditWaits++;
        if (spins > 20_000) throw new Error(`no credit on channel ${ch} after ${sent} bytes`);
        this.inbox.push(...this.readFrames());
        this.serveGuestCalls();
        await sleep(spins < 100 ? 0 : 1); // r[shm.wakeup.fallback]: poll with backoff
      }
      await this.send(T.Data, ch, 0n, [...u64le(0), ...el]);
      sent += el.length;
      expected += BigInt(v);
    }
    await this.send(T.Close, ch, 0n, u64le(0));
    const r = await this.next(`sum Response ${requestId}`, (f) => f.type === T.Response && f.id === requestId);
    const { payload } = openEnvelope(r.payload);
    if (payload[0] !== 0) throw new Error(`sum failed: ${Buffer.from(payload).toString("hex")}`);
    const total = new Cur(payload.subarray(1)).zigzag();
    if (total !== expected) throw new Error(`sum returned ${total}, expected ${expected}`);
    return { sent, creditWaits };
  }

  /** r[shm.flow.channel-id-reuse]: the receiver (the guest) sets our entry Free; wait for it. */
  async waitFree(ch: number, what: string): Promise<void> {
    for (let i = 0; this.channelState(ch) !== 0; i++) {
      if (i > 3000) throw new Error(`${what} was never set Free (state ${this.channelState(ch)})`);
      this.inbox.push(...this.readFrames());
      this.serveGuestCalls();
      await sleep(i < 50 ? 0 : 2);
    }
  }

  /** Testbed.generate(count) into our entry `ch`: we grant as we consume and free the entry at Close. */
  async generateInto(requestId: number, ch: number, count: number): Promise<{ bytes: number }> {
    this.activate(ch);
    await this.send(T.Request, requestId, TESTBED.generate, envelope([ch], [...varint(count), ...varint(ch)]));
    let got = 0;
    let bytes = 0;
    for (;;) {
      const f = await this.next(`generate Data/Close on ${ch}`, (x) => (x.type === T.Data || x.type === T.Close) && x.id === ch);
      if (f.type === T.Close) {
        this.st(this.chEntry(ch) + CH.state, 0); // r[shm.flow.channel-id-reuse]: the receiver frees the entry
        break;
      }
      if (f.payload.length < 8) throw new Error("Data without its conn id");
      const el = f.payload.subarray(8);
      const v = Number(new Cur(el).zigzag());
      if (v !== got) throw new Error(`generate: got ${v}, expected ${got}`);
      got++;
      bytes += el.length;
      // r[shm.flow.ordering.receiver], r[shm.wakeup.credit-wait]: add what we consumed, wake a futex waiter, ring.
      const gi = (this.chEntry(ch) + CH.grantedTotal) >> 2;
      Atomics.add(this.i32, gi, el.length);
      Atomics.notify(this.i32, gi);
      this.ring();
    }
    await this.next(`generate Response ${requestId}`, (f) => f.type === T.Response && f.id === requestId);
    if (got !== count) throw new Error(`generate: ${got} values, expected ${count}`);
    return { bytes };
  }

  /** r[shm.goodbye.payload] then r[shm.goodbye.host]. */
  async goodbye(reason: string): Promise<void> {
    await this.send(T.Goodbye, 0, 0n, str(reason));
    Atomics.store(this.i32, H.hostGoodbye >> 2, 1);
    this.ring();
  }

  /** Waits (bounded) until peer entry `peerId` is in `state`. */
  async waitPeerState(peerId: number, state: number, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.peerState(peerId) !== state) {
      if (Date.now() > deadline) throw new Error(`${what}: peer ${peerId} is in state ${this.peerState(peerId)}, not ${state}, after ${ms} ms`);
      await sleep(5);
    }
  }

  /** r[shm.file.cleanup]: unmap, close, delete the file. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bell?.destroy();
    this.native.unmap(this.sab);
    this.native.closeFd(this.fd);
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
