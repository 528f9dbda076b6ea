#!/usr/bin/env bash
# Proves the install path the way a fresh machine sees it, so a broken download, pin or build step
# fails here (CI runs it on every run) and not on a new user's machine: runs install-nginx.sh into a
# throwaway prefix with NGINX_BIN and NGINX_SOURCE_TARBALL unset and no nginx on PATH, then checks
# that it built the newest pinned version with every module Portico needs, and that the binary
# accepts a config using them (an HTTP/3 listener, HTTP/2, and a stream with SNI preread and TLS).
# The prefix is removed afterwards; the machine's own nginx and .nginx-bin are left as they were.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/portico-check-install.XXXXXX)
trap 'rm -rf "$work"' EXIT

log() { printf 'check-install: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# PATH without any folder that holds an nginx: the script must not find one to reuse.
clean_path=
IFS=: read -r -a dirs <<< "$PATH"
for dir in "${dirs[@]}"; do
  [ -n "$dir" ] && [ ! -e "$dir/nginx" ] && clean_path=${clean_path:+$clean_path:}$dir
done

expected=$(sed -n 's/^  "\([0-9][0-9.]*\) nginx_.*"$/\1/p' "$repo/scripts/lib/nginx-source.sh" | head -n1)
[ -n "$expected" ] || fail "cannot read the first pin of scripts/lib/nginx-source.sh"

prefix=$work/nginx
log "installing into $prefix as a fresh machine would (expecting nginx $expected)"
started=$SECONDS
env -u NGINX_BIN -u NGINX_SOURCE_TARBALL -u NGINX_MIRROR PATH="$clean_path" \
  NGINX_PREFIX="$prefix" NGINX_BIN_FILE="$work/nginx-bin" "$repo/scripts/install-nginx.sh" \
  || fail "scripts/install-nginx.sh exited with $?"
log "installed in $((SECONDS - started)) s"

bin=$prefix/sbin/nginx
[ "$(cat "$work/nginx-bin")" = "$bin" ] || fail "the script chose $(cat "$work/nginx-bin"), not a build of its own in $prefix"
info=$("$bin" -V 2>&1)
version=$(printf '%s\n' "$info" | sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p')
[ "$version" = "$expected" ] || fail "built nginx $version, expected $expected"
for m in http_v3_module http_v2_module http_ssl_module stream stream_ssl_module stream_ssl_preread_module \
  stream_realip_module; do
  printf '%s\n' "$info" | grep -Eq -- "--with-$m( |\$)" || fail "nginx $version lacks --with-$m"
done
grep -qx "built=$expected" "$prefix/portico-build.txt" || fail "$prefix/portico-build.txt does not record the build"

certs=$repo/test/fixtures/certs
mkdir -p "$work/run/logs"
cat > "$work/run/nginx.conf" <<CONF
error_log $work/run/logs/error.log;
pid $work/run/nginx.pid;
events {}
http {
  access_log off;
  server {
    listen 127.0.0.1:8443 ssl;
    listen 127.0.0.1:8443 quic reuseport;
    http2 on;
    ssl_certificate $certs/a.crt;
    ssl_certificate_key $certs/a.key;
    add_header Alt-Svc 'h3=":8443"; ma=60';
    return 204;
  }
}
stream {
  map \$ssl_preread_server_name \$backend { default 127.0.0.1:9; }
  server { listen 127.0.0.1:9443; ssl_preread on; proxy_pass \$backend; }
}
CONF
"$bin" -t -p "$work/run" -c "$work/run/nginx.conf" 2> "$work/t.log" || { cat "$work/t.log" >&2; fail "nginx -t refused an HTTP/3 + stream config"; }
log "ok: nginx $version built from its pinned source with every module; nginx -t accepts HTTP/3, HTTP/2 and stream SNI preread"
