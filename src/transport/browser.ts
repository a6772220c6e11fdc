/**
 * Browser entry point: connect to a roam server with the browser's own
 * WebSocket. Imports nothing from Node.
 */
import type { Link } from "../session/link.js";
import { resolveLinkOptions, type PeerOptions } from "./link-options.js";
import { openLink } from "./open-link.js";
import { WebSocketTransport, type WebSocketLike } from "./websocket.js";

export async function connectBrowserWebSocket(url: string, o: PeerOptions & { timeoutMs?: number } = {}): Promise<Link> {
  const Ctor = (globalThis as unknown as { WebSocket?: new (url: string) => WebSocketLike & EventTarget }).WebSocket;
  if (!Ctor) throw new Error("no global WebSocket in this environment; in Node use connectWebSocket from the node entry point");
  const resolved = resolveLinkOptions(o);
  const ws = new Ctor(url);
  const transport = new WebSocketTransport(ws, { maxMessageBytes: resolved.limits.maxMessageBytes, description: `ws ${url}` });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`WebSocket connect to ${url} timed out`)), o.timeoutMs ?? 10_000);
    ws.addEventListener("open", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
    ws.addEventListener("error", () => {
      clearTimeout(timer);
      reject(new Error(`WebSocket connect to ${url} failed`));
    }, { once: true });
  });
  const link = openLink(transport, { ...resolved, initiator: true });
  await link.ready();
  return link;
}
