/**
 * HTTP-01 (RFC 8555 8.3): the proof is a file that nginx itself serves at
 * `http://<name>/.well-known/acme-challenge/<token>`, from the challenge folder every plain HTTP
 * server of Portico's aliases (model/app-file.ts, ACME_CHALLENGE_PATH). No Portico in the data path:
 * the CA's request reaches nginx, which answers from disk.
 *
 * The token comes from the CA: it becomes a file name only once it is exactly what RFC 8555 says a
 * token is (base64url, at least 128 bits), so a hostile CA cannot write outside the folder. The
 * proof (`token.thumbprint`) is checked the same way before it is written.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { replaceAtomically } from '../store/fsync.js';
import type { Challenge, ChallengeSolver } from './challenge.js';

/** RFC 8555 8.1/8.3: a token is base64url without padding, with at least 128 bits of entropy (22 characters). */
const TOKEN = /^[A-Za-z0-9_-]{22,256}$/;
/** The key authorization: the token, ".", the account key's base64url SHA-256 thumbprint (43 characters). */
const KEY_AUTHORIZATION = /^[A-Za-z0-9_-]{22,256}\.[A-Za-z0-9_-]{43}$/;

export class Http01Solver implements ChallengeSolver {
  readonly type = 'http-01' as const;

  /** `dir` is the challenge folder nginx serves (Settings.acmeChallengeDir). */
  constructor(private readonly dir: string) {}

  /** The file that answers `token`; throws for anything that is not a token. */
  fileOf(token: string): string {
    if (!TOKEN.test(token)) throw new Error(`the CA sent a challenge token that is not base64url of 22-256 characters: refused`);
    return path.join(this.dir, token);
  }

  async present(challenge: Challenge): Promise<void> {
    const file = this.fileOf(challenge.token);
    if (!KEY_AUTHORIZATION.test(challenge.proof) || !challenge.proof.startsWith(`${challenge.token}.`)) {
      throw new Error('the key authorization is not "<token>.<thumbprint>": refused');
    }
    // Readable by nginx's workers (they run as another user): the proof is public by design.
    await replaceAtomically(file, challenge.proof, 0o644);
  }

  async remove(challenge: Challenge): Promise<void> {
    if (!TOKEN.test(challenge.token)) return;
    await rm(this.fileOf(challenge.token), { force: true });
  }
}
