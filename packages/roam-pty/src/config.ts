/**
 * roam-pty daemon configuration: flow-control thresholds and policy, with
 * defaults, `ROAM_PTY_FLOW_*` environment variables and CLI flags.
 *
 * Precedence: explicit options (SDK / CLI flags) > environment > defaults.
 * All sizes are bytes of terminal output.
 */
import type { FlowSettings } from "./service.js";

export type SlowClientPolicy = "pause" | "detach";

export interface FlowConfig {
  /** Pause the PTY once the slowest client is this many bytes behind (VS Code: 100 000 characters). */
  highWatermark: number;
  /** Resume the PTY once every client is at most this many bytes behind (VS Code: 5 000). */
  lowWatermark: number;
  /** A client's level turns yellow at this many bytes behind. */
  yellowThreshold: number;
  /** A client's level turns red at this many bytes behind. */
  redThreshold: number;
  /** Bytes a level must fall below a threshold before it steps down. */
  hysteresis: number;
  /**
   * "pause": the slowest client holds the PTY back (nobody loses a byte).
   * "detach": a client that stays at/over the high watermark for
   * `detachAfterMs` (or falls `maxBufferBytes` behind) is detached; the others
   * are not held back by it.
   */
  policy: SlowClientPolicy;
  detachAfterMs: number;
  /** Hard cap of a session's backlog under the detach policy (memory bound). */
  maxBufferBytes: number;
  /** Credit window the daemon advertises on its links (roam initial channel credit). */
  windowBytes: number;
  /** Largest output chunk sent as one channel value (never more than the link's credit window). */
  chunkBytes: number;
  /** Bytes of output kept per session and replayed to a client that attaches late. */
  scrollbackBytes: number;
}

export const DEFAULT_FLOW: Readonly<FlowConfig> = Object.freeze({
  highWatermark: 100_000,
  lowWatermark: 5_000,
  yellowThreshold: 50_000,
  redThreshold: 100_000,
  hysteresis: 5_000,
  policy: "pause",
  detachAfterMs: 10_000,
  maxBufferBytes: 8 * 1024 * 1024,
  windowBytes: 256 * 1024,
  chunkBytes: 64 * 1024,
  scrollbackBytes: 1024 * 1024,
});

/** Environment variable → config key. */
export const FLOW_ENV: Readonly<Record<string, keyof FlowConfig>> = Object.freeze({
  ROAM_PTY_FLOW_HIGH_WATERMARK: "highWatermark",
  ROAM_PTY_FLOW_LOW_WATERMARK: "lowWatermark",
  ROAM_PTY_FLOW_YELLOW_THRESHOLD: "yellowThreshold",
  ROAM_PTY_FLOW_RED_THRESHOLD: "redThreshold",
  ROAM_PTY_FLOW_HYSTERESIS: "hysteresis",
  ROAM_PTY_FLOW_POLICY: "policy",
  ROAM_PTY_FLOW_DETACH_AFTER_MS: "detachAfterMs",
  ROAM_PTY_FLOW_MAX_BUFFER: "maxBufferBytes",
  ROAM_PTY_FLOW_WINDOW: "windowBytes",
  ROAM_PTY_FLOW_CHUNK: "chunkBytes",
  ROAM_PTY_SCROLLBACK: "scrollbackBytes",
});

/** CLI flag (without `--`) → config key. */
export const FLOW_FLAGS: Readonly<Record<string, keyof FlowConfig>> = Object.freeze({
  "high-watermark": "highWatermark",
  "low-watermark": "lowWatermark",
  "yellow-threshold": "yellowThreshold",
  "red-threshold": "redThreshold",
  hysteresis: "hysteresis",
  policy: "policy",
  "detach-after-ms": "detachAfterMs",
  "max-buffer": "maxBufferBytes",
  window: "windowBytes",
  chunk: "chunkBytes",
  scrollback: "scrollbackBytes",
});

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Parses "100000", "100k", "64KiB", "1M", "1MiB" (k = 1000, KiB = 1024). */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(text);
  if (!m) throw new ConfigError(`${what}: expected a byte count like 100000, 64KiB or 1MiB, got ${JSON.stringify(text)}`);
  const unit = (m[2] ?? "").toLowerCase();
  const mult: Record<string, number> = { "": 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };
  const n = Math.round(Number(m[1]) * mult[unit]!);
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) throw new ConfigError(`${what}: ${JSON.stringify(text)} is out of range`);
  return n;
}

