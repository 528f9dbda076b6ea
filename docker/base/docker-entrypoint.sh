#!/bin/sh
# The stand-in image's entrypoint: like the official image's, it runs the executable scripts in
# /docker-entrypoint.d/ (in name order) before starting nginx, and then execs the command, so nginx
# is the process the stop signal reaches. Unlike it, it ships no scripts there.
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  for script in /docker-entrypoint.d/*; do
    [ -f "$script" ] && [ -x "$script" ] || continue
    echo "$0: running $script"
    "$script"
  done
fi
exec "$@"
