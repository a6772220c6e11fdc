/**
 * Which channel ids were ever opened on one connection, in bounded memory.
 *
 * The receive rules need to tell "never opened" (channeling.unknown) from
 * "opened and since closed" (channeling.data-after-close) for ids of either
 * side, and a peer may allocate ids of any parity (roam's own harness and the
 * reference implementations do; see ChannelRegistry.notePeerId). Ids are
 * kept as sorted, disjoint ranges, one list per parity and indexed by
 * `id >> 1`, so each side's sequential allocation (1, 3, 5, ... or 2, 4,
 * 6, ...) stays a single range however many channels it opens.
 *
 * Bound: at most `maxRanges` ranges per parity. Past that the two ranges
 * with the smallest gap are merged: the ids in that gap then count as
 * "opened", so a message on one of them is reported as data-after-close
 * instead of unknown. Both are protocol violations answered with Goodbye;
 * only the rule id named can become less precise, and only for a peer that
 * scatters thousands of ids.
 */
export class OpenedChannelIds {
  /** [start, end] inclusive, in `id >> 1` space; even ids at 0, odd at 1. */
  private readonly ranges: [number[], number[]] = [[], []];

  constructor(private readonly maxRanges = 512) {}

  /** Records `id` as opened. */
  add(id: number): void {
    const list = this.ranges[id & 1]!;
    const k = Math.floor(id / 2);
    // Fast path: sequential allocation extends or follows the last range.
    // mutation: equivalent — every mutant of this fast path (its conditions, `list[n + 1]`, an
    // empty block, `>=`): the general case below gives the same ranges for an empty list, for
    // k just past the last range, and for k beyond it; only slower.
    const n = list.length;
    if (n > 0) {
      const lastEnd = list[n - 1]!;
      if (k === lastEnd + 1) {
        list[n - 1] = k;
        return;
      }
      if (k > lastEnd + 1) {
        list.push(k, k);
        this.bound(list);
        return;
      }
    } else {
      list.push(k, k);
      return;
    }
    // General case: find the first range whose end >= k - 1.
    // mutation: equivalent — `hi = n * 2`: slots past the end read undefined, which never
    // compares "< k - 1", so the search still ends at the same range.
    let lo = 0;
    let hi = n / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[2 * mid + 1]! < k - 1) lo = mid + 1;
      else hi = mid;
    }
    const i = lo;
    const start = list[2 * i]!;
    const end = list[2 * i + 1]!;
    if (k >= start && k <= end) return; // already in
    if (k === end + 1) {
      list[2 * i + 1] = k;
      // Joins the next range?
      // mutation: equivalent — the bounds check (`true`, `<=`, `2 * i - 2 <`): past the end
      // list[2 * i + 2] is undefined, which is never k + 1.
      if (2 * i + 2 < list.length && list[2 * i + 2] === k + 1) {
        list[2 * i + 1] = list[2 * i + 3]!;
        list.splice(2 * i + 2, 2);
      }
      return;
    }
    if (k === start - 1) {
      list[2 * i] = k;
      return;
    }
    // Strictly before range i, not adjacent.
    list.splice(2 * i, 0, k, k);
    this.bound(list);
  }

  /** True if `id` was ever recorded (or lies in a gap merged away by the bound). */
  has(id: number): boolean {
    const list = this.ranges[id & 1]!;
    const k = Math.floor(id / 2);
    // mutation: equivalent — `hi = list.length * 2` and, in the return, `true &&`, `<=` or
    // `list.length * 2`: a slot past the end reads undefined, which compares false both in the
    // search and in `list[2 * lo]! <= k`.
    let lo = 0;
    let hi = list.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[2 * mid + 1]! < k) lo = mid + 1;
      else hi = mid;
    }
    return lo < list.length / 2 && list[2 * lo]! <= k;
  }

  /** The first id >= `id` of the same parity that is not recorded. */
  nextFree(id: number): number {
    const list = this.ranges[id & 1]!;
    let k = Math.floor(id / 2);
    // mutation: equivalent — `i <= list.length`: the extra step reads undefined, and both
    // comparisons with undefined are false.
    for (let i = 0; i < list.length; i += 2) {
      if (list[i]! > k) break;
      if (list[i + 1]! >= k) k = list[i + 1]! + 1;
    }
    return 2 * k + (id & 1);
  }

  /** Ranges currently kept (both parities), for tests of the bound. */
  get rangeCount(): number {
    return (this.ranges[0].length + this.ranges[1].length) / 2;
  }

  private bound(list: number[]): void {
    if (list.length / 2 <= this.maxRanges) return;
    let best = 0;
    let bestGap = Infinity;
    // mutation: equivalent — `i + 2 <= list.length`, `i - 2 < list.length`: the extra steps
    // compute a NaN gap, which is never < bestGap.
    for (let i = 0; i + 2 < list.length; i += 2) {
      const gap = list[i + 2]! - list[i + 1]!;
      if (gap < bestGap) {
        bestGap = gap;
        best = i;
      }
    }
    list[best + 1] = list[best + 3]!;
    list.splice(best + 2, 2);
  }
}
