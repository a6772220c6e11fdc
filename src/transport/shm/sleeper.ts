/**
 * The sleeping-flag protocol of one side (layout.B.sleeping, see waker.ts),
 * both halves: when this side spins, sleeps and wakes (Sleeper), and when it
 * rings the peer (PeerBell).
 *
 * Before sleeping, a side spins briefly when it expects input soon (a call in
 * flight, a sender waiting for credit, traffic a moment ago), so a busy pair
 * exchanges frames without any syscall; then it raises its sleeping flag,
 * looks once more, and waits for the peer's ring.
 */
import { EXT } from "./layout.js";
import type { Waker } from "./waker.js";

/** Bits of a side's sleeping flag (layout.B.sleeping): what it waits for, and whether it was rung. */
export const WANTS_FRAMES = 1;
export const RUNG = 2;
export const WANTS_ROOM = 4;
export const WANTS_CREDIT = 8;

/** Where a side's sleeping flag lives: one i32 of the segment. */
export interface FlagCell {
  readonly i32: Int32Array;
  readonly index: number;
}

/** What the idle loop drives; handed to the Sleeper by the transport. */
export interface SleeperPorts {
  /** The transport stopped: nothing more is scheduled. */
  stopped(): boolean;
  /** Input is expected soon: a call waits for its response. */
  callsInFlight(): boolean;
  /** Frames may be read (reading neither failed nor paused). */
  canRead(): boolean;
  /** The incoming ring holds a frame (polled while spinning). */
  hasFrames(): boolean;
  /** Some sender waits for credit. */
  creditWaiting(): boolean;
  /** A waiting sender's credit arrived (polled while spinning). */
  creditReady(): boolean;
  /** Frames wait in the outbox. */
  queued(): boolean;
  /** Reads what the incoming ring holds. */
  read(): void;
  /** Writes queued frames; true if any went out. */
  flush(): boolean;
  /** Lets senders whose credit arrived go; true if any went. */
  pollCredits(): boolean;
  /** Closing with nothing left to write: stops the transport and returns true. */
  finish(): boolean;
  /** The flag is raised and nothing is pending: wait for the peer's ring (the waker). */
  sleep(flag: number): void;
}

export interface SleeperOptions {
  /** Microseconds to spin before sleeping when input is expected soon (0 disables spinning). */
  spinMicros: number;
  flag: FlagCell;
  stats: { sleeps: number; spinHits: number };
  /** Clock in ms (tests). */
  now?: () => number;
}

export class Sleeper {
  private readonly flag: FlagCell;
  private readonly stats: { sleeps: number; spinHits: number };
  private readonly now: () => number;
  private readonly spinMs: number;
  /** Current spin budget: full after a hit, halved after each miss, 0 under sustained misses (then probed now and then). */
  private spinBudget: number;
  private spinProbe = 0;
  private lastRx = 0;
  private scheduled = false;
  private sleeping = false;

  constructor(
    options: SleeperOptions,
    private readonly ports: SleeperPorts,
  ) {
    this.flag = options.flag;
    this.stats = options.stats;
    this.now = options.now ?? (() => performance.now());
    this.spinMs = options.spinMicros / 1000;
    this.spinBudget = this.spinMs;
  }

  /** Our flag is raised (we went to sleep and nothing woke us since). */
  get asleep(): boolean {
    return this.sleeping;
  }

  /** Frames were read just now: the peer is busy, more may follow. */
  noteInput(): void {
    this.lastRx = this.now();
  }

  /** Runs the idle loop on the next turn (once, however often asked). */
  schedule(): void {
    if (this.scheduled || this.ports.stopped()) return;
    this.scheduled = true;
    setImmediate(this.idle);
  }

  /** Lowers our flag: we are awake (the peer need not ring). */
  awake(): void {
    if (!this.sleeping) return;
    this.sleeping = false;
    Atomics.store(this.flag.i32, this.flag.index, 0);
  }

