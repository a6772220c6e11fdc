/**
 * A guest of the hub: attaches with a spawn ticket (`--hub-path=`,
 * `--peer-id=`, `--doorbell-fd=`), from a worker thread's `workerData`, or by
 * path alone (first free peer entry; no doorbell, so wake-ups poll). Writes
 * its heartbeat, watches `host_goodbye`, and detaches cleanly.
 *
 *   const guest = ShmGuest.fromArgs();        // or ShmGuest.fromWorkerData()
 *   const link = establishGuest(guest, serve(CellApi, impl));
 *   const host = client(HostApi, link.root);
 */
import * as fs from "node:fs";
import { Socket } from "node:net";
import { workerData } from "node:worker_threads";
import type { Link } from "../../session/link.js";
import { FileBacking, MemoryBacking, type Backing } from "./backing.js";
import { ShmPeerGoneError } from "./errors.js";
import { WORKER_DATA_KEY, type WorkerTicketData } from "./spawn.js";
import { EXT_ALL, PeerState } from "./layout.js";
import { Segment, SegmentError } from "./segment.js";
import { ShmTransport } from "./transport.js";
import { AtomicsWaker, DoorbellWaker, PollWaker, type Waker } from "./waker.js";

/** What a spawned guest gets on its command line (r[shm.spawn.args]). */
export interface SpawnArgs {
  hubPath: string;
  peerId: number;
  doorbellFd: number | null;
}

/** Extracts the spawn ticket from argv; null when `--hub-path=` is absent. */
export function parseSpawnArgs(argv: readonly string[] = process.argv): SpawnArgs | null {
  let hubPath: string | null = null;
  let peerId: number | null = null;
  let doorbellFd: number | null = null;
  for (const a of argv) {
    if (a.startsWith("--hub-path=")) hubPath = a.slice("--hub-path=".length);
    else if (a.startsWith("--peer-id=")) peerId = Number(a.slice("--peer-id=".length));
    else if (a.startsWith("--doorbell-fd=")) doorbellFd = Number(a.slice("--doorbell-fd=".length));
  }
  if (hubPath === null) return null;
  if (peerId === null || !Number.isInteger(peerId) || peerId < 1 || peerId > 255) throw new Error("--peer-id= must be 1..255");
  if (doorbellFd !== null && (!Number.isInteger(doorbellFd) || doorbellFd < 0)) throw new Error("--doorbell-fd= must be a file descriptor number");
  return { hubPath, peerId, doorbellFd };
}

