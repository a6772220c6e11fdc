/**
 * roam-ts/bridge — the HTTP/JSON bridge (http-spec `bridge.*`): a `node:http`
 * handler exposing roam services as `POST {base}/{service}/{method}` with JSON
 * bodies and a `roam-bridge.v1` WebSocket for calls with channels; plus the
 * typed client and the JSON codec (see ./browser.ts for the browser-safe part).
 */
export * from "./browser.js";
export { RoamBridge, type BridgeOptions } from "./http.js";
export { listenBridge, type BridgeServer } from "./listen.js";
export type { BridgeBackendOption } from "./backend.js";
export type { CorsOptions } from "./cors.js";
export type { BridgeWsOptions } from "./ws-server.js";
export { BridgeHttpError } from "./errors.js";
export { memoryTransportPair } from "./memory-transport.js";
