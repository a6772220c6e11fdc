#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing.
# Prints a loud warning (and lets the browser tests skip) only when it truly
# cannot be installed (not root, no apt).
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "############################################################" >&2
  echo "# WARNING: /usr/bin/chromium is missing and cannot be installed" >&2
  echo "# here (needs root + apt-get). Browser tests will be SKIPPED." >&2
  echo "############################################################" >&2
  exit 0
fi
echo "installing Debian chromium for the browser tests..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
  echo "############################################################" >&2
  echo "# WARNING: apt-get install chromium failed. Browser tests will" >&2
  echo "# be SKIPPED." >&2
  echo "############################################################" >&2
fi
exit 0
