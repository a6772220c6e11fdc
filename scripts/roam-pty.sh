#!/usr/bin/env bash
# `npm run --silent roam-pty -- <command> [options]`: the roam-pty CLI (builds first if needed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$root/dist/apps/pty/cli.js" ]; then (cd "$root" && npx tsc -p . >&2); fi
exec node "$root/dist/apps/pty/cli.js" "$@"
