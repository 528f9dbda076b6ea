/**
 * Reads a `server` block of an app file: the plain HTTP server (listen, names, an HTTPS redirect or
 * the locations) or the TLS server (listeners for TLS and QUIC, HTTP/2, certificate, client CA, the
 * 421 for a Host that is not the TLS server name, the locations). Pure.
 */
import { ACME_CHALLENGE_PATH, type AppFileOptions } from '../model/app-file.js';
import { CERT_ID_PATTERN } from '../model/certificate.js';
import { readLocation, type LocationRead } from './app-location.js';
import { fail, flag, single, type Directive } from './directive.js';

export interface AppServerRead {
  line: number;
  tls: boolean;
  defaultServer: boolean;
  quic: boolean;
  serverNames: string[];
  http2: boolean;
  certificate?: string;
  clientCa?: string;
  redirect: boolean;
  /** Whether it answers HTTP-01 challenges (format 3's `location ^~ ACME_CHALLENGE_PATH`). */
  acmeChallenge: boolean;
  locations: LocationRead[];
}

interface Listen {
  port: number;
  flags: string[];
  directive: Directive;
}

function readListen(directive: Directive, options: AppFileOptions): Listen {
  const [where = '', ...flags] = directive.args;
  // LISTEN_ADDRESS: every app listens on the node's address, or on all of them.
  const at = options.listenAddress === undefined ? '' : `${options.listenAddress}:`;
  const port = where.startsWith(at) ? where.slice(at.length) : '';
  if (directive.block !== undefined || !/^[1-9]\d{0,4}$/.test(port)) fail(`"listen" must read "listen ${at}PORT [flags]"`, directive);
  return { port: Number(port), flags, directive };
}

/** The certificate id of a path under the certificate directory (`<dir>/<id><suffix>`). */
function certificateId(directive: Directive, options: AppFileOptions, suffix: '.crt' | '.key'): string {
  const file = single(directive);
  const prefix = `${options.certDir}/`;
  const id = file.startsWith(prefix) && file.endsWith(suffix) ? file.slice(prefix.length, -suffix.length) : '';
  if (!CERT_ID_PATTERN.test(id)) fail(`"${file}" is not a certificate of ${options.certDir}`, directive);
  return id;
}

/** `listen PORT [default_server];` for plain HTTP; `listen PORT ssl;` and maybe `listen PORT quic;` for TLS. */
function readListens(listens: Listen[], block: Directive, options: AppFileOptions): Pick<AppServerRead, 'tls' | 'defaultServer' | 'quic'> {
  const [first, second, ...more] = listens;
  if (first === undefined) fail('the server block has no listen', block);
  const tls = first.flags.includes('ssl');
  const want = tls ? options.httpsPort : options.httpPort;
  for (const listen of listens) {
    if (listen.port !== want) fail(`listen ${listen.port} is not the ${tls ? 'HTTPS' : 'HTTP'} port ${want} every app shares`, listen.directive);
  }
  if (!tls) {
    if (second !== undefined) fail('the HTTP server listens once', second.directive);
    const flags = first.flags.join(' ');
    if (flags !== '' && flags !== 'default_server') fail(`unexpected listen parameters "${flags}" (only default_server)`, first.directive);
    return { tls, defaultServer: flags === 'default_server', quic: false };
  }
  if (first.flags.join(' ') !== 'ssl') fail(`the TLS server's first listen must read "listen ${want} ssl"`, first.directive);
  if (second !== undefined && second.flags.join(' ') !== 'quic') fail(`the TLS server's second listen must read "listen ${want} quic"`, second.directive);
  if (more[0] !== undefined) fail('the TLS server listens at most twice (TLS, then QUIC)', more[0].directive);
  return { tls, defaultServer: false, quic: second !== undefined };
}

const ONCE = new Set(['server_name', 'http2', 'ssl_certificate', 'ssl_certificate_key', 'ssl_client_certificate', 'ssl_verify_client', 'if', 'return']);

/** `return 301 https://$host[:PORT]$request_uri`'s arguments for this HTTPS port. */
function redirectArgs(options: AppFileOptions): string {
  return `301 https://$host${options.httpsPort === 443 ? '' : `:${options.httpsPort}`}$request_uri`;
}

/**
 * `location ^~ ACME_CHALLENGE_PATH { alias DIR/; disable_symlinks on from=DIR; default_type text/plain; }`,
 * DIR being this Portico's challenge folder and nothing else: the location serves files from disk,
 * never through a symlink planted in the folder. The form without `disable_symlinks` (written before
 * it was added) reads too: the next render writes the new one.
 */
function readAcmeLocation(location: Directive, options: AppFileOptions): void {
  const dir = options.acmeChallengeDir;
  if (dir === undefined) fail(`"location ^~ ${ACME_CHALLENGE_PATH}" is not Portico's here: no challenge folder is set`, location);
  const lines = (location.block ?? []).map((d) => (d.block === undefined ? [d.name, ...d.args].join(' ') : `${d.name} {`));
  const read = lines.join('; ');
  if (location.block === undefined || (read !== `alias ${dir}/; disable_symlinks on from=${dir}; default_type text/plain` && read !== `alias ${dir}/; default_type text/plain`)) {
    fail(`"location ^~ ${ACME_CHALLENGE_PATH}" must read "alias ${dir}/; disable_symlinks on from=${dir}; default_type text/plain;"`, location);
  }
}

