/**
 * `TracingConfig.filter_directives`: the RUST_LOG subset the reference cell
 * applies (tracing-subscriber's `Targets`): comma-separated `level` and
 * `target=level` directives; the longest matching target prefix wins;
 * `off` disables. An empty string means `info` (service.rs says so).
 */
import { LEVEL_RANK, type Level } from "./schema.js";

const LEVELS: Record<string, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, off: 5 };
const OFF = 5;

export class TargetFilter {
  private constructor(
    /** Minimum rank per target prefix, longest first. */
    private readonly targets: readonly (readonly [string, number])[],
    private readonly fallback: number,
    readonly source: string,
  ) {}

  /** Parses `directives`; throws TypeError naming the bad directive. */
  static parse(directives: string): TargetFilter {
    const src = directives.trim();
    if (src === "") return new TargetFilter([], LEVELS["info"]!, "info");
    let fallback = OFF;
    const targets = new Map<string, number>();
    for (const raw of src.split(",")) {
      const d = raw.trim();
      if (d === "") continue;
      const eq = d.lastIndexOf("=");
      if (eq < 0) {
        const rank = LEVELS[d.toLowerCase()];
        if (rank !== undefined) {
          fallback = rank;
          continue;
        }
        // A bare target enables everything for it (tracing-subscriber does the same).
        if (!/^[\w:.-]+$/.test(d)) throw new TypeError(`invalid filter directive "${d}"`);
        targets.set(d, 0);
        continue;
      }
      const target = d.slice(0, eq).trim();
      const rank = LEVELS[d.slice(eq + 1).trim().toLowerCase()];
      if (rank === undefined) throw new TypeError(`invalid level in filter directive "${d}" (trace, debug, info, warn, error or off)`);
      if (!/^[\w:.-]+$/.test(target)) throw new TypeError(`invalid target in filter directive "${d}" (span and field filters are not supported)`);
      targets.set(target, rank);
    }
    const sorted = [...targets.entries()].sort((a, b) => b[0].length - a[0].length);
    return new TargetFilter(sorted, fallback, src);
  }

  /** Like `parse`, but an invalid string means `info` (what the reference does on start-up). */
  static parseOrInfo(directives: string): TargetFilter {
    try {
      return TargetFilter.parse(directives);
    } catch {
      return TargetFilter.parse("info");
    }
  }

  enabled(level: Level, target: string): boolean {
    const rank = LEVEL_RANK[level];
    for (const [prefix, min] of this.targets) if (target.startsWith(prefix)) return min !== OFF && rank >= min;
    return this.fallback !== OFF && rank >= this.fallback;
  }
}
