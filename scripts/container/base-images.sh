#!/usr/bin/env bash
# Local stand-ins for the two base images the Dockerfile names, and for the fleet compose file's etcd,
# for an engine that reaches no image registry. Built from Debian's mirror and this machine, tagged
# under portico-local/:
#   portico-local/debian:bookworm-minbase-<hash>  debootstrap --variant=minbase bookworm (+ libssl3)
#   portico-local/node:<major>-bookworm-slim      that + this machine's node and npm (node.Dockerfile)
#   portico-local/nginx:<version>-bookworm        that + nginx from the pinned tarball, laid out as
#                                                 nginx.org's image is (nginx.Dockerfile)
#   portico-local/etcd:<version>-bookworm         that + etcd and etcdctl from Debian's etcd-server
#                                                 and etcd-client packages, laid out as
#                                                 quay.io/coreos/etcd is (etcd.Dockerfile)
# Each image carries the hash of its inputs (a label, or the tag for the root file system): an image
# whose inputs did not change is kept, so a second run takes seconds. The root file system and the
# nginx build are also kept as tarballs under $CONTAINER_DIR/cache, the etcd packages as .deb files.
#
# Talks to the engine in $DOCKER_HOST (the tests' own, from dockerd.sh), else the machine's. Prints
# the tags as `export NODE_IMAGE=...`, `export NGINX_IMAGE=...` and `export ETCD_IMAGE=...`, the
# Dockerfile's and the compose files' variables: `eval "$(make -s container-images)"` (logs go to
# stderr).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${CONTAINER_DIR:-$repo/var/container}
cache=$dir/cache
base=$repo/docker/base
docker=/usr/bin/docker
suite=bookworm
# libssl3 for nginx (the official image has it too); everything else minbase brings.
includes=libssl3

log() { printf 'base-images: %s\n' "$*" >&2; }
fail() { log "$*"; exit 1; }
sha() { sha256sum | cut -c1-16; }

# shellcheck source=../lib/nginx-source.sh
. "$repo/scripts/lib/nginx-source.sh"

