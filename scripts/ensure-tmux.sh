#!/usr/bin/env bash
# Installs Debian's tmux for the roam-pty terminal test when it is missing.
# Prints a loud warning (and lets that test skip) only when it truly cannot
# be installed (not root, no apt).
set -u
if command -v tmux >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "############################################################" >&2
  echo "# WARNING: tmux is missing and cannot be installed here" >&2
  echo "# (needs root + apt-get). The tmux test will be SKIPPED." >&2
  echo "############################################################" >&2
  exit 0
fi
echo "installing Debian tmux for the terminal test..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq tmux >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  if ! apt-get install -y -qq tmux >/dev/null 2>&1; then
    echo "############################################################" >&2
    echo "# WARNING: apt-get install tmux failed. The tmux test will" >&2
    echo "# be SKIPPED." >&2
    echo "############################################################" >&2
  fi
fi
exit 0
