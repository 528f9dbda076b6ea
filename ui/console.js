// Portico console (issue 17): a page over the same JSON API scripts use, from the same origin. No
// data is in the page itself: everything is fetched with the token, which is asked for once and kept
// in this tab's sessionStorage (never in a URL or a cookie). Text reaches the page through
// textContent only, so nothing the API answers can become markup.

const TOKEN_KEY = 'portico.token';
const $ = (id) => document.getElementById(id);

/** A fetch of the API with the token; a 401 asks for a token and throws. */
async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.body !== undefined && { 'content-type': 'application/json' }), ...(token !== null && { authorization: `Bearer ${token}` }) };
  const res = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (res.status === 401) {
    showSignIn(token === null ? '' : 'That token was refused.');
    throw new Error('a token is needed');
  }
  const text = await res.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, ok: res.ok, body };
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className !== undefined) node.className = className;
  return node;
}

const sections = ['sign-in', 'overview', 'streams'];
function show(id) {
  for (const section of sections) $(section).hidden = section !== id;
  $('sign-out').hidden = sessionStorage.getItem(TOKEN_KEY) === null;
}

function showSignIn(message) {
  $('sign-in-error').textContent = message;
  show('sign-in');
  $('token').focus();
}

// ---------------------------------------------------------------------------------------------
// Overview: the status, and the last applies, live from the event feed.
// ---------------------------------------------------------------------------------------------

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
/** Follows /v1/events as Server-Sent Events, read with fetch (EventSource cannot send the token). */
async function follow() {
  following?.abort();
  const controller = new AbortController();
  following = controller;
  const token = sessionStorage.getItem(TOKEN_KEY);
  try {
    const res = await fetch('/v1/events?follow=true&type=apply', { headers: token === null ? {} : { authorization: `Bearer ${token}` }, signal: controller.signal });
    if (!res.ok || res.body === null) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = message.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n');
        if (data !== '') addApply(JSON.parse(data), true);
      }
    }
  } catch {
    // aborted (another page), or the connection closed: the next visit follows again
  }
}

async function overview() {
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
  void follow();
}

// ---------------------------------------------------------------------------------------------
// Streams: the table, the create form with its preview, and each row's delete button.
// ---------------------------------------------------------------------------------------------

function badges(stream) {
  const cell = el('td');
  const names = [...(stream.tls ? ['TLS'] : []), ...(stream.sni ? ['SNI'] : []), ...(stream.proxyProtocol ? ['PROXY'] : [])];
  for (const name of names) cell.append(el('span', name, 'badge'));
  return cell;
}

function upstreamsOf(stream) {
  if (stream.sni) return stream.sni.routes.map((r) => `${r.serverName} → ${r.upstreams.map((u) => u.address).join(', ')}`).join('; ');
  return (stream.upstreams ?? []).map((u) => u.address).join(', ');
}

async function streams() {
  const res = await api('/v1/streams');
  show('streams');
  const rows = $('stream-rows');
  rows.replaceChildren();
  for (const stream of res.body) {
    const row = el('tr');
    const remove = el('button', 'Delete');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Delete stream ${stream.port}`);
    remove.addEventListener('click', () => void deleteStream(stream.port));
    const actions = el('td');
    actions.append(remove);
    row.append(el('td', stream.port), el('td', stream.protocol ?? 'tcp'), el('td', upstreamsOf(stream)), badges(stream), el('td', Object.entries(stream.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')), actions);
    rows.append(row);
  }
}

async function deleteStream(port) {
  const res = await api(`/v1/streams/${port}`, { method: 'DELETE' });
  if (!res.ok) $('create-error').textContent = res.body?.error?.message ?? `deleting stream ${port} failed (${res.status})`;
  await streams();
}

function clearErrors() {
  for (const id of ['port-error', 'backend-error', 'create-error']) $(id).textContent = '';
  for (const id of ['port', 'backend']) $(id).removeAttribute('aria-invalid');
}

/** An error answer shown beside the field it names (port, backend), or under the form. */
function showError(body, status) {
  const error = body?.error;
  const message = error?.message ?? `failed (${status})`;
  const field = error?.field === 'port' ? 'port' : error?.field === 'backend' || error?.field?.startsWith('upstreams') ? 'backend' : undefined;
  const lines = error?.nginx?.length ? `${message}\n${error.nginx.join('\n')}` : message;
  if (field !== undefined) {
    $(`${field}-error`).textContent = lines;
    $(field).setAttribute('aria-invalid', 'true');
  } else {
    $('create-error').textContent = lines;
  }
}

function formBody() {
  const port = $('port').value.trim();
  return { ...(port !== '' && { port: /^\d+$/.test(port) ? Number(port) : port }), backend: $('backend').value.trim() };
}

async function preview() {
  clearErrors();
  const res = await api('/v1/streams?dryRun=true', { method: 'POST', body: formBody() });
  const box = $('preview-result');
  box.hidden = false;
  if (res.body?.dryRun === true) {
    $('preview-verdict').textContent = res.body.nginx.ok ? 'nginx accepts it.' : `nginx refuses it: ${res.body.nginx.lines.join(' ')}`;
    $('preview-file').textContent = res.body.files.map((f) => `# ${f.name}\n${f.text ?? ''}`).join('\n');
    if (!res.body.nginx.ok) $('backend-error').textContent = res.body.nginx.lines.join('\n');
  } else {
    $('preview-verdict').textContent = 'Refused before nginx saw it.';
    $('preview-file').textContent = '';
    showError(res.body, res.status);
  }
}

async function create(event) {
  event.preventDefault();
  clearErrors();
  const res = await api('/v1/streams', { method: 'POST', body: formBody() });
  if (!res.ok) {
    showError(res.body, res.status);
    return;
  }
  $('create-form').reset();
  $('preview-result').hidden = true;
  await streams();
}

// ---------------------------------------------------------------------------------------------

async function route() {
  const page = location.hash.replace(/^#\//, '') || 'overview';
  if (page !== 'overview') following?.abort();
  try {
    if (page === 'streams') await streams();
    else await overview();
  } catch {
    // a token is needed: the sign-in form is shown
  }
}

$('sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  $('token').value = '';
  void route();
});
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  following?.abort();
  showSignIn('');
});
$('preview').addEventListener('click', () => void preview());
$('create-form').addEventListener('submit', (event) => void create(event));
window.addEventListener('hashchange', () => void route());
void route();
