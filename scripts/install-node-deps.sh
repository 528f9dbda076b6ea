#!/usr/bin/env bash
# Installs Node.js (>= 20) if it is missing and the project's node modules with `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-node-deps: installing Node.js from Debian's packages" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
fi
if [ "$(node_major)" -lt 20 ]; then
  echo "install-node-deps: Portico needs Node.js 20 or later; found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
