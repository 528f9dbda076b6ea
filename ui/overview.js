// Overview: the status, and the last applies, live from the event feed.
import { $, api, el, followEvents, show } from './lib.js';

function describeApply(event) {
  const changes = event.changes.map((c) => `${c.change}: ${c.outcome}${c.error ? ` (${c.error.message})` : ''}`).join('; ');
  return `${new Date(event.at ?? Date.now()).toLocaleTimeString()} ${event.resource} ${event.outcome}: ${changes}`;
}

function addApply(event, first) {
  const list = $('applies');
  const item = el('li', describeApply(event), event.outcome === 'applied' || event.outcome === 'unchanged' ? undefined : 'failed');
  if (first) list.prepend(item);
  else list.append(item);
  while (list.children.length > 20) list.lastElementChild.remove();
}

let following;

export async function render() {
  const [status, events] = await Promise.all([api('/v1/status'), api('/v1/events?type=apply&limit=20')]);
  show('overview');
  const dl = $('status');
  dl.replaceChildren();
  const facts = status.body;
  const rows = [
    ['nginx', facts.nginx?.running === false ? 'not running' : `running${facts.nginx?.version ? `, ${facts.nginx.version}` : ''}`],
    ['mode', facts.mode],
    ['port range', facts.range ? `${facts.range.from}-${facts.range.to}` : ''],
    ['streams', facts.streams],
    ['free ports', facts.freePorts],
    ['nginx restarts', facts.nginx?.restarts ?? 0],
  ];
  for (const [name, value] of rows) dl.append(el('dt', name), el('dd', value ?? ''));
  const list = $('applies');
  list.replaceChildren();
  // Newest first, as the API answers them; the live ones go on top.
  for (const event of events.body ?? []) addApply(event, false);
  following?.abort();
  following = new AbortController();
  void followEvents('type=apply', (event) => addApply(event, true), following.signal);
}

export function leave() {
  following?.abort();
}
