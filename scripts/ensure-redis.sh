#!/usr/bin/env bash
# Debian's redis-server for the shared dedup-store tests (they start and stop their own server by pid; no opt-out).
exec bash "$(dirname "$0")/ensure-debian.sh" /usr/bin/redis-server redis-server "the Redis dedup-store tests"
