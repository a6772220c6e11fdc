#!/usr/bin/env bash
# The project's test command (README; .ci/run runs exactly `npm test`).
# Nothing is skipped silently: a missing native addon, Chromium or tmux fails
# the run with how to install it. A machine that cannot install one opts out
# explicitly (ROAM_SKIP_NATIVE=1, ROAM_SKIP_BROWSER=1, ROAM_SKIP_TMUX=1); the
# opt-outs are printed in the summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
OPT_OUTS=()
for v in ROAM_SKIP_NATIVE ROAM_SKIP_BROWSER ROAM_SKIP_TMUX; do
  if [ "${!v:-}" = "1" ]; then OPT_OUTS+=("$v=1"); fi
done
summary() {
  echo "######## npm test summary"
  if [ ${#OPT_OUTS[@]} -gt 0 ]; then
    echo "# OPTED OUT (those tests were SKIPPED, not run): ${OPT_OUTS[*]}"
  else
    echo "# no opt-outs: the native addons, Chromium and tmux tests all ran"
  fi
  echo "# the stream-level tests also ran on the pure-JS path (ROAM_NO_NATIVE=1, test/pure-js-path.test.ts)"
}
if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
# node_modules from before a dependency was added (e.g. node-pty, a native addon), or from before
# the workspaces (no node_modules/roam-ts link to the root for packages/roam-pty): reinstall.
if ! node -e 'require("node-pty"); require.resolve("@xterm/xterm/package.json"); require.resolve("@opentelemetry/sdk-trace-base"); require("fs").statSync("node_modules/dependency-cruiser/bin/dependency-cruise.mjs"); if (require("fs").realpathSync("node_modules/roam-ts") !== process.cwd()) process.exit(1)' >/dev/null 2>&1; then
  npm ci --no-audit --no-fund
fi
# A native addon added after node_modules was installed (e.g. native/shm): build it.
for d in native/*/; do
  if [ -f "${d}binding.gyp" ] && ! ls "${d}"build/Release/*.node >/dev/null 2>&1; then
    if ! npm run --silent build:native; then
      if [ "${ROAM_SKIP_NATIVE:-}" = "1" ]; then
        echo "native addons failed to build; ROAM_SKIP_NATIVE=1, their tests will be skipped" >&2
      else
        echo "ERROR: the native addons (native/*) failed to build: install python3, make and g++ (apt-get install -y python3 make g++) and re-run, or opt out with ROAM_SKIP_NATIVE=1" >&2
        exit 1
      fi
    fi
    break
  fi
done
bash scripts/ensure-chromium.sh
bash scripts/ensure-tmux.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-curl.sh
npx tsc -p .
# Import boundaries (.dependency-cruiser.cjs: the floors codec < schema/wire < ... < apps, no cycles): a violation fails the run.
npx depcruise --config .dependency-cruiser.cjs src apps bench stress packages
# Test files run in parallel processes (2 cores); each file bounds its own time.
rc=0
# Only *.test.js: `node --test <dir>` would also load every helper module
# under dist/test/ as a test file.
mapfile -t TEST_FILES < <(find dist/test -name '*.test.js' | sort)
# A file may take up to 10 minutes: the pack test builds, packs and installs both packages
# (node-pty compiles); every other file bounds its own time well below that.
node --test --test-concurrency=2 --test-timeout=600000 "${TEST_FILES[@]}" || rc=$?
summary
exit $rc
