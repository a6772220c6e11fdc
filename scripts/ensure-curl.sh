#!/usr/bin/env bash
# curl for the HTTP bridge tests that run the README's curl lines (no opt-out).
exec bash "$(dirname "$0")/ensure-debian.sh" curl curl "the HTTP bridge curl tests"
