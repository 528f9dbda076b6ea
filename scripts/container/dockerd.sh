#!/usr/bin/env bash
# The container tests' own Docker engine: Debian's dockerd, run as root with its data root, exec root,
# socket and pid file under $CONTAINER_DIR (default var/container in the repository, git-ignored), and
# its default bridge on a bridge of its own. Never the machine's engine: it refuses to start beside a
# dockerd it did not start, since two engines in one network namespace would rewrite each other's
# iptables chains.
#
#   scripts/container/dockerd.sh start   starts it (waits until it answers) and prints DOCKER_HOST=...
#   scripts/container/dockerd.sh stop    stops it by pid (SIGTERM, then SIGKILL after 30 s), removes
#                                        its bridge, and takes back what dockerd changed in the host's
#                                        network set-up: its iptables rules and chains, the FORWARD
#                                        policy it sets to DROP, and net.ipv4.ip_forward
#   scripts/container/dockerd.sh env     prints DOCKER_HOST=... for a running one
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${CONTAINER_DIR:-$repo/var/container}
engine=$dir/engine
pid_file=$engine/dockerd.pid
socket=$engine/docker.sock
# The default bridge: a name and a subnet of its own, so that nothing here is docker0's, and published
# ports bind to 127.0.0.1 only (the tests pass -p 127.0.0.1:...).
bridge=${PORTICO_DOCKER_BRIDGE:-portico-dk0}
bridge_cidr=${PORTICO_DOCKER_BRIDGE_CIDR:-10.213.0.1/24}
# Networks that compose creates: carved from a pool of the same private range.
pool_base=${PORTICO_DOCKER_POOL:-10.213.128.0/17}
docker=/usr/bin/docker

log() { printf 'dockerd.sh: %s\n' "$*" >&2; }

running_pid() {
  local pid
  pid=$(cat "$pid_file" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && printf '%s\n' "$pid"
}

answers() { DOCKER_HOST=unix://$socket "$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start() {
  if pid=$(running_pid); then
    answers || { log "dockerd $pid runs but does not answer on $socket"; exit 1; }
    printf 'DOCKER_HOST=unix://%s\n' "$socket"
    return
  fi
  local other
  other=$(pgrep -x dockerd || true)
  if [ -n "$other" ]; then
    log "another dockerd runs here (pid $other): the tests start their own engine and will not share a network namespace with it; stop it first"
    exit 1
  fi
  [ "$(id -u)" -eq 0 ] || { log "dockerd needs root"; exit 1; }
  command -v dockerd >/dev/null || { log "no dockerd: run scripts/container/install-tools.sh"; exit 1; }
  mkdir -p "$engine/data" "$engine/exec"
  # What dockerd will change and `stop` gives back.
  if [ ! -f "$engine/host-network" ]; then
    printf 'ip_forward=%s\nforward_policy=%s\n' "$(cat /proc/sys/net/ipv4/ip_forward)" \
      "$(iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p')" > "$engine/host-network"
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add name "$bridge" type bridge
    ip addr add "$bridge_cidr" dev "$bridge"
    ip link set "$bridge" up
  fi
  # setsid: its own session, so that a test run's Ctrl-C reaches it only through `stop`.
  setsid dockerd \
    --data-root "$engine/data" \
    --exec-root "$engine/exec" \
    --host "unix://$socket" \
    --pidfile "$pid_file" \
    --storage-driver overlay2 \
    --bridge "$bridge" \
    --default-address-pool "base=$pool_base,size=24" \
    --ip 127.0.0.1 \
    --log-level warn \
    > "$engine/dockerd.log" 2>&1 < /dev/null &
  local launched=$! i
  for i in $(seq 1 150); do
    answers && break
    kill -0 "$launched" 2>/dev/null || { tail -n 20 "$engine/dockerd.log" >&2; log "dockerd exited"; exit 1; }
    sleep 0.2
  done
  answers || { tail -n 20 "$engine/dockerd.log" >&2; log "dockerd did not answer within 30 s"; stop; exit 1; }
  log "dockerd $(cat "$pid_file") on $socket ($("$docker" -H "unix://$socket" version --format '{{.Server.Version}}'))"
  printf 'DOCKER_HOST=unix://%s\n' "$socket"
}

stop() {
  local pid i
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for i in $(seq 1 150); do
      [ -d "/proc/$pid" ] || break
      sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
      log "dockerd $pid still runs after 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # The containerd dockerd started, in case it outlived its parent.
  local containerd_pid
  containerd_pid=$(cat "$engine/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [ -n "$containerd_pid" ] && [ -d "/proc/$containerd_pid" ] && [ "$(cat "/proc/$containerd_pid/comm")" = containerd ]; then
    kill -TERM "$containerd_pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  ip link del "$bridge" 2>/dev/null || true
  restore_host_network
}

# Removes dockerd's iptables chains and every rule naming them or this engine's bridge and subnets,
# keeping everyone else's rules, and restores the FORWARD policy and ip_forward as they were.
restore_host_network() {
  local saved=$engine/host-network table ip_forward forward_policy
  # The bridge's and the pool's addresses share their first two octets (10.213. by default).
  local ours
  ours=$(printf '%s' "$bridge_cidr" | cut -d. -f1-2 | sed 's/\./\\./g')
  [ -f "$saved" ] || return 0
  ip_forward=$(sed -n 's/^ip_forward=//p' "$saved")
  forward_policy=$(sed -n 's/^forward_policy=//p' "$saved")
  if command -v iptables-save >/dev/null && command -v iptables-restore >/dev/null; then
    for table in filter nat; do
      iptables-save -c -t "$table" \
        | grep -v -e 'DOCKER' -e "$bridge" -e "-s $ours\\." \
        | sed "s/^:FORWARD [A-Z]* /:FORWARD ${forward_policy:-ACCEPT} /" \
        | iptables-restore -c -T "$table" || log "could not restore the iptables table $table"
    done
  fi
  [ -z "$ip_forward" ] || printf '%s\n' "$ip_forward" > /proc/sys/net/ipv4/ip_forward
  rm -f "$saved"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  env)
    running_pid >/dev/null || { log "not running"; exit 1; }
    printf 'DOCKER_HOST=unix://%s\n' "$socket"
    ;;
  *) log "usage: $0 start|stop|env"; exit 2 ;;
esac
