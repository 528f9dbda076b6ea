// Portico console (issue 17): a page over the same JSON API scripts use, from the same origin. No
// data is in the page itself: everything is fetched with the token, which is asked for once and kept
// in this tab's sessionStorage (never in a URL or a cookie). Text reaches the page through
// textContent only, so nothing the API answers can become markup. Each section is a module of its
// own with a render() (and a leave() when it follows something live); this file routes between them.
import { $, TOKEN_KEY, show, want, whenUnauthorized } from './lib.js';
import * as overview from './overview.js';
import * as streams from './streams.js';
import * as apps from './apps.js';
import * as certificates from './certificates.js';
import * as events from './events.js';

const pages = { overview, streams, apps, certificates, events };
let current;

/** Set for the next document when a token was refused: that one says so on its sign-in form. */
const REFUSED_KEY = 'portico.refused';

function showSignIn(message) {
  current?.leave?.();
  current = undefined;
  $('sign-in-error').textContent = message;
  show('sign-in');
  $('token').focus();
}

// A token refused (revoked, expired) while pages it read are in this document: forget it and start a
// fresh document, as Sign out does, so that nothing it read stays behind the sign-in form.
const refusedBefore = sessionStorage.getItem(REFUSED_KEY) !== null;
sessionStorage.removeItem(REFUSED_KEY);
let leaving = false;
whenUnauthorized((message) => {
  // The other calls of the page being left (an overview makes two) answer 401 too: already handled.
  if (leaving) return;
  if (message === '') {
    showSignIn(refusedBefore ? 'That token was refused.' : '');
    return;
  }
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.setItem(REFUSED_KEY, '1');
  leaving = true;
  location.replace('/ui');
});

async function route() {
  const name = location.hash.replace(/^#\//, '');
  // Own names only: "#/__proto__" or "#/constructor" is not a page.
  const id = Object.hasOwn(pages, name) ? name : 'overview';
  const page = pages[id];
  want(id);
  if (current !== page) current?.leave?.();
  current = page;
  try {
    await page.render();
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
// Signing out forgets the token and leaves this document, with everything the token read (rows,
// editors, module state, the event feed), for a fresh one: replaced, so Back does not return to it.
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.replace('/ui');
});
window.addEventListener('hashchange', () => void route());
void route();
