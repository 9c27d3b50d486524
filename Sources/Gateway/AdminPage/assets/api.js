// The admin REST API, with the key kept in this tab's sessionStorage and sent in a header only.
// Never in a URL (it would reach logs and history) and never in a cookie (it would ride along
// on requests the page did not make).

const STORAGE = 'doorman.adminKey';

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || 'http_' + status;
    this.field = body && body.field;
  }
}

export function storedKey() { return sessionStorage.getItem(STORAGE); }
export function forgetKey() { sessionStorage.removeItem(STORAGE); }

/** Called when a request answers 401 (the key was revoked, suspended or expired meanwhile). */
let onUnauthorized = () => {};
export function whenUnauthorized(f) { onUnauthorized = f; }

async function send(key, method, path, body) {
  const headers = { 'X-API-Key': key, 'Accept': 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, { error: 'network', message: 'The gateway cannot be reached.' });
  }
  const text = await response.text();
  let json = null;
  if (text) { try { json = JSON.parse(text); } catch (e) { json = null; } }
  if (!response.ok) throw new APIError(response.status, json);
  return json;
}

/** Checks a key with GET /v1/me and keeps it for this tab; returns who it is. */
export async function signIn(key) {
  const me = await send(key, 'GET', '/v1/me');
  sessionStorage.setItem(STORAGE, key);
  return me;
}

/** One API call with the stored key. */
export async function api(method, path, body) {
  const key = storedKey();
  if (!key) { onUnauthorized(null); throw new APIError(401, { error: 'missing_key', message: 'Signed out.' }); }
  try {
    return await send(key, method, path, body);
  } catch (e) {
    if (e.status === 401) onUnauthorized(e);
    throw e;
  }
}

/** Every page of a paged list (`next` cursor). */
export async function all(path, cursorName) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 100; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', path + (cursor ? `${sep}${cursorName}=${encodeURIComponent(cursor)}` : ''));
    items.push(...page.items);
    if (!page.next) break;
    cursor = page.next;
  }
  return items;
}

export const q = encodeURIComponent;
