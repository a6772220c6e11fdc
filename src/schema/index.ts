import { Reader } from "../codec/reader.js";
import { Writer } from "../codec/writer.js";
import { installCodecFactories } from "./schema.js";

const shared = new Writer(1024);
installCodecFactories(() => shared, (b) => new Reader(b));

export * from "./schema.js";
export { SigWriter, typeSignature, methodSignature } from "./signature.js";
