/** The JSON form of roam values (bridge.json.*), compiled from `t.*` schemas. */
export { JsonCodec, jsonCodec, type JsonChannelBinder } from "./codec.js";
export { parseJson, BigIntText } from "./parse.js";
export { JsonDecodeError, JsonEncodeError, joinJsonPath } from "./errors.js";