  /** The transport stopped: leave our flag raised, so the peer rings us at most once more. */
  stop(): void {
    Atomics.store(this.flag.i32, this.flag.index, WANTS_FRAMES);
  }

  /** One idle turn: spin if input is expected soon and spinning pays, else sleep. */
  readonly idle = (): void => {
    this.scheduled = false;
    const p = this.ports;
    if (p.stopped()) return;
    if (this.spinMs > 0 && (p.callsInFlight() || p.creditWaiting() || this.now() - this.lastRx < 4 * this.spinMs)) {
      if (this.spinBudget === 0 && ++this.spinProbe >= 32) {
        this.spinProbe = 0;
        this.spinBudget = this.spinMs;
      }
      if (this.spinBudget > 0) {
        if (this.spin(this.spinBudget)) {
          this.stats.spinHits++;
          this.spinBudget = this.spinMs;
          p.read();
          p.pollCredits();
          p.flush();
          this.schedule();
          return;
        }
        // The peer is slow or not running (a busy machine): spin less.
        this.spinBudget = this.spinBudget / 2 < this.spinMs / 16 ? 0 : this.spinBudget / 2;
      }
    }
    this.sleep();
  };

  /** Busy-polls for input for at most `budget` ms. */
  private spin(budget: number): boolean {
    const p = this.ports;
    const end = this.now() + budget;
    const credits = p.creditWaiting();
    if (!p.canRead()) return false;
    for (let i = 1; ; i++) {
      if (p.hasFrames()) return true;
      if ((i & 63) === 0) {
        if (credits && p.creditReady()) return true;
        if (this.now() > end) return false;
      }
    }
  }

  private sleep(): void {
    const p = this.ports;
    // Raise the flag first, then look again (the peer does the opposite), so a
    // frame, room or credit arriving in between is never missed. The flag says
    // what we wait for, so the peer rings only for that.
    const flag = WANTS_FRAMES | (p.queued() ? WANTS_ROOM : 0) | (p.creditWaiting() ? WANTS_CREDIT : 0);
    Atomics.store(this.flag.i32, this.flag.index, flag);
    this.sleeping = true;
    const progressed = p.flush();
    const credited = p.pollCredits();
    if ((p.canRead() && p.hasFrames()) || progressed || credited) {
      this.awake();
      p.read();
      this.schedule();
      return;
    }
    if (p.finish()) return;
    this.stats.sleeps++;
    p.sleep(flag);
  }
}

/**
 * Rings the peer: at most one doorbell write per sleep of the peer, and only
 * for what it waits for — unless the peer never publishes a sleeping flag
 * (a spec-only peer), which is rung after every commit, release and grant.
 */
export class PeerBell {
  constructor(
    private readonly flag: FlagCell,
    private readonly waker: Waker,
    /** The peer's extension bits (layout.EXT), read from the segment each time: a guest advertises them when it attaches, which may be after the host started writing. */
    private readonly peerExtensions: () => number,
  ) {}

  /** Whether the peer advertised the `sleeping` extension. */
  get peerPublishesSleep(): boolean {
    return (this.peerExtensions() & EXT.sleeping) !== 0;
  }

  /** Rings the peer if it sleeps waiting for one of `bits` and nobody rang it since it fell asleep. */
  ring(bits: number): void {
    if (!this.peerPublishesSleep) {
      // A peer that follows only the spec never raises a sleeping flag: signal
      // after every commit, release and grant (r[shm.doorbell.ring-integration],
      // r[shm.wakeup.producer-wait], r[shm.wakeup.credit-wait]).
      this.waker.ring();
      return;
    }
    const { i32, index } = this.flag;
    const f = Atomics.load(i32, index);
    if ((f & bits) !== 0 && (f & RUNG) === 0 && Atomics.compareExchange(i32, index, f, f | RUNG) === f) this.waker.ring();
  }
}