export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
"$docker" version --format '{{.Server.Version}}' >/dev/null || fail "no engine answers on $DOCKER_HOST"
mkdir -p "$cache"
work=$(mktemp -d /tmp/portico-base-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# label_of TAG: the org.portico.inputs label of an image, empty when there is no such image.
label_of() { "$docker" image inspect -f '{{ index .Config.Labels "org.portico.inputs" }}' "$1" 2>/dev/null || true; }

# --- Debian's minimal root file system -----------------------------------------------------------
mirror=$(find_mirror)
[ -n "$mirror" ] || fail "no Debian mirror in /etc/apt/sources* (set NGINX_MIRROR)"
debian_hash=$(printf '%s\n' "$suite" minbase "$includes" "$mirror" | sha)
debian_image=portico-local/debian:$suite-minbase-$debian_hash
if ! "$docker" image inspect "$debian_image" >/dev/null 2>&1; then
  rootfs_tar=$cache/debian-$suite-minbase-$debian_hash.tar
  if [ ! -s "$rootfs_tar" ]; then
    log "debootstrap --variant=minbase $suite from $mirror"
    started=$SECONDS
    debootstrap --variant=minbase --include="$includes" "$suite" "$work/rootfs" "$mirror" \
      > "$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
    # What a slim image leaves out: the downloaded packages, apt's lists, documentation.
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"* \
      "$work/rootfs/usr/share/doc/"* "$work/rootfs/usr/share/man/"* "$work/rootfs/usr/share/info/"*
    tar -C "$work/rootfs" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
    rm -rf "$work/rootfs"
    log "root file system in $((SECONDS - started)) s"
  fi
  "$docker" import --change 'CMD ["bash"]' "$rootfs_tar" "$debian_image" >/dev/null
  log "imported $debian_image"
fi

# --- Node: this machine's node and npm -----------------------------------------------------------
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[ -f "$npm_dir/package.json" ] || fail "cannot find npm's folder (from $(command -v npm))"
node_version=$("$node_bin" --version)
node_major=${node_version#v}
node_major=${node_major%%.*}
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca_bundle" ] || fail "$ca_bundle is missing (apt-get install ca-certificates)"
node_image=portico-local/node:$node_major-bookworm-slim
node_hash=$( { printf '%s\n' "$debian_image" "$node_version"; sha256sum "$node_bin" "$npm_dir/package.json" \
  "$ca_bundle" "$base/node.Dockerfile" | cut -d' ' -f1; } | sha)
if [ "$(label_of "$node_image")" != "$node_hash" ]; then
  ctx=$work/node
  mkdir -p "$ctx"
  cp "$node_bin" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  cp "$ca_bundle" "$ctx/ca-certificates.crt"
  "$docker" build -q -f "$base/node.Dockerfile" --build-arg "DEBIAN_IMAGE=$debian_image" \
    --label "org.portico.inputs=$node_hash" -t "$node_image" "$ctx" >/dev/null
  log "built $node_image (node $node_version, npm $(node -p "require('$npm_dir/package.json').version"))"
fi

# --- nginx: the pinned release, with the official packages' configure arguments ------------------
configure_args=(
  --prefix=/etc/nginx --sbin-path=/usr/sbin/nginx --modules-path=/usr/lib/nginx/modules
  --conf-path=/etc/nginx/nginx.conf --error-log-path=/var/log/nginx/error.log
  --http-log-path=/var/log/nginx/access.log --pid-path=/run/nginx.pid --lock-path=/run/nginx.lock
  --http-client-body-temp-path=/var/cache/nginx/client_temp --http-proxy-temp-path=/var/cache/nginx/proxy_temp
  --http-fastcgi-temp-path=/var/cache/nginx/fastcgi_temp --http-uwsgi-temp-path=/var/cache/nginx/uwsgi_temp
  --http-scgi-temp-path=/var/cache/nginx/scgi_temp --user=nginx --group=nginx
  --with-compat --with-file-aio --with-threads
  --with-http_addition_module --with-http_auth_request_module --with-http_dav_module --with-http_flv_module
  --with-http_gunzip_module --with-http_gzip_static_module --with-http_mp4_module
  --with-http_random_index_module --with-http_realip_module --with-http_secure_link_module
  --with-http_slice_module --with-http_ssl_module --with-http_stub_status_module --with-http_sub_module
  --with-http_v2_module --with-http_v3_module
  --with-mail --with-mail_ssl_module
  --with-stream --with-stream_realip_module --with-stream_ssl_module --with-stream_ssl_preread_module
)
# The image follows the first pin; NGINX_SOURCE_TARBALL (a local copy) is honoured as install-nginx.sh does.
pin_version=$newest_pin
[ -z "${NGINX_SOURCE_TARBALL:-}" ] || pin_version=$(basename -- "$NGINX_SOURCE_TARBALL" | sed -nE 's/^nginx[-_]([0-9.]+[0-9])(\.orig)?\.tar\.(gz|xz)$/\1/p')
build_hash=$( { printf '%s\n' "$debian_image" "$(pin_of "$pin_version")" "${configure_args[@]}"; } | sha)
nginx_image=portico-local/nginx:$pin_version-bookworm
nginx_hash=$( { printf '%s\n' "$build_hash"; sha256sum "$base/nginx.Dockerfile" "$base/nginx.conf" \
  "$base/default.conf" "$base/docker-entrypoint.sh" | cut -d' ' -f1; } | sha)
if [ "$(label_of "$nginx_image")" != "$nginx_hash" ]; then
  build_tar=$cache/nginx-$pin_version-$build_hash.tar
  if [ ! -s "$build_tar" ]; then
    tried=()
    nginx_source_fetch "$work"
    [ -n "$source_tarball" ] || { printf '  - %s\n' "${tried[@]}" >&2; fail "no nginx source could be had"; }
    [ "$source_version" = "$pin_version" ] || fail "wanted nginx $pin_version, the mirror gave $source_version"
    nginx_build_deps || fail "$build_deps_error"
    log "building nginx $source_version (from $source_label) for the image"
    started=$SECONDS
    case $source_tarball in
      *.xz) tar -xJf "$source_tarball" -C "$work" ;;
      *) tar -xzf "$source_tarball" -C "$work" ;;
    esac
    (
      cd "$work/nginx-$source_version"
      ./configure "${configure_args[@]}" --with-cc-opt='-g -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIC' \
        --with-ld-opt='-Wl,-z,relro -Wl,-z,now -Wl,--as-needed -pie' > "$work/configure.log" 2>&1 \
        || { tail -n 30 "$work/configure.log" >&2; exit 1; }
      grep -q 'OpenSSL QUIC compatibility .* found' "$work/configure.log" || { echo "no QUIC compatibility layer" >&2; exit 1; }
      make -j"$(nproc)" > "$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
      make install DESTDIR="$work/stage" > "$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; exit 1; }
    ) || fail "building nginx failed"
    stage=$work/stage
    mkdir -p "$stage/usr/share/nginx" "$stage/usr/lib/nginx/modules" "$stage/etc/nginx/conf.d"
    mv "$stage/etc/nginx/html" "$stage/usr/share/nginx/html"
    rm -f "$stage/etc/nginx/"*.default
    ln -s /usr/lib/nginx/modules "$stage/etc/nginx/modules"
    tar -C "$stage" -cf "$build_tar.part" . && mv "$build_tar.part" "$build_tar"
    log "nginx built in $((SECONDS - started)) s"
  fi
  ctx=$work/nginx
  mkdir -p "$ctx/root"
  tar -C "$ctx/root" -xf "$build_tar"
  install -m 644 "$base/nginx.conf" "$ctx/root/etc/nginx/nginx.conf"
  install -m 644 "$base/default.conf" "$ctx/root/etc/nginx/conf.d/default.conf"
  install -m 755 "$base/docker-entrypoint.sh" "$ctx/root/docker-entrypoint.sh"
  "$docker" build -q -f "$base/nginx.Dockerfile" --build-arg "DEBIAN_IMAGE=$debian_image" \
    --label "org.portico.inputs=$nginx_hash" -t "$nginx_image" "$ctx" >/dev/null
  log "built $nginx_image"