/** Maps a segment file with room for every extent it may grow. */
function openSegmentFile(hubPath: string): Segment {
  const fd = fs.openSync(hubPath, "r");
  let head: Uint8Array;
  try {
    const size = fs.fstatSync(fd).size;
    head = new Uint8Array(Math.min(size, 1 << 16));
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  const { layout } = Segment.readConfig(head);
  const backing = FileBacking.open(hubPath, layout.maxSize);
  try {
    return Segment.attach(backing);
  } catch (e) {
    backing.close();
    throw e;
  }
}

export interface ShmGuestOptions {
  /** Called once the guest detached (the link closed, the host said goodbye or died). */
  onDetach?: (reason: string) => void;
  /**
   * A guest without a doorbell (attached by path) takes the host for dead when
   * the host's heartbeat word in the segment has not changed for this long,
   * measured on the guest's own clock (default 10 s; a heartbeat of 0 never
   * counts as a sign of life). A host
   * process that no longer exists is noticed at the next check (≤ 250 ms)
   * from its pid. 0 disables the heartbeat check.
   */
  hostTimeoutMs?: number;
}

export class ShmGuest {
  readonly epoch: number;
  private transport: ShmTransport | null = null;
  private link: Link | null = null;
  private readonly monitor: ReturnType<typeof setInterval>;
  private detachedReason: string | null = null;
  private detachListeners: ((reason: string) => void)[] = [];
  private readonly hostTimeoutNs: bigint;
  private readonly attachedAtNs = process.hrtime.bigint();
  /** host_goodbye was set at the previous check (acted on only when it persists). */
  private goodbyeSeen = false;
  /** The host's pid as first read from the segment (0 before). */
  private hostPidSeen = 0;
  private hostHbSeen = 0n;
  private hostHbChangedAtNs = 0n;

  private constructor(
    readonly segment: Segment,
    readonly peerId: number,
    readonly kind: "process" | "worker" | "path",
    private readonly waker: Waker,
    options: ShmGuestOptions,
  ) {
    if (options.onDetach) this.detachListeners.push(options.onDetach);
    this.hostTimeoutNs = BigInt(Math.round((options.hostTimeoutMs ?? 10_000) * 1e6));
    // Advertise our extensions of the spec (layout.EXT) before anything else.
    segment.setPeerExtensions(peerId, EXT_ALL);
    this.epoch = segment.bumpEpoch(peerId);
    segment.writeHeartbeat(peerId);
    const hbMs = segment.config.heartbeatIntervalMs;
    // The interval also keeps a worker thread alive while attached.
    const every = hbMs > 0 ? Math.max(5, Math.min(hbMs / 2, 250)) : 250;
    this.monitor = setInterval(() => this.tick(), every);
    waker.start(
      () => this.transport?.wake(),
      (cause) => this.hostGone(cause.message),
    );
  }

  /** Attaches with the ticket in `argv` (throws if there is none). */
  static fromArgs(argv: readonly string[] = process.argv, options: ShmGuestOptions = {}): ShmGuest {
    const a = parseSpawnArgs(argv);
    if (!a) throw new Error("no --hub-path= argument: this process was not spawned by an SHM host");
    return ShmGuest.attachTicket(a, options);
  }

  /** r[shm.spawn.guest-init]: the entry must be Reserved; it becomes Attached. */
  static attachTicket(a: SpawnArgs, options: ShmGuestOptions = {}): ShmGuest {
    const seg = openSegmentFile(a.hubPath);
    try {
      if (a.peerId > seg.config.maxGuests) throw new SegmentError(`peer id ${a.peerId} is beyond max_guests ${seg.config.maxGuests}`);
      if (!seg.casPeerState(a.peerId, PeerState.Reserved, PeerState.Attached)) {
        throw new SegmentError(`peer ${a.peerId} is not Reserved (state ${seg.peerState(a.peerId)}); the ticket is stale`);
      }
    } catch (e) {
      seg.backing.close();
      throw e;
    }
    let waker: Waker;
    if (a.doorbellFd !== null) {
      const sock = new Socket({ fd: a.doorbellFd, readable: true, writable: true });
      waker = new DoorbellWaker(sock);
    } else {
      waker = new PollWaker();
    }
    return new ShmGuest(seg, a.peerId, "process", waker, options);
  }

  /** r[shm.guest.attach]: takes the first Empty entry (no doorbell: wake-ups poll). */
  static attachPath(hubPath: string, options: ShmGuestOptions = {}): ShmGuest {
    const seg = openSegmentFile(hubPath);
    let id = 1;
    try {
      // seg.guest(id) checks the entry's offsets before its state is touched.
      for (; id <= seg.config.maxGuests; id++) if (seg.guest(id) && seg.casPeerState(id, PeerState.Empty, PeerState.Attached)) break;
    } catch (e) {
      seg.backing.close();
      throw e;
    }
    if (id <= seg.config.maxGuests) return new ShmGuest(seg, id, "path", new PollWaker(), options);
    seg.backing.close();
    throw new SegmentError("the hub is full (r[shm.guest.attach-failure])");
  }

  /** In a worker started with `ticket.spawnWorker(...)`. */
  static fromWorkerData(data: unknown = workerData, options: ShmGuestOptions = {}): ShmGuest {
    const t = (data as Record<string, unknown> | null)?.[WORKER_DATA_KEY] as WorkerTicketData | undefined;
    if (!t || !(t.sab instanceof SharedArrayBuffer)) throw new Error("no SHM ticket in workerData: start this worker with ticket.spawnWorker()");
    const backing: Backing = new MemoryBacking(t.sab);
    const seg = Segment.attach(backing);
    if (!seg.casPeerState(t.peerId, PeerState.Reserved, PeerState.Attached)) {
      throw new SegmentError(`peer ${t.peerId} is not Reserved (state ${seg.peerState(t.peerId)})`);
    }
    const g = seg.guest(t.peerId);
    return new ShmGuest(seg, t.peerId, "worker", new AtomicsWaker(seg.i32, g.h2g.iSleeping, g.g2h.iSleeping), options);
  }

  /** True inside a worker started with `ticket.spawnWorker(...)`. */
  static isWorkerGuest(data: unknown = workerData): boolean {
    return !!(data as Record<string, unknown> | null)?.[WORKER_DATA_KEY];
  }

  get isDetached(): boolean {
    return this.detachedReason !== null;
  }

  /** Calls back once the guest detached, with the reason. */
  onDetach(listener: (reason: string) => void): void {
    if (this.detachedReason !== null) listener(this.detachedReason);
    else this.detachListeners.push(listener);
  }

  /** @internal Used by establishGuest. */
  openTransport(o: { spinMicros?: number; highWaterMark?: number; maxQueuedBytes?: number }): ShmTransport {
    if (this.detachedReason !== null) throw new Error(`the guest detached: ${this.detachedReason}`);
    if (this.transport) throw new Error("this guest already has a link");
    const t = new ShmTransport({
      role: "guest",
      segment: this.segment,
      peerId: this.peerId,
      waker: this.waker,
      spinMicros: o.spinMicros,
      highWaterMark: o.highWaterMark,
      maxQueuedBytes: o.maxQueuedBytes,
      description: `shm guest ${this.peerId} ↔ host`,
      onStop: (how, cause) => this.detach(how === "closed" ? "the link closed" : (cause?.message ?? "the host is gone")),
    });
    this.transport = t;
    return t;
  }

  /** @internal */
  adoptLink(link: Link): void {
    this.link = link;
  }

  private tick(): void {
    if (this.detachedReason !== null) return;
    const seg = this.segment;
    if (seg.heartbeatIntervalNs > 0n) seg.writeHeartbeat(this.peerId);
    if (seg.peerState(this.peerId) !== PeerState.Attached) {
      this.hostGone("the host took this peer entry back");
      return;
    }
    if (this.kind === "path" && this.hostDead()) return;
    if (seg.hostGoodbye !== 0) {
      // r[shm.goodbye.host]: detach cleanly. Acted on when still set at the
      // next check: any guest can write the flag, and the host restores it
      // on every monitor tick (its link Goodbye arrives first anyway).
      if (!this.goodbyeSeen) {
        this.goodbyeSeen = true;
        return;
      }
      if (this.link && !this.link.isClosed) this.link.close("shm.goodbye.host: detaching on the host's goodbye");
      else this.detach("the host said goodbye");
    } else {
      this.goodbyeSeen = false;
    }
  }

  /** Without a doorbell nothing tells us the host died: look at its pid and heartbeat. */
  private hostDead(): boolean {
    const seg = this.segment;
    // The first pid seen is the host's: any guest can write the field, so a
    // later value is not believed (found by the segment fuzzer).
    if (this.hostPidSeen === 0) this.hostPidSeen = seg.hostPid;
    const pid = this.hostPidSeen;
    if (pid !== 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ESRCH") {
          this.hostGone(`the host process ${pid} no longer exists`);
          return true;
        }
      }
    }
    if (this.hostTimeoutNs > 0n) {
      // Any guest can write the heartbeat word too, so its value is not
      // believed as a time (a scribbled old value would read as a dead host;
      // found by the segment fuzzer). What counts is that it keeps changing:
      // the host rewrites it every interval, so a live host's word moves
      // within the limit, measured on our own clock. 0 is never a sign of life.
      const now = process.hrtime.bigint();
      const hb = seg.hostHeartbeat;
      if (hb !== 0n && hb !== this.hostHbSeen) {
        this.hostHbSeen = hb;
        this.hostHbChangedAtNs = now;
      }
      const since = this.hostHbChangedAtNs > this.attachedAtNs ? this.hostHbChangedAtNs : this.attachedAtNs;
      if (now - since > this.hostTimeoutNs) {
        this.hostGone(`the host's heartbeat has not moved for ${Number((now - since) / 1_000_000n)} ms (limit ${Number(this.hostTimeoutNs / 1_000_000n)} ms)`);
        return true;
      }
    }
    return false;
  }

  private hostGone(detail: string): void {
    if (this.detachedReason !== null) return;
    this.transport?.peerGone(new ShmPeerGoneError(this.peerId, "host-gone", detail));
    this.detach(detail);
  }

  /**
   * Leaves the hub (r[shm.guest.detach]): stops the link, then sets the peer
   * state to Goodbye as the last access to the segment, then unmaps. Use
   * `link.close()` for a graceful end (it sends Goodbye and detaches).
   */
  detach(reason = "detached"): void {
    if (this.detachedReason !== null) return;
    this.detachedReason = reason;
    clearInterval(this.monitor);
    if (this.transport && !this.transport.isStopped) this.transport.peerGone(new ShmPeerGoneError(this.peerId, "detached", reason));
    const seg = this.segment;
    if (seg.backing.accessible > 0 && seg.peerState(this.peerId) === PeerState.Attached) seg.setPeerState(this.peerId, PeerState.Goodbye);
    // Tell the host now rather than at its next poll.
    const g = seg.guest(this.peerId);
    Atomics.notify(seg.i32, g.g2h.iSleeping);
    this.waker.close();
    if (this.kind !== "worker") seg.backing.close();
    for (const l of this.detachListeners.splice(0)) {
      try {
        l(reason);
      } catch {
        // a listener's failure must not break detaching
      }
    }
  }
}