function parseValue(key: keyof FlowConfig, text: string, what: string): FlowConfig[keyof FlowConfig] {
  if (key === "policy") {
    const v = text.trim().toLowerCase();
    if (v !== "pause" && v !== "detach") throw new ConfigError(`${what}: expected "pause" or "detach", got ${JSON.stringify(text)}`);
    return v;
  }
  if (key === "detachAfterMs") {
    if (!/^\s*\d+\s*$/.test(text)) throw new ConfigError(`${what}: expected milliseconds, got ${JSON.stringify(text)}`);
    return Number(text);
  }
  return parseSize(text, what);
}

/** The config from the environment over the defaults (unknown ROAM_PTY_FLOW_* variables are errors). */
export function flowFromEnv(env: Record<string, string | undefined>): Partial<FlowConfig> {
  const out: Partial<FlowConfig> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === "") continue;
    const key = FLOW_ENV[name];
    if (key === undefined) {
      if (name.startsWith("ROAM_PTY_FLOW_")) {
        throw new ConfigError(`unknown variable ${name}; known: ${Object.keys(FLOW_ENV).join(", ")}`);
      }
      continue;
    }
    (out as Record<string, unknown>)[key] = parseValue(key, value, name);
  }
  return out;
}

/** Parses one CLI flag value for `key`. */
export function flowFlagValue(key: keyof FlowConfig, text: string, flag: string): FlowConfig[keyof FlowConfig] {
  return parseValue(key, text, `--${flag}`);
}

/** Merges and validates: options over environment over defaults. */
export function resolveFlow(options: Partial<FlowConfig> = {}, env: Record<string, string | undefined> = {}): FlowConfig {
  const c: FlowConfig = { ...DEFAULT_FLOW, ...flowFromEnv(env) };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  validateFlow(c);
  return c;
}

export function validateFlow(c: FlowConfig): void {
  const bad = (msg: string) => {
    throw new ConfigError(`invalid flow configuration: ${msg}`);
  };
  for (const k of Object.keys(DEFAULT_FLOW) as (keyof FlowConfig)[]) {
    if (k === "policy") continue;
    const v = c[k] as number;
    if (!Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) bad(`${k} must be a whole number 0..2^32-1 (got ${v})`);
  }
  if (c.policy !== "pause" && c.policy !== "detach") bad(`policy must be "pause" or "detach"`);
  if (c.highWatermark < 1) bad("highWatermark must be at least 1");
  if (c.lowWatermark >= c.highWatermark) bad(`lowWatermark (${c.lowWatermark}) must be below highWatermark (${c.highWatermark})`);
  if (c.yellowThreshold < 1 || c.redThreshold < c.yellowThreshold) bad(`need 1 <= yellowThreshold (${c.yellowThreshold}) <= redThreshold (${c.redThreshold})`);
  if (c.windowBytes < 1024) bad("windowBytes must be at least 1024");
  if (c.chunkBytes < 1) bad("chunkBytes must be at least 1");
  if (c.chunkBytes > 1024 * 1024 - 1024) bad("chunkBytes must stay below the 1 MiB payload limit");
  if (c.policy === "detach" && c.maxBufferBytes < c.highWatermark) bad("maxBufferBytes must be at least highWatermark");
}

export function flowSettings(c: FlowConfig): FlowSettings {
  return {
    highWatermark: c.highWatermark,
    lowWatermark: c.lowWatermark,
    yellowThreshold: c.yellowThreshold,
    redThreshold: c.redThreshold,
    policy: c.policy,
    detachAfterMs: c.detachAfterMs,
    maxBufferBytes: c.maxBufferBytes,
    windowBytes: c.windowBytes,
    chunkBytes: c.chunkBytes,
    scrollbackBytes: c.scrollbackBytes,
  };
}
