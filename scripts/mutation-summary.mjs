// Prints the mutation score per folder from reports/mutation/<scope>.json
// (mutation-testing-report-schema): score = (killed + timeout) / (killed +
// timeout + survived + no coverage); compile/runtime errors and ignored
// mutants are not counted (Stryker's own definition).
// MUTATION_LIST_SURVIVORS=1 also lists every surviving mutant.
// MUTATION_SURVIVORS_MD=<file> writes every surviving mutant as markdown, each
// with the `mutation: equivalent` comment that explains it (the nearest one
// within 15 lines above, in the current file or else in the source the run
// mutated), or "not explained".
import * as fs from "node:fs";

/**
 * The `mutation: equivalent` comment nearest above line `line` (1-based), as one string, with its
 * line; for an emptied block (`block`), first one in the block's first 4 lines.
 */
function explanation(src, line, block = false) {
  if (block) {
    for (let i = line; i < Math.min(src.length, line + 4); i++) {
      if (!/^\s*\/\//.test(src[i])) continue;
      if (src[i].includes("mutation: equivalent")) {
        const c = comment(src, i);
        if (/empty/.test(c.text)) return c;
      }
    }
  }
  for (let i = line - 1; i >= Math.max(0, line - 16); i--) {
    const at = src[i].indexOf("mutation: equivalent");
    if (at < 0) continue;
    return comment(src, i);
  }
  return null;
}

/** The comment starting at line index `i`, joined with the `//` lines that continue it. */
function comment(src, i) {
  const at = src[i].indexOf("mutation: equivalent");
  const parts = [src[i].slice(at + "mutation: equivalent".length).replace(/^\s*[—-]\s*/, "")];
  for (let j = i + 1; j < src.length && /^\s*\/\/(?!.*mutation: equivalent)/.test(src[j]); j++) parts.push(src[j].replace(/^\s*\/\/\s?/, ""));
  return { line: i + 1, text: parts.join(" ").replace(/\s+/g, " ").trim() };
}
/** A source line without its trailing `//` comment (an explanation may sit on the line itself). */
const bare = (l) => (l ?? "").replace(/\s*\/\/.*$/, "").trim();
const md = [];

const dir = process.env.MUTATION_REPORT_DIR ?? "reports/mutation";
const scopes = process.argv.slice(2).length ? process.argv.slice(2) : ["codec", "wire", "stream", "shm", "session-flow", "session-channels", "session-link", "session-calls", "session-observe"];
// The session scopes are one folder in the summary.
const folderOf = (s) => (s.startsWith("session") ? "session" : s);
const folders = new Map();
for (const s of scopes) {
  const f = `${dir}/${s}.json`;
  const c = folders.get(folderOf(s)) ?? { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, Ignored: 0, RuntimeError: 0, CompileError: 0, missing: [] };
  folders.set(folderOf(s), c);
  if (!fs.existsSync(f)) {
    c.missing.push(s);
    continue;
  }
  const report = JSON.parse(fs.readFileSync(f, "utf8"));
  for (const [file, r] of Object.entries(report.files)) {
    const src = r.source.split("\n");
    // The file as it is now: comments added after the run explain its mutants too.
    const cur = process.env.MUTATION_SURVIVORS_MD && fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n") : null;
    let heading = false;
    for (const m of r.mutants) {
      c[m.status] = (c[m.status] ?? 0) + 1;
      const survived = m.status === "Survived" || m.status === "NoCoverage";
      if (process.env.MUTATION_SURVIVORS_MD && survived) {
        if (!heading) md.push(`\n### ${file} (scope ${s})\n`);
        heading = true;
        const L = m.location.start.line;
        // The current file first, at the same code line (the one nearest the mutant's line);
        // else the source the run mutated.
        const block = m.mutatorName === "BlockStatement";
        let why = null;
        let where = "";
        if (cur) {
          const at = cur.map((l, i) => (bare(l) === bare(src[L - 1]) ? i : -1)).filter((i) => i >= 0).sort((a, b) => Math.abs(a - L) - Math.abs(b - L))[0];
          if (at !== undefined) why = explanation(cur, at + 1, block);
        }
        if (!why) {
          why = explanation(src, L, block);
          where = " (as run)";
        }
        const code = (src[L - 1] ?? "").trim().slice(0, 100).replace(/`/g, "'");
        const repl = JSON.stringify(m.replacement ?? "").slice(0, 60).replace(/`/g, "'");
        md.push(`- ${L}:${m.location.start.column} ${m.mutatorName} \`${repl}\`${m.status === "NoCoverage" ? " (no coverage)" : ""} in \`${code}\``);
        md.push(why ? `  — line ${why.line}${where}: ${why.text}` : "  — **not explained**");
        if (!why) c.unexplained = (c.unexplained ?? 0) + 1;
      }
      if (process.env.MUTATION_LIST_SURVIVORS && survived) {
        const line = (src[m.location.start.line - 1] ?? "").trim().slice(0, 90);
        console.log(`${file}:${m.location.start.line}:${m.location.start.column} ${m.status} ${m.mutatorName} ${JSON.stringify(m.replacement ?? "").slice(0, 50)}  | ${line}`);
      }
    }
  }
}
console.log("mutation score per folder:");
for (const [name, c] of folders) {
  const detected = c.Killed + c.Timeout;
  const valid = detected + c.Survived + c.NoCoverage;
  const score = valid ? ((100 * detected) / valid).toFixed(2) + "%" : "n/a";
  console.log(
    `  ${name.padEnd(8)} ${score.padStart(7)}  killed ${c.Killed}  timeout ${c.Timeout}  survived ${c.Survived}  no-coverage ${c.NoCoverage}  (ignored ${c.Ignored}, errors ${c.RuntimeError + c.CompileError})${c.missing.length ? `  missing: ${c.missing.join(", ")}` : ""}${process.env.MUTATION_SURVIVORS_MD ? `  not explained ${c.unexplained ?? 0}` : ""}`,
  );
}
if (process.env.MUTATION_SURVIVORS_MD) {
  const head = [
    "# Surviving mutants (issue 19)",
    "",
    "Written by `MUTATION_SURVIVORS_MD=docs/mutation-survivors.md node scripts/mutation-summary.mjs` from",
    "the reports in reports/mutation/. Each survivor is followed by the `mutation: equivalent` comment",
    "that explains it. A mutant's line is in the source the run mutated; its explanation's line is in",
    "the current file (or \"as run\" when only the mutated source has it).",
  ];
  fs.writeFileSync(process.env.MUTATION_SURVIVORS_MD, [...head, ...md].join("\n") + "\n");
}
