/**
 * The memory behind a segment. Both backings are a SharedArrayBuffer, so the
 * segment code (and Atomics on it) is the same:
 *
 * - MemoryBacking: a growable `SharedArrayBuffer` (pure JS) for guests in
 *   worker_threads of the host's process.
 * - FileBacking: a file (`/dev/shm/...`) mapped MAP_SHARED by the native
 *   addon, for guests in other processes. The full address range the segment
 *   may grow to is reserved up front; growth maps more of the file in place.
 */
import { unlinkSync } from "node:fs";
import { PAGE } from "./layout.js";
import { requireNativeShm, type NativeShm } from "./native.js";

export interface Backing {
  readonly sab: SharedArrayBuffer;
  /** Bytes that may be accessed now. */
  readonly accessible: number;
  /** Makes [0, size) accessible after another side grew the segment. */
  ensure(size: number): void;
  /** Extends the segment to `size` bytes (host only). */
  grow(size: number): void;
  /** Releases the memory (and the file descriptor); later accesses read zeros. */
  close(): void;
  readonly kind: "memory" | "file";
  readonly path: string | null;
}

/** ES2024 growable SharedArrayBuffer (Node 20 has it; the project's TS lib is ES2022). */
type GrowableSab = SharedArrayBuffer & { readonly growable: boolean; readonly maxByteLength: number; grow(size: number): void };
const GrowableSab = SharedArrayBuffer as unknown as new (size: number, options?: { maxByteLength?: number }) => GrowableSab;

export class MemoryBacking implements Backing {
  readonly kind = "memory";
  readonly path = null;
  readonly sab: SharedArrayBuffer;

  constructor(sizeOrSab: number | SharedArrayBuffer, maxSize?: number) {
    if (typeof sizeOrSab === "number") {
      this.sab = new GrowableSab(sizeOrSab, { maxByteLength: Math.max(sizeOrSab, maxSize ?? sizeOrSab) });
    } else {
      this.sab = sizeOrSab;
    }
  }
  get accessible(): number {
    return this.sab.byteLength;
  }
  ensure(size: number): void {
    if (size > this.sab.byteLength) throw new RangeError(`segment offset ${size} is beyond the shared buffer (${this.sab.byteLength} B)`);
  }
  grow(size: number): void {
    if (size <= this.sab.byteLength) return;
    const sab = this.sab as GrowableSab;
    if (!sab.growable) throw new RangeError("this SharedArrayBuffer cannot grow");
    sab.grow(size);
  }
  close(): void {}
}

export class FileBacking implements Backing {
  readonly kind = "file";
  readonly sab: SharedArrayBuffer;
  private fd: number;
  private mapped: number;
  private readonly native: NativeShm;

  private constructor(
    readonly path: string,
    fd: number,
    mapSize: number,
    reserve: number,
  ) {
    this.native = requireNativeShm();
    this.fd = fd;
    this.sab = this.native.map(fd, mapSize, Math.max(reserve, mapSize));
    this.mapped = this.native.mappedSize(this.sab);
  }

  /** Creates the file (replacing a stale one), sized `size`, and maps it. */
  static create(path: string, size: number, reserve: number, mode = 0o600): FileBacking {
    const native = requireNativeShm();
    let fd: number;
    try {
      fd = native.createFile(path, size, mode);
    } catch (e) {
      if (!/EEXIST|File exists/.test(String((e as Error).message))) throw e;
      // r[shm.file.cleanup]: a file left by a crashed host — replace it.
      try {
        unlinkSync(path);
      } catch {
        // raced with someone else: try once more below
      }
      fd = native.createFile(path, size, mode);
    }
    try {
      return new FileBacking(path, fd, size, reserve);
    } catch (e) {
      native.closeFd(fd);
      throw e;
    }
  }

  /** Opens and maps an existing segment file, reserving `reserve` bytes of address space. */
  static open(path: string, reserve: number): FileBacking {
    const native = requireNativeShm();
    const [fd, size] = native.openFile(path);
    try {
      return new FileBacking(path, fd, size, reserve);
    } catch (e) {
      native.closeFd(fd);
      throw e;
    }
  }

  get accessible(): number {
    return this.mapped;
  }

  ensure(size: number): void {
    if (size <= this.mapped) return;
    if (this.fd < 0) throw new Error("the segment was closed");
    const fileSize = this.native.fileSize(this.fd);
    if (size > fileSize) throw new RangeError(`segment offset ${size} is beyond the file (${fileSize} B)`);
    this.mapped = this.native.remap(this.sab, Math.ceil(fileSize / PAGE) * PAGE);
  }

  grow(size: number): void {
    if (this.fd < 0) throw new Error("the segment was closed");
    const current = this.native.fileSize(this.fd);
    if (size > current) this.native.resizeFile(this.fd, size);
    this.ensure(size);
  }

  close(): void {
    if (this.fd < 0) return;
    this.native.unmap(this.sab);
    this.native.closeFd(this.fd);
    this.fd = -1;
    this.mapped = 0;
  }
}

