#!/usr/bin/env bash
# The project's test command (README; .ci/run runs exactly `npm test`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
# node_modules from before a dependency was added (e.g. node-pty, a native addon): reinstall.
if ! node -e 'require("node-pty"); require.resolve("@xterm/xterm/package.json"); require.resolve("@opentelemetry/sdk-trace-base")' >/dev/null 2>&1; then
  npm ci --no-audit --no-fund
fi
# A native addon added after node_modules was installed (e.g. native/shm): build it.
for d in native/*/; do
  if [ -f "${d}binding.gyp" ] && ! ls "${d}"build/Release/*.node >/dev/null 2>&1; then npm run --silent build:native; break; fi
done
bash scripts/ensure-chromium.sh
bash scripts/ensure-tmux.sh
npx tsc -p .
# Test files run in parallel processes (2 cores); each file bounds its own time.
exec node --test --test-concurrency=2 --test-timeout=300000 dist/test/
