/**
 * The event feed: what happened to the edge, newest last in memory, newest first in answers. Every
 * batch of changes that was applied, rejected, rolled back or failed is an event (dry runs change
 * nothing and are not), and so is every restart of a managed nginx. /v1/events answers the last
 * `capacity` of them and follows new ones as Server-Sent Events; the metrics read the same records,
 * so the feed and /metrics never disagree on what happened.
 *
 * In memory only, like the port reservations: a restart of Portico starts an empty feed (the files
 * are the state; the feed is what this process saw). Events carry who asked (the request id and the
 * token's name, never the token) and nginx's own lines on failure, never a credential.
 */

import type { EventBody, PorticoEvent } from '../model/event.js';

/** The events' types are inferred from their schemas (model/event.ts), which the OpenAPI document shows. */
export type { AcmeEventBody, ApplyEventBody, ChangeOutcome, EventBody, NginxEventBody, PorticoEvent } from '../model/event.js';

export type EventListener = (event: PorticoEvent) => void;

export const EVENT_CAPACITY = 1000;

/**
 * The ring of the last `capacity` events. Ids count up from `firstId`, by default the time the feed
 * was made in milliseconds since the epoch: an EventSource that reconnects to a restarted Portico
 * sends the Last-Event-ID it had from the process before, and ids counting from 1 again would be at
 * or below it, so the client would be replayed nothing of the new process. A process records far
 * fewer events than it lives milliseconds (each batch takes several), so the next one's ids start
 * above every id of the one before.
 */
export class EventFeed {
  private readonly ring: PorticoEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  private next: number;

  constructor(
    readonly capacity = EVENT_CAPACITY,
    firstId = Date.now(),
  ) {
    this.next = firstId;
  }

  /** Records an event, hands it to every listener, and answers it. A listener that throws is dropped, never the event. */
  record(body: EventBody): PorticoEvent {
    const event = { id: this.next, at: new Date().toISOString(), ...body } as PorticoEvent;
    this.next += 1;
    this.ring.push(event);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        this.listeners.delete(listener);
      }
    }
    return event;
  }

  /** The events kept, newest first; only those after `afterId` when it is given (an SSE client's Last-Event-ID). */
  list(afterId = 0): PorticoEvent[] {
    const out: PorticoEvent[] = [];
    for (let i = this.ring.length - 1; i >= 0; i -= 1) {
      const event = this.ring[i] as PorticoEvent;
      if (event.id <= afterId) break;
      out.push(event);
    }
    return out;
  }

  /** Calls `listener` with every event recorded from now on; answers the function that stops it. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  get subscribers(): number {
    return this.listeners.size;
  }
}
