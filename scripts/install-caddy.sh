#!/usr/bin/env bash
# The peer of the benchmark's apps rung (issue 13, goal 5): Debian's caddy, run by the benchmark
# itself (/usr/bin/caddy with its own config on 127.0.0.1 ports, stopped by pid). The package's
# system service is never started: on a host with systemd its postinst would enable and start
# caddy.service (listening on :80), so while installing, a policy-rc.d that refuses every start is
# put in place when none exists (deb-systemd-invoke honours it), and removed again.
#
# Idempotent: with /usr/bin/caddy present it does nothing. Without root or apt-get it says so and
# exits 0: the benchmark then reports the Caddy rung as skipped.
set -euo pipefail

caddy=/usr/bin/caddy

log() { printf 'install-caddy: %s\n' "$*" >&2; }

[ -x "$caddy" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "$caddy is missing and installing it needs root and apt-get: the Caddy rung is skipped"
  exit 0
fi

policy=/usr/sbin/policy-rc.d
ours=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-caddy.sh: no service starts while caddy is installed\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=true
fi
trap 'if [ "$ours" = true ]; then rm -f "$policy"; fi' EXIT

log "$caddy is missing: installing Debian's caddy (its service is not started)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends --no-upgrade caddy >/dev/null || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends --no-upgrade caddy >/dev/null
}
[ -x "$caddy" ] || { log "the caddy package did not provide $caddy"; exit 1; }
log "installed $("$caddy" version 2>/dev/null | head -1)"
