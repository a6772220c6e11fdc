/**
 * Retry policy of the reconnecting client (reconnect.policy.*): how many
 * connection attempts one reconnect makes and how long it waits between them.
 */

export interface RetryPolicy {
  /** Connection attempts per reconnect before giving up (default 3; Infinity: never give up). Also bounds how often one call is re-sent. */
  maxAttempts: number;
  /** Delay after the first failed attempt (default 100 ms). */
  initialBackoffMs: number;
  /** Longest delay between attempts (default 5 s). */
  maxBackoffMs: number;
  /** Growth of the delay per attempt (default 2). */
  backoffMultiplier: number;
  /**
   * Randomises each delay down by up to this fraction (0 = none, the default;
   * 0.5 = anywhere from half to the full delay), so many clients that lost the
   * same server do not reconnect in lockstep.
   */
  jitter: number;
}

/** reconnect.policy.defaults */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 3,
  initialBackoffMs: 100,
  maxBackoffMs: 5_000,
  backoffMultiplier: 2,
  jitter: 0,
});

/** Fills in defaults and checks the values once. */
export function resolvePolicy(p: Partial<RetryPolicy> = {}): RetryPolicy {
  const r: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...stripUndefined(p) };
  if (!(r.maxAttempts === Infinity || (Number.isInteger(r.maxAttempts) && r.maxAttempts >= 1))) {
    throw new RangeError(`RetryPolicy.maxAttempts must be an integer >= 1 or Infinity, got ${r.maxAttempts}`);
  }
  if (!(r.initialBackoffMs >= 0) || !(r.maxBackoffMs >= 0)) throw new RangeError("RetryPolicy backoff delays must be >= 0");
  if (!(r.backoffMultiplier >= 1)) throw new RangeError(`RetryPolicy.backoffMultiplier must be >= 1, got ${r.backoffMultiplier}`);
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw new RangeError(`RetryPolicy.jitter must be within [0, 1], got ${r.jitter}`);
  return r;
}

/**
 * The wait after failed attempt `n` (1-indexed), before attempt n+1
 * (reconnect.policy.backoff): min(initial × multiplier^(n−1), max), then
 * reduced by up to `jitter` of itself. `random` returns [0, 1).
 */
export function backoffDelay(policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  const base = Math.min(policy.initialBackoffMs * Math.pow(policy.backoffMultiplier, n - 1), policy.maxBackoffMs);
  if (policy.jitter === 0) return base;
  return base * (1 - policy.jitter * random());
}

/** Time source of the reconnecting client; tests pass a fake one. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or rejects with `signal.reason` when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
