/**
 * Tells the applier which requests are on their way to queue a change (`apply/arrivals.ts`), so that
 * a batch waits for the requests of a burst that were already read instead of leaving them to the next.
 */
import type { Request, RequestHandler } from 'express';
import type { Arrivals } from '../apply/arrivals.js';
import { requester } from './request-id.js';

/** The legacy routes that change streams, though they are GETs (stream-conductor's own). */
const LEGACY_CHANGE = /^\/(?:createstream|removestream)\//;

/** Whether `req` may queue a change: any method but a read's, and the legacy changes. */
export function mayChange(req: Pick<Request, 'method' | 'path'>): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS') return true;
  return req.method === 'GET' && LEGACY_CHANGE.test(req.path);
}

/** Marks each request that may change something as arrived until it queued its change or was answered. */
export function trackArrivals(arrivals: Arrivals): RequestHandler {
  return (req, res, next) => {
    if (mayChange(req)) {
      const { request } = requester(res);
      arrivals.arrived(request);
      res.once('close', () => arrivals.settled(request));
    }
    next();
  };
}
