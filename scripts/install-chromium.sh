#!/usr/bin/env bash
# Ensure the real HTTP/3 client of the tests: Debian's chromium, driven by playwright-core with
# executablePath /usr/lib/chromium/chromium (playwright-core itself never downloads a browser).
#
# Idempotent: with /usr/lib/chromium/chromium present it does nothing but print it; otherwise it
# installs the package as root, without recommends and without upgrading what is already there.
set -euo pipefail

chromium=/usr/lib/chromium/chromium

log() { printf 'install-chromium: %s\n' "$*" >&2; }

if [ -x "$chromium" ]; then
  log "using $chromium"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "$chromium is missing and installing it needs root and apt-get (apt-get install chromium)"
  exit 1
fi

log "$chromium is missing: installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends --no-upgrade chromium >/dev/null
[ -x "$chromium" ] || { log "the chromium package did not provide $chromium"; exit 1; }
log "using $chromium"
"$chromium" --version >&2 2>/dev/null || true
