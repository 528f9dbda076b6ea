// Streams: the table (filtered and paged in the page: at 5,000 streams only one page of rows is in
// the document), the create form with its preview, each row's edit and delete buttons, and the
// advanced editor, which holds a stream's whole JSON (every field of the schema) for a create or an
// edit sent with If-Match. Each row shows its traffic over the last minutes (ui/traffic.js), read for
// the rows shown only. The page measures itself (performance.measure, read by bench/console.ts).
import { $, api, el, button, errorText, pagedTable, show } from './lib.js';
import { startTraffic, stopTraffic, trafficCell } from './traffic.js';


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

const labelsOf = (stream) => Object.entries(stream.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(' ');

function row(stream) {
  const tr = el('tr');
  const actions = el('td', undefined, 'actions');
  actions.append(
    button('Edit', () => void openEditor(stream.port), `Edit stream ${stream.port}`),
    button('Delete', () => void deleteStream(stream.port), `Delete stream ${stream.port}`),
  );
  tr.append(el('td', stream.port), el('td', stream.protocol ?? 'tcp'), el('td', upstreamsOf(stream)), badges(stream), el('td', labelsOf(stream)), trafficCell(stream.port), actions);
  return tr;
}

const table = pagedTable({
  ids: { filter: 'stream-filter', rows: 'stream-rows', count: 'stream-count', previous: 'previous-page', next: 'next-page' },
  one: 'stream',
  title: 'Streams',
  empty: 'No streams yet.',
  searchText: (stream) => `${stream.port} ${stream.protocol ?? 'tcp'} ${upstreamsOf(stream)} ${labelsOf(stream)} ${stream.tls ? 'tls' : ''} ${stream.sni ? 'sni' : ''} ${stream.proxyProtocol ? 'proxy' : ''}`,
  row,
  // The charts follow the rows: the old page's stop, the new page's start reading.
  around: { before: stopTraffic, after: startTraffic },
  // From the keystroke (the event's own time) to the rows drawn.
  onFilter: (event) => requestAnimationFrame(() => performance.measure('portico.streams.filter', { start: event.timeStamp })),
});

export async function render() {
  const started = performance.now();
  const res = await api('/v1/streams');
  if (!show('streams')) return;
  if (!res.ok) {
    $('create-error').textContent = `listing the streams: ${errorText(res.body, res.status)}`;
    return;
  }
  table.set(res.body);
  await nextFrame();
  performance.measure('portico.streams.render', { start: started });
}

/** The page is left: its traffic charts stop refreshing. */
export function leave() {
  stopTraffic();
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

async function deleteStream(port) {
  const res = await api(`/v1/streams/${port}`, { method: 'DELETE' });
  if (!res.ok) $('create-error').textContent = errorText(res.body, res.status);
  await render();
}

// ---------------------------------------------------------------------------------------------
// The create form: the common fields (a port, one backend).
// ---------------------------------------------------------------------------------------------

function clearErrors() {
  for (const id of ['port-error', 'backend-error', 'create-error']) $(id).textContent = '';
  for (const id of ['port', 'backend']) $(id).removeAttribute('aria-invalid');
}

/** An error answer shown beside the field it names (port, backend), or under the form. */
function showError(body, status) {
  const field = body?.error?.field;
  const control = field === 'port' ? 'port' : field === 'backend' || field?.startsWith('upstreams') ? 'backend' : undefined;
  if (control !== undefined) {
    $(`${control}-error`).textContent = errorText(body, status);
    $(control).setAttribute('aria-invalid', 'true');
  } else {
    $('create-error').textContent = errorText(body, status);
  }
}

function formBody() {
  const port = $('port').value.trim();
  return { ...(port !== '' && { port: /^\d+$/.test(port) ? Number(port) : port }), backend: $('backend').value.trim() };
}

/** Shows a dry run's answer (the rendered files and nginx's verdict) in a preview box; answers whether nginx accepted it. */
function showDryRun(prefix, res) {
  $(`${prefix}-result`).hidden = false;
  if (res.body?.dryRun === true) {
    $(`${prefix}-verdict`).textContent = res.body.nginx.ok ? 'nginx accepts it.' : `nginx refuses it: ${res.body.nginx.lines.join(' ')}`;
    $(`${prefix}-file`).textContent = res.body.files.map((f) => `# ${f.name}\n${f.text ?? ''}`).join('\n');
    return res.body.nginx.ok;
  }
  $(`${prefix}-verdict`).textContent = 'Refused before nginx saw it.';
  $(`${prefix}-file`).textContent = '';
  return false;
}

async function preview() {
  clearErrors();
  const res = await api('/v1/streams?dryRun=true', { method: 'POST', body: formBody() });
  const accepted = showDryRun('preview', res);
  if (res.body?.dryRun === true) {
    if (!accepted) $('backend-error').textContent = res.body.nginx.lines.join('\n');
  } else {
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
  await render();
}

// ---------------------------------------------------------------------------------------------
// The advanced editor: a stream's whole JSON, created with POST or replaced with PUT and If-Match.
// ---------------------------------------------------------------------------------------------

/** What the editor holds: a new stream, or the stream on `port` as read with `etag`. */
let editing = { port: undefined, etag: undefined };
/** Counts the editor's openings: a read answered after a later opening is dropped. */
let openings = 0;

async function openEditor(port) {
  const mine = ++openings;
  // Not editable until it holds what it edits: typing into a read still under way would be lost.
  const editor = $('stream-json');
  editor.readOnly = true;
  $('editor-error').textContent = '';
  $('editor-result').hidden = true;
  if (port === undefined) {
    editing = { port: undefined, etag: undefined };
    $('editor-title').textContent = 'New stream (JSON)';
    $('stream-json').value = JSON.stringify({ upstreams: [{ address: 'host:port' }], labels: {} }, null, 2);
  } else {
    const res = await api(`/v1/streams/${port}`);
    if (mine !== openings) return;
    const etag = res.headers.get('etag');
    if (!res.ok || etag === null) {
      // Without its ETag an edit would overwrite blindly: not opened.
      $('create-error').textContent = res.ok ? `stream ${port} was read without an ETag: not editable here` : errorText(res.body, res.status);
      editor.readOnly = false; // what it held before, with the ETag it was read with
      return;
    }
    editing = { port, etag };
    $('editor-title').textContent = `Stream ${port} (JSON)`;
    $('stream-json').value = JSON.stringify(res.body, null, 2);
  }
  editor.readOnly = false;
  $('stream-editor').hidden = false;
  editor.focus();
}

/** The editor's request: its JSON parsed (a syntax error is shown, and nothing is sent). */
function editorRequest(dryRun) {
  let body;
  try {
    body = JSON.parse($('stream-json').value);
  } catch (error) {
    $('editor-error').textContent = `Stream JSON is not JSON: ${error.message}`;
    $('stream-json').setAttribute('aria-invalid', 'true');
    return undefined;
  }
  const query = dryRun ? '?dryRun=true' : '';
  if (editing.port === undefined) return { path: `/v1/streams${query}`, options: { method: 'POST', body } };
  return { path: `/v1/streams/${editing.port}${query}`, options: { method: 'PUT', body, headers: { 'if-match': editing.etag } } };
}

function editorError(res) {
  const field = res.body?.error?.field;
  $('editor-error').textContent = field === undefined ? errorText(res.body, res.status) : `${field}: ${errorText(res.body, res.status)}`;
  $('stream-json').setAttribute('aria-invalid', 'true');
}

async function previewJson() {
  $('editor-error').textContent = '';
  $('stream-json').removeAttribute('aria-invalid');
  const request = editorRequest(true);
  if (request === undefined) return;
  const res = await api(request.path, request.options);
  if (!showDryRun('editor', res)) editorError(res.body?.dryRun === true ? { body: { error: { message: 'nginx refuses it', nginx: res.body.nginx.lines } }, status: 422 } : res);
}

async function applyJson() {
  $('editor-error').textContent = '';
  $('stream-json').removeAttribute('aria-invalid');
  const request = editorRequest(false);
  if (request === undefined) return;
  const res = await api(request.path, request.options);
  if (!res.ok) {
    editorError(res);
    return;
  }
  $('stream-editor').hidden = true;
  await render();
}

// ---------------------------------------------------------------------------------------------

$('preview').addEventListener('click', () => void preview());
$('create-form').addEventListener('submit', (event) => void create(event));
$('new-json').addEventListener('click', () => void openEditor(undefined));
$('preview-json').addEventListener('click', () => void previewJson());
$('apply-json').addEventListener('click', () => void applyJson());
$('close-editor').addEventListener('click', () => {
  $('stream-editor').hidden = true;
});
