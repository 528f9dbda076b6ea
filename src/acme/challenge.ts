/**
 * What an ACME order needs from a challenge type: a way to put the proof where the CA looks for it,
 * and to take it away. HTTP-01 writes a file that nginx serves under `/.well-known/acme-challenge/`;
 * DNS-01 adds a TXT record by RFC 2136 dynamic update. The order (src/acme/client.ts) calls
 * `present` before it tells the CA to validate, and `remove` once the CA has decided, valid or not.
 */

export type ChallengeType = 'http-01' | 'dns-01';

export interface Challenge {
  /** The name being validated as the order has it, without a wildcard's `*.` (RFC 8555 7.1.4). */
  identifier: string;
  /** Whether the order asked for `*.<identifier>` (DNS-01 only). */
  wildcard: boolean;
  /** The challenge's token (HTTP-01: the file's name). */
  token: string;
  /**
   * What the CA expects to find: HTTP-01, the file's content (`token.thumbprint`); DNS-01, the TXT
   * record's value (base64url of the SHA-256 of the key authorization), as acme-client's
   * `getChallengeKeyAuthorization` answers for each type.
   */
  proof: string;
}

export interface ChallengeSolver {
  readonly type: ChallengeType;
  /** Puts the proof in place; resolves once the CA can see it (DNS-01: once the server answers it). */
  present(challenge: Challenge): Promise<void>;
  /** Takes it away; never throws for a proof that is already gone. */
  remove(challenge: Challenge): Promise<void>;
}
