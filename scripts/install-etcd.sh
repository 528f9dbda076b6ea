#!/usr/bin/env bash
# The fleet-mode tests' store: etcd, from Debian's etcd-server package (3.4). The tests start clusters
# of their own (test/helpers/etcd.ts: 1 or 3 members on 127.0.0.1, data in a temp folder, each member a
# child process stopped by pid) and talk to them through etcd's v3 HTTP/JSON gateway with node's fetch,
# so etcdctl (in the separate etcd-client package) is not needed and not installed.
#
# The machine's etcd service is never left running or enabled: while installing, apt-package.sh puts a
# policy-rc.d in place that refuses every start; then the unit is disabled, and an etcd the package
# started anyway is stopped by its pid (as the service's main pid, or found under the etcd user).
#
# Idempotent: with /usr/bin/etcd present it does nothing. Without root or apt-get it says so and exits
# 0: the etcd tests then skip, saying why.
set -euo pipefail
. "$(dirname "$0")/apt-package.sh"

etcd=/usr/bin/etcd
[ -x "$etcd" ] && exit 0
apt_package install-etcd etcd-server 'the etcd tests skip' "$etcd" || exit 0
log() { apt_package_log "$*"; }

apt_package_disable_service etcd
# Started anyway: stop what the unit did not, by pid, nothing else.
pids=""
if id -u etcd >/dev/null 2>&1; then
  uid="$(id -u etcd)"
  for proc in /proc/[0-9]*; do
    [ "$(cat "$proc/comm" 2>/dev/null)" = etcd ] || continue
    [ "$(stat -c %u "$proc" 2>/dev/null)" = "$uid" ] || continue
    pids="$pids ${proc#/proc/}"
  done
fi
for pid in $pids; do
  log "the package started etcd (pid $pid): stopping it"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
  [ -e "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
done
exit 0
