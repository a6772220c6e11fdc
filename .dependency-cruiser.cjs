/**
 * The import boundaries of roam-ts (issue 13), checked by
 * `npx depcruise --config .dependency-cruiser.cjs src apps bench stress packages`
 * (run by scripts/test.sh before the tests, and by test/boundaries.test.ts).
 *
 * The floors, lowest first; a module imports only its own floor or lower:
 *
 *   0 codec                     bytes: postcard reader/writer, COBS
 *   1 schema, wire              t.* schemas; the message set and its encoding
 *   2 service, json             service descriptors; the JSON codec compiled from t.* schemas
 *   3 session                   links, connections, channels, flow control, handshake
 *   4 transport, proxy, tunnel  what moves messages, and what relays them
 *     nonce, tracing, routing, diagnostics   (session add-ons beside them)
 *   5 reconnect, otel, bridge   built from floor 4 pieces
 *   6 entry points              src/index.ts, src/node.ts (and the package's subpath entries)
 *   7 apps, bench, stress, test
 *
 * Plus: no cycles, nothing in src/ imports apps/bench/stress/test/packages,
 * and (a separate rule, "apps-bench-use-entry-points") apps, bench and
 * packages/roam-pty reach src/ only through the package entry points.
 *
 * An exception is a `pathNot` on one rule naming the one import it lets
 * through, with the reason and who removes it; none is a whole folder.
 */
const FLOORS = [
  ["codec"],
  ["schema", "wire"],
  ["service", "json"],
  ["session"],
  ["transport", "proxy", "tunnel", "nonce", "tracing", "routing", "diagnostics"],
  ["reconnect", "otel", "bridge"],
];

/** `^src/(a|b)/` */
const dirs = (names) => `^src/(${names.join("|")})/`;

/**
 * Known layering bugs another change is removing, let through edge by edge
 * until that fix is on main (then delete the entry), e.g.
 *   { floor: "schema", from: "^src/schema/schema\\.ts$", to: "^src/session/channels\\.ts$" }
 * (schema.ts named the session's Tx/Rx types until issue 13 split it).
 */
const EXCEPTIONS = [];

/** One rule per floor: nothing on it imports a folder of a higher floor or an entry point. */
const floorRules = FLOORS.flatMap((floor, i) => {
  const above = FLOORS.slice(i + 1).flat();
  const to = above.length > 0 ? `${dirs(above)}|^src/(index|node)\\.ts$` : "^src/(index|node)\\.ts$";
  const name = `no-upward-import-from-${floor.join("-")}`;
  const comment = `src/{${floor.join(",")}} (floor ${i}) may import only floors 0..${i} (see the table at the top of .dependency-cruiser.cjs)`;
  const excepted = EXCEPTIONS.filter((e) => floor.includes(e.floor));
  const from = excepted.length > 0 ? { path: dirs(floor), pathNot: excepted.map((e) => e.from).join("|") } : { path: dirs(floor) };
  const rules = [{ name, comment, severity: "error", from, to: { path: to } }];
  for (const e of excepted) {
    rules.push({ name, comment: `${comment}; EXCEPTION (temporary) for ${e.to}`, severity: "error", from: { path: e.from }, to: { path: to, pathNot: e.to } });
  }
  return rules;
});

/**
 * The package's entry points (package.json "exports"): what apps and bench
 * may import from src/.
 */
const ENTRY_POINTS = [
  "^src/index\\.ts$",
  "^src/node\\.ts$",
  "^src/transport/shm/index\\.ts$",
  "^src/tracing/index\\.ts$",
  "^src/otel/index\\.ts$",
  "^src/bridge/index\\.ts$",
  "^src/bridge/browser\\.ts$",
];

/**
 * apps/, bench/ and packages/ (roam-pty) use roam-ts as a user would: by its
 * package name ("roam-ts", "roam-ts/node", ...) or, at most, a relative
 * import of an entry point. (The switch below let the rule wait for the
 * workspaces rewrite; ROAM_BOUNDARIES_ENTRY_POINTS=1 forces it on.)
 */
const ENTRY_POINT_RULE_ON = true;
const ENFORCE_ENTRY_POINTS = ENTRY_POINT_RULE_ON || process.env.ROAM_BOUNDARIES_ENTRY_POINTS === "1";
/**
 * Single imports past the entry points, each with its reason:
 *   - bench/streaming.ts prints whether the native COBS addon loaded; no
 *     entry point says so. Remove once one does (or the bench stops asking).
 */
const ENTRY_POINT_EXCEPTIONS = [{ from: "^bench/streaming\\.ts$", to: "^src/transport/native-cobs\\.ts$" }];

const forbidden = [
  ...floorRules,
  {
    name: "no-circular",
    comment: "No cycle of runtime imports (it makes module init order matter: see the codec-factory injection issue 13 removes).",
    severity: "error",
    from: {},
    to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
  },
  {
    name: "no-circular-across-folders",
    comment:
      "No cycle that leaves a folder, not even through `import type`. (A type-only cycle inside one folder, e.g. link.ts <-> diagnostics.ts, is one concern's types naming each other and is allowed.)",
    severity: "error",
    from: { path: "^src/([^/]+)/" },
    to: {
      circular: true,
      via: { pathNot: "^src/$1/" },
      // (an empty pathNot would match every module and switch the rule off)
      ...(EXCEPTIONS.length > 0 ? { viaOnly: { pathNot: EXCEPTIONS.map((e) => e.from).join("|") } } : {}),
    },
  },
  {
    name: "src-does-not-import-apps-or-tests",
    comment: "The library never reaches into apps, bench, stress, test or the other packages.",
    severity: "error",
    from: { path: "^src/" },
    to: { path: "^(apps|bench|stress|test|packages)/" },
  },
  {
    name: "no-unresolvable-import",
    comment: "An import that does not resolve is a typo or a missing package.",
    severity: "error",
    from: {},
    to: { couldNotResolve: true },
  },
];

if (ENFORCE_ENTRY_POINTS) {
  const name = "apps-bench-use-entry-points";
  const comment = "apps/, bench/ and packages/ import src/ only through the package entry points (package.json exports).";
  const from = "^(apps|bench|packages)/";
  const excepted = ENTRY_POINT_EXCEPTIONS.map((e) => e.from).join("|");
  forbidden.push({
    name,
    comment,
    severity: "error",
    from: excepted ? { path: from, pathNot: excepted } : { path: from },
    to: { path: "^src/", pathNot: ENTRY_POINTS },
  });
  for (const e of ENTRY_POINT_EXCEPTIONS) {
    forbidden.push({ name, comment: `${comment} EXCEPTION for ${e.to}`, severity: "error", from: { path: e.from }, to: { path: "^src/", pathNot: [...ENTRY_POINTS, e.to] } });
  }
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(dist|node_modules)/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      conditionNames: ["import", "node", "default"],
    },
  },
};
