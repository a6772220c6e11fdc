/**
 * Observable backpressure for one channel: how many bytes sit in buffers and
 * how much credit is outstanding, with level events when the fill crosses
 * configurable watermarks (and when it comes back down).
 */
export type PressureLevel = "green" | "yellow" | "red";

export interface PressureThresholds {
  /** Fill ratio (0..1 of the window) at or above which the level is yellow. Default 0.5. */
  yellow: number;
  /** Fill ratio at or above which the level is red. Default 0.9. */
  red: number;
  /** Ratio that must be left below a threshold before stepping down (hysteresis). Default 0.1. */
  hysteresis: number;
}

export const DEFAULT_THRESHOLDS: PressureThresholds = { yellow: 0.5, red: 0.9, hysteresis: 0.1 };

export interface ChannelStats {
  /** Channel id on its connection. */
  channelId: number;
  /** "send" for a Tx, "receive" for an Rx. */
  side: "send" | "receive";
  /** The credit window (negotiated initial credit). */
  window: number;
  /**
   * Receiver: bytes received and not yet consumed by the application.
   * Sender: bytes of values waiting for credit (not yet on the wire).
   */
  bufferedBytes: number;
  /**
   * Receiver: credit the sender still holds (bytes it may send before we grant more).
   * Sender: credit we hold.
   */
  creditOutstanding: number;
  /** Bytes in the window currently in use: receiver `window - outstanding`, sender `window - available`. */
  inFlightBytes: number;
  level: PressureLevel;
  /** Total bytes moved (payload bytes of Data). */
  totalBytes: number;
  /** Total values moved. */
  totalValues: number;
}

export interface LevelChange {
  channelId: number;
  side: "send" | "receive";
  from: PressureLevel;
  to: PressureLevel;
  fill: number;
}

export type LevelListener = (change: LevelChange) => void;

/** Tracks the level of one channel and notifies listeners on changes. */
export class PressureGauge {
  level: PressureLevel = "green";
  // mutation: equivalent — a non-function entry throws inside the listener try/catch below and is skipped.
  private listeners: LevelListener[] = [];
  private thresholds: PressureThresholds = DEFAULT_THRESHOLDS;

  /** Sets the thresholds (a channel learns its link's when it is bound to a call). */
  configure(thresholds: PressureThresholds): void {
    this.thresholds = thresholds;
  }

  on(listener: LevelListener): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** Re-evaluates with the current fill ratio (0..1). Cheap when nobody listens. */
  update(fill: number, channelId: number, side: "send" | "receive"): void {
    const t = this.thresholds;
    let next: PressureLevel = this.level;
    if (fill >= t.red) next = "red";
    else if (fill >= t.yellow) next = this.level === "red" && fill >= t.red - t.hysteresis ? "red" : "yellow";
    // mutation: equivalent — here fill < yellow, so with yellow <= red - hysteresis (the
    // defaults, any sane configuration) the `>= red - hysteresis` and `>= yellow` tests are false.
    else if (this.level === "red") next = fill >= t.red - t.hysteresis ? "red" : fill >= t.yellow ? "yellow" : fill >= t.yellow - t.hysteresis ? "yellow" : "green";
    else if (this.level === "yellow") next = fill >= t.yellow - t.hysteresis ? "yellow" : "green";
    else next = "green";
    if (next !== this.level) {
      const from = this.level;
      this.level = next;
      for (const l of this.listeners) {
        try {
          l({ channelId, side, from, to: next, fill });
        } catch {
          // A listener's failure must not break the channel.
        }
      }
    }
  }
}
