// What every page of the console shares: the API call with the token, element building (text only,
// never markup), which section is shown, and the event feed read as Server-Sent Events.

export const TOKEN_KEY = 'portico.token';
export const $ = (id) => document.getElementById(id);

/** Called on a 401: shows the sign-in form (set by console.js). */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

function authorization() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token === null ? {} : { authorization: `Bearer ${token}` };
}

/** A fetch of the API with the token; a 401 asks for a token and throws. Answers {status, ok, body, headers}. */
export async function api(path, options = {}) {
  const headers = { ...(options.body !== undefined && { 'content-type': 'application/json' }), ...authorization(), ...options.headers };
  const res = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (res.status === 401) {
    onUnauthorized(sessionStorage.getItem(TOKEN_KEY) === null ? '' : 'That token was refused.');
    throw new Error('a token is needed');
  }
  const text = await res.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, ok: res.ok, body, headers: res.headers };
}

/** An element with text (never markup) and an optional class. */
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className !== undefined) node.className = className;
  return node;
}

/** A button with a visible text and, when given, an accessible name of its own. */
export function button(text, onClick, label) {
  const node = el('button', text);
  node.type = 'button';
  if (label !== undefined) node.setAttribute('aria-label', label);
  node.addEventListener('click', onClick);
  return node;
}

/** The section the router shows now (set by console.js before each render). */
let wanted;
export function want(id) {
  wanted = id;
}

/**
 * Shows one section of the page and hides the others; answers false, showing nothing, when the
 * router has moved on to another section meanwhile (a render whose fetch answered late): that
 * render then stops, starting no feed nor timer.
 */
export function show(id) {
  if (id !== 'sign-in' && id !== wanted) return false;
  for (const section of document.querySelectorAll('main > section')) section.hidden = section.id !== id;
  $('sign-out').hidden = sessionStorage.getItem(TOKEN_KEY) === null;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#/${id}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  return true;
}

/** An API error answer as one text: its message, then nginx's lines. */
export function errorText(body, status) {
  const error = body?.error;
  const message = error?.message ?? `failed (${status})`;
  return error?.nginx?.length ? `${message}\n${error.nginx.join('\n')}` : message;
}

const DAY_MS = 86_400_000;
/** "Expires soon": the overview lists, and the certificates page marks, what expires within this many days. */
export const EXPIRY_DAYS = 30;

/** Whole days from `now` until `notAfter` (negative once expired). */
export const daysLeft = (notAfter, now = Date.now()) => Math.floor((Date.parse(notAfter) - now) / DAY_MS);

/** A certificate's names as people read them: its SANs without their type, else its ACME names or subject. */
export function certificateNames(certificate) {
  const sans = certificate.sans.map((s) => s.replace(/^(DNS|IP Address):/, ''));
  return sans.length > 0 ? sans.join(', ') : certificate.acme?.names.join(', ') ?? certificate.subject;
}

/** Rows a table shows at once: at 5,000 streams the document holds one page of them. */
export const PAGE_SIZE = 50;

/**
 * A table filtered and paged in the page. The filter's words must all be in an item's search text
 * (lower case); the pager's buttons move by PAGE_SIZE rows and the count line says where one is.
 * `ids` names the elements: filter (input), rows (tbody), count, previous, next. The rows shown are
 * the items' `row(item)`, or `note(text)` when there are none; `around` (optional) is told before
 * they are built and after they are in the table ({before, after}), so that a page can stop and start
 * what follows its rows (the traffic charts). Answers `set(items)`, to call with each new list.
 */
export function pagedTable({ ids, one, title, empty, searchText, row, note, around, onFilter }) {
  let all = [];
  let shown = [];
  let page = 0;
  const drawPage = () => {
    const start = page * PAGE_SIZE;
    const items = shown.slice(start, start + PAGE_SIZE);
    const none = all.length === 0 ? empty : `No ${one} matches (of ${all.length}).`;
    around?.before();
    $(ids.rows).replaceChildren(...(items.length === 0 && note !== undefined ? [note(none)] : items.map((i) => row(i.item))));
    around?.after();
    const total = shown.length === all.length ? `${all.length}` : `${shown.length} matching of ${all.length}`;
    $(ids.count).textContent = shown.length === 0 ? none : `${title} ${start + 1}–${start + items.length} of ${total}`;
    $(ids.previous).disabled = page === 0;
    $(ids.next).disabled = start + PAGE_SIZE >= shown.length;
  };
  const filter = () => {
    const words = $(ids.filter).value.trim().toLowerCase().split(/\s+/).filter((w) => w !== '');
    shown = words.length === 0 ? all : all.filter((i) => words.every((w) => i.text.includes(w)));
    // The page that holds the current position, or the last one.
    page = Math.min(page, Math.max(0, Math.ceil(shown.length / PAGE_SIZE) - 1));
    drawPage();
  };
  $(ids.filter).addEventListener('input', (event) => {
    page = 0;
    filter();
    onFilter?.(event);
  });
  $(ids.previous).addEventListener('click', () => {
    page = Math.max(0, page - 1);
    drawPage();
  });
  $(ids.next).addEventListener('click', () => {
    page += 1;
    drawPage();
  });
  return {
    set(items) {
      all = items.map((item) => ({ item, text: searchText(item).toLowerCase() }));
      filter();
    },
  };
}

/** Bytes as people read them (1000-based, as nginx's and most dashboards' figures are). */
export function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no listener on `signal` behind. */
export function pause(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Follows /v1/events as Server-Sent Events, read with fetch (EventSource cannot send the token):
 * calls `onEvent` with each event, once and in order, until `signal` aborts. `afterId` is the newest
 * id of the list the caller showed (0 for an empty list): the feed first replays what was recorded
 * since (Last-Event-ID), so nothing between the list and the follow is lost. A connection that
 * ends (a restart of Portico, a proxy's timeout) is opened again after a pause that doubles up to
 * 30 s, from the last id seen; a refused token shows the sign-in form and ends it.
 */
export async function followEvents(query, onEvent, signal, afterId) {
  let last = afterId;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const headers = { ...authorization(), ...(last !== undefined && { 'last-event-id': String(last) }) };
      const res = await fetch(`/v1/events?follow=true${query ? `&${query}` : ''}`, { headers, signal });
      if (res.status === 401) {
        onUnauthorized(sessionStorage.getItem(TOKEN_KEY) === null ? '' : 'That token was refused.');
        return;
      }
      if (res.ok && res.body !== null) {
        failures = 0;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = message.split('\n').filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n');
            if (data === '') continue;
            const event = JSON.parse(data);
            if (last !== undefined && event.id <= last) continue;
            last = event.id;
            onEvent(event);
          }
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    failures += 1;
    await pause(Math.min(1000 * 2 ** Math.min(failures - 1, 5), 30_000), signal);
  }
}
