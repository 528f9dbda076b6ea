// Apps: the table (server names, routes and their upstreams, TLS/HTTP/3 badges), filtered and paged
// in the page like the streams' (50 rows at a time), each row with its requests over the last minutes
// by status class (ui/traffic.js, read for the rows shown only); the create form for the common
// fields with the advanced editor for the whole schema (App JSON), Preview (the API's dry run), and
// each row's Edit and Delete buttons. An edit loads the app and its ETag, and saves with If-Match: a
// change someone made meanwhile is refused (412), not overwritten.
import { $, api, el, button, errorText, pagedTable, show } from './lib.js';
import { appTrafficCell, startAppTraffic, stopAppTraffic } from './traffic.js';

const FIELDS = ['app-name', 'app-server-name', 'app-backend', 'app-json'];
const COLUMNS = 6;

/** The app being edited ({name, etag}), or undefined while the form creates. */
let editing;

function badgesOf(app) {
  const tls = app.tls;
  return [
    ...(tls ? ['TLS'] : []),
    ...(tls?.acme ? ['ACME'] : []),
    ...(tls?.http2 ? ['HTTP/2'] : []),
    ...(tls?.http3 ? ['HTTP/3'] : []),
    ...(tls?.httpsRedirect ? ['HTTPS redirect'] : []),
    ...(tls?.clientCa ? ['client certificates'] : []),
    ...(app.default ? ['default'] : []),
    ...(app.routes.some((r) => r.websocket) ? ['WebSocket'] : []),
    ...(app.routes.some((r) => r.cache) ? ['cache'] : []),
    ...(app.routes.some((r) => r.upstreamTls) ? ['TLS to upstreams'] : []),
  ];
}

function features(app) {
  const cell = el('td');
  const tls = app.tls;
  for (const name of badgesOf(app)) cell.append(el('span', name, 'badge'));
  if (tls?.certificate) cell.append(el('span', `certificate ${tls.certificate}`, 'hint'));
  return cell;
}

/** Each route as one line: its path, its upstreams (with their weights) and its balance. */
function routeLines(app) {
  return app.routes.map((route) => {
    const upstreams = route.upstreams.map((u) => (u.weight === undefined ? u.address : `${u.address} (weight ${u.weight})`)).join(', ');
    const path = route.replacePath === undefined ? route.path ?? '/' : `${route.path} as ${route.replacePath}`;
    return `${path} → ${upstreams}${route.balance ? ` (${route.balance})` : ''}`;
  });
}

function routes(app) {
  const cell = el('td');
  const list = el('ul', undefined, 'plain');
  for (const line of routeLines(app)) list.append(el('li', line));
  cell.append(list);
  return cell;
}

function row(app) {
  const tr = el('tr');
  const name = el('th', app.name);
  name.scope = 'row';
  const actions = el('td', undefined, 'row-actions');
  actions.append(button('Edit', () => void edit(app.name), `Edit app ${app.name}`), button('Delete', () => void deleteApp(app.name), `Delete app ${app.name}`));
  tr.append(name, el('td', app.serverNames.join(', ')), routes(app), features(app), appTrafficCell(app.name), actions);
  return tr;
}

/** A row of one cell across the table: what there is to say when no app is shown. */
function noteRow(text) {
  const tr = el('tr');
  const cell = el('td', text, 'hint');
  cell.colSpan = COLUMNS;
  tr.append(cell);
  return tr;
}

/** What the filter searches: the name, the server names, the routes and upstreams, the badges. */
function searchText(app) {
  const certificate = app.tls?.certificate ? `certificate ${app.tls.certificate}` : '';
  return `${app.name} ${app.serverNames.join(' ')} ${routeLines(app).join(' ')} ${badgesOf(app).join(' ')} ${certificate}`;
}

const table = pagedTable({
  ids: { filter: 'app-filter', rows: 'app-rows', count: 'app-count', previous: 'app-previous-page', next: 'app-next-page' },
  one: 'app',
  title: 'Apps',
  empty: 'No apps yet.',
  searchText,
  row,
  note: noteRow,
  // The charts follow the rows: the old page's stop, the new page's start reading.
  around: { before: stopAppTraffic, after: startAppTraffic },
});

export async function render() {
  const res = await api('/v1/apps');
  if (!show('apps')) return;
  $('app-list-error').textContent = '';
  if (!res.ok) {
    stopAppTraffic();
    $('app-rows').replaceChildren();
    $('app-count').textContent = '';
    $('app-list-error').textContent = `listing the apps: ${errorText(res.body, res.status)}`;
    return;
  }
  table.set(res.body);
}

/** The page is left: its traffic charts stop refreshing. */
export function leave() {
  stopAppTraffic();
}

async function deleteApp(name) {
  $('app-list-error').textContent = '';
  const res = await api(`/v1/apps/${encodeURIComponent(name)}`, { method: 'DELETE' });
  if (editing?.name === name && res.ok) stopEditing();
  await render();
  // After the list is read again (which clears the list's error), so that a refusal stays shown.
  if (!res.ok) $('app-list-error').textContent = `deleting app ${name}: ${errorText(res.body, res.status)}`;
}

function clearErrors() {
  for (const id of [...FIELDS.map((f) => `${f}-error`), 'app-form-error', 'app-list-error']) $(id).textContent = '';
  for (const id of FIELDS) $(id).removeAttribute('aria-invalid');
}