/** Format 3's redirect: `location / { return 301 ...; }`, alone in its block. */
function isRedirectLocation(location: Directive, options: AppFileOptions): boolean {
  const inner = location.block;
  return (
    location.args.length === 1 &&
    location.args[0] === '/' &&
    inner?.length === 1 &&
    inner[0]?.name === 'return' &&
    inner[0].block === undefined &&
    inner[0].args.join(' ') === redirectArgs(options)
  );
}

/** Reads one server block; its locations are read but not yet matched to routes. */
export function readAppServer(block: Directive, options: AppFileOptions): AppServerRead {
  const listens: Listen[] = [];
  const locations: LocationRead[] = [];
  const once = new Map<string, Directive>();
  let acmeChallenge: Directive | undefined;
  let redirectLocation: Directive | undefined;
  for (const inner of block.block ?? []) {
    if (inner.name === 'listen') listens.push(readListen(inner, options));
    else if (inner.name === 'location' && inner.args[0] === '^~' && inner.args[1] === ACME_CHALLENGE_PATH && inner.args.length === 2) {
      if (acmeChallenge !== undefined) fail(`"location ^~ ${ACME_CHALLENGE_PATH}" is given twice in the server block`, inner);
      readAcmeLocation(inner, options);
      acmeChallenge = inner;
    } else if (inner.name === 'location' && redirectLocation === undefined && isRedirectLocation(inner, options)) redirectLocation = inner;
    else if (inner.name === 'location') locations.push(readLocation(inner));
    else if (ONCE.has(inner.name)) {
      if (once.has(inner.name)) fail(`"${inner.name}" is given twice in the server block`, inner);
      once.set(inner.name, inner);
    } else fail(`unexpected "${inner.name}" in the server block`, inner);
  }
  const { tls, defaultServer, quic } = readListens(listens, block, options);
  const names = once.get('server_name');
  if (names === undefined || names.block !== undefined || names.args.length === 0) fail('the server block needs "server_name NAME ..."', names ?? block);
  const only = (list: string[], why: string): void => {
    const stray = list.find((name) => once.has(name));
    if (stray !== undefined) fail(`"${stray}" ${why}`, once.get(stray));
  };

  const http2 = once.get('http2');
  if (http2 !== undefined && !flag(http2)) fail('"http2" must be on when given', http2);
  let certificate: string | undefined;
  let clientCa: string | undefined;
  if (tls) {
    only(['return'], 'in the TLS server: a redirect belongs to the HTTP server');
    if (redirectLocation !== undefined) fail('a redirect to HTTPS belongs to the HTTP server, not to the TLS one', redirectLocation);
    if (acmeChallenge !== undefined) fail('challenges are answered over plain HTTP: the TLS server has no challenge location', acmeChallenge);
    const cert = once.get('ssl_certificate');
    const key = once.get('ssl_certificate_key');
    if (cert === undefined || key === undefined) fail('the TLS server needs ssl_certificate and ssl_certificate_key', block);
    certificate = certificateId(cert, options, '.crt');
    if (certificateId(key, options, '.key') !== certificate) fail('ssl_certificate_key is not the key of ssl_certificate', key);
    const ca = once.get('ssl_client_certificate');
    const verify = once.get('ssl_verify_client');
    if ((ca === undefined) !== (verify === undefined) || (verify !== undefined && !flag(verify))) {
      fail('"ssl_client_certificate" goes with "ssl_verify_client on", and only then', ca ?? verify);
    }
    if (ca !== undefined) clientCa = certificateId(ca, options, '.crt');
    checkSniGuard(once.get('if'), block);
  } else {
    only(['http2', 'ssl_certificate', 'ssl_certificate_key', 'ssl_client_certificate', 'ssl_verify_client', 'if'], 'belongs to the TLS server, not to the HTTP one');
  }
  // Format 2 wrote the redirect at server level, format 3 in `location /`.
  const redirect = once.get('return');
  if (redirect !== undefined) {
    if (redirect.block !== undefined || redirect.args.join(' ') !== redirectArgs(options)) fail(`"return" must read "return ${redirectArgs(options)}"`, redirect);
    if (redirectLocation !== undefined) fail('the HTTP server redirects twice', redirectLocation);
  }
  if ((redirect !== undefined || redirectLocation !== undefined) && locations[0] !== undefined) {
    fail('the HTTP server redirects to HTTPS: it has no route locations', locations[0]);
  }
  return {
    line: block.line,
    tls,
    defaultServer,
    quic,
    serverNames: names.args,
    http2: http2 !== undefined,
    ...(certificate !== undefined && { certificate }),
    ...(clientCa !== undefined && { clientCa }),
    redirect: redirect !== undefined || redirectLocation !== undefined,
    acmeChallenge: acmeChallenge !== undefined,
    locations,
  };
}

/** `if ($host != $ssl_server_name) { return 421; }`: a request for another app on this connection. */
function checkSniGuard(guard: Directive | undefined, block: Directive): void {
  const inner = guard?.block;
  const ok =
    guard !== undefined &&
    guard.args.join(' ') === '($host != $ssl_server_name)' &&
    inner?.length === 1 &&
    inner[0]?.name === 'return' &&
    inner[0].block === undefined &&
    inner[0].args.join(' ') === '421';
  if (!ok) fail('the TLS server must hold "if ($host != $ssl_server_name) { return 421; }"', guard ?? block);
}
