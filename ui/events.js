// Events: the feed of /v1/events, then the new ones live, narrowed by kind and outcome. The filters
// are the API's own query (type, outcome), so the page shows what a script asking the same gets, for
// the events kept and for the live ones alike; the list keeps the newest MAX_ROWS.
import { $, api, el, followEvents, show } from './lib.js';

export const MAX_ROWS = 200;
const FAILED = new Set(['rejected', 'rolled-back', 'failed', 'restart-failed', 'exited']);

/** The query of the filters as chosen, as /v1/events reads it. */
function query() {
  const params = new URLSearchParams();
  const type = $('events-kind').value;
  const outcome = $('events-outcome').value;
  if (type !== '') params.set('type', type);
  if (outcome !== '') params.set('outcome', outcome);
  return params;
}

/** The API's rule (src/api/v1/events.ts): an apply's outcome, or nginx's or an ACME order's `what`. */
function matches(params, event) {
  const type = params.get('type');
  const outcome = params.get('outcome');
  return (type === null || event.type === type) && (outcome === null || outcomeOf(event) === outcome);
}

/** What the event happened to. */
function resourceOf(event) {
  if (event.type === 'apply') return event.resource;
  if (event.type === 'nginx') return event.pid === undefined ? 'nginx' : `nginx (pid ${event.pid})`;
  return `certificate ${event.certificate}${event.names?.length ? ` (${event.names.join(', ')})` : ''}`;
}

/** An apply's outcome, or what became of nginx or of an ACME order. */
const outcomeOf = (event) => (event.type === 'apply' ? event.outcome : event.what);

/** The details cell: each change of an apply with its error and nginx's lines; an order's or a restart's detail. */
function details(event) {
  const cell = el('td');
  if (event.type === 'apply') {
    const list = el('ul', undefined, 'changes');
    for (const change of event.changes) {
      const item = el('li', `${change.change}: ${change.outcome}${change.error ? ` (${change.error.message})` : ''}`);
      if (change.error?.nginx?.length) item.append(el('pre', change.error.nginx.join('\n'), 'nginx-lines'));
      list.append(item);
    }
    cell.append(list, el('span', `${event.totalMs} ms`, 'hint'));
    return cell;
  }
  const facts = [
    event.detail,
    event.type === 'nginx' && event.restartInMs !== undefined ? `restart in ${event.restartInMs} ms` : undefined,
    event.type === 'acme' ? event.challenge : undefined,
    event.type === 'acme' && event.notAfter ? `valid until ${new Date(event.notAfter).toLocaleString()}` : undefined,
    event.type === 'acme' && event.retryAt ? `retry at ${new Date(event.retryAt).toLocaleString()}` : undefined,
  ].filter((fact) => fact !== undefined && fact !== '');
  cell.textContent = facts.join('; ');
  return cell;
}

function row(event) {
  const outcome = outcomeOf(event);
  const tr = el('tr');
  tr.dataset.id = String(event.id);
  const time = el('time', new Date(event.at).toLocaleString());
  time.dateTime = event.at;
  const when = el('td');
  when.append(time);
  tr.append(when, el('td', event.type), el('td', resourceOf(event)), el('td', outcome, FAILED.has(outcome) ? 'failed' : undefined), details(event));
  return tr;
}

let following;
let shown = new Set();

/** Adds an event on top (live) or at the bottom (the kept ones, newest first), once, keeping MAX_ROWS. */
function add(event, onTop) {
  if (shown.has(event.id)) return;
  shown.add(event.id);
  const rows = $('event-rows');
  if (onTop) rows.prepend(row(event));
  else rows.append(row(event));
  while (rows.children.length > MAX_ROWS) {
    shown.delete(Number(rows.lastElementChild.dataset.id));
    rows.lastElementChild.remove();
  }
}

/**
 * Reads the kept events, then follows from the newest of them (Last-Event-ID: the feed replays what
 * came in between), so that nothing is missed and each event shows once. `visible` is asked once the
 * list answered: a page the router has left starts no feed.
 */
async function load(visible = () => true) {
  following?.abort();
  const mine = new AbortController();
  following = mine;
  const params = query();
  const listed = new URLSearchParams(params);
  listed.set('limit', String(MAX_ROWS));
  const res = await api(`/v1/events?${listed}`);
  if (mine.signal.aborted) return;
  if (!visible()) {
    mine.abort();
    return;
  }
  shown = new Set();
  $('event-rows').replaceChildren();
  const kept = res.ok ? res.body : [];
  for (const event of kept) add(event, false);
  void followEvents(params.toString(), (event) => {
    if (!mine.signal.aborted && matches(params, event)) add(event, true);
  }, mine.signal, kept[0]?.id ?? 0);
}

/** With a kind chosen, the outcomes offered are that kind's (the others could match nothing). */
function onKind() {
  const kind = $('events-kind').value;
  const outcome = $('events-outcome');
  for (const option of outcome.options) option.hidden = option.value !== '' && kind !== '' && !option.dataset.kinds.split(' ').includes(kind);
  if (outcome.selectedOptions[0]?.hidden) outcome.value = '';
  reload();
}

// A refused token has shown the sign-in form already (lib.js): nothing more to do here.
const reload = () => void load().catch(() => undefined);

$('events-kind').addEventListener('change', onKind);
$('events-outcome').addEventListener('change', reload);
$('events-filter').addEventListener('submit', (event) => event.preventDefault());

export async function render() {
  await load(() => show('events'));
}

export function leave() {
  following?.abort();
  following = undefined;
}
