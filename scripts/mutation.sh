#!/usr/bin/env bash
# Mutation testing with StrykerJS (issue 19). Not part of `npm test`.
#   npm run mutation                 # every scope: codec wire stream shm session-flow session-channels session-link session-calls session-observe
#   npm run mutation -- codec shm    # some scopes
# Env: ROAM_MUTATION_CONCURRENCY (default 2). Reports: reports/mutation/<scope>.{json,html};
# the per-folder summary is printed at the end (scripts/mutation-summary.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules/@stryker-mutator/core ]; then npm ci --no-audit --no-fund; fi
for d in native/*/; do
  if [ -f "${d}binding.gyp" ] && ! ls "${d}"build/Release/*.node >/dev/null 2>&1; then npm run --silent build:native; break; fi
done
# The sandbox lives in .stryker-tmp/<scope>/; the golden vectors are found through this.
ROAM_SHARED_DIR="${ROAM_SHARED_DIR:-$(cd .. && pwd)/shared/}"
export ROAM_SHARED_DIR
scopes=("$@")
if [ ${#scopes[@]} -eq 0 ]; then scopes=(codec wire stream shm session-flow session-channels session-link session-calls session-observe); fi
mkdir -p reports/mutation
status=0
for s in "${scopes[@]}"; do
  echo "=== mutation scope: $s ($(date -u +%H:%M:%S) UTC)"
  ROAM_MUTATION_SCOPE="$s" npx stryker run stryker.config.mjs || status=$?
done
node scripts/mutation-summary.mjs "${scopes[@]}"
exit $status
