#!/usr/bin/env bash
# `npm run --silent subject`: the conformance subject (builds first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f dist/apps/testbed/subject.js ]; then npx tsc -p . >&2; fi
exec node dist/apps/testbed/subject.js
