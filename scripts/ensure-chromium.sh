#!/usr/bin/env bash
# Debian's Chromium for the browser tests (ROAM_CHROMIUM names another binary; ROAM_SKIP_BROWSER=1 opts out).
exec bash "$(dirname "$0")/ensure-debian.sh" "${ROAM_CHROMIUM:-/usr/bin/chromium}" chromium "the browser tests" ROAM_SKIP_BROWSER
