# A local stand-in for quay.io/coreos/etcd, for machines that reach no image registry: Debian 12's
# minimal root file system (imported as $DEBIAN_IMAGE) with etcd and etcdctl from Debian's etcd-server
# and etcd-client packages (3.4), which scripts/container/base-images.sh downloads with apt-get from
# the machine's mirror and unpacks (their maintainer scripts, a system user and a systemd unit, are
# not run: nothing here uses them). Laid out as the official image is: /usr/local/bin/etcd and
# /usr/local/bin/etcdctl, working folder /var/lib/etcd, ports 2379 and 2380, run as root, no
# entrypoint (the compose file's command names the binary).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY etcd etcdctl /usr/local/bin/
WORKDIR /var/lib/etcd
RUN set -e; \
    etcd --version; \
    etcdctl version
EXPOSE 2379 2380
CMD ["/usr/local/bin/etcd"]
