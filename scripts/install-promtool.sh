#!/usr/bin/env bash
# The metrics test's parser of the Prometheus text format: `promtool check metrics`, from Debian's
# prometheus package (the only Debian package that ships promtool). The package's server is never
# started (its postinst would enable and start prometheus.service, listening on :9090).
#
# Idempotent: with /usr/bin/promtool present it does nothing. Without root or apt-get it says so and
# exits 0: the metrics test then skips its promtool check, saying why.
set -euo pipefail
. "$(dirname "$0")/apt-package.sh"
apt_package install-promtool prometheus 'the metrics test skips its promtool check' /usr/bin/promtool || exit 0
