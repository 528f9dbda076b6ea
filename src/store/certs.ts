/**
 * CertStore: the directory of uploaded certificates, `<id>.crt` (the chain, PEM) and `<id>.key` (its
 * private key, mode 0600), which stream and app files name by path. The only code that reads or
 * writes it. The directory itself is 0700: only Portico and nginx's master (which loads keys before
 * it drops privileges) read it.
 */
import { chmod, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { CERT_ID_PATTERN, describeCertificate, type CertificateFacts } from '../model/certificate.js';
import { replaceAtomically, syncDir } from './fsync.js';

export interface StoredCertificate {
  id: string;
  certificatePem: string;
  facts: CertificateFacts;
}

/** What a directory listing says of each certificate, without parsing any: enough to plan a change. */
export type CertificateIndex = Map<string, { hasKey: boolean }>;

/** A certificate's files as they were before a write, to put back if the reload fails. */
export interface CertificateBackup {
  id: string;
  certificatePem: string | undefined;
  keyPem: string | undefined;
}

const readIfThere = (file: string): Promise<string | undefined> =>
  readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });

export class CertStore {
  constructor(readonly dir: string) {}

  certificateFile(id: string): string {
    return path.join(this.dir, `${id}.crt`);
  }

  keyFile(id: string): string {
    return path.join(this.dir, `${id}.key`);
  }

  /** Makes the directory (0700) and removes the temporary files of a write a crash interrupted. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.') && name.endsWith('.tmp')) await rm(path.join(this.dir, name), { force: true });
    }
  }

  /** The ids present, and whether each has a key. */
  async index(): Promise<CertificateIndex> {
    const names = new Set(await readdir(this.dir));
    const index: CertificateIndex = new Map();
    for (const name of names) {
      const id = name.slice(0, -'.crt'.length);
      if (!name.endsWith('.crt') || !CERT_ID_PATTERN.test(id)) continue;
      index.set(id, { hasKey: names.has(`${id}.key`) });
    }
    return index;
  }

  async get(id: string): Promise<StoredCertificate | undefined> {
    const pem = await readIfThere(this.certificateFile(id));
    if (pem === undefined) return undefined;
    const hasKey = (await readIfThere(this.keyFile(id))) !== undefined;
    return { id, certificatePem: pem, facts: describeCertificate(pem, hasKey) };
  }

  async list(): Promise<StoredCertificate[]> {
    const ids = [...(await this.index()).keys()].sort();
    const all = await Promise.all(ids.map((id) => this.get(id)));
    return all.filter((c): c is StoredCertificate => c !== undefined);
  }

  /**
   * Writes a certificate (and its key, or removes a key it no longer has), each file atomically;
   * answers what was there before.
   */
  async write(id: string, certificatePem: string, keyPem: string | undefined): Promise<CertificateBackup> {
    const backup = await this.backup(id);
    // nginx reads both at the next reload, which comes after both are written.
    if (keyPem !== undefined) await replaceAtomically(this.keyFile(id), keyPem, 0o600);
    await replaceAtomically(this.certificateFile(id), certificatePem, 0o644);
    if (keyPem === undefined && backup.keyPem !== undefined) await rm(this.keyFile(id), { force: true });
    await syncDir(this.dir);
    return backup;
  }

  /** Puts back the files a `write` or `remove` replaced. */
  async restore(backup: CertificateBackup): Promise<void> {
    const { id } = backup;
    if (backup.keyPem !== undefined) await replaceAtomically(this.keyFile(id), backup.keyPem, 0o600);
    else await rm(this.keyFile(id), { force: true });
    if (backup.certificatePem !== undefined) await replaceAtomically(this.certificateFile(id), backup.certificatePem, 0o644);
    else await rm(this.certificateFile(id), { force: true });
    await syncDir(this.dir);
  }

  /** True when the stored files hold exactly this certificate and key (or no key). */
  async holds(id: string, certificatePem: string, keyPem: string | undefined): Promise<boolean> {
    const before = await this.backup(id);
    return before.certificatePem === certificatePem && before.keyPem === keyPem;
  }

  /** Removes a certificate and its key; answers what was there. */
  async remove(id: string): Promise<CertificateBackup> {
    const backup = await this.backup(id);
    await rm(this.certificateFile(id), { force: true });
    await rm(this.keyFile(id), { force: true });
    await syncDir(this.dir);
    return backup;
  }

  private async backup(id: string): Promise<CertificateBackup> {
    return { id, certificatePem: await readIfThere(this.certificateFile(id)), keyPem: await readIfThere(this.keyFile(id)) };
  }
}
