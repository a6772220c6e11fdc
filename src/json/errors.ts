/**
 * Errors of the JSON codec. Decoding untrusted JSON only ever throws
 * `JsonDecodeError`: it names the path inside the value (e.g.
 * `args[1].shapes[3].Circle.radius`) so a caller can fix the request.
 */
export class JsonDecodeError extends Error {
  override readonly name = "JsonDecodeError";
  /** Path inside the value, outermost first. */
  readonly path: string[];
  /** The failure without the path decoration. */
  readonly detail: string;
  constructor(detail: string, path: string[] = []) {
    super(path.length > 0 ? `at ${joinJsonPath(path)}: ${detail}` : detail);
    this.detail = detail;
    this.path = path;
  }
  withOuterPath(segment: string): JsonDecodeError {
    return new JsonDecodeError(this.detail, [segment, ...this.path]);
  }
  /** The path as one string (`args[0].name`), or "" at the top. */
  get where(): string {
    return joinJsonPath(this.path);
  }
}

/** A value did not fit its schema while encoding to JSON. */
export class JsonEncodeError extends Error {
  override readonly name = "JsonEncodeError";
  readonly path: string[];
  readonly detail: string;
  constructor(detail: string, path: string[] = []) {
    super(`JSON encode failed${path.length ? ` at ${joinJsonPath(path)}` : ""}: ${detail}`);
    this.detail = detail;
    this.path = path;
  }
  withOuterPath(segment: string): JsonEncodeError {
    return new JsonEncodeError(this.detail, [segment, ...this.path]);
  }
}

export function joinJsonPath(path: readonly string[]): string {
  let out = "";
  for (const seg of path) {
    if (seg.startsWith("[")) out += seg;
    else out += out.length === 0 ? seg : `.${seg}`;
  }
  return out;
}
