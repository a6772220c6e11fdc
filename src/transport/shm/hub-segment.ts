/**
 * The hub's segment before any peer: its config from the host's options
 * (through the limits resolver every transport uses), its backing — a file
 * under /dev/shm (r[shm.file.create], r[shm.file.permissions]) or plain
 * memory — and the file's removal, on close or, best effort, at process exit
 * (r[shm.file.cleanup]).
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { resolveLimits } from "../limits.js";
import { FileBacking, MemoryBacking, type Backing } from "./backing.js";
import { computeLayout, DEFAULT_SEGMENT_CONFIG, type SegmentConfig } from "./layout.js";

export interface HubSegmentOptions extends Partial<SegmentConfig> {
  /**
   * "file" (default): a file mapped by the native addon — guests may be other
   * processes or worker threads. "memory": a growable SharedArrayBuffer, pure
   * JS — worker-thread guests only.
   */
  backing?: "file" | "memory";
  /** Segment file (default `/dev/shm/roam-hub-<pid>-<random>`, or the temp dir without /dev/shm). */
  path?: string;
  /** File mode of the segment (default 0600, r[shm.file.permissions]). */
  fileMode?: number;
}

/** The segment config: the options over the defaults. */
export function hubConfig(options: HubSegmentOptions): SegmentConfig {
  // The same resolver as every other transport (transport/limits.ts); the
  // segment header carries the result (no Hello on SHM: shm.handshake.no-negotiation).
  const limits = resolveLimits(
    { maxPayloadSize: options.maxPayloadSize, initialChannelCredit: options.initialCredit },
    { maxPayloadSize: DEFAULT_SEGMENT_CONFIG.maxPayloadSize, initialChannelCredit: DEFAULT_SEGMENT_CONFIG.initialCredit },
  );
  return {
    maxPayloadSize: limits.maxPayloadSize,
    initialCredit: limits.initialChannelCredit,
    maxGuests: options.maxGuests ?? DEFAULT_SEGMENT_CONFIG.maxGuests,
    bipbufCapacity: options.bipbufCapacity ?? DEFAULT_SEGMENT_CONFIG.bipbufCapacity,
    inlineThreshold: options.inlineThreshold ?? DEFAULT_SEGMENT_CONFIG.inlineThreshold,
    maxChannels: options.maxChannels ?? DEFAULT_SEGMENT_CONFIG.maxChannels,
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULT_SEGMENT_CONFIG.heartbeatIntervalMs,
    sizeClasses: (options.sizeClasses ?? DEFAULT_SEGMENT_CONFIG.sizeClasses).map((k) => ({ ...k })),
  };
}

/** Backing memory for `config`: a new file (replacing a stale one at the same path), removed at exit unless closed first; or memory. */
export function openHubBacking(options: HubSegmentOptions, config: SegmentConfig): Backing {
  const layout = computeLayout(config);
  if (options.backing === "memory") return new MemoryBacking(layout.totalSize, layout.maxSize);
  const p = options.path ?? defaultPath();
  const backing = FileBacking.create(p, layout.totalSize, layout.maxSize, options.fileMode ?? 0o600);
  rememberFile(p);
  return backing;
}

/** Deletes the segment file (the hub closed, or never came up). */
export function removeHubFile(p: string): void {
  fs.rmSync(p, { force: true });
  liveFiles.delete(p);
}

const liveFiles = new Set<string>();
let exitHookInstalled = false;
function rememberFile(p: string): void {
  liveFiles.add(p);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // r[shm.file.cleanup]: best effort when the process ends without close().
  process.on("exit", () => {
    for (const f of liveFiles) {
      try {
        fs.unlinkSync(f);
      } catch {
        // already gone
      }
    }
  });
}

function defaultPath(): string {
  const dir = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  return path.join(dir, `roam-hub-${process.pid}-${randomBytes(6).toString("hex")}`);
}