fi

# --- etcd: Debian's etcd-server and etcd-client packages, unpacked -------------------------------
# Downloaded by apt-get from the machine's sources (the mirror debootstrap used), which checks them
# against the signed index; the version is the one apt would install here. Only the two binaries are
# kept: the packages' maintainer scripts make a system user and a systemd unit, which a container
# running etcd as its one process has no use for (the official image runs it as root too).
etcd_version=$(apt-cache policy etcd-server 2>/dev/null | sed -n 's/^  Candidate: //p')
[ -n "$etcd_version" ] && [ "$etcd_version" != '(none)' ] || fail "apt knows no etcd-server package (apt-get update?)"
etcd_upstream=${etcd_version%%-*}
etcd_upstream=${etcd_upstream#*:}
debs=$cache/etcd-$etcd_version
if [ ! -s "$debs/etcd-server.deb" ] || [ ! -s "$debs/etcd-client.deb" ]; then
  mkdir -p "$work/debs"
  # Into a folder the user _apt may reach and write, so that apt downloads sandboxed (not as root).
  chmod 711 "$work"
  chown _apt "$work/debs" 2>/dev/null || true
  (cd "$work/debs" && apt-get download -qq "etcd-server=$etcd_version" "etcd-client=$etcd_version") \
    || fail "apt-get download etcd-server etcd-client ($etcd_version) failed"
  mkdir -p "$debs"
  cp "$work/debs/etcd-server_"*.deb "$debs/etcd-server.deb.part" && mv "$debs/etcd-server.deb.part" "$debs/etcd-server.deb"
  cp "$work/debs/etcd-client_"*.deb "$debs/etcd-client.deb.part" && mv "$debs/etcd-client.deb.part" "$debs/etcd-client.deb"
  log "downloaded etcd-server and etcd-client $etcd_version"
fi
etcd_image=portico-local/etcd:$etcd_upstream-bookworm
etcd_hash=$( { printf '%s\n' "$debian_image" "$etcd_version"; sha256sum "$debs/etcd-server.deb" "$debs/etcd-client.deb" \
  "$base/etcd.Dockerfile" | cut -d' ' -f1; } | sha)
if [ "$(label_of "$etcd_image")" != "$etcd_hash" ]; then
  ctx=$work/etcd
  mkdir -p "$ctx/server" "$ctx/client"
  dpkg-deb -x "$debs/etcd-server.deb" "$ctx/server"
  dpkg-deb -x "$debs/etcd-client.deb" "$ctx/client"
  install -m 755 "$ctx/server/usr/bin/etcd" "$ctx/etcd"
  install -m 755 "$ctx/client/usr/bin/etcdctl" "$ctx/etcdctl"
  rm -rf "$ctx/server" "$ctx/client"
  "$docker" build -q -f "$base/etcd.Dockerfile" --build-arg "DEBIAN_IMAGE=$debian_image" \
    --label "org.portico.inputs=$etcd_hash" -t "$etcd_image" "$ctx" >/dev/null
  log "built $etcd_image (Debian's etcd-server and etcd-client $etcd_version)"
fi

printf 'export NODE_IMAGE=%s\nexport NGINX_IMAGE=%s\nexport ETCD_IMAGE=%s\n' "$node_image" "$nginx_image" "$etcd_image"
