/**
 * The hand-written nginx configs of the data plane benchmark: the reference (what a person tuning
 * nginx by hand would write for the same stream and the same app) and the HTTP backend both proxy
 * to. Pure.
 */

import { STREAM_LOG_FORMAT, TRAFFIC_FORMAT_NAME } from '../src/traffic/line.js';

/** The app's server name: wrk sends it as Host to both sides. */
export const APP_HOST = 'bench.test';

function tempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `    ${name}_temp_path ${dir}/temp/${name};`).join('\n');
}

/** Idle upstream connections each worker of the reference keeps, as Portico's apps do. */
export const REFERENCE_KEEPALIVE = 32;

function httpServer(port: number, upstream: string): string {
  return `    server {
        listen ${port};
        server_name ${APP_HOST};
        location / {
            proxy_pass http://${upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Real-IP $remote_addr;
        }
    }`;
}

/**
 * The top of a front nginx's main config, the reference's and bench-traffic's alike: in the
 * foreground (the bench stops it by pid), a worker per CPU, its pid and error log inside `dir`.
 */
export function frontPreamble(dir: string): string {
  return `daemon off;
master_process on;
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log notice;
events { worker_connections 4096; }
`;
}

/**
 * The reference. Same job as Portico's generated stream and app (same upstream, same request
 * headers, every request logged into a buffer, 32 idle upstream connections kept), written by hand
 * as a person tuning nginx would: its upstream group has no shared-memory zone (Portico gives every
 * app route one, so that balancing state and failure counts are shared by the workers). A second
 * HTTP server differs from the first only in having that zone, to tell its cost apart; a second
 * stream server differs from the first only in writing Portico's per-resource traffic log
 * (src/traffic/line.ts, buffered as Portico's main config writes it), to tell that cost apart.
 */
export function referenceConfig(
  dir: string,
  p: { streamPort: number; streamPortLog: number; httpPort: number; httpPortZone: number; echoPort: number; backendPort: number },
): string {
  return `${frontPreamble(dir)}
stream {
    log_format ${TRAFFIC_FORMAT_NAME} '${STREAM_LOG_FORMAT}';
    server {
        listen ${p.streamPort};
        proxy_pass 127.0.0.1:${p.echoPort};
    }
    server {
        listen ${p.streamPortLog};
        proxy_pass 127.0.0.1:${p.echoPort};
        access_log ${dir}/logs/traffic-stream.log ${TRAFFIC_FORMAT_NAME} buffer=64k flush=1s;
    }
}

http {
    access_log ${dir}/logs/access.log combined buffer=64k flush=1s;
${tempPaths(dir)}
    upstream backend {
        server 127.0.0.1:${p.backendPort};
        keepalive ${REFERENCE_KEEPALIVE};
    }
    upstream backend_zone {
        zone backend_zone 64k;
        server 127.0.0.1:${p.backendPort};
        keepalive ${REFERENCE_KEEPALIVE};
    }
${httpServer(p.httpPort, 'backend')}
${httpServer(p.httpPortZone, 'backend_zone')}
}
`;
}

/** The backend both apps proxy to: one worker answering 200 from memory, nothing logged. */
export function backendConfig(dir: string, port: number): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log;
events { worker_connections 4096; }

http {
    access_log off;
${tempPaths(dir)}
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${port};
        location / {
            default_type text/plain;
            return 200 "ok\\n";
        }
    }
}
`;
}
