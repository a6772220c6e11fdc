/** roam for TypeScript — everything, plus the Node transports. */
export * from "./index.js";
export { StreamTransport, type StreamTransportOptions } from "./transport/stream.js";
export {
  listenTcp,
  listenUnix,
  listenWebSocket,
  connectTcp,
  connectUnix,
  connectWebSocket,
  linkOverStream,
  RoamServer,
  type ServerOptions,
} from "./transport/node.js";
export type { PeerOptions } from "./transport/link-options.js";
export { DEFAULT_KEEPALIVE_INITIAL_DELAY_MS, DEFAULT_PING_INTERVAL_MS, type KeepAliveOptions } from "./transport/keepalive.js";
export { tunnel, pumpDuplex, type Tunnel, type TunnelEnds, type PumpOptions, type PumpResult } from "./tunnel/tunnel.js";
export { installDiagnosticsSignal, type DiagnosticsSignalOptions } from "./diagnostics/signal.js";
export { tcpConnector, unixConnector, webSocketConnector } from "./reconnect/connectors.js";
export { RedisDedupStore, type RedisDedupStoreOptions, type RedisCommandClient } from "./nonce/redis-store.js";
