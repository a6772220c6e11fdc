/**
 * Mutation runs (`npm run mutation`, ROAM_MUTATION_RUN=1) run each selected
 * test file once per mutant. The few tests that take several seconds and only
 * re-check code the fast tests already reach are left out of those runs
 * (never out of `npm test`): pass this as the test's `skip` option.
 */
export const slowForMutation: string | false = process.env["ROAM_MUTATION_RUN"] === "1" ? "slow; left out of mutation runs (ROAM_MUTATION_RUN=1)" : false;
