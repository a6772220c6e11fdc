/**
 * Batched WebSocket frame writer for Node (RFC 6455 §5.2): writes roam's
 * binary frames straight to the TCP socket under a `ws` WebSocket, every
 * frame queued during one turn of the event loop in ONE socket write.
 *
 * Why not `ws.send()` per message: each call builds a header buffer, corks,
 * writes header and payload separately and uncorks — one writev syscall per
 * message — and the caller must hand over a copy. Profiles of 64 calls in
 * flight put that (plus the receiver's per-read wake-ups it causes) above the
 * whole session core's cost per call. Here a frame is written once into a
 * batch buffer (header, then the payload masked on the way for a client), and
 * the batch leaves in one write, like the byte-stream transport's batches.
 *
 * Each roam message is still exactly one complete binary frame
 * (transport.message.binary): batching only joins frames in one write. The
 * `ws` library keeps owning everything else on the socket (the handshake,
 * reading, ping/pong, the close handshake); its writes are whole frames too,
 * so its control frames interleave between ours, never inside one. The
 * transport stops writing once the WebSocket leaves the OPEN state.
 */
import { randomFillSync } from "node:crypto";

/** The socket methods used (a net.Socket). */
export interface FrameSocket {
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean;
}

const SMALL_BATCH = 16 * 1024;
/** Flush as soon as this much is queued (bulk data still leaves in large writes). */
const FLUSH_AT = 256 * 1024;
/** Largest frame header: 2 + 8 (64-bit length) + 4 (mask key). */
const MAX_HEADER = 14;
const OPCODE_BINARY = 0x2;
const FIN = 0x80;
const MASKED = 0x80;

/** 4-byte masking keys, drawn in bulk from the CSPRNG (RFC 6455 §10.3: unpredictable per frame). */
const MASK_POOL_BYTES = 8192;
let maskPool: Buffer | null = null;
let maskPos = MASK_POOL_BYTES;

function nextMaskKey(): number {
  if (maskPos === MASK_POOL_BYTES) {
    maskPool ??= Buffer.allocUnsafe(MASK_POOL_BYTES);
    randomFillSync(maskPool);
    maskPos = 0;
  }
  const k = maskPool!.readUInt32BE(maskPos);
  maskPos += 4;
  return k;
}

/**
 * XORs `buf[start, start+len)` with the masking key `key` (big-endian: the
 * key's first byte applies to the first payload byte). Aligned 32-bit words
 * in the middle, bytes at the edges.
 */
export function applyMask(buf: Uint8Array, start: number, len: number, key: number): void {
  const kb = [(key >>> 24) & 0xff, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff];
  let i = 0;
  if (len >= 32) {
    const abs = buf.byteOffset + start;
    for (; ((abs + i) & 3) !== 0; i++) buf[start + i]! ^= kb[i & 3]!;
    // The key rotated to the word's position, as a little-endian 32-bit lane.
    const w = kb[i & 3]! | (kb[(i + 1) & 3]! << 8) | (kb[(i + 2) & 3]! << 16) | (kb[(i + 3) & 3]! << 24);
    const words = new Int32Array(buf.buffer, abs + i, (len - i) >> 2);
    for (let j = 0; j < words.length; j++) words[j]! ^= w;
    i += words.length << 2;
  }
  for (; i < len; i++) buf[start + i]! ^= kb[i & 3]!;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class WsFrameWriter {
  private batch: Buffer = Buffer.allocUnsafe(SMALL_BATCH);
  private pos = 0;
  private scheduled = false;
  private stopped = false;
  /** Bytes handed to the socket and not yet written to the OS. */
  unwritten = 0;

  /**
   * @param mask true on the client side (client-to-server frames are masked, RFC 6455 §5.3).
   * @param onWritten called after each socket write completed (e.g. to wake senders waiting for room).
   */
  constructor(
    private readonly socket: FrameSocket,
    private readonly mask: boolean,
    private readonly onWritten?: () => void,
  ) {
    if (!LITTLE_ENDIAN && mask) throw new Error("WsFrameWriter masks with little-endian word lanes");
  }

  /** Queues one complete binary frame whose payload is `head` followed by `body`. */
  frame(head: Uint8Array, body?: Uint8Array): void {
    if (this.stopped) return;
    const len = head.length + (body ? body.length : 0);
    this.reserve(len + MAX_HEADER);
    const b = this.batch;
    let p = this.pos;
    b[p++] = FIN | OPCODE_BINARY;
    const m = this.mask ? MASKED : 0;
    if (len < 126) {
      b[p++] = m | len;
    } else if (len < 65536) {
      b[p++] = m | 126;
      b[p++] = len >>> 8;
      b[p++] = len & 0xff;
    } else {
      b[p++] = m | 127;
      b.writeUInt32BE(Math.floor(len / 2 ** 32), p);
      b.writeUInt32BE(len >>> 0, p + 4);
      p += 8;
    }
    let key = 0;
    if (this.mask) {
      key = nextMaskKey();
      b.writeUInt32BE(key >>> 0, p);
      p += 4;
    }
    const start = p;
    b.set(head, p);
    p += head.length;
    if (body) {
      b.set(body, p);
      p += body.length;
    }
    if (this.mask) applyMask(b, start, len, key);
    this.pos = p;
    if (p >= FLUSH_AT) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.scheduledFlush);
    }
  }

  private readonly scheduledFlush = (): void => {
    this.scheduled = false;
    this.flush();
  };

  private reserve(need: number): void {
    if (this.pos + need <= this.batch.length) return;
    if (this.pos > 0) this.flush();
    if (need > this.batch.length) this.batch = Buffer.allocUnsafe(Math.max(need, FLUSH_AT));
  }

  /** Writes everything queued now. */
  flush(): void {
    const n = this.pos;
    if (n === 0 || this.stopped) {
      this.pos = 0;
      return;
    }
    let out: Buffer;
    if (n >= SMALL_BATCH / 2) {
      // Large batch: hand the buffer itself over and continue in a fresh one.
      out = this.batch.subarray(0, n);
      this.batch = Buffer.allocUnsafe(SMALL_BATCH);
    } else {
      out = Buffer.allocUnsafe(n);
      this.batch.copy(out, 0, 0, n);
    }
    this.pos = 0;
    this.unwritten += n;
    this.socket.write(out, () => {
      this.unwritten -= n;
      this.onWritten?.();
    });
  }

  /** Drops whatever is queued and writes nothing more (the WebSocket is closing). */
  stop(): void {
    this.stopped = true;
    this.pos = 0;
  }
}
