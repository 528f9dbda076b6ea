# A local stand-in for nginx.org's nginx:<version>-bookworm, for machines that reach no image
# registry: Debian 12's minimal root file system (imported as $DEBIAN_IMAGE, with libssl3) and nginx
# built by scripts/container/base-images.sh from the pinned release tarball that
# scripts/install-nginx.sh also builds, configured with the official packages' paths and modules.
# Laid out as the official image is: /usr/sbin/nginx, /etc/nginx/{nginx.conf,conf.d/,mime.types},
# the user nginx (uid 101), logs linked to the container's stdout and stderr, stop signal SIGQUIT.
# Not carried over: the dynamic modules the official image adds (njs, image-filter, xslt, geoip).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY root/ /
RUN set -e; \
    groupadd --system --gid 101 nginx; \
    useradd --system --gid nginx --uid 101 --no-create-home --home-dir /nonexistent \
      --shell /bin/false --comment "nginx user" nginx; \
    mkdir -p /var/cache/nginx /var/log/nginx /docker-entrypoint.d; \
    ln -sf /dev/stdout /var/log/nginx/access.log; \
    ln -sf /dev/stderr /var/log/nginx/error.log; \
    nginx -V; \
    nginx -t
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
