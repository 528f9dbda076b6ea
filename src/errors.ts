/**
 * Errors are values with a kind. Every failure a caller can see is a `PorticoError`; `api/errors.ts`
 * alone maps kinds to HTTP statuses. Messages are lowercase and chain context with ": ".
 */

export type ErrorKind =
  | 'InvalidInput'
  | 'Unauthorized'
  /** Refused whoever sends it (a browser's cross-site request, a Host that is not the API's), or a token whose scope does not allow it (a read token on a mutation). */
  | 'Forbidden'
  | 'NotFound'
  | 'Conflict'
  /** An `If-Match` that no longer names the resource as it is. */
  | 'PreconditionFailed'
  /** A body that is not `application/json`. */
  | 'UnsupportedMediaType'
  | 'NginxRejected'
  | 'NginxUnavailable'
  /** A file could not be written: the disk is full, read-only, or refuses Portico. */
  | 'StorageUnavailable'
  /** STORE=etcd: etcd cannot be reached, or has no quorum; nothing was changed. */
  | 'FleetUnavailable'
  /** A capacity of this process is full (the clients following the event feed): try again later. */
  | 'Busy'
  | 'Internal';

export interface ErrorDetails {
  /** The input field that failed, as a dotted path (`upstreams.0.address`), when one did. */
  field?: string;
  /** The nginx command that failed, as run. */
  command?: string;
  /** nginx's exit code, when a command failed. */
  exitCode?: number;
  /** nginx's own stderr or error-log lines. */
  nginx?: string[];
  cause?: unknown;
}

export class PorticoError extends Error {
  readonly kind: ErrorKind;
  readonly field: string | undefined;
  readonly command: string | undefined;
  readonly exitCode: number | undefined;
  readonly nginx: string[] | undefined;

  constructor(kind: ErrorKind, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = `${kind}Error`;
    this.kind = kind;
    this.field = details.field;
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.nginx = details.nginx;
  }

  /** The same error with `context: ` in front of its message. */
  within(context: string): PorticoError {
    return new PorticoError(this.kind, `${context}: ${this.message}`, {
      field: this.field,
      command: this.command,
      exitCode: this.exitCode,
      nginx: this.nginx,
      cause: this.cause,
    });
  }
}

export const invalidInput = (field: string, message: string): PorticoError =>
  new PorticoError('InvalidInput', `${field}: ${message}`, { field });

export const notFound = (message: string): PorticoError => new PorticoError('NotFound', message);

export const conflict = (message: string, field?: string): PorticoError =>
  new PorticoError('Conflict', message, field === undefined ? {} : { field });

/** Wraps anything thrown into a PorticoError, keeping the original as `cause`. */
export function asPorticoError(error: unknown, context?: string): PorticoError {
  const wrapped =
    error instanceof PorticoError
      ? error
      : new PorticoError('Internal', error instanceof Error ? error.message : String(error), { cause: error });
  return context === undefined ? wrapped : wrapped.within(context);
}
