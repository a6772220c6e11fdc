/**
 * Errors raised by the postcard codec.
 *
 * Decoding untrusted bytes only ever throws `DecodeError`; it carries the
 * byte offset where decoding failed and the path inside the value
 * (e.g. `args[1].shapes[3].radius`), so a bad payload can be diagnosed.
 */
export class DecodeError extends Error {
  override readonly name = "DecodeError";
  /** Byte offset in the input where the failure was detected. */
  readonly offset: number;
  /** Path inside the value being decoded, outermost first. */
  readonly path: string[];
  /** The failure without the path/offset decoration. */
  readonly detail: string;

  constructor(detail: string, offset: number, path: string[] = []) {
    super(formatDecodeMessage(detail, offset, path));
    this.detail = detail;
    this.offset = offset;
    this.path = path;
  }

  /** Returns a copy with `segment` prepended to the path (used while unwinding). */
  withOuterPath(segment: string): DecodeError {
    return new DecodeError(this.detail, this.offset, [segment, ...this.path]);
  }
}

function formatDecodeMessage(detail: string, offset: number, path: string[]): string {
  const where = path.length > 0 ? ` at ${joinPath(path)}` : "";
  return `postcard decode failed${where} (byte ${offset}): ${detail}`;
}

function joinPath(path: string[]): string {
  let out = "";
  for (const seg of path) {
    if (seg.startsWith("[")) out += seg;
    else out += out.length === 0 ? seg : `.${seg}`;
  }
  return out;
}

/** A value did not fit its schema while encoding (wrong type, out of range, bad length). */
export class EncodeError extends Error {
  override readonly name = "EncodeError";
  readonly path: string[];
  readonly detail: string;
  constructor(detail: string, path: string[] = []) {
    super(`postcard encode failed${path.length ? ` at ${joinPath(path)}` : ""}: ${detail}`);
    this.detail = detail;
    this.path = path;
  }
  withOuterPath(segment: string): EncodeError {
    return new EncodeError(this.detail, [segment, ...this.path]);
  }
}

/** A COBS frame could not be decoded, or exceeded the configured limit. */
export class FramingError extends Error {
  override readonly name = "FramingError";
}
