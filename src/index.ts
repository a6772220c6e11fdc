/**
 * roam for TypeScript — the environment-neutral API (Node and browsers).
 * Node transports (TCP, Unix, WebSocket server) live in `./node.js`.
 */
export * from "./codec/errors.js";
export { Reader } from "./codec/reader.js";
export { Writer } from "./codec/writer.js";
export { cobsEncode, cobsDecode, CobsFrameDecoder } from "./codec/cobs.js";
export * from "./schema/index.js";
export { defineService, method, arg, MethodDescriptor, computeMethodId } from "./service/define.js";
export type { ServiceDescriptor, MethodSpec, MethodOptions, ChannelSlot, InferArgs, Arg, ArgSpec } from "./service/define.js";
export { kebab } from "./service/kebab.js";
export * from "./wire/message.js";
export * from "./session/errors.js";
export { Link } from "./session/link.js";
export type { LinkOptions } from "./session/link-options.js";
export type { IncomingConnection } from "./session/connection-table.js";
export { Connection, type CallOptions, type CallContext, type Dispatcher, type IncomingCall } from "./session/connection.js";
export { serve, client, ServiceDispatcher, type CallTarget, type Client, type Implementation, type ImplementationOf, type ClientOf } from "./session/serve.js";
export { channel } from "./session/channel/pair.js";
export { Tx } from "./session/channel/tx.js";
export { Rx } from "./session/channel/rx.js";
export type { ChannelStats, LevelChange, PressureLevel, PressureThresholds } from "./session/pressure.js";
export { HelloHandshake, ImplicitHandshake, type HandshakeBackend, type Negotiated } from "./session/handshake.js";
export type { FlowControlBackend, SendCredit, ReceiveCredit } from "./session/flow.js";
export type { MessageTransport, TransportSink } from "./session/transport.js";
export { WebSocketTransport, type WebSocketLike } from "./transport/websocket.js";
export { connectBrowserWebSocket } from "./transport/browser.js";
export { DEFAULT_LIMITS } from "./transport/defaults.js";
export { ForwardingDispatcher, LateBoundForwarder, type ForwarderStats } from "./proxy/forward.js";
export {
  intercept,
  InterceptingDispatcher,
  composeClient,
  composeServer,
  type ClientInterceptor,
  type ClientRequest,
  type ClientResponse,
  type ClientNext,
  type ServerInterceptor,
  type ServerRequest,
  type ServerResponse,
  type ServerNext,
  type CallOutcome,
  type ChannelObserver,
  type ChannelElement,
} from "./session/interceptor.js";
export { CallRejectedError, type RejectionCode } from "./session/rejected.js";
export type { ServeOptions, ClientOptions } from "./session/serve.js";
export { RoutedDispatcher, type RoutableDispatcher } from "./routing/routed.js";
export {
  formatDiagnostics,
  processDiagnostics,
  type Diagnostics,
  type LinkDiagnostics,
  type ConnectionDiagnostics,
  type CallDiagnostics,
  type ChannelDiagnostics,
  type ServerDiagnostics,
  type ShmHostDiagnostics,
  type ShmGuestDiagnostics,
} from "./session/diagnostics.js";
export { ReconnectingClient, type Connector, type ConnectorLike, type ReconnectEvent, type ReconnectState, type ReconnectingClientOptions } from "./reconnect/client.js";
export { DEFAULT_RETRY_POLICY, backoffDelay, type RetryPolicy, type Clock } from "./reconnect/policy.js";
export { RetriesExhaustedError, ConnectFailedError, OutcomeUnknownError } from "./reconnect/errors.js";
export { browserWebSocketConnector } from "./reconnect/browser.js";
export { NONCE_KEY, generateNonce, readNonce, withNonce } from "./nonce/nonce.js";
export { dedup, DedupDispatcher, type DedupOptions, type DedupStats } from "./nonce/dedup.js";
export { MemoryDedupStore, MIN_RETENTION_MS, type DedupStore, type CachedResponse, type ClaimResult, type MemoryDedupStoreOptions } from "./nonce/store.js";
