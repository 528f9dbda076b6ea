#!/usr/bin/env bash
# The metrics test's parser of the Prometheus text format: `promtool check metrics`, from Debian's
# prometheus package (the only Debian package that ships promtool). The package's server is never
# started: its postinst would enable and start prometheus.service (listening on :9090), so while
# installing, a policy-rc.d that refuses every start is put in place when none exists
# (deb-systemd-invoke and invoke-rc.d honour it), and removed again.
#
# Idempotent: with /usr/bin/promtool present it does nothing. Without root or apt-get it says so and
# exits 0: the metrics test then skips its promtool check, saying why.
set -euo pipefail

promtool=/usr/bin/promtool

log() { printf 'install-promtool: %s\n' "$*" >&2; }

[ -x "$promtool" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "$promtool is missing and installing it needs root and apt-get (apt-get install prometheus): the metrics test skips its promtool check"
  exit 0
fi

policy=/usr/sbin/policy-rc.d
ours=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-promtool.sh: no service starts while prometheus is installed\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=true
fi
trap 'if [ "$ours" = true ]; then rm -f "$policy"; fi' EXIT

log "$promtool is missing: installing Debian's prometheus package for it (its service is not started)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends --no-upgrade prometheus >/dev/null || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends --no-upgrade prometheus >/dev/null
}
[ -x "$promtool" ] || { log "the prometheus package did not provide $promtool"; exit 1; }
log "installed $("$promtool" --version 2>&1 | head -1)"
