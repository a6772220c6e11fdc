// Mutation testing (issue 19): `npm run mutation [-- <scope>...]`, see docs/mutation-testing.md.
// Not part of `npm test`/CI: a full run takes tens of minutes on 2 cores.
//
// Runner: @stryker-mutator/tap-runner. There is no node:test plugin for Stryker;
// node:test files run directly (`node file.test.js`) print TAP when stdout is a
// pipe, so the tap runner can run each compiled test file as one "test". That
// gives per-file coverage: a mutant runs only the selected files that reach its
// code (the `command` runner would run the whole selection for every mutant).
//
// One scope per run (ROAM_MUTATION_SCOPE), each with its own fast test selection:
// only the unit/raw-peer/in-process files that exercise that code, fastest first.
const scopes = {
  codec: {
    mutate: ["src/codec/**/*.ts"],
    // codec-properties (fast-check, ~6 s a run) stays in npm test only.
    // codec-units first: small direct tests of Reader/Writer/COBS that kill most mutants fast.
    tests: ["codec-units", "codec", "golden-vectors", "native-cobs", "pure-js-path"],
  },
  wire: {
    mutate: ["src/wire/**/*.ts"],
    tests: ["wire-units", "codec", "golden-vectors", "wire-facts", "session-protocol"],
  },
  stream: {
    mutate: ["src/transport/stream.ts"],
    tests: ["stream-transport", "stream-units", "stream-edges", "stream-purejs", "slow-consumer", "session-protocol", "pure-js-path"],
  },
  shm: {
    mutate: ["src/transport/shm/bipbuf.ts", "src/transport/shm/varslot.ts", "src/transport/shm/flow.ts", "src/transport/shm/frame.ts"],
    tests: ["flow-credit", "credit-invariants", "shm-units", "shm-corruption", "shm-segment"],
  },
  // src/session in three runs (one folder in the summary): flow control, the
  // channel registry, and the link/connection half, each with its own tests.
  "session-flow": {
    mutate: ["src/session/flow.ts", "src/session/pressure.ts", "src/session/handshake.ts"],
    tests: ["flow-units", "flow-edges", "flow-credit", "credit-invariants", "shm-units", "channel-ends", "channels-guards", "wire-facts", "slow-consumer", "session-protocol", "channels"],
  },
  "session-channels": {
    // The registry, the two ends, and the bounded memory of opened ids the registry's
    // unknown / after-close rules read (channel-ids.ts).
    mutate: ["src/session/channel/*.ts", "src/session/channel-ids.ts"],
    tests: ["channel-registry-rules", "channel-ids", "channel-ends", "channel-ends-edges", "channel-lifecycle-edges", "channels-guards", "flow-credit", "wire-facts", "session-protocol", "channels", "session-collaborators"],
  },
  // The link/connection half of src/session, in two runs so that each fits in about half an
  // hour on 2 cores (one run of all ten files took ~75 min at concurrency 1).
  "session-link": {
    mutate: ["src/session/link.ts", "src/session/connection-table.ts", "src/session/inbound.ts", "src/session/connection.ts", "src/session/errors.ts", "src/session/transport.ts"],
    // core-link first: in-process and fast, it kills most mutants before the socket-based files run.
    tests: ["core-link", "core-extra", "link-collaborators", "wire-facts", "virtual-connections", "session-security", "session-protocol", "session-collaborators", "core-calls"],
  },
  "session-calls": {
    mutate: ["src/session/outgoing.ts", "src/session/incoming.ts", "src/session/dispatch.ts", "src/session/serve.ts"],
    tests: ["core-calls", "core-extra", "session-collaborators", "session-security", "session-protocol", "session-calls", "wire-facts", "core-link"],
  },
  // What remains of src/session: interceptors, diagnostics snapshots, the shared call helpers,
  // the rejected-call error and the link options' defaults.
  "session-observe": {
    mutate: ["src/session/interceptor.ts", "src/session/diagnostics.ts", "src/session/call-common.ts", "src/session/rejected.ts", "src/session/link-options.ts"],
    tests: ["interceptors", "diagnostics", "core-calls", "reader-borrow", "core-link", "observe-edges"],
  },
};

// The few multi-second tests (a 300k-frame worker soak, a child process that
// must exit by itself, 100x-window transfers) skip themselves when
// ROAM_MUTATION_RUN=1 (test/helpers/mutation.ts; set by scripts/mutation.sh):
// the same code is reached by the fast tests around them.
process.env.ROAM_MUTATION_RUN = "1";

const scope = process.env.ROAM_MUTATION_SCOPE ?? "codec";
const sel = scopes[scope];
if (!sel) throw new Error(`ROAM_MUTATION_SCOPE=${scope}: expected one of ${Object.keys(scopes).join(", ")}`);

export default {
  $schema: "./node_modules/@stryker-mutator/core/schema/stryker-schema.json",
  packageManager: "npm",
  testRunner: "tap",
  tap: {
    testFiles: sel.tests.map((t) => `dist/test/${t}.test.js`),
    forceBail: true,
  },
  // Compile the mutated sources once per sandbox; mutants are switched at run time.
  buildCommand: "npx tsc -p .",
  mutate: sel.mutate,
  coverageAnalysis: "perTest",
  // Error-message text is not behaviour: the tests pin the rule id a reason
  // starts with, not its prose. Mutating every message string would double the
  // run time for mutants that are equivalent or only change wording.
  mutator: { excludedMutations: ["StringLiteral"] },
  // Module-level (static) mutants would need every test file for each mutant.
  ignoreStatic: true,
  concurrency: Number(process.env.ROAM_MUTATION_CONCURRENCY ?? 2),
  // The machine is shared and noisy: a generous fixed allowance on top of the
  // measured time, so a slow run is not scored as a "timeout" (= killed).
  timeoutMS: 8000,
  timeoutFactor: 2,
  disableTypeChecks: "{src,test,apps,bench}/**/*.ts",
  reporters: ["clear-text", "json", "html", "progress"],
  jsonReporter: { fileName: `reports/mutation/${scope}.json` },
  htmlReporter: { fileName: `reports/mutation/${scope}.html` },
  tempDirName: `.stryker-tmp/${scope}`,
  cleanTempDir: true,
  ignorePatterns: ["dist", "reports", ".stryker-tmp", "native/*/build/Release/obj.target", "*.log"],
  thresholds: { high: 90, low: 80, break: null },
};
