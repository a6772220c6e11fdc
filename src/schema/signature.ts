import type { Schema } from "./core.js";

const textEncoder = new TextEncoder();

/**
 * Accumulates the canonical signature bytes of one top-level type
 * (rust-spec `signature.*`).
 *
 * Cycle detection: a struct, enum or tuple type that appears again *inside
 * itself* (a recursive type) is written as the back-reference tag 0x32.
 * A type repeated side by side (Rectangle's two `Point` fields) is written
 * in full each time: that is what the reference's ids show
 * (Testbed.rectangle_area only matches this way).
 */
export class SigWriter {
  readonly out: number[] = [];
  /** User types currently being written (the recursion stack). */
  private readonly visited = new Set<unknown>();

  byte(b: number): void {
    this.out.push(b);
  }

  varint(v: number): void {
    while (v >= 0x80) {
      this.out.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.out.push(v);
  }

  name(s: string): void {
    const b = textEncoder.encode(s);
    this.varint(b.length);
    for (const x of b) this.out.push(x);
  }

  /** Writes a nested type, applying the user-type back-reference rule. */
  type(s: Schema<any>): void {
    const key = userTypeKey(s);
    if (key !== undefined) {
      if (this.visited.has(key)) {
        this.out.push(0x32);
        return;
      }
      this.visited.add(key);
      s.writeSig(this);
      this.visited.delete(key);
      return;
    }
    s.writeSig(this);
  }
}

/**
 * Identity of a user-defined type for back-references: structs and enums
 * are identified by their schema object (define each Rust type once and
 * reuse it); tuples and Results are structural in Rust, so they are keyed
 * by their standalone signature bytes.
 */
function userTypeKey(s: Schema<any>): unknown {
  switch (s.kind) {
    case "struct":
    case "enum":
      return s;
    case "tuple":
    case "result": {
      const w = new SigWriter();
      s.writeSig(w);
      return `${s.kind}:${w.out.join(",")}`;
    }
    default:
      return undefined;
  }
}

/** The signature bytes of one top-level type. */
export function typeSignature(s: Schema<any>): Uint8Array {
  const w = new SigWriter();
  w.type(s);
  return Uint8Array.from(w.out);
}

/** `0x25, varint(argc), arg₁ … argₙ, return` — each part with its own visited set. */
export function methodSignature(args: readonly Schema<any>[], ret: Schema<any>): Uint8Array {
  const parts: number[] = [0x25];
  const head = new SigWriter();
  head.varint(args.length);
  parts.push(...head.out);
  for (const a of args) parts.push(...typeSignature(a));
  parts.push(...typeSignature(ret));
  return Uint8Array.from(parts);
}
