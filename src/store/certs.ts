/**
 * CertStore: the directory of uploaded certificates, `<id>.crt` (the chain, PEM) and `<id>.key` (its
 * private key, mode 0600), which stream and app files name by path. The only code that reads or
 * writes it. The directory itself is 0700: only Portico and nginx's master (which loads keys before
 * it drops privileges) read it.
 *
 * Changes are staged, swapped in under the same undo journal as the config directories, and
 * committed or rolled back (`Staging`): a certificate and its key change together or not at all, so
 * a crash never leaves a new key beside an old certificate, which nginx would refuse to start with.
 */
import { chmod, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { CERT_ID_PATTERN, describeCertificate, type CertificateFacts } from '../model/certificate.js';
import type { StagedTree } from './config-dir.js';
import { Journal, clearWorkDir, workDir, writeStaged, type FileChange } from './journal.js';

export interface StoredCertificate {
  id: string;
  certificatePem: string;
  facts: CertificateFacts;
}

/** What a directory listing says of each certificate, without parsing any: enough to plan a change. */
export type CertificateIndex = Map<string, { hasKey: boolean }>;

/** The text of a certificate's files as they are on disk (undefined: no such file). */
export interface CertificateFiles {
  certificatePem: string | undefined;
  keyPem: string | undefined;
}

const readIfThere = (file: string): Promise<string | undefined> =>
  readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });

export class CertStore {
  /** Where a batch's new files wait for the swap: a test config may name them (see `CertificateKind`). */
  readonly stageDir: string;
  private readonly journal: Journal;

  constructor(readonly dir: string) {
    this.stageDir = path.join(workDir(dir), 'stage');
    this.journal = new Journal(dir, this.stageDir);
  }

  /** The names of certificate `id`'s files in the directory. */
  fileNames(id: string): { certificate: string; key: string } {
    return { certificate: `${id}.crt`, key: `${id}.key` };
  }

  /**
   * Makes the directory (0700) and finishes what a crash interrupted: the batch in the journal is
   * rolled forward if it was committed, back if not (see `Journal.recover`), and staged files and
   * the temporary files of an older Portico's writes are removed. Answers the number of files
   * restored or completed, or undefined.
   */
  async open(): Promise<number | undefined> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.') && name.endsWith('.tmp')) await rm(path.join(this.dir, name), { force: true });
    }
    const restored = await this.journal.recover();
    await clearWorkDir(this.dir);
    return restored;
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
    const pem = await readIfThere(path.join(this.dir, this.fileNames(id).certificate));
    if (pem === undefined) return undefined;
    const hasKey = (await readIfThere(path.join(this.dir, this.fileNames(id).key))) !== undefined;
    return { id, certificatePem: pem, facts: describeCertificate(pem, hasKey) };
  }

  async list(): Promise<StoredCertificate[]> {
    const ids = [...(await this.index()).keys()].sort();
    const all = await Promise.all(ids.map((id) => this.get(id)));
    return all.filter((c): c is StoredCertificate => c !== undefined);
  }

  /** The PEM text of certificate `id` (its key left unread), or undefined when there is none. */
  certificatePem(id: string): Promise<string | undefined> {
    return readIfThere(path.join(this.dir, this.fileNames(id).certificate));
  }

  /** The text of certificate `id`'s files, to tell a change from a repeat. */
  async files(id: string): Promise<CertificateFiles> {
    const names = this.fileNames(id);
    return { certificatePem: await readIfThere(path.join(this.dir, names.certificate)), keyPem: await readIfThere(path.join(this.dir, names.key)) };
  }

  /** Writes a batch's new files into the staging folder; nothing live changes. `includes` lists the staged files. */
  async stage(changes: FileChange[]): Promise<StagedTree> {
    const staged = await writeStaged(this.stageDir, changes);
    return { includes: [...staged.values()], staged, aliases: [], keys: new Map(), changes };
  }

  /** Discards staged files that will not be swapped in. */
  async unstage(staged: StagedTree): Promise<void> {
    await Promise.all([...staged.staged.values()].map((file) => rm(file, { force: true })));
  }

  /** Swaps the staged files in under the journal (see `Journal.swap`); not permanent until `commit`. */
  async swap(staged: StagedTree): Promise<void> {
    await this.journal.swap(
      staged.changes.map((c) => ({ dir: this.dir, name: c.name, staged: staged.staged.get(c.name) ?? null, text: c.text, ...(c.mode !== undefined && { mode: c.mode }) })),
    );
  }

  async commit(): Promise<void> {
    await this.journal.commit();
  }

  /** Waits until the last committed batch is on disk and the journal is empty (see `Journal.settle`). */
  settle(): Promise<void> {
    return this.journal.settle();
  }

  /** Restores the files as they were before the last swap. */
  async rollBack(staged: StagedTree): Promise<void> {
    await this.journal.rollBack();
    await this.unstage(staged);
  }
}
