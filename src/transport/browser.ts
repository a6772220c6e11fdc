/**
 * Browser entry point: connect to a roam server with the browser's own
 * WebSocket. Imports nothing from Node.
 */
import { Link } from "../session/link.js";
import { resolveLimits } from "./limits.js";
import { linkOptions, wireAcceptConnections, type PeerOptions } from "./link-options.js";
import { WebSocketTransport, type WebSocketLike } from "./websocket.js";

export async function connectBrowserWebSocket(url: string, o: PeerOptions & { timeoutMs?: number } = {}): Promise<Link> {
  const Ctor = (globalThis as unknown as { WebSocket?: new (url: string) => WebSocketLike & EventTarget }).WebSocket;
  if (!Ctor) throw new Error("no global WebSocket in this environment; in Node use connectWebSocket from the node entry point");
  const limits = resolveLimits(o);
  const ws = new Ctor(url);
  const transport = new WebSocketTransport(ws, { maxMessageBytes: limits.maxMessageBytes, description: `ws ${url}` });
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
  const link = new Link(transport, linkOptions(true, o, limits));
  wireAcceptConnections(link, o);
  await link.start();
  return link;
}
