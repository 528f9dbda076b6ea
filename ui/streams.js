// Streams: the table, the create form with its preview, and each row's delete button.
import { $, api, el, button, show } from './lib.js';
import { startTraffic, stopTraffic, trafficCell } from './traffic.js'; // traffic charts (ui/traffic.js)

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

export async function render() {
  const res = await api('/v1/streams');
  show('streams');
  const rows = $('stream-rows');
  rows.replaceChildren();
  stopTraffic(); // traffic charts: the rows are built again
  for (const stream of res.body) {
    const row = el('tr');
    const actions = el('td');
    actions.append(button('Delete', () => void deleteStream(stream.port), `Delete stream ${stream.port}`));
    row.append(el('td', stream.port), el('td', stream.protocol ?? 'tcp'), el('td', upstreamsOf(stream)), badges(stream), el('td', Object.entries(stream.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(' ')), trafficCell(stream.port), actions);
    rows.append(row);
  }
  startTraffic(); // traffic charts: the ports of the rows shown, every interval until leave()
}

/** The page is left: its traffic charts stop refreshing. */
export function leave() {
  stopTraffic();
}

async function deleteStream(port) {
  const res = await api(`/v1/streams/${port}`, { method: 'DELETE' });
  if (!res.ok) $('create-error').textContent = res.body?.error?.message ?? `deleting stream ${port} failed (${res.status})`;
  await render();
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
  await render();
}

$('preview').addEventListener('click', () => void preview());
$('create-form').addEventListener('submit', (event) => void create(event));
