#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing.
# Exits non-zero when it is missing and cannot be installed: the browser tests
# would fail anyway, and a green run must mean they ran. A machine that cannot
# install it opts out explicitly with ROAM_SKIP_BROWSER=1 (printed in the
# summary of scripts/test.sh). ROAM_CHROMIUM names another binary.
set -u
CHROMIUM="${ROAM_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then exit 0; fi
if [ "${ROAM_SKIP_BROWSER:-}" = "1" ]; then
  echo "ensure-chromium: $CHROMIUM is missing; ROAM_SKIP_BROWSER=1, the browser tests will be skipped" >&2
  exit 0
fi
fail() {
  echo "############################################################" >&2
  echo "# ERROR: $CHROMIUM is missing and $1." >&2
  echo "# Install it (as root): apt-get install -y chromium" >&2
  echo "# or opt out of the browser tests: ROAM_SKIP_BROWSER=1 npm test" >&2
  echo "############################################################" >&2
  exit 1
}
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  fail "cannot be installed here (needs root + apt-get)"
fi
echo "installing Debian chromium for the browser tests..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null 2>&1; then
  fail "apt-get install chromium failed"
fi
[ -x "$CHROMIUM" ] || fail "is still missing after apt-get install chromium"
exit 0
