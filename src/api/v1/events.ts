/**
 * /v1/events: the event feed (events/feed.ts). A plain GET answers the events kept, newest first,
 * narrowed by `type`, `resource`, `outcome` and `limit`; `?follow=true` answers Server-Sent Events
 * instead: one `event: <type>` message per event as it is recorded (its `id` the event's id), after
 * the kept events newer than the client's `Last-Event-ID` (a reconnecting EventSource misses
 * nothing the feed still holds), with a comment line every `HEARTBEAT_MS` so that proxies and
 * clients see the connection alive. At most `MAX_FOLLOWERS` follow at once, and at most
 * `MAX_FOLLOWERS_PER_CLIENT` of them from one client (as the API's connection caps count clients):
 * one more is answered 503, since each holds a connection of the API's cap for as long as it likes,
 * and one client must not take every place; one that stops reading is cut off at `MAX_UNSENT_BYTES`.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { PorticoError } from '../../errors.js';
import type { EventFeed, PorticoEvent } from '../../events/feed.js';
import { ACME_EVENTS, APPLY_OUTCOMES, NGINX_EVENTS } from '../../model/event.js';
import { clientOf } from '../connection-limits.js';
import { parseQuery } from '../params.js';

export const HEARTBEAT_MS = 15_000;
export const MAX_FOLLOWERS = 32;
/** A dashboard and a terminal or two per machine: the rest of the places stay for the other clients. */
export const MAX_FOLLOWERS_PER_CLIENT = 8;
/**
 * A follower that does not read its stream has its connection closed once this much waits unsent
 * for it (the feed's 1,000 events are about 1 MiB): its EventSource reconnects with Last-Event-ID
 * and misses nothing the feed still holds, and Portico's memory stays bounded.
 */
export const MAX_UNSENT_BYTES = 1 << 20;

export const eventsQuerySchema = z
  .object({
    follow: z.enum(['true', 'false']).optional(),
    type: z.enum(['apply', 'nginx', 'acme']).optional(),
    resource: z.enum(['stream', 'app', 'certificate']).optional(),
    // An apply's outcome, or what became of nginx or of an ACME order (their `what`): "failed" is both
    // an apply's and an order's.
    outcome: z.enum([...APPLY_OUTCOMES, ...NGINX_EVENTS, ...ACME_EVENTS.filter((what) => what !== 'failed')]).optional(),
    limit: z
      .string()
      .regex(/^[1-9][0-9]{0,3}$/, 'must be a whole number from 1 to 1000')
      .transform(Number)
      .refine((n) => n <= 1000, 'must be a whole number from 1 to 1000')
      .optional(),
  })
  .strict();

type EventsQuery = z.infer<typeof eventsQuerySchema>;

const matches = (query: EventsQuery) => (event: PorticoEvent): boolean =>
  (query.type === undefined || event.type === query.type) &&
  (query.resource === undefined || (event.type === 'apply' && event.resource === query.resource)) &&
  (query.outcome === undefined || (event.type === 'apply' ? event.outcome : event.what) === query.outcome);

/**
 * The Last-Event-ID a reconnecting EventSource sends: the id of the last event it saw; 0 from a
 * client whose list of the kept events was empty (the console), for every kept event since; absent,
 * undefined: only the events to come.
 */
function lastEventId(req: Request): number | undefined {
  const header = req.get('Last-Event-ID');
  if (header === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(header)) throw new PorticoError('InvalidInput', 'must be the id of an event, a whole number', { field: 'Last-Event-ID' });
  return Number(header);
}

export function eventsRouter(events: EventFeed): Router {
  const router = Router();
  // The clients following now: counted here, not as the feed's subscribers (the metrics subscribe too).
  const followers: Followers = { count: 0, byClient: new Map() };

  router.get('/', (req, res) => {
    const query = parseQuery(eventsQuerySchema, req.query);
    if (query.follow === 'true') {
      follow(req, res, events, query, followers);
      return;
    }
    res.set('Cache-Control', 'no-store').json(events.list().filter(matches(query)).slice(0, query.limit ?? events.capacity));
  });

  return router;
}

/** The followers now, in all and by client (its IPv4 address or IPv6 /64, as `connection-limits.ts` counts them). */
interface Followers {
  count: number;
  byClient: Map<string, number>;
}

function follow(req: Request, res: Response, events: EventFeed, query: EventsQuery, followers: Followers): void {
  const after = lastEventId(req);
  if (followers.count >= MAX_FOLLOWERS) {
    throw new PorticoError('Busy', `${MAX_FOLLOWERS} clients already follow the events: try again later`);
  }
  const client = clientOf(req.socket.remoteAddress);
  const mine = followers.byClient.get(client) ?? 0;
  if (mine >= MAX_FOLLOWERS_PER_CLIENT) {
    throw new PorticoError('Busy', `this client (${client}) already follows the events ${mine} times, its limit: close one first`);
  }
  const wanted = matches(query);
  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-store',
    // An nginx in front of the API must not buffer the stream.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  const write = (text: string): void => {
    if (res.writableLength > MAX_UNSENT_BYTES) {
      res.destroy();
      return;
    }
    res.write(text);
  };
  const send = (event: PorticoEvent): void => {
    if (!wanted(event)) return;
    // JSON.stringify leaves no newline in its output: one data line per event.
    write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
  };
  // The kept events the client has not seen, oldest first, then the new ones as they come.
  write(': following the events of this Portico\n\n');
  if (after !== undefined) for (const event of events.list(after).reverse()) send(event);
  const stop = events.subscribe(send);
  followers.count += 1;
  followers.byClient.set(client, mine + 1);
  const heartbeat = setInterval(() => write(': keepalive\n\n'), HEARTBEAT_MS);
  heartbeat.unref();
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    followers.count -= 1;
    const left = (followers.byClient.get(client) ?? 1) - 1;
    if (left === 0) followers.byClient.delete(client);
    else followers.byClient.set(client, left);
    clearInterval(heartbeat);
    stop();
  };
  res.on('close', end);
  req.on('error', end);
}
