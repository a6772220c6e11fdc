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
export { tunnel, pumpDuplex, type Tunnel, type TunnelEnds, type PumpOptions, type PumpResult } from "./tunnel/tunnel.js";
export { installDiagnosticsSignal, type DiagnosticsSignalOptions } from "./diagnostics/signal.js";
