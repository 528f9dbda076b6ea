# A local stand-in for node:20-bookworm-slim, for machines that reach no image registry: Debian 12's
# minimal root file system (debootstrap --variant=minbase, imported as $DEBIAN_IMAGE) with the node
# binary and npm of the machine that builds it, laid out where the official image keeps them.
# scripts/container/base-images.sh assembles the context (node, npm/, the CA bundle) and builds it.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
# The build machine's trust store: where TLS to the npm registry passes through an intercepting
# proxy (this CI's egress does), `npm ci` in a build stage needs its CA. Node reads the file at start.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN set -e; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm; \
    ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \
    groupadd --gid 1000 node; \
    useradd --uid 1000 --gid node --shell /bin/bash --create-home node; \
    node --version; npm --version
CMD ["node"]
