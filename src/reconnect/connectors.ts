/**
 * Connectors for the Node transports: each builds a fresh link on every
 * call, with the same options (and so the same Hello parameters,
 * reconnect.connector.hello) every time.
 *
 *   const rc = new ReconnectingClient(tcpConnector({ port: 4000 }));
 */
import { connectTcp, connectUnix, connectWebSocket } from "../transport/node.js";
import type { Connector } from "./client.js";

export function tcpConnector(o: Parameters<typeof connectTcp>[0]): Connector {
  return { description: `tcp ${o.host ?? "127.0.0.1"}:${o.port}`, connect: () => connectTcp(o) };
}

export function unixConnector(o: Parameters<typeof connectUnix>[0]): Connector {
  return { description: `unix ${o.path}`, connect: () => connectUnix(o) };
}

export function webSocketConnector(url: string, o: Parameters<typeof connectWebSocket>[1] = {}): Connector {
  return { description: `ws ${url}`, connect: () => connectWebSocket(url, o) };
}
