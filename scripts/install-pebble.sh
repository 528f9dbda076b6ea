#!/usr/bin/env bash
# The ACME tests' certificate authority: Debian's pebble package, which ships `pebble` (a small RFC 8555
# CA made for tests) and `pebble-challtestsrv` (a mock DNS server that answers every name with the
# address it is given). The tests start both themselves, on loopback ports, as child processes
# (test/helpers/pebble.ts); nothing here starts them. The package has no service of its own today, but
# in case a later one adds it, a policy-rc.d that refuses every start is put in place while installing
# when none exists (deb-systemd-invoke and invoke-rc.d honour it), and removed again.
#
# Idempotent: with /usr/bin/pebble and /usr/bin/pebble-challtestsrv present it does nothing. Without
# root or apt-get it says so and exits 0: the ACME tests then skip, saying why.
set -euo pipefail

pebble=/usr/bin/pebble
challtestsrv=/usr/bin/pebble-challtestsrv

log() { printf 'install-pebble: %s\n' "$*" >&2; }

[ -x "$pebble" ] && [ -x "$challtestsrv" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "$pebble is missing and installing it needs root and apt-get (apt-get install pebble): the ACME tests skip"
  exit 0
fi

policy=/usr/sbin/policy-rc.d
ours=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-pebble.sh: no service starts while pebble is installed\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=true
fi
trap 'if [ "$ours" = true ]; then rm -f "$policy"; fi' EXIT

log "$pebble is missing: installing Debian's pebble package (nothing is started)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends --no-upgrade pebble >/dev/null || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends --no-upgrade pebble >/dev/null
}
[ -x "$pebble" ] || { log "the pebble package did not provide $pebble"; exit 1; }
[ -x "$challtestsrv" ] || { log "the pebble package did not provide $challtestsrv"; exit 1; }
log "installed $(dpkg-query -W -f='pebble ${Version}' pebble 2>/dev/null)"
