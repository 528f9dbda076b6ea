// Apps: the table (server names, routes and their upstreams, TLS/HTTP/3 badges), the create form for
// the common fields with the advanced editor for the whole schema (App JSON), Preview (the API's dry
// run), and each row's Edit and Delete buttons. An edit loads the app and its ETag, and saves with
// If-Match: a change someone made meanwhile is refused (412), not overwritten.
import { $, api, el, button, errorText, show } from './lib.js';

const FIELDS = ['app-name', 'app-server-name', 'app-backend', 'app-json'];

/** The app being edited ({name, etag}), or undefined while the form creates. */
let editing;

function features(app) {
  const cell = el('td');
  const tls = app.tls;
  const names = [
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
  for (const name of names) cell.append(el('span', name, 'badge'));
  if (tls?.certificate) cell.append(el('span', `certificate ${tls.certificate}`, 'hint'));
  return cell;
}

function routes(app) {
  const cell = el('td');
  const list = el('ul', undefined, 'plain');
  for (const route of app.routes) {
    const upstreams = route.upstreams.map((u) => (u.weight === undefined ? u.address : `${u.address} (weight ${u.weight})`)).join(', ');
    const path = route.replacePath === undefined ? route.path ?? '/' : `${route.path} as ${route.replacePath}`;
    list.append(el('li', `${path} → ${upstreams}${route.balance ? ` (${route.balance})` : ''}`));
  }
  cell.append(list);
  return cell;
}

export async function render() {
  const res = await api('/v1/apps');
  if (!show('apps')) return;
  $('app-list-error').textContent = '';
  const rows = $('app-rows');
  rows.replaceChildren();
  if (!res.ok) {
    $('app-list-error').textContent = res.body?.error?.message ?? `listing apps failed (${res.status})`;
    return;
  }
  for (const app of res.body) {
    const row = el('tr');
    const actions = el('td', undefined, 'row-actions');
    actions.append(button('Edit', () => void edit(app.name), `Edit app ${app.name}`), button('Delete', () => void deleteApp(app.name), `Delete app ${app.name}`));
    row.append(el('th', app.name), el('td', app.serverNames.join(', ')), routes(app), features(app), actions);
    row.firstChild.scope = 'row';
    rows.append(row);
  }
  if (res.body.length === 0) {
    const row = el('tr');
    const cell = el('td', 'No apps yet.', 'hint');
    cell.colSpan = 5;
    row.append(cell);
    rows.append(row);
  }
}

async function deleteApp(name) {
  $('app-list-error').textContent = '';
  const res = await api(`/v1/apps/${encodeURIComponent(name)}`, { method: 'DELETE' });
  if (!res.ok) $('app-list-error').textContent = res.body?.error?.message ?? `deleting app ${name} failed (${res.status})`;
  if (editing?.name === name && res.ok) stopEditing();
  await render();
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
  const res = await api(`/v1/apps/${encodeURIComponent(name)}`);
  if (mine !== openings) return;
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