/** The control an error's `field` belongs to: the JSON editor when the body came from it. */
function controlFor(field, fromJson) {
  if (fromJson) return 'app-json';
  if (field === 'name') return 'app-name';
  if (field?.startsWith('serverNames')) return 'app-server-name';
  if (field?.startsWith('routes')) return 'app-backend';
  return undefined;
}

function showAt(control, text) {
  if (control === undefined) {
    $('app-form-error').textContent = text;
    return;
  }
  $(`${control}-error`).textContent = text;
  $(control).setAttribute('aria-invalid', 'true');
}

/** An error answer beside the control it names, with nginx's own lines. */
function showError(body, status, fromJson) {
  showAt(controlFor(body?.error?.field, fromJson), errorText(body, status));
}

function fromFields() {
  const serverName = $('app-server-name').value.trim();
  const backend = $('app-backend').value.trim();
  return {
    name: $('app-name').value.trim(),
    serverNames: serverName === '' ? [] : [serverName],
    routes: [{ upstreams: backend === '' ? [] : [{ address: backend }] }],
  };
}

/** The body to send: App JSON when it holds text (or an app is edited), else the form's fields. */
function body() {
  const text = $('app-json').value.trim();
  if (editing === undefined && text === '') return { value: fromFields(), fromJson: false };
  try {
    return { value: JSON.parse(text), fromJson: true };
  } catch (error) {
    showAt('app-json', `App JSON is not JSON: ${error.message}`);
    return undefined;
  }
}

function request(dryRun) {
  const sent = body();
  if (sent === undefined) return undefined;
  const query = dryRun ? '?dryRun=true' : '';
  if (editing === undefined) return { sent, call: api(`/v1/apps${query}`, { method: 'POST', body: sent.value }) };
  return { sent, call: api(`/v1/apps/${encodeURIComponent(editing.name)}${query}`, { method: 'PUT', body: sent.value, headers: { 'if-match': editing.etag } }) };
}

async function preview() {
  clearErrors();
  const req = request(true);
  if (req === undefined) return;
  const res = await req.call;
  $('app-preview-result').hidden = false;
  if (res.body?.dryRun === true) {
    const lines = res.body.nginx.lines ?? [];
    $('app-preview-verdict').textContent = res.body.nginx.ok ? 'nginx accepts it.' : `nginx refuses it: ${lines.join(' ')}`;
    $('app-preview-file').textContent = res.body.files.map((f) => `# ${f.name}${f.text === undefined ? ' (removed)' : ''}\n${f.text ?? ''}`).join('\n');
    if (!res.body.nginx.ok) showAt(req.sent.fromJson ? 'app-json' : 'app-backend', lines.join('\n'));
  } else {
    $('app-preview-verdict').textContent = 'Refused before nginx saw it.';
    $('app-preview-file').textContent = '';
    showError(res.body, res.status, req.sent.fromJson);
  }
}

async function submit(event) {
  event?.preventDefault();
  clearErrors();
  const req = request(false);
  if (req === undefined) return;
  const res = await req.call;
  if (!res.ok) {
    showError(res.body, res.status, req.sent.fromJson);
    return;
  }
  stopEditing();
  $('app-form').reset();
  $('app-preview-result').hidden = true;
  await render();
}

function setEditing(next) {
  editing = next;
  $('app-create').hidden = next !== undefined;
  $('app-save').hidden = next === undefined;
  $('app-cancel').hidden = next === undefined;
  for (const id of ['app-name', 'app-server-name', 'app-backend', 'app-json-from-form']) $(id).disabled = next !== undefined;
  $('app-editing').textContent = next === undefined ? '' : `Editing app ${next.name} in App JSON: Save app replaces it, unless it changed meanwhile.`;
}

function stopEditing() {
  if (editing !== undefined) $('app-json').value = '';
  setEditing(undefined);
}

/** Counts the edits opened: a read answered after a later one is dropped. */
let openings = 0;

async function edit(name) {
  const mine = ++openings;
  clearErrors();
  // Not editable until it holds what it edits: typing into a read still under way would be lost.
  const editor = $('app-json');
  editor.readOnly = true;
  const res = await api(`/v1/apps/${encodeURIComponent(name)}`);
  if (mine !== openings) return;
  editor.readOnly = false;
  const etag = res.headers.get('etag');
  if (!res.ok || etag === null) {
    // Without its ETag a save would overwrite blindly: not opened.
    $('app-list-error').textContent = res.ok ? `app ${name} was read without an ETag: not editable here` : errorText(res.body, res.status);
    return;
  }
  setEditing({ name, etag });
  $('app-json').value = JSON.stringify(res.body, null, 2);
  $('app-advanced').open = true;
  $('app-preview-result').hidden = true;
  $('app-json').focus();
}

$('app-preview').addEventListener('click', () => void preview());
$('app-form').addEventListener('submit', (event) => void submit(event));
$('app-save').addEventListener('click', () => void submit());
$('app-cancel').addEventListener('click', () => {
  clearErrors();
  stopEditing();
});
$('app-json-from-form').addEventListener('click', () => {
  $('app-json').value = JSON.stringify(fromFields(), null, 2);
});
