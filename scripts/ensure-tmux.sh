#!/usr/bin/env bash
# Installs Debian's tmux for the roam-pty terminal test when it is missing.
# Exits non-zero when it is missing and cannot be installed (a green run must
# mean the test ran); ROAM_SKIP_TMUX=1 opts out explicitly (printed in the
# summary of scripts/test.sh). ROAM_TMUX names another binary.
set -u
have_tmux() {
  if [ -n "${ROAM_TMUX:-}" ]; then [ -x "$ROAM_TMUX" ]; else command -v tmux >/dev/null 2>&1; fi
}
if have_tmux; then exit 0; fi
if [ "${ROAM_SKIP_TMUX:-}" = "1" ]; then
  echo "ensure-tmux: tmux is missing; ROAM_SKIP_TMUX=1, the tmux test will be skipped" >&2
  exit 0
fi
fail() {
  echo "############################################################" >&2
  echo "# ERROR: tmux is missing and $1." >&2
  echo "# Install it (as root): apt-get install -y tmux" >&2
  echo "# or opt out of the tmux test: ROAM_SKIP_TMUX=1 npm test" >&2
  echo "############################################################" >&2
  exit 1
}
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  fail "cannot be installed here (needs root + apt-get)"
fi
echo "installing Debian tmux for the terminal test..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq tmux >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq tmux >/dev/null 2>&1; then
    fail "apt-get install tmux failed"
  fi
fi
have_tmux || fail "is still missing after apt-get install tmux"
exit 0
