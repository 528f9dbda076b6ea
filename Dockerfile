# Portico on the official nginx image. The default is managed mode: Portico runs its own nginx
# master inside the container. For the sidecar pattern (an nginx container next to a Portico in
# external mode) see docker-compose.yml; docs/container.md explains both.
#
# Both images are Debian 12 (bookworm): the node binary of the first finds the libraries it links
# (glibc, libstdc++) in the second.
ARG NODE_IMAGE=node:20-bookworm-slim
# nginx.org's packages, which this image installs, are built --with-http_v3_module and the stream
# modules (stream_ssl, stream_ssl_preread, stream_realip); the check below fails the build if not.
# docker-compose.yml runs the same tag for its nginx service: keep the two in step.
ARG NGINX_IMAGE=nginx:1.28-bookworm

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# The runtime's modules, installed apart from the build's: tsc and the test tools stay behind.
RUN mkdir /prod \
 && cp package.json package-lock.json /prod/ \
 && cd /prod \
 && npm ci --omit=dev --no-audit --no-fund
COPY . .
# nginx/ holds optional static assets; git keeps no empty folder, so a fresh clone may lack it.
RUN npx tsc -p tsconfig.build.json && mkdir -p nginx

FROM ${NGINX_IMAGE} AS runtime
# Node is copied, not installed: the build stage's binary is the one `npm ci` and tsc just ran on.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
# Fails the build, rather than the first request, if node lacks a library here or nginx a module
# Portico relies on (the list is REQUIRED_MODULES in src/nginx/exec.ts).
RUN set -e; \
    node --version; \
    build="$(nginx -V 2>&1)"; \
    printf '%s\n' "$build" | head -n 1; \
    for m in http_ssl_module http_v2_module http_v3_module stream stream_realip_module \
             stream_ssl_module stream_ssl_preread_module; do \
      printf '%s\n' "$build" | grep -q -- "--with-$m\b" || { echo "nginx lacks --with-$m" >&2; exit 1; }; \
    done; \
    groupadd --system --gid 10001 portico; \
    useradd --system --uid 10001 --gid portico --no-create-home --home-dir /var/lib/portico \
      --shell /usr/sbin/nologin --comment "Portico" portico; \
    mkdir -p /var/lib/portico; \
    chown portico:portico /var/lib/portico

# /etc/nginx is left exactly as the base image has it: the compose sidecar seeds its shared
# /etc/nginx volume from whichever of its two images starts first.
WORKDIR /opt/portico
COPY --from=build /src/package.json ./
COPY --from=build /prod/node_modules ./node_modules
COPY --from=build /src/templates ./templates
COPY --from=build /src/nginx ./nginx
COPY --from=build /src/ui ./ui
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin

# Managed mode, listening on every interface: inside a container, 127.0.0.1 would be unreachable.
# STATE_DIR holds the streams (the files are the truth): mount a volume there to keep them.
# API_ALLOWED_HOSTS: a request's Host must name the API (README "Browsers"); from the host through a
# published port it is 127.0.0.1 or localhost, from another container on a Docker network it is the
# container's address (allowed anyway) or its name, `portico` in docs/container.md's examples.
# Any program sends whatever Host it likes, so that check stops browsers only: BIND_ADDRESS 0.0.0.0
# makes every container on the network a client, and Portico refuses to start here without API_TOKEN
# or API_TOKENS_FILE (README "Container").
ENV NODE_ENV=production \
    NGINX_MODE=managed \
    NGINX_BIN=/usr/sbin/nginx \
    STATE_DIR=/var/lib/portico \
    BIND_ADDRESS=0.0.0.0 \
    BIND_PORT=5000 \
    API_ALLOWED_HOSTS=portico \
    PORT_RANGE=9000-9009 \
    HTTP_PORT=80 \
    HTTPS_PORT=443

# The API, the stream ports (TCP and UDP), and the HTTP apps' listeners (UDP 443 for HTTP/3). A different PORT_RANGE needs
# its own -p flags at `docker run`; EXPOSE only documents.
EXPOSE 5000/tcp 9000-9009/tcp 9000-9009/udp 80/tcp 443/tcp 443/udp

# /healthz answers while the process is up (it is the one route API_TOKEN leaves open). Node rather
# than the image's curl: the check needs no shell to follow BIND_ADDRESS and BIND_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "const a = process.env.BIND_ADDRESS || '127.0.0.1'; const host = a === '0.0.0.0' ? '127.0.0.1' : a === '::' ? '::1' : a; require('node:http').get({ host, port: Number(process.env.BIND_PORT || 5000), path: '/healthz', timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('timeout', () => process.exit(1)).on('error', () => process.exit(1));"]

# Portico handles SIGTERM: it lets queued changes finish, asks its nginx to quit gracefully (old
# connections drain for up to WORKER_SHUTDOWN_TIMEOUT, 30s) and exits; allow for that with
# `docker run --stop-timeout 40` or `docker stop -t 40`. Portico has no handler for the nginx
# image's SIGQUIT.
STOPSIGNAL SIGTERM

# Not root: Portico and the nginx it runs in managed mode are the user portico (uid 10001), the
# owner of STATE_DIR. A named volume mounted there starts with that owner; a host folder must be
# given it (chown 10001:10001). Binding HTTP_PORT 80 and HTTPS_PORT 443 needs no privilege inside a
# container: Docker (20.10 and later) sets net.ipv4.ip_unprivileged_port_start to 0 in its network
# namespace. The compose sidecar runs this image as root instead (docker-compose.yml says why).
USER portico

# bin/portico, the launcher `make start`, `npm start` and `make bench` use too: it holds node's heap
# flags (one definition) and execs node, which then receives the stop signal itself. It replaces the
# nginx image's entrypoint (/docker-entrypoint.sh) and, with it, the image's `nginx -g 'daemon off;'`.
ENTRYPOINT ["/opt/portico/bin/portico"]
CMD []
