/**
 * The public API's shape as a user meets it: parameter names in editor hints
 * (asked of the TypeScript language service, exactly what an editor shows),
 * the signature form of `method`, and `RoamServer.address` as a URL for every
 * transport.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

import { arg, defineService, method, t } from "../src/index.js";
import { client, serve } from "../src/session/serve.js";
import { connectTcp, connectUnix, connectWebSocket, listenTcp, listenUnix, listenWebSocket } from "../src/transport/node.js";

const ROOT = fs.realpathSync(fileURLToPath(new URL("../../", import.meta.url)));

/** Quick info (the editor's hover text) at the end of each `marker` in `source`, a file in test/. */
function hovers(source: string, markers: string[]): { hints: string[]; errors: string[] } {
  const file = path.join(ROOT, "test", "__hover_probe.ts");
  const options: ts.CompilerOptions = {
    strict: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    skipLibCheck: true,
    types: ["node"],
  };
  const host: ts.LanguageServiceHost = {
    getScriptFileNames: () => [file],
    getScriptVersion: () => "1",
    getScriptSnapshot: (f) => {
      if (f === file) return ts.ScriptSnapshot.fromString(source);
      const text = ts.sys.readFile(f);
      return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
    },
    getCurrentDirectory: () => ROOT,
    getCompilationSettings: () => options,
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    fileExists: (f) => f === file || ts.sys.fileExists(f),
    readFile: (f) => (f === file ? source : ts.sys.readFile(f)),
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories,
  };
  const ls = ts.createLanguageService(host);
  const hints = markers.map((m) => {
    const at = source.indexOf(m);
    assert.ok(at >= 0, `marker ${m} not in the probe`);
    const qi = ls.getQuickInfoAtPosition(file, at + m.length - 1);
    return ts.displayPartsToString(qi?.displayParts ?? []);
  });
  const errors = ls.getSemanticDiagnostics(file).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  return { hints, errors };
}

test("editor hints show the parameter names of the signature form; the checker still catches mistakes", { timeout: 60_000 }, () => {
  const source = `
import { t, defineService, method, arg, client, serve, err, type Connection } from "../src/index.js";
const Calc = defineService("Calc", {
  divide: method((dividend = arg(t.i64), divisor = arg(t.i64)) => t.result(t.i64, t.literals(["DivisionByZero"]))),
  count: method((n = arg(t.u32), out = arg(t.tx(t.u32))) => t.unit),
  listed: method([arg("x", t.u8)], t.unit),
});
declare const conn: Connection;
const calc = client(Calc, conn);
void calc.divide(7n, 2n);
void calc.count;
void calc.listed;
serve(Calc, {
  divide: (dividend, divisor, ctx) => (divisor === 0n ? err("DivisionByZero") : dividend / divisor),
  count: async (n, out) => { for (let i = 0; i < n; i++) await out.send(i); },
  listed: () => undefined,
});
// Deliberate mistakes, each must be an error:
void calc.divide(1, 2n);
void calc.divide(1n);
const n: string = await calc.divide(1n, 2n);
`;
  const { hints, errors } = hovers(source, ["calc.divide", "calc.count", "calc.listed", "divide: (dividend", "(dividend, divisor, ctx"]);
  assert.equal(hints[0], "(property) divide: (dividend: bigint, divisor: bigint, options?: CallOptions | undefined) => Promise<bigint>");
  assert.equal(hints[1], "(property) count: (n: number, out: Tx<number>, options?: CallOptions | undefined) => Promise<void>");
  // The list form has no names to give (TypeScript takes tuple labels only from declarations).
  assert.equal(hints[2], "(property) listed: (args_0: number, options?: CallOptions | undefined) => Promise<void>");
  assert.equal(hints[3], "(parameter) dividend: bigint");
  assert.equal(hints[4], "(parameter) ctx: CallContext");
  assert.equal(errors.length, 3, errors.join("\n"));
  assert.match(errors[0]!, /'number' is not assignable to parameter of type 'bigint'/);
  assert.match(errors[1]!, /Expected 2-3 arguments, but got 1/);
  assert.match(errors[2]!, /'bigint' is not assignable to type 'string'/);
});

test("method(signature) records names and schemas; same id as the list form", () => {
  const a = method((dividend = arg(t.i64), divisor = arg(t.i64)) => t.i64, "divides");
  const b = method([arg("dividend", t.i64), arg("divisor", t.i64)], t.i64);
  const S1 = defineService("Calc", { divide: a });
  const S2 = defineService("Calc", { divide: b });
  assert.deepEqual(S1.methods.divide.argNames, ["dividend", "divisor"]);
  assert.equal(S1.methods.divide.doc, "divides");
  assert.equal(S1.methods.divide.id, S2.methods.divide.id);
  assert.deepEqual(S1.methods.divide.signature, S2.methods.divide.signature);
  const nested = method((p = arg(t.struct({ x: t.i32, y: t.list(t.string) })), q = arg(t.option(t.u8))) => t.unit);
  assert.deepEqual(defineService("N", { m: nested }).methods.m.argNames, ["p", "q"]);
  const none = method(() => t.string);
  assert.deepEqual(none.args, []);
  // A parameter without an arg() default would shift every later argument: refused.
  assert.throws(() => method(((a = arg(t.u8), b?: unknown) => t.unit) as never), /every parameter needs a default `arg\(schema\)`/);
  assert.throws(() => method((() => 5) as never), /must return the method's return schema/);
});

test("a signature-form service works end to end", async () => {
  const Calc = defineService("Calc", { divide: method((a = arg(t.i64), b = arg(t.i64)) => t.i64) });
  const server = await listenTcp({ port: 0, dispatcher: serve(Calc, { divide: (a, b) => a / b }) });
  const link = await connectTcp({ port: server.port! });
  try {
    assert.equal(await client(Calc, link.root).divide(7n, 2n), 3n);
  } finally {
    link.close();
    await server.close();
  }
});

test("RoamServer.address is a URL for TCP, Unix and WebSocket", async () => {
  const Echo = defineService("Echo", { echo: method((s = arg(t.string)) => t.string) });
  const dispatcher = serve(Echo, { echo: (s) => s });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "roam-address-"));
  const tcp = await listenTcp({ port: 0, dispatcher });
  const unix = await listenUnix({ path: path.join(dir, "a b.sock"), dispatcher });
  const ws = await listenWebSocket({ port: 0, dispatcher });
  try {
    assert.equal(tcp.address, `tcp://127.0.0.1:${tcp.port}`);
    assert.equal(unix.address, `unix://${encodeURI(path.join(dir, "a b.sock"))}`);
    assert.equal(decodeURI(new URL(unix.address).pathname), unix.path);
    assert.equal(ws.address, `ws://127.0.0.1:${ws.port}/`);
    for (const a of [tcp.address, unix.address, ws.address]) assert.doesNotThrow(() => new URL(a), a);
    const u = new URL(tcp.address);
    const links = [
      await connectTcp({ host: u.hostname, port: Number(u.port) }),
      await connectUnix({ path: decodeURI(new URL(unix.address).pathname) }),
      await connectWebSocket(ws.address),
    ];
    for (const l of links) {
      assert.equal(await client(Echo, l.root).echo("hi"), "hi");
      l.close();
    }
  } finally {
    await Promise.all([tcp.close(), unix.close(), ws.close()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
