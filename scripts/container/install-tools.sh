#!/usr/bin/env bash
# Ensure what the container tests run: Debian's Docker engine (docker.io: dockerd, containerd, runc,
# and its client /usr/bin/docker), tini (docker.io's `--init` is a link to tini-static, which the
# package only recommends), docker-compose (1.29, the compose file's first user here) and debootstrap
# (the base images' root file system). iptables comes with docker.io.
#
# Idempotent: installs, as root and without upgrading anything, only the packages that are missing.
# It never starts the machine's Docker service (scripts/container/dockerd.sh runs the tests' own).
set -euo pipefail

log() { printf 'install-container-tools: %s\n' "$*" >&2; }

packages=(docker.io tini docker-compose debootstrap)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]}, and installing them needs root and apt-get"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d answering 101 keeps the packages' scripts from starting the machine's own dockerd
  # and containerd where an init system would let them.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  status=0
  { apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null; }; } \
    || status=$?
  [ -z "$made_policy" ] || rm -f "$policy"
  [ "$status" -eq 0 ] || { log "apt-get failed ($status)"; exit "$status"; }
fi

for tool in /usr/sbin/dockerd /usr/bin/docker /usr/bin/docker-init /usr/bin/docker-compose /usr/sbin/debootstrap; do
  [ -x "$tool" ] || { log "$tool is missing after the install"; exit 1; }
done
log "$(/usr/bin/docker --version), $(/usr/bin/docker-compose --version 2>/dev/null), debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
