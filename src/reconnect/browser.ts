/** A connector for the browser's WebSocket (no Node imports). */
import { connectBrowserWebSocket } from "../transport/browser.js";
import type { Connector } from "./client.js";

export function browserWebSocketConnector(url: string, o: Parameters<typeof connectBrowserWebSocket>[1] = {}): Connector {
  return { description: `ws ${url}`, connect: () => connectBrowserWebSocket(url, o) };
}
