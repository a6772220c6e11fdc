/**
 * Recursive types: `t.lazy(() => Tree)` refers to a schema defined later (or
 * to itself). Decoding bounds the nesting at MAX_RECURSION_DEPTH.
 */
import type { Reader } from "../codec/reader.js";
import type { Writer } from "../codec/writer.js";
import { Schema } from "./core.js";
import type { SigWriter } from "./signature.js";

/** Deepest nesting of lazy (recursive) schemas a decoder accepts. */
export const MAX_RECURSION_DEPTH = 256;

export class LazySchema<T> extends Schema<T> {
  readonly kind = "lazy";
  private resolved: Schema<T> | undefined;
  constructor(private readonly thunk: () => Schema<T>) {
    super();
  }
  get target(): Schema<T> {
    return (this.resolved ??= this.thunk());
  }
  encode(w: Writer, v: T): void {
    this.target.encode(w, v);
  }
  decode(r: Reader): T {
    // Recursion depth is bounded by the input: each level consumes >= 1 byte,
    // and the reader depth guard stops pathological nesting.
    const depthHolder = r as unknown as { depth?: number };
    const d = (depthHolder.depth ?? 0) + 1;
    if (d > MAX_RECURSION_DEPTH) r.fail(`nesting deeper than ${MAX_RECURSION_DEPTH}`);
    depthHolder.depth = d;
    try {
      return this.target.decode(r);
    } finally {
      depthHolder.depth = d - 1;
    }
  }
  /** @internal */
  override minSize(visiting: Set<Schema<any>>): number {
    // A type that contains itself without an Option/List/... in between has
    // no finite values; any lower bound will do for it.
    if (visiting.has(this)) return 0;
    visiting.add(this);
    try {
      return this.target.minSize(visiting);
    } finally {
      visiting.delete(this);
    }
  }
  writeSig(out: SigWriter): void {
    out.type(this.target);
  }
}
