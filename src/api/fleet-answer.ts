/**
 * How an answer shows the fleet (STORE=etcd): a mutation's `Portico-Fleet` header sums up each live
 * node's outcome (`revision=41; complete=true; edge-a=applied; edge-b=failed`), and its JSON body, when
 * it has one, carries the whole `fleet` object (with each failure's message and nginx's lines); a read
 * made while etcd does not answer says `Portico-Stale: true`: it comes from this node's own files.
 */
import type { RequestHandler, Response } from 'express';
import type { FleetOutcome } from '../fleet/fleet.js';
import type { Fleet } from '../fleet/fleet.js';

/** The fleet's part of a result, when the change went through the fleet. */
export function fleetOf(result: object): FleetOutcome | undefined {
  return 'fleet' in result ? (result.fleet as FleetOutcome) : undefined;
}

export function setFleetHeader(res: Response, fleet: FleetOutcome | undefined): void {
  if (fleet === undefined) return;
  res.set('Portico-Fleet', [`revision=${fleet.revision}`, `complete=${fleet.complete}`, ...fleet.nodes.map((n) => `${n.node}=${n.outcome}`)].join('; '));
}

/** The body of a mutation's answer: the resource, with `fleet` in a fleet. */
export function withFleet<T extends object>(body: T | undefined, fleet: FleetOutcome | undefined): T | (T & { fleet: FleetOutcome }) | undefined {
  if (fleet === undefined || body === undefined) return body;
  return { ...body, fleet };
}

/** Marks every answer `Portico-Stale: true` while this node cannot reach etcd. */
export function staleMarker(fleet: Fleet | undefined): RequestHandler {
  return (_req, res, next) => {
    if (fleet?.stale === true) res.set('Portico-Stale', 'true');
    next();
  };
}
