/**
 * /v1/certificates: upload, list, replace and delete the certificates streams (and apps) name by id.
 * Bodies are parsed by `certificateInputSchema`, then checked by `inspectCertificate`; keys are
 * stored but never answered. A body with `acme` instead creates a managed certificate
 * (src/acme/manager.ts): a placeholder serves at once, the CA's certificate replaces it, and it
 * renews itself; its state is answered as `acme`, and `POST /v1/certificates/:id/renew` orders now.
 */
import { Router } from 'express';
import { acmeCertificateInputSchema, acmeIdFor, acmeView, type AcmeRecord } from '../../acme/state.js';
import { certificateUsers } from '../../apply/certificate-kind.js';
import { conflict, invalidInput, notFound } from '../../errors.js';
import { etagOf } from '../../model/etag.js';
import { APP_ACME_SUFFIX } from '../../model/app.js';
import { certificateIdSchema, certificateInputSchema, inspectCertificate, type CertificateInput, type InspectedCertificate } from '../../model/certificate.js';
import type { StoredCertificate } from '../../store/certs.js';
import type { AppTree } from '../../store/apps.js';
import type { StreamTree } from '../../store/tree.js';
import type { Portico } from '../context.js';
import { requester } from '../request-id.js';
import type { CertificateView } from '../openapi/answers.js';
import { preconditions, parseWith } from '../params.js';
import { fleetOf, setFleetHeader, withFleet } from '../fleet-answer.js';
import type { CertificateChange } from '../../apply/certificate-kind.js';
import type { Response } from 'express';

/** What the API shows of a certificate: its facts and who uses it, never its key. */
function view(certificate: StoredCertificate, trees: { streams: StreamTree; apps: AppTree }, withPem: boolean, acme: AcmeRecord | undefined): CertificateView {
  const { streams, apps } = certificateUsers(certificate.id, trees.streams, trees.apps);
  return {
    id: certificate.id,
    ...certificate.facts,
    usedBy: { streams, apps },
    ...(acme !== undefined && { acme: acmeView(acme) }),
    ...(withPem && { certificate: certificate.certificatePem }),
  };
}

/** An id for an upload that names none: stable for the same certificate. */
function idFor(fingerprint: string): string {
  return `cert-${fingerprint.replace(/:/g, '').slice(0, 16).toLowerCase()}`;
}

function inspect(input: CertificateInput) {
  return inspectCertificate({ certificate: input.certificate, ...(input.key !== undefined && { key: input.key }) }, new Date());
}

/** Ids ending in "_acme" are the managed certificates of apps' `tls.acme`: no caller may take one. */
function reserved(id: string): void {
  if (id.endsWith(APP_ACME_SUFFIX)) throw invalidInput('id', `ends in "${APP_ACME_SUFFIX}", which Portico keeps for the certificates of apps with "tls": {"acme": true}`);
}

