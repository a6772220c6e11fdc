/**
 * README.md cannot drift from the code: every code block is extracted and
 * checked the way a reader would use it.
 *
 * Info string of a fenced block: LANG [file=NAME] [run | fragment]
 *   - `ts`/`typescript` blocks are compiled together, strictly, as a consumer
 *     project of the package (ESM, module NodeNext, `roam-ts` resolved through
 *     package.json `exports`) with the README's own package.json/tsconfig.json
 *     blocks (`json file=…`) as its configuration;
 *   - `run` blocks are then executed with node and must exit 0 by themselves
 *     (so they close what they open) within 30 s;
 *   - `fragment` blocks are excerpts, not compiled: the only way to skip a
 *     ts block is to say so;
 *   - blocks in other languages (sh, text, json without file=) are prose;
 *   - a block named `file=x.ts` can be imported by the others as `./x.js`.
 * Any other word in a ts info string is an error, so a typo cannot skip a block.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fs.realpathSync(fileURLToPath(new URL("../../", import.meta.url)));

export interface Block {
  lang: string;
  file: string | null;
  mode: "compile" | "run" | "fragment" | "prose";
  code: string;
  line: number;
}

/** Fenced code blocks of a Markdown text, with their info strings parsed. */
export function extractBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const words = open[2]!.trim().split(/\s+/).filter(Boolean);
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith(fence); i++) body.push(lines[i]!);
    assert.ok(i < lines.length, `README.md:${start + 1}: code block never closed`);
    const lang = words[0] ?? "";
    let file: string | null = null;
    let mode: Block["mode"] = lang === "ts" || lang === "typescript" ? "compile" : "prose";
    for (const w of words.slice(1)) {
      if (w.startsWith("file=")) file = w.slice(5);
      else if (mode !== "prose" && (w === "run" || w === "fragment")) mode = w;
      else if (mode !== "prose") assert.fail(`README.md:${start + 1}: unknown word ${JSON.stringify(w)} in the info string (run | fragment | file=NAME)`);
    }
    blocks.push({ lang, file, mode, code: body.join("\n") + "\n", line: start + 1 });
  }
  return blocks;
}

function node(file: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test("the info-string rules: ts blocks compile unless marked; other languages are prose; typos fail", () => {
  const md = ["```ts", "a", "```", "```ts file=x.ts run", "b", "```", "```ts fragment", "c", "```", "```sh", "d", "```", "````text", "```", "````"].join("\n");
  assert.deepEqual(
    extractBlocks(md).map((b) => [b.mode, b.file]),
    [["compile", null], ["run", "x.ts"], ["fragment", null], ["prose", null], ["prose", null]],
  );
  assert.throws(() => extractBlocks("```ts rnu\nx\n```\n"), /unknown word "rnu"/);
});

test("README.md: every ts block compiles (strict, NodeNext, as a consumer project) and every run block runs", { timeout: 240_000 }, async (t) => {
  const blocks = extractBlocks(fs.readFileSync(path.join(ROOT, "README.md"), "utf8"));
  const tsBlocks = blocks.filter((b) => b.mode === "compile" || b.mode === "run");
  assert.ok(tsBlocks.length >= 8, `only ${tsBlocks.length} TypeScript blocks`);
  assert.ok(tsBlocks.filter((b) => b.mode === "run").length >= 5, "the quick start's blocks run");

  // A consumer project inside the checkout (.tmp/ is ignored by git): roam-ts is a link to it.
  fs.mkdirSync(path.join(ROOT, ".tmp"), { recursive: true });
  const dir = fs.mkdtempSync(path.join(ROOT, ".tmp", "readme-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, "node_modules"));
  fs.symlinkSync(ROOT, path.join(dir, "node_modules", "roam-ts"), "dir");
  // roam-pty as installed: its package.json, with dist/ a copy of the root build's compile of its
  // sources (a copy, not a link: inside the root package, TypeScript would read its "roam-ts"
  // imports as the root package's self-reference).
  const pty = path.join(dir, "node_modules", "roam-pty");
  fs.mkdirSync(pty);
  fs.copyFileSync(path.join(ROOT, "packages", "roam-pty", "package.json"), path.join(pty, "package.json"));
  fs.cpSync(path.join(ROOT, "dist", "packages", "roam-pty", "src"), path.join(pty, "dist"), { recursive: true, filter: (src) => !src.endsWith(".map") });
  const configs = blocks.filter((b) => b.lang === "json" && b.file);
  assert.deepEqual(configs.map((b) => b.file).sort(), ["package.json", "tsconfig.json"], "the README shows the consumer's package.json and tsconfig.json");
  for (const b of configs) fs.writeFileSync(path.join(dir, b.file!), b.code);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).type, "module");

  const names = new Set<string>();
  const files = tsBlocks.map((b, i) => {
    const name = b.file ?? `block-${String(i + 1).padStart(2, "0")}-line-${b.line}.ts`;
    assert.ok(!names.has(name), `two README blocks are named ${name}`);
    names.add(name);
    fs.writeFileSync(path.join(dir, name), b.code);
    return { block: b, name };
  });

  // Compile with the README's tsconfig.json, exactly as a consumer would.
  const configPath = path.join(dir, "tsconfig.json");
  const parsed = ts.parseJsonConfigFileContent(ts.readConfigFile(configPath, ts.sys.readFile).config, ts.sys, dir);
  assert.deepEqual(parsed.errors, []);
  const program = ts.createProgram(files.map((f) => path.join(dir, f.name)), parsed.options);
  const emitted = program.emit();
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics].map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
    const f = d.file ? files.find((x) => path.join(dir, x.name) === d.file!.fileName) : undefined;
    const at = f && where ? `README.md:${f.block.line + 1 + where.line} (${f.name})` : (d.file?.fileName ?? "");
    return `${at}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
  assert.deepEqual(diagnostics, [], "README blocks do not compile");

  // Run the runnable ones from the compiled output.
  const outDir = parsed.options.outDir!;
  for (const f of files.filter((x) => x.block.mode === "run")) {
    const js = path.join(outDir, f.name.replace(/\.ts$/, ".js"));
    const r = await node(js, dir);
    assert.equal(r.code, 0, `README.md:${f.block.line} (${f.name}) exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    t.diagnostic(`${f.name}: ${r.stdout.trim().replace(/\n/g, " | ")}`);
  }
});
