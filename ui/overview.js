// Overview: the status, the last applies live from the event feed (nginx's lines under a failed
// one), the certificates that expire within 30 days, and in a fleet every node with its applied
// revision and lag, read again every FLEET_POLL_MS while the page is shown.
import { $, api, certificateNames, daysLeft, EXPIRY_DAYS, el, errorText, followEvents, pause, show } from './lib.js';

const FLEET_POLL_MS = 3000;

function describeApply(event) {
  const changes = event.changes.map((c) => `${c.change}: ${c.outcome}${c.error ? ` (${c.error.message})` : ''}`).join('; ');
  return `${new Date(event.at ?? Date.now()).toLocaleTimeString()} ${event.resource} ${event.outcome}: ${changes}`;
}

function addApply(event, first) {
  const list = $('applies');
  const item = el('li', describeApply(event), event.outcome === 'applied' || event.outcome === 'unchanged' ? undefined : 'failed');
  // nginx's own lines for each change it refused, under the apply.
  const lines = event.changes.flatMap((c) => c.error?.nginx ?? []);
  if (lines.length > 0) item.append(el('pre', lines.join('\n'), 'nginx-lines'));
  if (first) list.prepend(item);
  else list.append(item);
  while (list.children.length > 20) list.lastElementChild.remove();
}

function daysText(days) {
  if (days < 0) return `expired ${-days} ${-days === 1 ? 'day' : 'days'} ago`;
  return `${days} ${days === 1 ? 'day' : 'days'}`;
}

function showExpiring(certificates) {
  const now = Date.now();
  const soon = certificates
    .filter((c) => daysLeft(c.notAfter, now) < EXPIRY_DAYS)
    .sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter));
  const rows = $('expiring-rows');
  rows.replaceChildren();
  for (const certificate of soon) {
    const days = daysLeft(certificate.notAfter, now);
    const row = el('tr');
    const expires = el('time', new Date(certificate.notAfter).toLocaleString());
    expires.dateTime = certificate.notAfter;
    const when = el('td');
    when.append(expires);
    row.append(el('td', certificate.id), el('td', certificateNames(certificate)), when, el('td', daysText(days), days < 7 ? 'failed' : undefined));
    rows.append(row);
  }
  $('expiring-table').hidden = soon.length === 0;
  $('expiring-none').hidden = soon.length > 0;
}

function stateOf(node) {
  const errors = node.errors?.length ? `, ${node.errors.length} ${node.errors.length === 1 ? 'error' : 'errors'}: ${node.errors.map((e) => `${e.resource} ${e.message}`).join('; ')}` : '';
  return `${node.outcome}${errors}`;
}

/** The fleet's nodes as this node sees them; hidden on a single node (GET /v1/fleet answers 404 there). */
function showFleet(res) {
  const section = $('fleet');
  if (res.status === 404 || !res.ok) {
    section.hidden = true;
    return res.status !== 404;
  }
  const view = res.body;
  section.hidden = false;
  $('fleet-summary').textContent = `As node ${view.node} sees it${view.etcdRevision === undefined ? '' : `, at etcd revision ${view.etcdRevision}`}${view.stale ? ': stale, this node has lost etcd and its view may be old' : ''}. FLEET_WAIT ${view.wait}.`;
  const rows = $('fleet-rows');
  rows.replaceChildren();
  for (const node of [...view.nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    const row = el('tr');
    row.append(
      el('th', `${node.name}${node.name === view.node ? ' (this node)' : ''}`),
      el('td', node.listenAddress ?? 'all addresses'),
      el('td', node.revision),
      el('td', node.lag, node.lag > 0 ? 'failed' : undefined),
      el('td', stateOf(node), node.outcome === 'applied' ? undefined : 'failed'),
      el('td', node.nginx?.running === false ? 'not running' : `running${node.nginx?.version ? `, ${node.nginx.version}` : ''}`),
    );
    row.firstElementChild.scope = 'row';
    rows.append(row);
  }
  return true;
}

let following;
let polling;

/** Reads /v1/fleet every FLEET_POLL_MS until `signal` aborts; stops at once on a single node. */
async function pollFleet(signal) {
  while (!signal.aborted) {
    await pause(FLEET_POLL_MS, signal);
    if (signal.aborted) return;
    let res;
    try {
      res = await api('/v1/fleet');
    } catch {
      return; // a token is needed: the sign-in form is shown
    }
    if (signal.aborted || !showFleet(res)) return;
  }
}

export async function render() {
  const [status, events, certificates, fleet] = await Promise.all([api('/v1/status'), api('/v1/events?type=apply&limit=20'), api('/v1/certificates'), api('/v1/fleet')]);
  if (!show('overview')) return;
  const dl = $('status');
  dl.replaceChildren();
  const facts = status.ok ? status.body : {};
  if (!status.ok) dl.append(el('dt', 'status'), el('dd', errorText(status.body, status.status), 'failed'));
  const rows = !status.ok ? [] : [
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
  const kept = events.ok ? events.body : [];
  for (const event of kept) addApply(event, false);
  showExpiring(certificates.ok ? certificates.body : []);
  leave();
  following = new AbortController();
  // From the newest apply listed: the feed replays what came since, so none is missed.
  void followEvents('type=apply', (event) => addApply(event, true), following.signal, kept[0]?.id ?? 0);
  if (showFleet(fleet)) {
    polling = new AbortController();
    void pollFleet(polling.signal);
  }
}

export function leave() {
  following?.abort();
  polling?.abort();
}
