/**
 * The etcd client of a fleet node (the `etcd3` package: gRPC, the watch stream and leases, with
 * reconnection across members). Every unary call has a deadline of ETCD_TIMEOUT, so that an etcd
 * without quorum answers the API's caller 503 instead of holding it; the watch stream has none.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import { PorticoError } from '../errors.js';
import type { FleetSettings } from './settings.js';

export async function openEtcd(settings: FleetSettings): Promise<Etcd3> {
  const options: IOptions = {
    hosts: settings.endpoints,
    dialTimeout: settings.timeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.timeoutMs }),
    // No circuit breaker per member: with one member (or the last one answering), an open breaker
    // failed every call for its 5 s, and each half-open trial that met etcd still restarting opened it
    // again, so a node stayed cut off from an etcd long back (30 s and more after a restart, measured
    // in fleet-etcd-security.test.ts). Each call is bounded by ETCD_TIMEOUT instead; the client's
    // global retry (3 tries, on other members too) stays.
    faultHandling: { host: () => noop },
  };
  if (settings.auth !== undefined) options.auth = { username: settings.auth.username, password: settings.auth.password };
  if (settings.tls !== undefined) {
    const { caFile, certFile, keyFile } = settings.tls;
    const read = async (file: string | undefined, name: string): Promise<Buffer | undefined> => {
      if (file === undefined) return undefined;
      return readFile(file).catch((error: NodeJS.ErrnoException) => {
        throw new PorticoError('InvalidInput', `${name}: cannot read ${file} (${error.code ?? error.message})`, { field: name });
      });
    };
    const [rootCertificate, certChain, privateKey] = await Promise.all([read(caFile, 'ETCD_CA_FILE'), read(certFile, 'ETCD_CERT_FILE'), read(keyFile, 'ETCD_KEY_FILE')]);
    options.credentials = {
      // Without ETCD_CA_FILE, the system's CAs: grpc-js falls back to node's default trust only for a
      // null root (an empty Buffer would be an empty list of CAs, which trusts nothing). etcd3 types the
      // root as a Buffer but hands it to grpc-js's createSsl as it is.
      rootCertificate: rootCertificate ?? (null as unknown as Buffer),
      ...(certChain !== undefined && { certChain }),
      ...(privateKey !== undefined && { privateKey }),
    };
  }
  return new Etcd3(options);
}

/** Errors that mean etcd cannot be reached, or has no quorum, or refuses this node: it is unavailable to it. */
const UNAVAILABLE = new Set([
  'GRPCUnavailableError',
  'GRPCDeadlineExceededError',
  'GRPCCancelledError',
  'GRPCConnectFailedError',
  'ClientClosedError',
  'BrokenCircuitError',
  'EtcdAuthenticationFailedError',
  'EtcdInvalidAuthTokenError',
  'EtcdPermissionDeniedError',
  'GRPCUnauthenticatedError',
]);
/** What an etcd member answers while it has no quorum or loses its leader. */
const NO_QUORUM = /etcdserver: (request timed out|no leader|leader changed|too many requests)/;

/**
 * A failed etcd request as the API answers it (never naming a credential). Unreachable, without
 * quorum or refusing this node: 503 FleetUnavailable, naming etcd and the endpoints (the node is then
 * stale). Anything else etcd refuses (a request it finds invalid): 500, with etcd's reason.
 */
export function etcdError(settings: FleetSettings, error: unknown): PorticoError {
  if (error instanceof PorticoError) return error;
  const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
  const name = error instanceof Error ? error.constructor.name : '';
  if (UNAVAILABLE.has(name) || NO_QUORUM.test(reason ?? '') || !(error instanceof Error)) {
    const refused = name.startsWith('Etcd') || name === 'GRPCUnauthenticatedError' ? ' (etcd refuses this node: check ETCD_USERNAME, ETCD_PASSWORD and its role on FLEET_PREFIX)' : '';
    return new PorticoError('FleetUnavailable', `etcd is unavailable (ETCD_ENDPOINTS ${settings.endpoints.join(',')}): ${reason}${refused}; nginx keeps serving what it has, and changes can be made again once etcd answers`, { cause: error });
  }
  return new PorticoError('Internal', `etcd refused the request: ${reason}`, { cause: error });
}

/**
 * Why a TLS handshake with the first https:// endpoint fails (an unknown CA, a refused client
 * certificate, a server that speaks no TLS), or undefined when it succeeds or there is no TLS. grpc-js
 * often loses this reason ("No connection established. Last error: null"), notably for the login etcd3
 * makes on a fresh channel: the health loop asks here once, when it first finds etcd not answering.
 * Bounded by `timeoutMs`; shows no credential (the files' names at most).
 */
export async function tlsProblem(settings: FleetSettings, timeoutMs = 2000): Promise<string | undefined> {
  const endpoint = settings.endpoints.find((url) => url.startsWith('https:'));
  if (settings.tls === undefined || endpoint === undefined) return undefined;
  const { hostname, port } = new URL(endpoint);
  const host = hostname.replace(/^\[|\]$/g, '');
  const { caFile, certFile, keyFile } = settings.tls;
  const [ca, cert, key] = await Promise.all([caFile, certFile, keyFile].map((file) => (file === undefined ? undefined : readFile(file).catch(() => undefined))));
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port: Number(port),
      ...(isIP(host) === 0 && { servername: host }),
      ...(ca !== undefined && { ca }),
      ...(cert !== undefined && key !== undefined && { cert, key }),
      ALPNProtocols: ['h2'],
    });
    const done = (reason: string | undefined): void => {
      clearTimeout(bound);
      socket.destroy();
      resolve(reason === undefined ? undefined : `TLS with ${host}:${port}: ${reason}`);
    };
    const bound = setTimeout(() => done(`no handshake within ${timeoutMs} ms`), timeoutMs);
    socket.once('secureConnect', () => {
      if (!socket.authorized) return done(String(socket.authorizationError));
      // A server that refuses the client certificate says so in an alert after the handshake (TLS 1.3): wait a moment for it.
      setTimeout(() => done(undefined), 200);
    });
    // OpenSSL's alerts come as a multi-line message; its `reason` is the part worth a log line ("sslv3 alert bad certificate").
    socket.on('error', (error: Error & { reason?: string }) => done(error.reason ?? error.message.split('\n')[0]));
  });
}
