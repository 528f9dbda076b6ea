#!/usr/bin/env bash
# Ensure an nginx that Portico can drive: version >= 1.27.4 (for keepalive_min_timeout) with HTTP/3,
# HTTP/2, TLS and the stream modules. Uses $NGINX_BIN or an nginx on PATH when it qualifies; otherwise
# builds nginx from Debian forky's source package (nginx 1.30) into $NGINX_PREFIX (default
# /opt/portico/nginx, or ./.nginx when /opt is not writable), linked against this machine's OpenSSL.
# When forky's source cannot be downloaded, an nginx >= 1.25 (what Portico needs at the least) will do,
# with a warning: one already there, or else one built from Debian 13 (trixie)'s source package.
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

# 1.27.4 brought keepalive_min_timeout, which keeps idle keep-alive clients from being cut at a reload.
min_version=1.27.4
# The least Portico runs with (HTTP/3): accepted, with a warning, only when no newer one can be had.
floor_version=1.25.0

# version_at_least A B: exit 0 when dotted version A >= B (three numeric parts, missing ones are 0).
version_at_least() {
  local a b i x y
  IFS=. read -r -a a <<< "$1"
  IFS=. read -r -a b <<< "$2"
  for i in 0 1 2; do
    x=${a[i]:-0}; y=${b[i]:-0}
    if [ "$x" -gt "$y" ]; then return 0; fi
    if [ "$x" -lt "$y" ]; then return 1; fi
  done
}

# qualifies BIN [MIN]: exit 0 when BIN is nginx >= MIN (default $min_version) built with every required module.
qualifies() {
  local bin=$1 min=${2:-$min_version} info version m
  [ -x "$bin" ] || return 1
  info=$("$bin" -V 2>&1) || return 1
  version=$(printf '%s\n' "$info" | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p')
  [ -n "$version" ] || return 1
  version_at_least "$version" "$min" || return 1
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

candidates=("${NGINX_BIN:-}" "$(command -v nginx 2>/dev/null || true)" "$NGINX_PREFIX/sbin/nginx")
for candidate in "${candidates[@]}"; do
  if [ -n "$candidate" ] && qualifies "$candidate"; then
    report "$candidate"
    exit 0
  fi
done

# settle_for_older: use an nginx >= $floor_version already there, with a warning; exit 1 when there is none.
settle_for_older() {
  local candidate
  for candidate in "${candidates[@]}"; do
    if [ -n "$candidate" ] && qualifies "$candidate" "$floor_version"; then
      log "WARNING: $1; using an nginx older than $min_version: no keepalive_min_timeout, so a keep-alive request" \
        "sent at the instant of a reload may be reset (clients retry it)"
      report "$candidate"
      exit 0
    fi
  done
  return 1
}

if [ "$(id -u)" -ne 0 ]; then
  settle_for_older "building nginx $min_version needs root for apt-get" \
    || { log "no qualifying nginx found and building one needs root for apt-get (run as root, or set NGINX_BIN)"; exit 1; }
fi

log "no nginx >= $min_version with HTTP/3 and stream modules found: building one into $NGINX_PREFIX"
export DEBIAN_FRONTEND=noninteractive

# A deb-src-only entry: a binary forky entry would let apt pull forky's libc into this machine.
mirror=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | head -n1 | awk '{print $2}')
if [ -z "$mirror" ]; then
  mirror=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+/debian/?[[:space:]]' \
    /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $NF}')
fi
[ -n "$mirror" ] || { log "cannot find the Debian mirror in /etc/apt/sources*"; exit 1; }
# An earlier version of this script wrote a trixie-only entry; trixie is now the fallback, listed here.
rm -f /etc/apt/sources.list.d/portico-trixie-src.sources
cat > /etc/apt/sources.list.d/portico-src.sources <<SRC
Types: deb-src
URIs: ${mirror%/}
Suites: forky trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt-get update -qq
apt-get install -y -qq --no-install-recommends --no-upgrade build-essential libpcre2-dev libssl-dev \
  zlib1g-dev >/dev/null

work=$(mktemp -d /tmp/portico-nginx-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
# fetch_source SUITE: download nginx's source package from SUITE into $work; exit 1 when it cannot.
fetch_source() {
  rm -f "$work"/nginx_*
  (cd "$work" && apt-get source -qq --download-only "nginx/$1" >/dev/null 2>&1 || apt-get source -qq --download-only "nginx/$1" >&2) \
    && ls "$work"/nginx_*.orig.tar.* >/dev/null 2>&1
}
built_min=$min_version
if ! fetch_source forky; then
  # The index may list a version whose files the mirror does not (yet, or any longer) serve.
  settle_for_older "apt-get source nginx/forky failed (the mirror does not serve its files)" || true
  log "WARNING: apt-get source nginx/forky failed; building Debian 13 (trixie)'s nginx instead"
  fetch_source trixie || { log "apt-get source nginx/trixie failed too"; exit 1; }
  built_min=$floor_version
fi
tarball=$(ls "$work"/nginx_*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n1 || true)
[ -n "$tarball" ] || { log "apt-get source brought no upstream tarball"; exit 1; }
tar -xf "$tarball" -C "$work"
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
qualifies "$NGINX_PREFIX/sbin/nginx" "$built_min" || { log "the built nginx does not qualify"; exit 1; }
report "$NGINX_PREFIX/sbin/nginx"
