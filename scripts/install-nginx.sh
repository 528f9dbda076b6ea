#!/usr/bin/env bash
# Ensure an nginx that Portico can drive: version >= 1.25 with HTTP/3, HTTP/2, TLS and the stream
# modules, built with each of them static.
#
# Takes $NGINX_BIN or an nginx on PATH as it is when it qualifies. Otherwise builds nginx into
# $NGINX_PREFIX (default /opt/portico/nginx, or ./.nginx when /opt is not writable) from nginx's own
# release tarball, linked against this machine's OpenSSL 3.0 (about 45 s on 2 cores, once).
#
# Where the source comes from, in order:
#   1. $NGINX_SOURCE_TARBALL, a local nginx-x.y.z.tar.gz (or Debian's nginx_x.y.z.orig.tar.*), for a
#      machine that cannot reach the mirror. A pinned version must match its pin.
#   2. The pinned tarballs below, newest first, fetched with curl from the Debian mirror's pool
#      (the mirror of this machine's apt sources, or $NGINX_MIRROR). Debian's `.orig` tarball is
#      nginx's own release; the build needs none of Debian's packaging, and no index has to list it.
# A tarball is unpacked only after its sha256 matched its pin.
#
# An nginx this script built earlier ($NGINX_PREFIX/sbin/nginx) that is older than the first pin is
# rebuilt once (the attempt is recorded in $NGINX_PREFIX/portico-build.txt), so a machine moves to the
# newest pin without being asked; if that rebuild finds no source, the old nginx is kept.
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
build_record=$NGINX_PREFIX/portico-build.txt
required_modules=(http_v3_module http_v2_module http_ssl_module stream stream_ssl_module
  stream_ssl_preread_module stream_realip_module)

# The pinned sources and how to fetch and check one: shared with the container image build.
# shellcheck source=lib/nginx-source.sh
. "$repo/scripts/lib/nginx-source.sh"

log() { printf 'install-nginx: %s\n' "$*" >&2; }

# version_of BIN: nginx's version, e.g. 1.30.4 (empty when BIN is not an nginx that runs).
version_of() { "$1" -v 2>&1 | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p'; }

# older A B: exit 0 when version A sorts before version B.
older() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

# qualifies BIN: exit 0 when BIN is nginx >= 1.25 built with every required module.
qualifies() {
  local bin=$1 info version m
  [ -x "$bin" ] || return 1
  info=$("$bin" -V 2>&1) || return 1
  version=$(version_of "$bin")
  [ -n "$version" ] || return 1
  older "$version" 1.25 && return 1
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

# The old script's deb-src entry for trixie: no longer used, and every apt-get update paid for it.
if [ -f /etc/apt/sources.list.d/portico-trixie-src.sources ] && [ -w /etc/apt/sources.list.d ]; then
  rm -f /etc/apt/sources.list.d/portico-trixie-src.sources
  log "removed /etc/apt/sources.list.d/portico-trixie-src.sources (written by an older install-nginx.sh)"
fi

for candidate in "${NGINX_BIN:-}" "$(command -v nginx 2>/dev/null || true)"; do
  if [ -n "$candidate" ] && qualifies "$candidate"; then
    report "$candidate"
    exit 0
  fi
done

own=$NGINX_PREFIX/sbin/nginx
keep_own=
if qualifies "$own"; then
  own_version=$(version_of "$own")
  if ! older "$own_version" "$newest_pin"; then
    report "$own"
    exit 0
  fi
  if grep -qx "attempted=$newest_pin" "$build_record" 2>/dev/null; then
    log "$own is nginx $own_version; building $newest_pin was tried once already ($build_record): keeping it"
    report "$own"
    exit 0
  fi
  log "$own is nginx $own_version, older than $newest_pin: rebuilding it once"
  keep_own=$own
else
  log "no nginx >= 1.25 with HTTP/3 and stream modules found: building one into $NGINX_PREFIX"
fi

# give_up MESSAGE: keep an older nginx of ours when there is one, otherwise fail with what to do.
give_up() {
  if [ -n "$keep_own" ]; then
    log "$1; keeping $keep_own (remove $build_record to try again)"
    if [ -z "${NGINX_SOURCE_TARBALL:-}" ]; then
      mkdir -p "$NGINX_PREFIX" && printf 'attempted=%s\n' "$newest_pin" >> "$build_record" || true
    fi
    report "$keep_own"
    exit 0
  fi
  log "$1"
  exit 1
}

work=$(mktemp -d /tmp/portico-nginx-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
tried=()

nginx_source_fetch "$work"

if [ -z "$source_tarball" ]; then
  {
    printf 'no nginx source could be had. Tried:\n'
    printf '  - %s\n' "${tried[@]}"
    printf 'What you can do:\n'
    printf '  - NGINX_BIN=/path/to/nginx: an nginx >= 1.25 built with %s\n' "${required_modules[*]}"
    printf '  - NGINX_SOURCE_TARBALL=/path/to/nginx-%s.tar.gz: a local copy of nginx'"'"'s release\n' "$newest_pin"
    printf '  - NGINX_MIRROR=http://host/debian: a Debian mirror whose pool serves %s\n' "${pins[0]#* }"
  } > "$work/why"
  give_up "$(cat "$work/why")"
fi
log "nginx $source_version from $source_label, sha256 $(sha256sum -- "$source_tarball" | cut -d' ' -f1)"

nginx_build_deps || give_up "$build_deps_error"

case $source_tarball in
  *.xz) tar -xJf "$source_tarball" -C "$work" ;;
  *) tar -xzf "$source_tarball" -C "$work" ;;
esac
src=$work/nginx-$source_version
[ -f "$src/configure" ] || give_up "$source_tarball holds no nginx-$source_version/configure"
cd "$src"
mkdir -p "$NGINX_PREFIX"
# A build from the pins is the one attempt at the newest pin; one from a local tarball is the user's
# choice and leaves the next run free to try the pins once.
attempt=
[ -n "${NGINX_SOURCE_TARBALL:-}" ] || attempt="attempted=$newest_pin"
printf '%s\n' "$attempt" > "$build_record"
./configure --prefix="$NGINX_PREFIX" \
  --with-threads --with-file-aio \
  --with-http_ssl_module --with-http_v2_module --with-http_v3_module --with-http_realip_module \
  --with-http_stub_status_module \
  --with-stream --with-stream_ssl_module --with-stream_ssl_preread_module --with-stream_realip_module \
  > "$work/configure.log" 2>&1 || { tail -n 30 "$work/configure.log" >&2; give_up "configure failed"; }
# Against OpenSSL 3.0 (Debian 12's), QUIC works through nginx's compatibility layer, which configure
# reports; without it the build would lack HTTP/3 in all but name.
grep -q 'OpenSSL QUIC compatibility .* found' "$work/configure.log" \
  || { grep -i quic "$work/configure.log" >&2; give_up "configure did not find OpenSSL QUIC compatibility"; }
log "$(grep 'OpenSSL QUIC compatibility' "$work/configure.log" | head -n1)"
make -j"$(nproc)" > "$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; give_up "make failed"; }
make install > "$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; give_up "make install failed"; }
qualifies "$own" || give_up "the built nginx does not qualify"
printf '%s\nbuilt=%s\nsource=%s\nsha256=%s\n' "$attempt" "$source_version" \
  "$source_label" "$(sha256sum -- "$source_tarball" | cut -d' ' -f1)" > "$build_record"
report "$own"
