#!/usr/bin/env bash
# The DNS-01 tests' authoritative server: named, from Debian's bind9 package. The tests start a named
# of their own (test/helpers/bind9.ts: foreground, 127.0.0.1 only, a config and zone in a temp folder);
# the machine's named service is never left running or enabled: while installing, a policy-rc.d that
# refuses every start is put in place (deb-systemd-invoke and invoke-rc.d honour it; an existing one
# is kept aside and put back after), then the service is disabled, and stopped by its pid file should
# it have started anyway.
#
# Idempotent: with /usr/sbin/named present it does nothing. Without root or apt-get it says so and
# exits 0: the DNS-01 integration test then skips, saying why.
set -euo pipefail
. "$(dirname "$0")/apt-package.sh"

named=/usr/sbin/named
[ -x "$named" ] && exit 0
apt_package install-bind9 bind9 'the DNS-01 integration test skips' "$named" || exit 0
log() { apt_package_log "$*"; }

apt_package_disable_service named
# Started anyway: stop what the unit did not, by pid, nothing else.
pidfile=/run/named/named.pid
if [ -s "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = named ]; then
    log "the package started named (pid $pid): stopping it"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
    [ -e "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  fi
fi
