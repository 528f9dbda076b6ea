#!/usr/bin/env bash
# The peer of the benchmark's apps rung (issue 13, goal 5): Debian's caddy, run by the benchmark
# itself (/usr/bin/caddy with its own config on 127.0.0.1 ports, stopped by pid). The package's
# system service is never started (on a host with systemd its postinst would enable and start
# caddy.service, listening on :80).
#
# Idempotent: with /usr/bin/caddy present it does nothing. Without root or apt-get it says so and
# exits 0: the benchmark then reports the Caddy rung as skipped.
set -euo pipefail
. "$(dirname "$0")/apt-package.sh"
apt_package install-caddy caddy 'the Caddy rung is skipped' /usr/bin/caddy || exit 0
