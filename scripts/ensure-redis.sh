#!/usr/bin/env bash
# Installs Debian's redis-server for the shared-dedup-store tests when it is
# missing. The tests start their own redis-server (own port, temp dir) and stop
# it by pid; nothing here starts a service. Fails loudly when it cannot install:
# the Redis tests must not be skipped silently.
set -u
if [ -x /usr/bin/redis-server ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ERROR: /usr/bin/redis-server is missing and cannot be installed here (needs root + apt-get)." >&2
  echo "       Install Debian's redis-server; the Redis dedup-store tests need it." >&2
  exit 1
fi
echo "installing Debian redis-server for the dedup-store tests..." >&2
export DEBIAN_FRONTEND=noninteractive
# The package's postinst may try to start the service; there is no init system
# in a container, and a test must own its server: forbid service starts.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1; fi
install() { apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends redis-server >/dev/null 2>&1; }
if ! install; then
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
  install
fi
rc=$?
if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
if [ $rc -ne 0 ] || [ ! -x /usr/bin/redis-server ]; then
  echo "ERROR: apt-get install redis-server failed; the Redis dedup-store tests cannot run." >&2
  exit 1
fi
exit 0
