# Sourced by the install-*.sh scripts: installs one Debian package for the tools a test or the
# benchmark runs itself, never letting the package start a service of its own.
#
#   apt_package NAME PACKAGE WHY_SKIPPED BINARY...
#
# With every BINARY present it returns at once. Without root or apt-get it says so (WHY_SKIPPED: what
# then skips) and returns 1, which the caller turns into exit 0. Otherwise it installs PACKAGE as root
# (no recommends, nothing upgraded, waiting up to 2 minutes for another apt's lock, `apt-get update`
# only when the package is not found) with a policy-rc.d that refuses every service start in place
# (deb-systemd-invoke and invoke-rc.d honour it; one the machine has is kept aside and put back), and
# checks every BINARY is there after.

apt_package_log() { printf '%s: %s\n' "$APT_PACKAGE_NAME" "$*" >&2; }

apt_package() {
  APT_PACKAGE_NAME="$1"
  local package="$2" why="$3"
  shift 3
  local binary missing=""
  for binary in "$@"; do [ -x "$binary" ] || missing="$binary"; done
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    apt_package_log "$missing is missing and installing it needs root and apt-get (apt-get install $package): $why"
    return 1
  fi
  local policy=/usr/sbin/policy-rc.d saved=""
  if [ -e "$policy" ]; then
    saved="$(mktemp "$policy.$APT_PACKAGE_NAME.XXXXXX")"
    cp -p "$policy" "$saved"
  fi
  printf '#!/bin/sh\n# %s: no service starts while %s is installed\nexit 101\n' "$APT_PACKAGE_NAME" "$package" >"$policy"
  chmod 755 "$policy"
  apt_package_log "$missing is missing: installing Debian's $package (no service of it is started)"
  local status=0
  (
    export DEBIAN_FRONTEND=noninteractive
    install() { apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends --no-upgrade "$package" >/dev/null; }
    install || { apt-get update -qq -o DPkg::Lock::Timeout=120 && install; }
  ) || status=$?
  if [ -n "$saved" ]; then mv -f "$saved" "$policy"; else rm -f "$policy"; fi
  [ "$status" -eq 0 ] || { apt_package_log "apt-get install $package failed (exit $status)"; exit "$status"; }
  for binary in "$@"; do
    [ -x "$binary" ] || { apt_package_log "the $package package did not provide $binary"; exit 1; }
  done
  apt_package_log "installed $(dpkg-query -W -f="$package \${Version}" "$package" 2>/dev/null)"
}

#   apt_package_disable_service SERVICE
#
# The package enabled SERVICE (its systemd unit and SysV links): disables it whether systemd runs or
# not (systemctl disable edits the links offline too), and stops it if it started anyway (a
# policy-rc.d ignored). The caller then stops, by pid, any daemon of the package the unit did not.
apt_package_disable_service() {
  local service="$1"
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable "$service.service" >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$service" ]; then
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl stop "$service.service" >/dev/null 2>&1 || true
  fi
}
