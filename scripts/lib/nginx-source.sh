# nginx's release source, pinned: sourced by scripts/install-nginx.sh (the nginx Portico runs on a
# host) and scripts/container/base-images.sh (the stand-in for nginx.org's image), so both build the
# same release from the same checked tarball. Needs a `log` function from the script that sources it.

# The pinned sources, newest first: version, file in the mirror's pool/main/n/nginx/, sha256 of that
# file, and sha256 of the tar inside it (which also pins nginx.org's nginx-x.y.z.tar.gz of the same
# release where Debian only recompressed it, so a local copy from either place can be checked).
# The checksums were taken from the files the mirror served on 2026-12-03; 1.26.3's file checksum is
# also the one trixie's source index lists. No index lists 1.30.4 or 1.28.x, hence pins of our own.
pins=(
  "1.30.4 nginx_1.30.4.orig.tar.xz c069474bbe03be87917fdcad353c33d1a04e693a66fb74a822e06f5b3552cc21 6c14feef41db9edbf2d00b43afded268fde8532ffe9d62a998f15783c61f5565"
  "1.28.2 nginx_1.28.2.orig.tar.xz 01e6e10bd6a2bdf19286c37efe39cc0b21acaad6b72fddef741de3d1e551dba9 7f9c708ad9df94bebbeba2891e5d9370e7452d58c0ed3cb85f898c441816d223"
  "1.26.3 nginx_1.26.3.orig.tar.gz 69ee2b237744036e61d24b836668aad3040dda461fe6f570f1787eab570c75aa bd6048ba34c556a903e83325e5cb74ed0daa32f5a9349d1dbbb6bdbc755b66c1"
)
newest_pin=${pins[0]%% *}

# pin_of VERSION: the pins line of VERSION, empty when it is not pinned.
pin_of() {
  local p
  for p in "${pins[@]}"; do [ "${p%% *}" = "$1" ] && { printf '%s\n' "$p"; return; }; done
  return 0
}

# tar_sha256 FILE: sha256 of the tar inside a .tar.gz or .tar.xz.
tar_sha256() {
  case $1 in
    *.xz) xz -dc -- "$1" ;;
    *) gzip -dc -- "$1" ;;
  esac | sha256sum | cut -d' ' -f1
}

# matches_pin FILE VERSION: exit 0 when FILE is the pinned release VERSION (the file or its tar).
matches_pin() {
  local pin file_sum tar_sum
  pin=$(pin_of "$2")
  read -r _ _ file_sum tar_sum <<< "$pin"
  [ "$(sha256sum -- "$1" | cut -d' ' -f1)" = "$file_sum" ] && return 0
  [ "$(tar_sha256 "$1" 2>/dev/null)" = "$tar_sum" ]
}

# The mirror: $NGINX_MIRROR, or the Debian URI of this machine's apt sources (deb822 or one-line).
find_mirror() {
  local m=${NGINX_MIRROR:-}
  if [ -z "$m" ]; then
    m=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null \
      | head -n1 | awk '{print $2}' || true)
  fi
  if [ -z "$m" ]; then
    m=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+/debian/?[[:space:]]' \
      /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $NF}' || true)
  fi
  printf '%s\n' "${m%/}"
}

# nginx_source_fetch DIR: finds the source, downloading into DIR when it comes from the mirror. Sets
# source_tarball (empty when none could be had), source_version and source_label, and adds each
# failed try with its reason to the array `tried`.
nginx_source_fetch() {
  local work=$1 file version mirror pin name url err
  source_tarball=
  source_version=
  source_label=
  if [ -n "${NGINX_SOURCE_TARBALL:-}" ]; then
    file=$NGINX_SOURCE_TARBALL
    version=$(basename -- "$file" | sed -nE 's/^nginx[-_]([0-9]+\.[0-9]+\.[0-9]+)(\.orig)?\.tar\.(gz|xz)$/\1/p')
    if [ ! -r "$file" ]; then
      tried+=("NGINX_SOURCE_TARBALL=$file: cannot read it")
    elif [ -z "$version" ]; then
      tried+=("NGINX_SOURCE_TARBALL=$file: not named nginx-X.Y.Z.tar.gz or nginx_X.Y.Z.orig.tar.xz, so its version is unknown")
    elif [ -n "$(pin_of "$version")" ] && ! matches_pin "$file" "$version"; then
      tried+=("NGINX_SOURCE_TARBALL=$file: its sha256 differs from the pin of nginx $version (not unpacked)")
    else
      [ -n "$(pin_of "$version")" ] || log "nginx $version is not pinned: building $file unchecked"
      source_tarball=$file
      source_version=$version
      source_label=$file
    fi
  else
    mirror=$(find_mirror)
    if [ -z "$mirror" ]; then
      tried+=("the Debian mirror: none found in /etc/apt/sources* (set NGINX_MIRROR)")
    elif ! command -v curl >/dev/null 2>&1; then
      tried+=("$mirror: curl is not installed (apt-get install curl)")
    else
      for pin in "${pins[@]}"; do
        read -r version name _ _ <<< "$pin"
        url=$mirror/pool/main/n/nginx/$name
        log "fetching $url"
        if ! err=$(curl -fsS --connect-timeout 10 --max-time 300 --retry 2 -o "$work/$name" "$url" 2>&1); then
          tried+=("$url: ${err:-download failed}")
          continue
        fi
        if ! matches_pin "$work/$name" "$version"; then
          tried+=("$url: sha256 $(sha256sum -- "$work/$name" | cut -d' ' -f1) differs from its pin (not unpacked)")
          rm -f -- "$work/$name"
          continue
        fi
        source_tarball=$work/$name
        source_version=$version
        source_label=$url
        break
      done
    fi
  fi

}

# nginx_build_deps: installs what building nginx needs and is missing (apt-get, and its update, only
# then). Returns 1 with the reason in build_deps_error when it cannot.
nginx_build_deps() {
  local pkg missing=() build_deps=(build-essential libpcre2-dev libssl-dev zlib1g-dev xz-utils)
  build_deps_error=
  for pkg in "${build_deps[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    build_deps_error="building nginx needs ${missing[*]}, and installing them needs root and apt-get (or set NGINX_BIN)"
    return 1
  fi
  log "installing the build dependencies: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}" >/dev/null
}
