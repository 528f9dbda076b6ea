// Certificates: the table (names, issuer, status, ACME state with its last error, expiry and days
// left, who uses each), each row's Renew (ACME) and Delete buttons, the PEM upload and the ACME
// request. A private key is read from its field once, sent, and the field cleared before the answer
// comes, whatever it is: the key is never written into the page, kept after the request, or logged
// (and the API never answers it).
import { $, api, certificateNames, daysLeft, EXPIRY_DAYS, el, button, show } from './lib.js';

/** Valid, expiring soon, expired or not yet valid; a CA or a certificate without key said so. */
function status(certificate, now) {
  const cell = el('td');
  const left = daysLeft(certificate.notAfter, now);
  let text = 'valid';
  let className;
  if (Date.parse(certificate.notBefore) > now) [text, className] = ['not yet valid', 'failed'];
  else if (left < 0) [text, className] = ['expired', 'failed'];
  else if (left < EXPIRY_DAYS) [text, className] = ['expires soon', 'warning'];
  cell.append(el('span', text, className));
  if (certificate.isCA) cell.append(el('span', 'CA', 'badge'));
  if (!certificate.hasKey) cell.append(el('span', 'no key', 'badge'));
  return cell;
}

function acmeState(acme) {
  const cell = el('td');
  if (acme === undefined) {
    cell.append(el('span', 'uploaded', 'hint'));
    return cell;
  }
  cell.append(el('span', acme.status, acme.status === 'failed' ? 'failed' : undefined));
  cell.append(el('span', acme.challenge, 'badge'));
  if (acme.lastError) cell.append(el('p', `last error: ${acme.lastError}`, 'failed'));
  if (acme.nextRenewal) cell.append(el('p', `next order ${new Date(acme.nextRenewal).toISOString().slice(0, 16).replace('T', ' ')} UTC`, 'hint'));
  return cell;
}

function expiry(certificate, now) {
  const left = daysLeft(certificate.notAfter, now);
  return el('td', `${certificate.notAfter.slice(0, 10)} (${left < 0 ? `${-left} days ago` : `${left} days left`})`);
}

function usedBy(certificate) {
  const users = [...certificate.usedBy.streams.map((port) => `stream ${port}`), ...certificate.usedBy.apps.map((name) => `app ${name}`)];
  return el('td', users.length > 0 ? users.join(', ') : 'unused', users.length > 0 ? undefined : 'hint');
}

export async function render() {
  const res = await api('/v1/certificates');
  if (!show('certificates')) return;
  $('cert-list-error').textContent = '';
  const rows = $('cert-rows');
  rows.replaceChildren();
  if (!res.ok) {
    $('cert-list-error').textContent = res.body?.error?.message ?? `listing certificates failed (${res.status})`;
    return;
  }
  const now = Date.now();
  for (const certificate of res.body) {
    const row = el('tr');
    const id = el('th', certificate.id);
    id.scope = 'row';
    const actions = el('td', undefined, 'row-actions');
    if (certificate.acme !== undefined) actions.append(button('Renew', () => void renew(certificate.id), `Renew ${certificate.id}`));
    actions.append(button('Delete', () => void deleteCertificate(certificate.id), `Delete certificate ${certificate.id}`));
    row.append(id, el('td', certificateNames(certificate)), el('td', certificate.acme?.issuer ?? certificate.issuer), status(certificate, now), acmeState(certificate.acme), expiry(certificate, now), usedBy(certificate), actions);
    rows.append(row);
  }
  if (res.body.length === 0) {
    const row = el('tr');
    const cell = el('td', 'No certificates yet.', 'hint');
    cell.colSpan = 8;
    row.append(cell);
    rows.append(row);
  }
}

async function deleteCertificate(id) {
  $('cert-list-error').textContent = '';
  const res = await api(`/v1/certificates/${encodeURIComponent(id)}`, { method: 'DELETE' });
  await render();
  // Shown after the table is drawn again: a certificate in use is refused with the users named.
  if (!res.ok) $('cert-list-error').textContent = res.body?.error?.message ?? `deleting certificate ${id} failed (${res.status})`;
}

async function renew(id) {
  $('cert-list-error').textContent = '';
  const res = await api(`/v1/certificates/${encodeURIComponent(id)}/renew`, { method: 'POST' });
  await render();
  if (!res.ok) $('cert-list-error').textContent = res.body?.error?.message ?? `renewing certificate ${id} failed (${res.status})`;
}

/** Clears the errors of `controls` (ids) and the form-level one. */
function clearErrors(controls, formError) {
  for (const id of controls) {
    $(`${id}-error`).textContent = '';
    $(id).removeAttribute('aria-invalid');
  }
  $(formError).textContent = '';
  $('cert-list-error').textContent = '';
}

/** An error answer beside the control its `field` names (a map of field → control id), or under the form. */
function showError(res, controls, formError) {
  const error = res.body?.error;
  const message = error?.message ?? `failed (${res.status})`;
  const field = error?.field ?? '';
  const control = Object.entries(controls).find(([name]) => field === name || field.startsWith(`${name}.`))?.[1];
  if (control === undefined) {
    $(formError).textContent = message;
    return;
  }
  $(`${control}-error`).textContent = message;
  $(control).setAttribute('aria-invalid', 'true');
}

async function upload(event) {
  event.preventDefault();
  clearErrors(['cert-id', 'cert-pem', 'cert-key'], 'cert-upload-error');
  const id = $('cert-id').value.trim();
  const certificate = $('cert-pem').value;
  const keyField = $('cert-key');
  const sent = { ...(id !== '' && { id }), certificate, ...(keyField.value.trim() !== '' && { key: keyField.value }) };
  keyField.value = '';
  const res = await api('/v1/certificates', { method: 'POST', body: sent });
  if (!res.ok) {
    showError(res, { id: 'cert-id', certificate: 'cert-pem', key: 'cert-key' }, 'cert-upload-error');
    return;
  }
  $('cert-upload-form').reset();
  await render();
}

async function requestAcme(event) {
  event.preventDefault();
  clearErrors(['acme-id', 'acme-names', 'acme-challenge'], 'acme-error');
  const id = $('acme-id').value.trim();
  const names = $('acme-names').value.split(/[\s,]+/).filter(Boolean);
  const res = await api('/v1/certificates', { method: 'POST', body: { ...(id !== '' && { id }), acme: { names, challenge: $('acme-challenge').value } } });
  if (!res.ok) {
    showError(res, { id: 'acme-id', 'acme.names': 'acme-names', 'acme.challenge': 'acme-challenge' }, 'acme-error');
    return;
  }
  $('acme-form').reset();
  await render();
}

$('cert-upload-form').addEventListener('submit', (event) => void upload(event));
$('acme-form').addEventListener('submit', (event) => void requestAcme(event));
