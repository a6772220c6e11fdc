/**
 * The hub host (r[shm.topology.hub]): creates the segment, reserves peers and
 * spawns guests with spawn tickets, watches them (doorbell hang-up, process
 * or worker exit, stale heartbeat, detach), recovers a dead guest's resources
 * so its peer id can be used again, and says goodbye on shutdown.
 *
 *   const host = ShmHost.create();                       // /dev/shm/roam-hub-<pid>-<random>
 *   const ticket = host.addPeer({ name: "cell", onDeath: (id, info) => ... });
 *   ticket.spawn(process.execPath, ["cell.js"]);         // gets --hub-path= --peer-id= --doorbell-fd=
 *   const link = establishHostPeer(host, ticket.peerId, serve(HostApi, impl));
 *   const cell = client(CellApi, link.root);
 */
import { diagnosticsRegistry, type ShmGuestDiagnostics, type ShmHostDiagnostics } from "../../session/diagnostics.js";
import type { ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import type { Worker } from "node:worker_threads";
import type { Link } from "../../session/link.js";
import type { Backing } from "./backing.js";
import { ShmPeerGoneError, type DeathCause } from "./errors.js";
import { hubConfig, openHubBacking, removeHubFile, type HubSegmentOptions } from "./hub-segment.js";
import { PeerState, type SegmentConfig } from "./layout.js";
import { assessPeer, DETACHED } from "./peer-watch.js";
import { Segment } from "./segment.js";
import { SpawnTicket, WakerSlot } from "./spawn.js";
import { ShmTransport } from "./transport.js";
import { AtomicsWaker, DoorbellWaker, PollWaker } from "./waker.js";

export interface ShmHostOptions extends HubSegmentOptions {
  /** A spawned guest that has not attached after this long is killed (default 10 s). */
  attachTimeoutMs?: number;
  /** How long `close()` (and a link closed by the host) waits for guests to detach (default 2 s). */
  goodbyeTimeoutMs?: number;
  /** How often peer states and heartbeats are checked (default 50 ms). */
  monitorIntervalMs?: number;
  /** A guest attached by path (not with a ticket): serve it with `establishHostPeer`. */
  onAttach?: (peerId: number) => void;
}

export interface DeathInfo {
  peerId: number;
  name: string;
  cause: DeathCause;
  detail: string;
}

export interface AddPeerOptions {
  /** For logs and DeathInfo. */
  name?: string;
  /** The guest died (r[shm.death.callback]); its calls already failed, its resources are being reclaimed. */
  onDeath?: (peerId: number, info: DeathInfo) => void;
  /** The guest detached cleanly (peer state Goodbye). */
  onDetach?: (peerId: number) => void;
}

interface HostPeer {
  peerId: number;
  name: string;
  kind: "unspawned" | "process" | "worker" | "external";
  onDeath?: AddPeerOptions["onDeath"];
  onDetach?: AddPeerOptions["onDetach"];
  child: ChildProcess | null;
  worker: Worker | null;
  waker: WakerSlot;
  transport: ShmTransport | null;
  link: Link | null;
  attached: boolean;
  epoch: number;
  ended: false | "dead" | "detached";
  exited: boolean;
  attachDeadline: number;
  closingSince: number;
  /** When the monitor first saw it attached (hrtime ns; 0 before). */
  attachedAtNs: bigint;
  reclaimed: boolean;
  killTimer: ReturnType<typeof setTimeout> | null;
  attachWaiters: { resolve: () => void; reject: (e: Error) => void }[];
  reclaimWaiters: (() => void)[];
}

export interface ShmHostStats {
  attached: number;
  deaths: number;
  detaches: number;
  reclaimed: number;
  slotsRecovered: number;
  extentsGrown: number;
}

export class ShmHost {
  readonly segment: Segment;
  readonly path: string | null;
  private readonly peers = new Map<number, HostPeer>();
  private readonly monitor: ReturnType<typeof setInterval>;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly heartbeatNs: bigint;
  readonly stats = { deaths: 0, detaches: 0, reclaimed: 0, slotsRecovered: 0 };

  private constructor(
    private readonly backing: Backing,
    config: SegmentConfig,
    private readonly options: ShmHostOptions,
  ) {
    this.segment = Segment.create(backing, config);
    this.path = backing.path;
    this.heartbeatNs = BigInt(Math.round(config.heartbeatIntervalMs * 1e6));
    this.monitor = setInterval(() => this.tick(), options.monitorIntervalMs ?? 50);
    this.monitor.unref?.();
    diagnosticsRegistry.sources.add(this);
  }

  /** Per-guest state (peer table, heartbeat age, slots owned) and each guest's link. */
  diagnostics(): ShmHostDiagnostics {
    const seg = this.segment;
    const now = process.hrtime.bigint();
    const names = ["empty", "attached", "goodbye", "reserved"];
    const guests: ShmGuestDiagnostics[] = [...this.peers.values()].map((p) => {
      const hb = seg.heartbeat(p.peerId);
      return {
        peerId: p.peerId,
        name: p.name,
        peerState: names[seg.peerState(p.peerId)] ?? `unknown (${seg.peerState(p.peerId)})`,
        kind: p.kind,
        heartbeatAgeMs: hb > 0n && now >= hb ? Number((now - hb) / 1_000_000n) : null,
        slotsOwned: seg.pool.countOwned(p.peerId),
        ended: p.ended,
        link: p.link ? p.link.diagnostics() : null,
      };
    });
    return { kind: "shm-host", path: this.path, sizeBytes: seg.currentSize, hostSlotsOwned: seg.pool.countOwned(0), guests, stats: { ...this.stats } };
  }

  /** @internal */
  ownedLinks(): Link[] {
    return [...this.peers.values()].flatMap((p) => (p.link ? [p.link] : []));
  }

  /** Creates the hub: a new segment (replacing a stale file at the same path). */
  static create(options: ShmHostOptions = {}): ShmHost {
    const config = hubConfig(options);
    const backing = openHubBacking(options, config);
    try {
      return new ShmHost(backing, config, options);
    } catch (e) {
      backing.close();
      if (backing.path) removeHubFile(backing.path);
      throw e;
    }
  }

  /**
   * Reserves the lowest free peer id (Empty → Reserved) and returns its spawn
   * ticket. Throws when the hub is full.
   */
  addPeer(options: AddPeerOptions = {}): SpawnTicket {
    if (this.closing) throw new Error("the SHM host is closing");
    const seg = this.segment;
    for (let id = 1; id <= seg.config.maxGuests; id++) {
      if (this.peers.has(id)) continue;
      if (!seg.casPeerState(id, PeerState.Empty, PeerState.Reserved)) continue;
      seg.writeHeartbeat(id, 0n);
      seg.setPeerExtensions(id, 0); // the new guest advertises its own
      const peer = this.newPeer(id, "unspawned", options);
      return new SpawnTicket({
        peerId: id,
        hubPath: this.path,
        sab: () => this.segment.backing.sab,
        spawned: () => peer.kind !== "unspawned",
        adoptChild: (child) => this.adoptChild(peer, child),
        adoptWorker: (worker) => this.adoptWorker(peer, worker),
        cancel: () => this.cancelTicket(peer),
      });
    }
    throw new Error(`the SHM hub is full (${seg.config.maxGuests} guests; r[shm.guest.attach-failure])`);
  }

  private newPeer(id: number, kind: HostPeer["kind"], options: AddPeerOptions): HostPeer {
    const peer: HostPeer = {
      peerId: id,
      name: options.name ?? `peer ${id}`,
      kind,
      onDeath: options.onDeath,
      onDetach: options.onDetach,
      child: null,
      worker: null,
      waker: new WakerSlot(),
      transport: null,
      link: null,
      attached: false,
      epoch: 0,
      ended: false,
      exited: kind === "external",
      attachDeadline: 0,
      closingSince: 0,
      attachedAtNs: 0n,
      reclaimed: false,
      killTimer: null,
      attachWaiters: [],
      reclaimWaiters: [],
    };
    peer.waker.wake = () => peer.transport?.wake();
    this.peers.set(id, peer);
    return peer;
  }

  /** Peer ids with a live record (reserved, attached, or being recovered). */
  peerIds(): number[] {
    return [...this.peers.keys()];
  }

  /** The name given to addPeer. */
  peerName(peerId: number): string | undefined {
    return this.peers.get(peerId)?.name;
  }

  /** The child process of a spawned guest. */
  child(peerId: number): ChildProcess | null {
    return this.peers.get(peerId)?.child ?? null;
  }

  /** Resolves once the guest attached (rejects if it dies first or after `timeoutMs`). */
  waitAttached(peerId: number, timeoutMs = 10_000): Promise<void> {
    const peer = this.peers.get(peerId);
    if (!peer) return Promise.reject(new Error(`peer ${peerId} is not reserved`));
    this.tick();
    if (peer.attached) return Promise.resolve();
    if (peer.ended) return Promise.reject(new Error(`peer ${peerId} ended before attaching`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`peer ${peerId} did not attach within ${timeoutMs} ms`)), timeoutMs);
      peer.attachWaiters.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  /** Resolves once the peer's resources were reclaimed (its id is free again). */
  whenReclaimed(peerId: number): Promise<void> {
    const peer = this.peers.get(peerId);
    if (!peer) return Promise.resolve();
    return new Promise((resolve) => peer.reclaimWaiters.push(resolve));
  }

  // --- wiring (tickets, driver) -------------------------------------------------------

  private adoptChild(peer: HostPeer, child: ChildProcess): void {
    peer.kind = "process";
    peer.child = child;
    peer.attachDeadline = performance.now() + (this.options.attachTimeoutMs ?? 10_000);
    const sock = child.stdio[3] as Socket | null;
    if (sock) {
      const bell = new DoorbellWaker(sock);
      bell.start(
        () => peer.transport?.wake(),
        (cause) => this.onHangup(peer, cause),
      );
      peer.waker.inner = bell;
      peer.waker.kind = "doorbell";
    }
    child.on("exit", (code, signal) => this.onExit(peer, signal ? `killed by ${signal}` : `exited with code ${code}`));
    child.on("error", (e) => {
      if (!peer.attached) {
        peer.exited = child.pid === undefined || peer.exited;
        this.died(peer, "spawn-error", `could not start the guest: ${e.message}`);
      }
    });
  }

  private adoptWorker(peer: HostPeer, worker: Worker): void {
    peer.kind = "worker";
    peer.worker = worker;
    peer.attachDeadline = performance.now() + (this.options.attachTimeoutMs ?? 10_000);
    const g = this.segment.guest(peer.peerId);
    const w = new AtomicsWaker(this.segment.i32, g.g2h.iSleeping, g.h2g.iSleeping);
    w.start(() => peer.transport?.wake());
    peer.waker.inner = w;
    peer.waker.kind = "atomics";
    worker.on("exit", (code) => this.onExit(peer, `worker exited with code ${code}`));
    worker.on("error", () => {
      // 'exit' follows; the error is the worker's own business
    });
  }

  private cancelTicket(peer: HostPeer): void {
    if (peer.kind !== "unspawned" || peer.reclaimed) return;
    peer.ended = "dead";
    this.reclaim(peer);
  }

  /** @internal Used by establishHostPeer. */
  openTransport(peerId: number, o: { spinMicros?: number; highWaterMark?: number; maxQueuedBytes?: number }): ShmTransport {
    if (this.closing) throw new Error("the SHM host is closing");
    const peer = this.peers.get(peerId);
    if (!peer || peer.ended) throw new Error(`peer ${peerId} is not reserved or attached on this host`);
    if (peer.transport && !peer.transport.isStopped) throw new Error(`peer ${peerId} already has a link`);
    const t = new ShmTransport({
      role: "host",
      segment: this.segment,
      peerId,
      waker: peer.waker,
      spinMicros: o.spinMicros,
      highWaterMark: o.highWaterMark,
      maxQueuedBytes: o.maxQueuedBytes,
      description: `shm host ↔ ${peer.name} (peer ${peerId})`,
      onStop: (how) => {
        if (how === "closed" && !peer.ended && !peer.closingSince) peer.closingSince = performance.now();
      },
    });
    peer.transport = t;
    return t;
  }

  /** @internal */
  adoptLink(peerId: number, link: Link): void {
    const peer = this.peers.get(peerId);
    if (peer) peer.link = link;
  }

  /** The link serving a peer (after establishHostPeer). */
  link(peerId: number): Link | null {
    return this.peers.get(peerId)?.link ?? null;
  }

  // --- death and recovery ---------------------------------------------------------------

  private onHangup(peer: HostPeer, cause: Error): void {
    if (peer.ended) return;
    if (this.segment.peerState(peer.peerId) === PeerState.Goodbye) this.detached(peer);
    else this.died(peer, "doorbell", cause.message);
  }

  private onExit(peer: HostPeer, detail: string): void {
    peer.exited = true;
    if (peer.killTimer) clearTimeout(peer.killTimer);
    peer.killTimer = null;
    if (!peer.ended) {
      if (this.segment.peerState(peer.peerId) === PeerState.Goodbye) this.detached(peer);
      else this.died(peer, "exit", `the guest ${detail} without detaching`);
    }
    if (peer.ended && !peer.reclaimed) this.reclaim(peer);
  }

  /** r[shm.death.recovery] */
  private died(peer: HostPeer, cause: DeathCause, detail: string): void {
    if (peer.ended) return;
    peer.ended = "dead";
    this.stats.deaths++;
    const id = peer.peerId;
    this.segment.setPeerState(id, PeerState.Goodbye);
    const err = new ShmPeerGoneError(id, cause, `${peer.name} is gone (${cause}): ${detail}`);
    // Every call and channel with it fails now.
    peer.transport?.peerGone(err);
    for (const w of peer.attachWaiters.splice(0)) w.reject(err);
    if (!this.closing && peer.onDeath) {
      try {
        peer.onDeath(id, { peerId: id, name: peer.name, cause, detail });
      } catch (e) {
        console.error(`roam shm: onDeath callback for peer ${id} threw:`, e);
      }
    }
    // It must not touch the segment any more before we reset its part of it.
    if (peer.child && !peer.exited) {
      peer.child.kill("SIGKILL");
      this.reclaimLater(peer);
    } else if (peer.worker && !peer.exited) {
      void peer.worker.terminate();
      this.reclaimLater(peer);
    } else {
      this.reclaim(peer);
    }
  }

  /** Reclaims once the process/worker exited, or after 3 s regardless. */
  private reclaimLater(peer: HostPeer): void {
    peer.killTimer = setTimeout(() => {
      peer.killTimer = null;
      this.reclaim(peer);
    }, 3000);
    peer.killTimer.unref?.();
  }

  private detached(peer: HostPeer): void {
    if (peer.ended) return;
    peer.ended = "detached";
    this.stats.detaches++;
    const id = peer.peerId;
    peer.transport?.peerGone(new ShmPeerGoneError(id, "detached", `${peer.name} detached`));
    for (const w of peer.attachWaiters.splice(0)) w.reject(new Error(`peer ${id} detached`));
    if (!this.closing && peer.onDetach) {
      try {
        peer.onDetach(id);
      } catch (e) {
        console.error(`roam shm: onDetach callback for peer ${id} threw:`, e);
      }
    }
    // Our guests write Goodbye as their last access to the segment.
    this.reclaim(peer);
  }

  /** r[shm.crash.recovery] steps 3–6. */
  private reclaim(peer: HostPeer): void {
    if (peer.reclaimed) return;
    peer.reclaimed = true;
    if (peer.killTimer) clearTimeout(peer.killTimer);
    peer.killTimer = null;
    const seg = this.segment;
    const id = peer.peerId;
    const g = seg.guest(id);
    if (peer.transport) {
      if (!peer.transport.isStopped) peer.transport.peerGone(new ShmPeerGoneError(id, "detached", `${peer.name} was reclaimed`));
      for (const ref of peer.transport.takeSentSlots()) if (seg.pool.free(ref)) this.stats.slotsRecovered++;
    }
    this.stats.slotsRecovered += seg.pool.recoverPeer(id);
    g.g2h.reset();
    g.h2g.reset();
    g.channels.resetAll();
    seg.writeHeartbeat(id, 0n);
    peer.waker.close();
    this.peers.delete(id);
    seg.setPeerState(id, PeerState.Empty);
    this.stats.reclaimed++;
    for (const w of peer.reclaimWaiters.splice(0)) w();
  }

  private tick(): void {
    const seg = this.segment;
    const now = performance.now();
    const nowNs = process.hrtime.bigint();
    if (!this.closing) {
      // Our liveness for guests without a doorbell, and the header fields a
      // guest may have overwritten (every guest reads them).
      seg.writeHostLiveness(process.pid, nowNs);
      seg.repairHeaders();
    }
    const goodbyeMs = this.options.goodbyeTimeoutMs ?? 2000;
    for (const peer of [...this.peers.values()]) {
      if (peer.reclaimed) continue;
      const id = peer.peerId;
      const st = seg.peerState(id);
      if (!peer.attached && (st === PeerState.Attached || st === PeerState.Goodbye) && !peer.ended) {
        peer.attached = true;
        peer.epoch = seg.epoch(id);
        for (const w of peer.attachWaiters.splice(0)) w.resolve();
      }
      if (peer.ended) continue;
      if (peer.attached && this.heartbeatNs > 0n && peer.attachedAtNs === 0n) peer.attachedAtNs = nowNs;
      const verdict = assessPeer(peer, { state: st, heartbeat: () => seg.heartbeat(id), now, nowNs, heartbeatNs: this.heartbeatNs, goodbyeMs });
      if (verdict === DETACHED) this.detached(peer);
      else if (verdict !== null) this.died(peer, verdict.cause, verdict.detail);
    }
    if (this.closing) return;
    // Guests that attached by path (r[shm.host.poll-peers]).
    for (let id = 1; id <= seg.config.maxGuests; id++) {
      if (this.peers.has(id) || seg.peerState(id) !== PeerState.Attached) continue;
      const peer = this.newPeer(id, "external", {});
      const w = new PollWaker();
      w.start(() => peer.transport?.wake());
      peer.waker.inner = w;
      peer.attached = true;
      peer.epoch = seg.epoch(id);
      try {
        this.options.onAttach?.(id);
      } catch (e) {
        console.error(`roam shm: onAttach callback for peer ${id} threw:`, e);
      }
    }
  }

  // --- shutdown --------------------------------------------------------------------------

  /**
   * Says goodbye (r[shm.goodbye.host]): sets host_goodbye, closes every link,
   * waits for the guests to detach (then kills what is left), unmaps and
   * deletes the segment file (r[shm.file.cleanup]). Idempotent.
   */
  close(reason = "shm.goodbye.host: the host is shutting down"): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    diagnosticsRegistry.sources.delete(this);
    this.closed = (async () => {
      const seg = this.segment;
      seg.setHostGoodbye(1);
      for (const peer of this.peers.values()) {
        if (peer.ended) continue;
        if (peer.link && !peer.link.isClosed) peer.link.close(reason);
        peer.waker.ring();
      }
      const deadline = performance.now() + (this.options.goodbyeTimeoutMs ?? 2000);
      while (this.peers.size > 0 && performance.now() < deadline) {
        this.tick();
        if ([...this.peers.values()].every((p) => p.kind === "unspawned" || p.kind === "external")) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      for (const peer of [...this.peers.values()]) {
        if (!peer.ended) this.died(peer, "unresponsive", "it did not detach before the host shut down");
      }
      const exitDeadline = performance.now() + 3000;
      while ([...this.peers.values()].some((p) => !p.reclaimed) && performance.now() < exitDeadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      for (const peer of [...this.peers.values()]) this.reclaim(peer);
      clearInterval(this.monitor);
      this.backing.close();
      if (this.path) removeHubFile(this.path);
    })();
    return this.closed;
  }

  get isClosing(): boolean {
    return this.closing;
  }
}
