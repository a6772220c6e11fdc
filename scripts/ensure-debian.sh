#!/usr/bin/env bash
# Installs a Debian package a test needs when its program is missing.
#   usage: ensure-debian.sh PROGRAM PACKAGE WHAT [OPT_OUT_VAR]
# PROGRAM: an absolute path or a name looked up on PATH; PACKAGE: what apt-get
# installs; WHAT: the tests that need it (for messages); OPT_OUT_VAR: the
# variable that opts out explicitly (printed in scripts/test.sh's summary).
# Exits non-zero when the program is missing and cannot be installed: a green
# run must mean those tests ran. Package scripts may not start services (there
# is no init system here, and a test starts and stops its own servers by pid).
set -u
prog=$1 pkg=$2 what=$3 optout=${4:-}
have() { if [ "${prog#/}" != "$prog" ]; then [ -x "$prog" ]; else command -v "$prog" >/dev/null 2>&1; fi; }
if have; then exit 0; fi
if [ -n "$optout" ] && [ "${!optout:-}" = "1" ]; then
  echo "ensure-debian: $prog is missing; $optout=1, $what will be skipped" >&2
  exit 0
fi
fail() {
  echo "############################################################" >&2
  echo "# ERROR: $prog is missing and $1." >&2
  echo "# Install it (as root): apt-get install -y $pkg" >&2
  if [ -n "$optout" ]; then echo "# or opt out of $what: $optout=1 npm test" >&2; fi
  echo "############################################################" >&2
  exit 1
}
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  fail "cannot be installed here (needs root + apt-get)"
fi
echo "installing Debian $pkg for $what..." >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1; fi
install() { apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$pkg" >/dev/null 2>&1; }
if ! install; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
  install
fi
rc=$?
if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
[ $rc -eq 0 ] || fail "apt-get install $pkg failed"
have || fail "is still missing after apt-get install $pkg"
exit 0
