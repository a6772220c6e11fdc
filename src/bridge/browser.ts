/**
 * roam-ts/bridge/client — the browser-safe part of the HTTP bridge: the typed
 * fetch/WebSocket client and the JSON codec.
 */
export { bridgeClient, BridgeError, type BridgeClient, type BridgeClientOptions, type BridgeCallOptions, type BridgeWebSocket, type BridgeWebSocketCtor } from "./client.js";
export { BRIDGE_SUBPROTOCOL, BRIDGE_CHANNEL_WINDOW, OUTCOME_HEADER, type ClientFrame, type ServerFrame } from "./protocol.js";
export * from "../json/index.js";
