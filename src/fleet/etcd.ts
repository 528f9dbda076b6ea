/**
 * The etcd client of a fleet node (the `etcd3` package: gRPC, the watch stream and leases, with
 * reconnection across members). Every unary call has a deadline of ETCD_TIMEOUT, so that an etcd
 * without quorum answers the API's caller 503 instead of holding it; the watch stream has none.
 */
import { readFile } from 'node:fs/promises';
import { Etcd3, type IOptions } from 'etcd3';
import { PorticoError } from '../errors.js';
import type { FleetSettings } from './settings.js';

export async function openEtcd(settings: FleetSettings): Promise<Etcd3> {
  const options: IOptions = {
    hosts: settings.endpoints,
    dialTimeout: settings.timeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + settings.timeoutMs }),
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
      // Without ETCD_CA_FILE, the system's CAs (grpc-js reads them when the root is empty).
      rootCertificate: rootCertificate ?? Buffer.alloc(0),
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
