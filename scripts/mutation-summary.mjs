// Prints the mutation score per folder from reports/mutation/<scope>.json
// (mutation-testing-report-schema): score = (killed + timeout) / (killed +
// timeout + survived + no coverage); compile/runtime errors and ignored
// mutants are not counted (Stryker's own definition).
// MUTATION_LIST_SURVIVORS=1 also lists every surviving mutant.
import * as fs from "node:fs";

const dir = process.env.MUTATION_REPORT_DIR ?? "reports/mutation";
const scopes = process.argv.slice(2).length ? process.argv.slice(2) : ["codec", "wire", "stream", "shm", "session-flow", "session-channels", "session-link", "session-calls", "session-observe"];
// The two session scopes are one folder in the summary.
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
    for (const m of r.mutants) {
      c[m.status] = (c[m.status] ?? 0) + 1;
      if (process.env.MUTATION_LIST_SURVIVORS && (m.status === "Survived" || m.status === "NoCoverage")) {
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
    `  ${name.padEnd(8)} ${score.padStart(7)}  killed ${c.Killed}  timeout ${c.Timeout}  survived ${c.Survived}  no-coverage ${c.NoCoverage}  (ignored ${c.Ignored}, errors ${c.RuntimeError + c.CompileError})${c.missing.length ? `  missing: ${c.missing.join(", ")}` : ""}`,
  );
}
