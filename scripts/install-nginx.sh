#!/usr/bin/env bash
# Ensure an nginx that Portico can drive: version >= 1.25 with HTTP/3, HTTP/2, TLS and the stream
# modules. Uses $NGINX_BIN or an nginx on PATH when it qualifies; otherwise builds nginx from Debian
# 13's source package into $NGINX_PREFIX (default /opt/portico/nginx, or ./.nginx when /opt is not
# writable), linked against this machine's OpenSSL 3.0.
#
# Idempotent: with a good binary present it does nothing but print it. The path of the chosen binary
# is written to the file named by $NGINX_BIN_FILE (default .nginx-bin in the repository) so that the
# Makefile can hand it to Portico as NGINX_BIN.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bin_file=${NGINX_BIN_FILE:-$repo/.nginx-bin}
if [ -z "${NGINX_PREFIX:-}" ]; then
  if mkdir -p /opt/portico 2>/dev/null && [ -w /opt/portico ]; then
    NGINX_PREFIX=/opt/portico/nginx
  else
    NGINX_PREFIX=$repo/.nginx
  fi
fi
required_modules=(http_v3_module http_v2_module http_ssl_module stream stream_ssl_module
  stream_ssl_preread_module stream_realip_module)

log() { printf 'install-nginx: %s\n' "$*" >&2; }

# qualifies BIN: exit 0 when BIN is nginx >= 1.25 built with every required module.
qualifies() {
  local bin=$1 info version major minor m
  [ -x "$bin" ] || return 1
  info=$("$bin" -V 2>&1) || return 1
  version=$(printf '%s\n' "$info" | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p')
  [ -n "$version" ] || return 1
  major=${version%%.*}; minor=${version#*.}; minor=${minor%%.*}
  if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 25 ]; }; then return 1; fi
  for m in "${required_modules[@]}"; do
    # A module built "=dynamic" is not loaded unless the config says so: only a static one counts.
    printf '%s\n' "$info" | grep -Eq -- "--with-$m( |\$)" || return 1
  done
}

report() {
  local bin=$1
  printf '%s\n' "$bin" > "$bin_file"
  log "using $bin"
  "$bin" -V 2>&1 | sed -n '1p' >&2
  "$bin" -V 2>&1 | grep -o -- '--with-[a-z0-9_-]*' | sed 's/--with-//' | tr '\n' ' ' | sed 's/^/modules: /' >&2
  printf '\n' >&2
}

for candidate in "${NGINX_BIN:-}" "$(command -v nginx 2>/dev/null || true)" "$NGINX_PREFIX/sbin/nginx"; do
  if [ -n "$candidate" ] && qualifies "$candidate"; then
    report "$candidate"
    exit 0
  fi
done

if [ "$(id -u)" -ne 0 ]; then
  log "no qualifying nginx found and building one needs root for apt-get (run as root, or set NGINX_BIN)"
  exit 1
fi

log "no nginx >= 1.25 with HTTP/3 and stream modules found: building one into $NGINX_PREFIX"
export DEBIAN_FRONTEND=noninteractive

# A deb-src-only entry: a binary trixie entry would let apt pull trixie's libc into this bookworm machine.
mirror=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | head -n1 | awk '{print $2}')
if [ -z "$mirror" ]; then
  mirror=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+/debian/?[[:space:]]' \
    /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $NF}')
fi
[ -n "$mirror" ] || { log "cannot find the Debian mirror in /etc/apt/sources*"; exit 1; }
cat > /etc/apt/sources.list.d/portico-trixie-src.sources <<SRC
Types: deb-src
URIs: ${mirror%/}
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt-get update -qq
apt-get install -y -qq --no-install-recommends --no-upgrade build-essential libpcre2-dev libssl-dev \
  zlib1g-dev >/dev/null

work=$(mktemp -d /tmp/portico-nginx-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source -qq --download-only nginx/trixie >/dev/null 2>&1 || apt-get source -qq --download-only nginx/trixie)
tarball=$(ls "$work"/nginx_*.orig.tar.gz | head -n1)
[ -n "$tarball" ] || { log "apt-get source nginx/trixie brought no upstream tarball"; exit 1; }
tar -xzf "$tarball" -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'nginx-*' | head -n1)
cd "$src"
./configure --prefix="$NGINX_PREFIX" \
  --with-threads --with-file-aio \
  --with-http_ssl_module --with-http_v2_module --with-http_v3_module --with-http_realip_module \
  --with-http_stub_status_module \
  --with-stream --with-stream_ssl_module --with-stream_ssl_preread_module --with-stream_realip_module \
  > "$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log" >&2; exit 1; }
grep -q 'OpenSSL QUIC compatibility .* found' "$work/configure.log" \
  || { log "configure did not find OpenSSL QUIC compatibility"; grep -i quic "$work/configure.log" >&2; exit 1; }
log "$(grep 'OpenSSL QUIC compatibility' "$work/configure.log" | head -n1)"
make -j"$(nproc)" > "$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
make install > "$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; exit 1; }
qualifies "$NGINX_PREFIX/sbin/nginx" || { log "the built nginx does not qualify"; exit 1; }
report "$NGINX_PREFIX/sbin/nginx"