export function certificatesRouter(portico: Portico): Router {
  const router = Router();
  const { tree, apps, certs, applier, acme, fleet } = portico;

  /** In a fleet, through etcd to every node (fleet/fleet.ts). */
  const submit = async (res: Response, change: CertificateChange) => {
    const result = fleet === undefined ? await applier.submitCertificate(change, requester(res)) : await fleet.submitCertificate(change);
    setFleetHeader(res, fleetOf(result));
    return result;
  };

  /** Managed certificates are one node's orders: not in a fleet yet. */
  const noAcmeInFleet = (): void => {
    if (fleet !== undefined) throw invalidInput('acme', 'is not available with STORE=etcd yet: upload the certificate and its key (every node serves it)');
  };
  const trees = async () => ({ streams: await tree.read(), apps: await apps.read() });

  /** The certificate's view and its ETag (a hash of the stored certificate, not of its users). */
  const answer = async (id: string, withPem = false) => {
    const stored = await certs.get(id);
    if (stored === undefined) throw notFound(`no certificate "${id}"`);
    return answerOf(stored, withPem);
  };
  const answerOf = async (stored: StoredCertificate, withPem = false) => ({ body: view(stored, await trees(), withPem, await acme.get(stored.id)), etag: etagOf(stored) });
  /**
   * The answer to a write: in a fleet, of the certificate as written (this node may not have applied
   * it yet: FLEET_WAIT none or quorum, or it failed here); on a single node, as stored.
   */
  const written = (id: string, certificate: InspectedCertificate) =>
    fleet === undefined ? answer(id) : answerOf({ id, certificatePem: certificate.certificatePem, facts: certificate.facts });

  /** A PEM upload may not replace a certificate the CA renews: the next renewal would undo it. */
  const notManaged = async (id: string): Promise<void> => {
    if ((await acme.get(id)) !== undefined) {
      throw conflict(`certificate "${id}" is managed by ACME: POST /v1/certificates/${id}/renew to renew it now, or DELETE it first to upload your own`);
    }
  };

  router.get('/', async (_req, res) => {
    const current = await trees();
    const managed = new Map((await acme.list()).map((r) => [r.id, r]));
    res.json((await certs.list()).map((c) => view(c, current, false, managed.get(c.id))));
  });

  router.get('/:id', async (req, res) => {
    const { body, etag } = await answer(parseWith(certificateIdSchema, req.params.id, 'id'), true);
    res.set('ETag', etag).json(body);
  });

  router.post('/', async (req, res) => {
    const sent: unknown = req.body ?? {};
    if (typeof sent === 'object' && sent !== null && 'acme' in sent) {
      noAcmeInFleet();
      const input = parseWith(acmeCertificateInputSchema, sent);
      const id = input.id ?? acmeIdFor(input.acme.names);
      reserved(id);
      await acme.create(id, input.acme, requester(res));
      const { body: created, etag } = await answer(id);
      res.status(201).location(`/v1/certificates/${id}`).set('ETag', etag).json(created);
      return;
    }
    const input = parseWith(certificateInputSchema, sent);
    const certificate = inspect(input);
    const id = input.id ?? idFor(certificate.facts.fingerprint);
    reserved(id);
    const result = await submit(res, { kind: 'certificate-put', id, certificate, create: true });
    const { body, etag } = await written(id, certificate);
    res.status(201).location(`/v1/certificates/${id}`).set('ETag', etag).json(withFleet(body, fleetOf(result)));
  });

  router.put('/:id', async (req, res) => {
    const id = parseWith(certificateIdSchema, req.params.id, 'id');
    const input = parseWith(certificateInputSchema, req.body ?? {});
    if (input.id !== undefined && input.id !== id) throw invalidInput('id', `is "${input.id}" in the body but "${id}" in the path`);
    reserved(id);
    await notManaged(id);
    const certificate = inspect(input);
    const result = await submit(res, { kind: 'certificate-put', id, certificate, create: false, ...preconditions(req) });
    const { body, etag } = await written(id, certificate);
    res
      .set({ 'Portico-Outcome': result.outcome, ETag: etag })
      .status(result.outcome === 'created' ? 201 : 200)
      .json(withFleet(body, fleetOf(result)));
  });

  router.delete('/:id', async (req, res) => {
    const id = parseWith(certificateIdSchema, req.params.id, 'id');
    const managed = await acme.get(id);
    if (managed?.app !== undefined) throw conflict(`certificate "${id}" belongs to app "${managed.app}" (tls.acme): it goes with the app`);
    await submit(res, { kind: 'certificate-delete', id, ...preconditions(req) });
    if (managed !== undefined) await acme.forget(id);
    res.status(204).end();
  });

  router.post('/:id/renew', async (req, res) => {
    const id = parseWith(certificateIdSchema, req.params.id, 'id');
    noAcmeInFleet();
    await acme.renewNow(id);
    const { body, etag } = await answer(id);
    res.set('ETag', etag).json(body);
  });

  return router;
}
