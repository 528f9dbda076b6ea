#!/usr/bin/env bash
# The ACME tests' certificate authority: Debian's pebble package, which ships `pebble` (a small RFC 8555
# CA made for tests) and `pebble-challtestsrv` (a mock DNS server that answers every name with the
# address it is given). The tests start both themselves, on loopback ports, as child processes
# (test/helpers/pebble.ts); nothing here starts them.
#
# Idempotent: with both present it does nothing. Without root or apt-get it says so and exits 0: the
# ACME tests then skip, saying why.
set -euo pipefail
. "$(dirname "$0")/apt-package.sh"
apt_package install-pebble pebble 'the ACME tests skip' /usr/bin/pebble /usr/bin/pebble-challtestsrv || exit 0
