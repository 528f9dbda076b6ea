#!/usr/bin/env bash
# `make test-container`: the container image, the compose sidecar and the compose fleet (etcd and two
# nodes), through a real Docker engine.
# Installs what is missing (scripts/container/install-tools.sh), starts the tests' own dockerd
# (dockerd.sh: never the machine's), builds or reuses the local base images (base-images.sh), runs
# test/container/*.test.ts one file at a time (they publish the same fixed ports, as the README's
# commands do), and stops the engine by pid however the tests end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
export CONTAINER_DIR=${CONTAINER_DIR:-$repo/var/container}

scripts/container/install-tools.sh
started=$SECONDS
engine=$(scripts/container/dockerd.sh start)
trap 'scripts/container/dockerd.sh stop' EXIT
export "${engine?}"
# As the README tells a user on a machine without a registry (captured first: a failure inside eval's
# argument would go unnoticed).
images=$(make -s container-images)
eval "$images"
[ -n "${NODE_IMAGE:-}" ] && [ -n "${NGINX_IMAGE:-}" ] && [ -n "${ETCD_IMAGE:-}" ] || { echo "test-container: no base images" >&2; exit 1; }
printf 'test-container: engine and base images ready in %d s\n' "$((SECONDS - started))" >&2

# The README's commands run with Debian's client first on PATH (/usr/local/bin may hold another), the
# data plane published on loopback only, and the local base images in NODE_IMAGE, NGINX_IMAGE and
# ETCD_IMAGE (the fleet's nodes publish theirs on 127.0.0.11 and 127.0.0.12, its compose file's defaults).
export PATH=/usr/bin:$PATH PUBLISH_ADDRESS=127.0.0.1
# The README's commands take the API's token from the shell; the tests send it. The fleet's compose
# file takes FLEET_SECRET from there too (at least 32 characters, as `openssl rand -base64 32` gives).
API_TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
FLEET_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export API_TOKEN FLEET_SECRET
node --import tsx --test --test-reporter=spec --test-concurrency=1 test/container/*.test.ts
