#!/usr/bin/env bash
# Debian's tmux for the roam-pty terminal test (ROAM_TMUX names another binary; ROAM_SKIP_TMUX=1 opts out).
exec bash "$(dirname "$0")/ensure-debian.sh" "${ROAM_TMUX:-tmux}" tmux "the tmux test" ROAM_SKIP_TMUX
