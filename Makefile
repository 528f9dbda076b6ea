# Portico. `make start` and `make test` install whatever is missing (node modules, an nginx with
# HTTP/3 and the stream modules; for the tests also Debian's chromium, the real HTTP/3 client, promtool,
# the Prometheus format's checker, pebble, the ACME tests' certificate authority, named, the DNS-01
# tests' authoritative server, and etcd, the fleet-mode tests' store), so both work on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NODE_MODULES := node_modules/.installed
# scripts/install-nginx.sh writes the path of the nginx it chose or built here; recipes pass it on
# as NGINX_BIN (an NGINX_BIN in the environment is the first candidate it considers).
NGINX_STAMP := .nginx-bin

UNIT_TESTS := $(wildcard test/unit/*.test.ts)
INTEGRATION_TESTS := $(wildcard test/integration/*.test.ts)

.PHONY: help nginx check-install chromium promtool pebble bind9 etcd deps build start test test-soak test-container container-images test-unit test-integration typecheck bench bench-traffic bench-fleet bench-console screenshots clean

help:
	@echo "make start   install what is missing, build, run Portico in managed mode"
	@echo "make test    install what is missing, type-check, run every test against a real nginx"
	@echo "make bench   run the benchmarks and rewrite bench/RESULTS.md"
	@echo "make bench-traffic  the per-resource traffic metrics' cost (writes bench/TRAFFIC.md)"
	@echo "make bench-fleet    a fleet create until it echoes on three nodes, beside a single node and the floor (writes bench/FLEET.md)"
	@echo "make bench-console  the console at 100 and 5,000 streams in Chromium: load and filter (writes bench/CONSOLE.md)"
	@echo "make test-soak  the heavy fault tests: 350 kill -9s of Portico in the middle of applies (about 9 minutes)"
	@echo "make check-install  build nginx into a throwaway prefix as a fresh machine would, and check it (about a minute)"
	@echo "make test-container the Dockerfile, docker-compose.yml and docker-compose.fleet.yml through a Docker engine of the tests' own (about 4 minutes)"
	@echo "make screenshots    the README's pictures of the console (docs/console-*.png), from a real Portico in Chromium"

$(NODE_MODULES): package.json package-lock.json
	@scripts/install-node-deps.sh
	@touch $@

# Always asked: it answers in well under a second when a good nginx is there, and notices one gone.
nginx:
	@scripts/install-nginx.sh

# The install path as a fresh machine takes it (no NGINX_BIN, no nginx on PATH, an empty prefix),
# checked on every CI run: a machine that already has an nginx would otherwise hide a broken download.
check-install:
	@scripts/check-install.sh

# The HTTP/3 test's browser, driven by playwright-core (a node module, hence after them). Always asked,
# like nginx: it answers at once when /usr/lib/chromium/chromium is there.
chromium: $(NODE_MODULES)
	@scripts/install-chromium.sh

# The metrics test's parser of the Prometheus text format (`promtool check metrics`): Debian's
# prometheus package, its server never started. Always asked, like chromium: it answers at once when
# /usr/bin/promtool is there; without root it says so and the test skips that check, saying why.
promtool:
	@scripts/install-promtool.sh

# The ACME tests' certificate authority: Debian's pebble package (`pebble`, an RFC 8555 test CA, and
# `pebble-challtestsrv`, a mock DNS server). The tests start both on loopback ports themselves
# (test/helpers/pebble.ts); nothing here starts them. Always asked, like promtool: it answers at once
# when /usr/bin/pebble is there; without root it says so and the ACME tests skip, saying why.
pebble:
	@scripts/install-pebble.sh

# The DNS-01 tests' authoritative server (named, RFC 2136 updates with TSIG): Debian's bind9 package,
# its own service neither started nor enabled; the tests run a named of their own on 127.0.0.1
# (test/helpers/bind9.ts). Always asked, like promtool: it answers at once when /usr/sbin/named is
# there; without root it says so and the DNS-01 integration test skips.
bind9:
	@scripts/install-bind9.sh

# The fleet-mode tests' store (issue 16): etcd from Debian's etcd-server package (3.4), its own service
# neither started nor enabled; the tests run clusters of their own on 127.0.0.1 (test/helpers/etcd.ts)
# and speak etcd's v3 HTTP/JSON gateway, so etcdctl is not needed. Always asked, like bind9: it answers
# at once when /usr/bin/etcd is there; without root it says so and the etcd tests skip.
etcd:
	@scripts/install-etcd.sh

deps: $(NODE_MODULES) nginx

build: deps
	@npx tsc -p tsconfig.build.json

# bin/portico runs it with node's heap flags (their one definition), as `npm start` and the container do.
# Portico itself says "listening" once the API listens and nginx runs.
start: build
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" exec bin/portico

typecheck: deps
	@npx tsc -p tsconfig.json

test-unit: deps
	@node --import tsx --test --test-reporter=spec $(UNIT_TESTS)

test-integration: deps chromium promtool pebble bind9 etcd
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx --test --test-reporter=spec --test-concurrency=2 $(INTEGRATION_TESTS)

test: chromium promtool pebble bind9 etcd typecheck
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx --test --test-reporter=spec --test-concurrency=2 \
		$(UNIT_TESTS) $(INTEGRATION_TESTS)

# The heavy variant of the crash test: `make test` runs 105 kills of Portico (15 per phase), this 350.
test-soak: deps
	@CRASH_KILLS=350 NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx --test --test-reporter=spec \
		test/integration/crash-safety.test.ts

# The Dockerfile, docker-compose.yml and docker-compose.fleet.yml, built and run through Debian's Docker engine: installs it when
# missing, starts a dockerd of the tests' own under var/container and stops it at the end.
test-container: deps chromium
	@scripts/container/run-tests.sh

# Local stand-ins for the Dockerfile's base images (node:20-bookworm-slim, nginx.org's nginx) and the
# fleet compose file's etcd (Debian's etcd-server), for an engine that reaches no registry: prints
# NODE_IMAGE=..., NGINX_IMAGE=... and ETCD_IMAGE=... to export. Uses the engine in DOCKER_HOST, or the machine's.
container-images:
	@scripts/container/base-images.sh

# Portico runs built, through bin/portico as `make start` runs it; the benchmark itself through tsx.
# wrk drives the data plane's HTTP half: Debian's package, installed when missing (root only; without
# it the benchmark reports the HTTP half as skipped). Caddy is the apps rung's peer, installed the
# same way by scripts/install-caddy.sh (its system service never started; without it that rung is skipped).
# etcd (scripts/install-etcd.sh, as for the tests) is the fleet's store in bench/fleet.ts, run last.
bench: build etcd chromium
	@scripts/install-caddy.sh
	@command -v wrk >/dev/null || { [ "$$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; } || echo "make bench: no wrk, and installing it needs root: the HTTP data plane is skipped" >&2
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/run.ts
	@if command -v wrk >/dev/null; then NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/traffic-metrics.ts; else echo "make bench: no wrk: the traffic metrics' cost is skipped" >&2; fi
	@if [ -x /usr/bin/etcd ]; then NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/fleet.ts; else echo "make bench: no etcd (installing it needs root): the fleet's create is skipped" >&2; fi
	@if [ -x /usr/lib/chromium/chromium ]; then NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/console.ts; else echo "make bench: no chromium (installing it needs root): the console's bench is skipped" >&2; fi

# The per-resource traffic metrics' cost (issue 14): nginx workers' CPU per request and per stream
# connection with no per-resource log, with Portico's buffered file and with syslog over UDP, and
# the reader's CPU per 1,000 requests; writes bench/TRAFFIC.md (about 2 minutes). `make bench` runs
# it last, after bench/run.ts (its figures are in bench/TRAFFIC.md, not RESULTS.md).
bench-traffic: deps
	@command -v wrk >/dev/null || { echo "make bench-traffic needs wrk (apt-get install -y wrk)" >&2; exit 1; }
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/traffic-metrics.ts

# The fleet's create (issue 16): a 3-member etcd cluster and three fleet nodes (STORE=etcd,
# FLEET_WAIT=all, LISTEN_ADDRESS 127.0.0.11-13, each with its own managed nginx) beside a single node
# and the floor, in the same run: a create until answered and until it echoes on all three nodes, at 0
# and 200 streams, and where the fleet's time goes; writes bench/FLEET.md and its section (16) of
# bench/RESULTS.md (about 2 minutes). Portico runs built, through bin/portico, as in `make bench`,
# which runs this last.
bench-fleet: build etcd
	@[ -x /usr/bin/etcd ] || { echo "make bench-fleet needs etcd (scripts/install-etcd.sh installs it as root)" >&2; exit 1; }
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/fleet.ts

# The console at 100 and 5,000 streams (issue 17): one Portico filled through the API, Debian's
# Chromium loading /ui#/streams and filtering, timed by the page's own performance measures; writes
# bench/CONSOLE.md and its section (17) of bench/RESULTS.md (about 4 minutes; `make bench` runs it last).
bench-console: build chromium
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx bench/console.ts

# The README's pictures of the console (issue 17): scripts/console-screenshots.ts starts a built
# Portico through bin/portico (managed nginx, a temp STATE_DIR, loopback ports, a token), makes a few
# streams and sends bytes through them, and writes docs/console-overview.png and
# docs/console-streams.png with Debian's Chromium at 1280x800; it stops what it started by pid.
screenshots: build chromium
	@NGINX_BIN="$$(cat $(NGINX_STAMP))" node --import tsx scripts/console-screenshots.ts

clean:
	rm -rf dist var node_modules
