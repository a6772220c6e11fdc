/**
 * Detecting a dead peer on an idle link: TCP keepalive on the sockets roam
 * creates or accepts, ping/pong on Node WebSockets. Without them a peer that
 * vanished without a FIN/RST (power loss, a NAT or firewall that dropped the
 * flow) leaves a half-open link that looks alive until the next write times
 * out — and a reconnecting client never learns it should reconnect.
 */
import type * as net from "node:net";
import type { WebSocket } from "ws";

export interface KeepAliveOptions {
  /** TCP keepalive on TCP sockets (default true). Unix sockets need none: the kernel sees a dead peer at once. */
  keepAlive?: boolean;
  /**
   * Idle time before the first TCP keepalive probe (default 15 000 ms). The
   * probes then follow at the interval and count libuv sets (on Linux: every
   * 1 s, 10 probes), so a dead peer is noticed about 25 s after the link went quiet.
   */
  keepAliveInitialDelayMs?: number;
  /**
   * WebSocket (Node side, client and server): send a ping this often
   * (default 15 000 ms; 0 turns it off). A peer that answers neither the ping
   * nor with any message within the next interval is cut off, so a dead peer
   * is noticed within two intervals. Browsers answer pings by themselves.
   */
  pingIntervalMs?: number;
}

export const DEFAULT_KEEPALIVE_INITIAL_DELAY_MS = 15_000;
export const DEFAULT_PING_INTERVAL_MS = 15_000;

/** Turns TCP keepalive on for `socket` unless `o.keepAlive === false`. */
export function applyTcpKeepAlive(socket: net.Socket, o: KeepAliveOptions): void {
  if (o.keepAlive === false) return;
  socket.setKeepAlive(true, o.keepAliveInitialDelayMs ?? DEFAULT_KEEPALIVE_INITIAL_DELAY_MS);
}

/** Pings `ws` every interval and terminates it when the peer stayed silent for a whole interval. */
export function startWebSocketHeartbeat(ws: WebSocket, o: KeepAliveOptions): void {
  const interval = o.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  if (!(interval > 0)) return;
  let heard = true;
  const onHeard = () => {
    heard = true;
  };
  ws.on("pong", onHeard);
  ws.on("message", onHeard);
  const timer = setInterval(() => {
    if (!heard) {
      // No pong and no message for a whole interval: the peer is gone.
      ws.terminate();
      return;
    }
    heard = false;
    try {
      ws.ping();
    } catch {
      // closing already
    }
  }, interval);
  timer.unref?.();
  ws.once("close", () => {
    clearInterval(timer);
    ws.off("pong", onHeard);
    ws.off("message", onHeard);
  });
}
