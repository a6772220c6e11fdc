/**
 * Byte tunnels: a pair of `Tx<bytes>`/`Rx<bytes>` channels carrying a byte
 * stream through a call, and a pump that connects them to any Node Duplex
 * (a TCP socket, a child's stdio, ...) in both directions.
 *
 * EOF travels as Close, errors as Reset; backpressure is the channel credit
 * on one side and the Duplex's own (pause/drain) on the other, so neither
 * end buffers more than a window.
 *
 *   // caller side, for `open(input: Rx<bytes>, output: Tx<bytes>)`:
 *   const t = tunnel();
 *   const done = client.open(t.remote.input, t.remote.output);
 *   await pumpDuplex(socket, t.local);
 *
 *   // handler side:
 *   open: async (input, output) => pumpDuplex(net.connect(...), { rx: input, tx: output })
 */
import type { Duplex } from "node:stream";
import { channel } from "../session/channel/pair.js";
import type { Rx } from "../session/channel/rx.js";
import type { Tx } from "../session/channel/tx.js";

export interface TunnelEnds {
  /** Bytes to send to the other side. */
  tx: Tx<Uint8Array>;
  /** Bytes arriving from the other side. */
  rx: Rx<Uint8Array>;
}

export interface Tunnel {
  /** The ends to pass as call arguments (handler's view: it receives `input`, sends on `output`). */
  remote: { input: Rx<Uint8Array>; output: Tx<Uint8Array> };
  /** The ends this side keeps. */
  local: TunnelEnds;
}

/** Creates the two channels of a tunnel. */
export function tunnel(): Tunnel {
  const [toRemoteTx, toRemoteRx] = channel<Uint8Array>();
  const [fromRemoteTx, fromRemoteRx] = channel<Uint8Array>();
  return {
    remote: { input: toRemoteRx, output: fromRemoteTx },
    local: { tx: toRemoteTx, rx: fromRemoteRx },
  };
}

export interface PumpOptions {
  /** Largest element sent (default 32 KiB, capped by the channel window). */
  chunkSize?: number;
  /** Aborting tears the tunnel down (Reset both ways, destroy the stream). */
  signal?: AbortSignal;
}

export interface PumpResult {
  /** Bytes read from the stream and sent on `tx`. */
  sent: number;
  /** Bytes received on `rx` and written to the stream. */
  received: number;
}

function waitDrainOrClose(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      stream.off("error", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
    stream.on("error", done);
  });
}

/**
 * Pumps `stream` ↔ `ends` until both directions ended. Resolves with the byte
 * counts; rejects (after tearing both sides down) if either side failed.
 */
export async function pumpDuplex(stream: Duplex, ends: TunnelEnds, options: PumpOptions = {}): Promise<PumpResult> {
  const result: PumpResult = { sent: 0, received: 0 };
  let failed: unknown = null;
  const teardown = (e: unknown) => {
    if (failed !== null) return;
    failed = e ?? new Error("tunnel aborted");
    ends.tx.reset();
    ends.rx.reset();
    stream.destroy();
  };
  const onAbort = () => teardown(options.signal!.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  stream.on("error", (e) => teardown(e));

  // Stream → tx. Not `for await`: a Readable's async iterator destroys the
  // whole Duplex when the read side ends, which would cut a half-closed
  // tunnel's other direction. Pause while each chunk waits for credit.
  const outbound = new Promise<void>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      resolve();
    };
    const sendChunk = async (chunk: Uint8Array) => {
      const window = ends.tx.stats().window;
      const max = Math.max(1, Math.min(options.chunkSize ?? 32 * 1024, window > 16 ? window - 16 : 32 * 1024));
      for (let off = 0; off < chunk.length; off += max) {
        const piece = chunk.subarray(off, Math.min(chunk.length, off + max));
        await ends.tx.send(piece);
        result.sent += piece.length;
      }
    };
    // The chunk being sent. A paused Readable still emits 'end' once its last
    // chunk was handed out, so Close must wait for that chunk's pieces.
    let inFlight: Promise<void> = Promise.resolve();
    stream.on("data", (chunk: Uint8Array) => {
      stream.pause();
      inFlight = sendChunk(chunk).then(
        () => {
          if (failed === null) stream.resume();
        },
        (e) => {
          teardown(e);
          finish();
        },
      );
    });
    stream.once("end", () => {
      void inFlight.then(() => {
        if (failed !== null) return finish();
        ends.tx.close().then(finish, (e) => {
          teardown(e);
          finish();
        });
      });
    });
    stream.once("close", () => {
      // Closed without a clean end (destroyed): the tunnel is broken.
      if (!stream.readableEnded && failed === null) teardown(new Error("stream closed before its end"));
      if (failed !== null) finish();
    });
    if (failed !== null) finish();
  });

  const inbound = (async () => {
    try {
      for (;;) {
        const r = await ends.rx.next();
        if (r.done) break;
        result.received += r.value.length;
        if (!stream.write(r.value)) await waitDrainOrClose(stream);
        if (stream.destroyed) throw new Error("stream closed while the tunnel was still delivering");
      }
      if (failed === null && !stream.writableEnded) stream.end();
    } catch (e) {
      teardown(e);
    }
  })();

  await Promise.all([outbound, inbound]);
  options.signal?.removeEventListener("abort", onAbort);
  if (failed !== null) throw failed;
  return result;
}
