#!/usr/bin/env bash
# `npm run --silent roam-pty -- <command> [options]`: the roam-pty CLI from the repository's
# build (packages/roam-pty compiled by the root `tsc -p .`; builds first if needed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cli="$root/dist/packages/roam-pty/src/cli.js"
if [ ! -f "$cli" ]; then (cd "$root" && npx tsc -p . >&2); fi
exec node "$cli" "$@"
