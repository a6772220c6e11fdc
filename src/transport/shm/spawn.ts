/**
 * Starting a guest for a reserved peer (r[shm.spawn.*]): the spawn ticket
 * (arguments, doorbell on fd 3, worker data) and the peer's waker slot, which
 * forwards to the waker the spawn sets up (a link may exist before it).
 */
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from "node:child_process";
import { Worker, type WorkerOptions } from "node:worker_threads";
import type { Waker } from "./waker.js";

/** Key under which a worker guest finds its ticket in `workerData`. */
export const WORKER_DATA_KEY = "__roamShmGuest";

export interface WorkerTicketData {
  sab: SharedArrayBuffer;
  peerId: number;
  hubPath: string | null;
}

/** What a ticket needs from the host that reserved its peer. */
export interface TicketPort {
  readonly peerId: number;
  /** The hub's segment file (null for a memory-backed hub). */
  readonly hubPath: string | null;
  /** The hub's memory, handed to a worker guest. */
  sab(): SharedArrayBuffer;
  /** A guest was already started (or the ticket cancelled) for this peer. */
  spawned(): boolean;
  /** The guest process started: watch it. */
  adoptChild(child: ChildProcess): void;
  /** The guest worker started: watch it. */
  adoptWorker(worker: Worker): void;
  /** The spawn failed or was abandoned. */
  cancel(): void;
}

/** A reserved peer: spawn the guest with it (r[shm.spawn.ticket]). */
export class SpawnTicket {
  /** The doorbell is the child's file descriptor 3 (an extra 'pipe' stdio slot: a Unix socketpair). */
  readonly doorbellFd = 3;

  /** @internal */
  constructor(private readonly port: TicketPort) {}

  get peerId(): number {
    return this.port.peerId;
  }
  get hubPath(): string | null {
    return this.port.hubPath;
  }

  /** r[shm.spawn.args] */
  args(): string[] {
    if (!this.port.hubPath) throw new Error("a memory-backed hub has no file: use spawnWorker()");
    return [`--hub-path=${this.port.hubPath}`, `--peer-id=${this.peerId}`, `--doorbell-fd=${this.doorbellFd}`];
  }

  /**
   * Spawns the guest process with the ticket's arguments appended and the
   * doorbell on fd 3 (r[shm.spawn.fd-inheritance]; the parent's end stays here).
   */
  spawn(command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    if (this.port.spawned()) throw new Error(`peer ${this.peerId} was already spawned`);
    const ticketArgs = this.args();
    const base: StdioOptions = options.stdio ?? "inherit";
    const s = typeof base === "string" ? [base, base, base] : [...base];
    while (s.length < 3) s.push("inherit");
    s.length = 3;
    s.push("pipe");
    const child = spawn(command, [...args, ...ticketArgs], { ...options, stdio: s as StdioOptions });
    this.port.adoptChild(child);
    return child;
  }

  /** Starts a worker thread guest on the hub's memory (`ShmGuest.fromWorkerData()` attaches in it). */
  spawnWorker(filename: string | URL, options: WorkerOptions = {}): Worker {
    if (this.port.spawned()) throw new Error(`peer ${this.peerId} was already spawned`);
    const ticket: WorkerTicketData = { sab: this.port.sab(), peerId: this.peerId, hubPath: this.port.hubPath };
    const wd = options.workerData;
    const workerData = wd !== null && typeof wd === "object" && !Array.isArray(wd) ? { ...wd, [WORKER_DATA_KEY]: ticket } : { value: wd, [WORKER_DATA_KEY]: ticket };
    const worker = new Worker(filename, { ...options, workerData });
    this.port.adoptWorker(worker);
    return worker;
  }

  /** The spawn failed or was abandoned: the peer goes back to Empty (r[shm.spawn.reserved-state]). */
  cancel(): void {
    this.port.cancel();
  }
}

/** Forwards to the peer's waker once it exists (a link may be set up before the spawn). */
export class WakerSlot implements Waker {
  kind: Waker["kind"] = "poll";
  inner: Waker | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  wake: () => void = () => {};
  start(): void {}
  sleep(timeoutMs: number | undefined, flag: number): void {
    if (this.inner) {
      this.inner.sleep(timeoutMs, flag);
      return;
    }
    if (timeoutMs !== undefined && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.wake();
      }, timeoutMs);
      this.timer.unref?.();
    }
  }
  ring(): void {
    this.inner?.ring();
  }
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.inner?.close();
  }
}
