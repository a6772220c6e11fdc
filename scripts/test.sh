#!/usr/bin/env bash
# The project's test command (README; .ci/run runs exactly `npm test`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ]; then npm ci --no-audit --no-fund; fi
bash scripts/ensure-chromium.sh
npx tsc -p .
# Test files run in parallel processes (2 cores); each file bounds its own time.
exec node --test --test-concurrency=2 --test-timeout=300000 dist/test/
