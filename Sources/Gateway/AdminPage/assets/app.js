// The admin page: sign-in, then a small hash router over the views. Routes carry ids only
// (#/keys/key_…), never a secret.
import { signIn, storedKey, forgetKey, whenUnauthorized } from './api.js';
import { announce } from './dom.js';
import { session } from './session.js';
import { keysView, keyView } from './keys.js';
import { usersView } from './users.js';
import { groupsView } from './groups.js';
import { auditView } from './audit.js';

const $ = (id) => document.getElementById(id);

/** The permission each section needs to be read. */
const READS = { keys: 'admin:keys.read', users: 'admin:users.read', groups: 'admin:groups.read', audit: 'admin:audit.read' };

const SIGN_IN_MESSAGES = {
  malformed_key: 'That is not a Doorman key. Keys start with dmk_; check that you copied all of it.',
  unknown_key: 'That key was not accepted: no such key.',
  revoked_key: 'That key was not accepted: it has been revoked.',
  suspended_key: 'That key was not accepted: it is suspended.',
  expired_key: 'That key was not accepted: it has expired.',
  missing_key: 'Enter an admin key.',
  forbidden: 'That key works, but it holds no admin permission.',
  network: 'The gateway cannot be reached. Try again.',
};

function showSignIn(message) {
  session.me = null;
  stopView();
  $('bar').hidden = true;
  $('view').hidden = true;
  $('view').replaceChildren();
  $('signin').hidden = false;
  const error = $('signin-error');
  const input = $('signin-key');
  input.value = '';
  if (message) {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
  } else {
    error.hidden = true;
    input.removeAttribute('aria-invalid');
  }
  document.title = 'Sign in · Doorman admin';
  input.focus();
}

function showApp(me) {
  session.me = me;
  $('signin').hidden = true;
  $('signin-key').value = '';
  $('bar').hidden = false;
  $('view').hidden = false;
  $('who').textContent = `${me.user.name} · ${me.key.name}`;
  // Sections this key cannot read are not offered.
  for (const a of document.querySelectorAll('[data-nav]')) a.parentElement.hidden = !session.can(READS[a.dataset.nav]);
  route(false);
}

async function submitSignIn(event) {
  event.preventDefault();
  const input = $('signin-key');
  const button = $('signin-submit');
  const key = input.value.trim();
  if (!key) { showSignIn(SIGN_IN_MESSAGES.missing_key); return; }
  button.disabled = true;
  try {
    const me = await signIn(key);
    showApp(me);
  } catch (e) {
    forgetKey();
    showSignIn(SIGN_IN_MESSAGES[e.code] || `That key was not accepted: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---------- routing ----------

let cleanup = null;
function stopView() { if (cleanup) { cleanup(); cleanup = null; } }

const routes = [
  [/^#\/keys\/([^/?]+)$/, (m) => keyView(decodeURIComponent(m[1]))],
  [/^#\/keys(?:\?(.*))?$/, (m) => keysView(new URLSearchParams(m[1] || ''))],
  [/^#\/users$/, () => usersView()],
  [/^#\/groups$/, () => groupsView()],
  [/^#\/audit(?:\?(.*))?$/, (m) => auditView(new URLSearchParams(m[1] || ''))],
];

async function route(moveFocus = true) {
  if (!session.me) return;
  const hash = location.hash || '#/keys';
  // A section this key cannot read (left open by a previous sign-in): go to the first it can.
  const section = (hash.match(/^#\/(\w+)/) || [])[1];
  const first = Object.keys(READS).find((s) => session.can(READS[s]));
  if (READS[section] && !session.can(READS[section]) && first) { location.hash = '#/' + first; return; }
  for (const a of document.querySelectorAll('[data-nav]')) {
    const current = hash.startsWith('#/' + a.dataset.nav);
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  stopView();
  const view = $('view');
  for (const [pattern, make] of routes) {
    const m = hash.match(pattern);
    if (!m) continue;
    try {
      const rendered = await make(m);
      if (!session.me) return;
      view.replaceChildren(rendered.node);
      cleanup = rendered.cleanup || null;
      document.title = `${rendered.title} · Doorman admin`;
    } catch (e) {
      if (e.status === 401) return;
      const p = document.createElement('p');
      p.className = 'error';
      p.setAttribute('role', 'alert');
      p.textContent = e.status === 404 ? 'Not found: it may have been deleted.' : `Could not load this page: ${e.message}`;
      const h1 = document.createElement('h1');
      h1.textContent = 'Problem';
      h1.tabIndex = -1;
      view.replaceChildren(h1, p);
    }
    // A new view: its heading takes the focus, so screen readers announce where we are.
    if (moveFocus) { const h1 = view.querySelector('h1'); if (h1) h1.focus(); }
    return;
  }
  location.hash = '#/keys';
}

// ---------- start ----------

whenUnauthorized((e) => {
  forgetKey();
  showSignIn(e ? `You were signed out: ${SIGN_IN_MESSAGES[e.code] || e.message}` : null);
});

$('signin-form').addEventListener('submit', submitSignIn);
// The skip link must not touch the hash: the router owns it.
$('skip').addEventListener('click', (e) => { e.preventDefault(); $('main').focus(); });
$('signout').addEventListener('click', () => { forgetKey(); showSignIn(null); announce('Signed out.'); });
window.addEventListener('hashchange', () => route(true));

(async () => {
  const key = storedKey();
  if (!key) { showSignIn(null); return; }
  try {
    showApp(await signIn(key));
  } catch (e) {
    forgetKey();
    showSignIn(SIGN_IN_MESSAGES[e.code] || e.message);
  }
})();
