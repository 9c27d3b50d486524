// Keys: the table, the create/edit dialog, the one-time secret, a key's page (actions, live
// sessions, "may this key do X on Y?").
import { api, all, q } from './api.js';
import {
  h, replace, time, chips, badge, lines, unlines, toLocalInput, fromLocalInput, announce, field,
  formError, openDialog, confirmDialog, busy,
} from './dom.js';
import { session } from './session.js';
import { limitsFieldset, limitPhrases, LIMIT_FIELDS } from './limits.js';

const byID = (list) => Object.fromEntries(list.map((x) => [x.id, x]));

// ---------- the table ----------

export async function keysView(params) {
  const [keys, users, groups] = await Promise.all([
    all('/v1/keys?limit=1000', 'after'),
    session.can('admin:users.read') ? api('GET', '/v1/users') : [],
    session.can('admin:groups.read') ? api('GET', '/v1/groups') : [],
  ]);
  const usersByID = byID(users);
  const groupsByID = byID(groups);

  const search = h('input', { type: 'search', id: 'key-search', placeholder: 'name, description, dmk_…, id', value: params.get('q') || '' });
  const state = h('select', { id: 'key-state' },
    h('option', { value: '' }, 'any state'),
    ['active', 'expired', 'suspended', 'revoked'].map((s) => h('option', { value: s, selected: params.get('state') === s }, s)));
  const user = h('select', { id: 'key-user' },
    h('option', { value: '' }, 'any user'),
    users.map((u) => h('option', { value: u.id, selected: params.get('user') === u.id }, u.name)));
  const caption = h('caption', { class: 'visually-hidden' });
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const tbody = h('tbody');

  function render() {
    const needle = search.value.trim().toLowerCase();
    const shown = keys.filter((k) =>
      (!state.value || status(k) === state.value) &&
      (!user.value || k.userID === user.value) &&
      (!needle || [k.name, k.description, k.displayStart, k.id, (usersByID[k.userID] || {}).name]
        .some((s) => s && s.toLowerCase().includes(needle))));
    count.textContent = `${shown.length} of ${keys.length} keys`;
    caption.textContent = `API keys: ${count.textContent}`;
    replace(tbody, shown.length === 0
      ? h('tr', {}, h('td', { colspan: 9, class: 'empty' }, keys.length ? 'No key matches the filter.' : 'No keys yet.'))
      : shown.map((k) => keyRow(k, usersByID, groupsByID)));
  }
  for (const el of [search, state, user]) { el.addEventListener('input', render); el.addEventListener('change', render); }
  render();

  const create = session.can('admin:keys.write') && session.can('admin:users.read')
    ? h('button', { type: 'button', id: 'create-key', onclick: () => keyDialog({ users, groups }) }, 'Create key')
    : null;
  const node = h('section', { class: 'view' },
    h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'API keys'), create),
    h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter keys', onsubmit: (e) => e.preventDefault() },
      field('Search', search), field('State', state), field('User', user)),
    count,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'data keys' }, caption,
        h('thead', {}, h('tr', {}, ['Name', 'Key starts', 'User', 'Scopes / group', 'Properties', 'State', 'Expires', 'Last used', 'Live sessions']
          .map((t) => h('th', { scope: 'col' }, t)))),
        tbody)));
  return { node, title: 'API keys' };
}

function keyRow(k, usersByID, groupsByID) {
  const user = usersByID[k.userID];
  const group = k.groupID && groupsByID[k.groupID];
  const td = (label, ...c) => h('td', { 'data-label': label }, c);
  return h('tr', { class: k.state === 'revoked' ? 'revoked' : '', dataset: { key: k.id } },
    h('th', { scope: 'row', 'data-label': 'Name' }, h('a', { href: `#/keys/${q(k.id)}` }, k.name),
      k.description ? h('div', { class: 'muted small' }, k.description) : null),
    td('Key starts', h('code', {}, k.displayStart + '…')),
    td('User', user ? user.name : h('code', {}, k.userID)),
    td('Scopes / group', group ? h('div', {}, 'group ', h('strong', {}, group.name)) : null,
      k.scopes.length || !group ? chips(k.scopes, 'all of the user’s') : null),
    td('Properties', chips(k.properties)),
    td('State', badge(status(k))),
    td('Expires', time(k.expiresAt, 'never')),
    td('Last used', time(k.lastUsedAt, 'never'), k.lastUsedAddress ? h('div', { class: 'muted small' }, k.lastUsedAddress) : null),
    td('Live sessions', h('span', { class: k.liveSessions ? 'live' : 'muted' }, String(k.liveSessions ?? 0))));
}

/** What a key is now: its state, or `expired` for an active key past its expiry (the server says). */
function status(k) { return k.status || k.state; }

// ---------- create / edit ----------

/** The create dialog (no `key`) or the edit dialog; every field of the model. */
export function keyDialog({ key, users, groups, onSaved }) {
  const editing = !!key;
  const k = key || { name: '', description: '', userID: '', groupID: null, scopes: [], properties: ['*'], rules: [], expiresAt: null };
  const input = (attrs) => h('input', { type: 'text', autocomplete: 'off', ...attrs });
  const f = {
    name: input({ value: k.name, required: true, maxlength: 200, 'data-label': 'Name' }),
    description: h('textarea', { rows: 2, maxlength: 2000, 'data-label': 'Description' }, k.description),
    userID: h('select', { required: true, disabled: editing, 'data-label': 'User' },
      editing ? null : h('option', { value: '' }, 'choose the user this key acts for…'),
      users.map((u) => h('option', { value: u.id, selected: u.id === k.userID }, `${u.name}${u.state === 'disabled' ? ' (disabled)' : ''}`))),
    groupID: h('select', { 'data-label': 'Permission group' },
      h('option', { value: '' }, 'no group'),
      groups.map((g) => h('option', { value: g.id, selected: g.id === k.groupID }, g.name))),
    scopes: h('textarea', { rows: 3, spellcheck: false, class: 'mono', 'data-label': 'Scopes' }, unlines(k.scopes)),
    properties: h('textarea', { rows: 2, spellcheck: false, class: 'mono', 'data-label': 'Properties' }, unlines(k.properties)),
    rules: h('textarea', { rows: 3, spellcheck: false, class: 'mono', 'data-label': 'Rules' }, unlines(k.rules)),
    expiresAt: h('input', { type: 'datetime-local', value: toLocalInput(k.expiresAt), 'data-label': 'Expires' }),
  };
  const limits = limitsFieldset(k.limits, f,
    'Rates per second, bursts in tokens. Empty = from the group / the server’s default; 0 = no limit.');
  const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create key');
  const form = h('form', { class: 'stack', novalidate: true },
    field('Name', f.name),
    field('Description', f.description),
    field('User', f.userID, editing ? 'A key’s user cannot change; create a new key instead.' : 'The key can never do more than this user.'),
    field('Permission group', f.groupID, 'Narrows the key to the group’s permissions.'),
    field('Scopes', f.scopes, 'One permission pattern per line (service:api_name, * and ? allowed). Empty with no group: all of the user’s.'),
    field('Properties', f.properties, 'One property id per line; * = every property the user may reach.'),
    field('Rules', f.rules, 'Ordered, one per line; the first match decides, a leading ! denies. Empty = no rules.'),
    field('Expires', f.expiresAt, 'Local time. Empty = never (unless the server requires an expiry).'),
    limits.node);

  let dlg;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!f.name.value.trim()) { formError(form, { field: 'name', message: 'a name is required' }, f); return; }
    if (!editing && !f.userID.value) { formError(form, { field: 'userID', message: 'choose a user' }, f); return; }
    const problem = limits.check();
    if (problem) { formError(form, problem, f); return; }
    const body = {
      name: f.name.value,
      description: f.description.value,
      scopes: lines(f.scopes.value),
      properties: lines(f.properties.value).length ? lines(f.properties.value) : ['*'],
      rules: lines(f.rules.value),
    };
    const expiry = fromLocalInput(f.expiresAt.value);
    if (f.groupID.value) body.groupID = f.groupID.value; else if (editing) body.clearGroup = true;
    if (expiry) body.expiresAt = expiry; else if (editing) body.clearExpiry = true;
    if (!editing) body.userID = f.userID.value;
    const rates = limits.body(editing);
    if (rates) body.limits = rates;
    busy(submit, async () => {
      try {
        if (editing) {
          const saved = await api('PATCH', `/v1/keys/${q(key.id)}`, body);
          dlg.close();
          announce(`Saved ${saved.name}.`);
          if (onSaved) onSaved(saved);
        } else {
          const issued = await api('POST', '/v1/keys', body);
          dlg.close();
          secretDialog(issued, 'Key created', () => { location.hash = `#/keys/${q(issued.key.id)}`; });
        }
      } catch (err) { if (err.status !== 401) formError(form, err, f); }
    });
  });
  const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close() }, 'Cancel');
  form.append(h('div', { class: 'dialog-actions' }, cancel, submit));
  dlg = openDialog({ title: editing ? `Edit ${k.name}` : 'Create a key', body: form, className: 'wide' });
}

// ---------- the secret, once ----------

/**
 * Shows a new secret (create or rotate) exactly once. It lives only in this dialog: closing it
 * clears the field and drops the dialog from the page, and nothing can fetch it again.
 */
export function secretDialog(issued, heading, onClose) {
  let secret = issued.secret;
  const box = h('input', { type: 'text', readonly: true, class: 'mono secret', id: 'new-secret', value: secret, 'aria-describedby': 'secret-warning', spellcheck: false });
  const copied = h('span', { class: 'copied', role: 'status', id: 'copy-status' });
  const copy = h('button', { type: 'button', id: 'copy-secret', onclick: async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copied.textContent = 'Copied to the clipboard.';
    } catch (e) {
      // No clipboard API (plain http on a non-local host): select it for Ctrl+C.
      box.focus(); box.select();
      copied.textContent = document.execCommand && document.execCommand('copy') ? 'Copied to the clipboard.' : 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  } }, 'Copy');
  const done = h('button', { type: 'button', id: 'secret-done', onclick: () => dlg.close() }, 'I have stored the key — close');
  const body = h('div', { class: 'stack' },
    h('p', { class: 'warning', id: 'secret-warning' }, h('strong', {}, 'This is the only time this key is shown. '),
      'Copy it now and store it where the device or service can read it. Doorman keeps only a hash of it: if it is lost, rotate the key.'),
    h('div', { class: 'field' }, h('label', { for: 'new-secret' }, `Key for ${issued.key.name}`),
      h('div', { class: 'copy-row' }, box, copy)),
    copied);
  const dlg = openDialog({
    title: heading, body, actions: [done], initial: copy, className: 'secret-dialog',
    onClose: () => { box.value = ''; secret = null; issued.secret = null; if (onClose) onClose(); },
  });
  box.addEventListener('focus', () => box.select());
}

// ---------- a key's page ----------

const REASONS = {
  allowed: 'allowed',
  invalid_action: 'the action is not of the form service:api_name',
  invalid_property: 'this key is limited to properties: name one of them',
  key_revoked: 'the key is revoked',
  key_suspended: 'the key is suspended',
  key_expired: 'the key has expired',
  user_disabled: 'the key’s user is disabled',
  property_not_allowed_for_user: 'the user may not reach this property',
  property_not_allowed_for_key: 'the key may not reach this property',
  not_permitted_for_user: 'the user holds no permission for this action',
  not_in_key_scopes: 'the key’s scopes and group do not include this action',
  denied_by_rule: 'a rule of the key denies it',
  no_rule_matched: 'the key has rules and none matches',
};

/**
 * A key's rate limits on its page: its own (what it leaves out comes from the group, then the
 * server), else the group's, else "server defaults".
 */
function keyLimits(k, group) {
  const own = limitPhrases(k.limits);
  const fromGroup = group ? limitPhrases(group.limits) : [];
  // Without admin:groups.read the group's limits are unknown.
  const fallback = fromGroup.length ? `the group’s (${fromGroup.join('; ')})`
    : k.groupID && !group ? 'the group’s or the server’s defaults' : 'server defaults';
  if (!own.length) return h('span', { class: fromGroup.length ? undefined : 'muted', 'data-limits': 'inherited' }, fallback);
  const complete = LIMIT_FIELDS.every((name) => k.limits[name] !== undefined && k.limits[name] !== null);
  return [h('span', { 'data-limits': 'own' }, own.join('; ')),
    complete ? null : h('span', { class: 'muted' }, ` · the rest: ${fallback}`)];
}

export async function keyView(keyID) {
  const [key, users, groups] = await Promise.all([
    api('GET', `/v1/keys/${q(keyID)}`),
    session.can('admin:users.read') ? api('GET', '/v1/users') : [],
    session.can('admin:groups.read') ? api('GET', '/v1/groups') : [],
  ]);
  const usersByID = byID(users);
  const groupsByID = byID(groups);
  const node = h('section', { class: 'view key-view' });
  let timer = 0;
  let current = key;

  const reload = async () => {
    try { current = await api('GET', `/v1/keys/${q(keyID)}`); draw(); } catch (e) { if (e.status === 404) location.hash = '#/keys'; }
  };

  const sessionsBody = h('tbody');
  const sessionsCount = h('span', { class: 'muted' });
  let lastSessions = '';
  async function loadSessions() {
    if (!session.can('admin:sessions.read')) return;
    let list;
    try { list = (await api('GET', `/v1/sessions?key=${q(keyID)}`)).items; } catch (e) { return; }
    const ids = list.map((s) => s.id).join(',');
    if (ids === lastSessions) {
      // The same sessions: update their changing cells in place, so the row under the pointer
      // (or a focused Kick button) is never swapped out from under the administrator.
      for (const s of list) {
        const tr = sessionsBody.querySelector(`tr[data-session="${CSS.escape(s.id)}"]`);
        if (!tr) continue;
        replace(tr.querySelector('[data-col=activity]'), time(s.lastActivity));
        replace(tr.querySelector('[data-col=subscriptions]'), String(s.subscriptions));
      }
      return;
    }
    lastSessions = ids;
    sessionsCount.textContent = `(${list.length})`;
    replace(sessionsBody, list.length === 0
      ? h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No live sessions.'))
      : list.map((s) => h('tr', { dataset: { session: s.id } },
        h('td', { 'data-label': 'Session' }, h('code', {}, s.id)),
        h('td', { 'data-label': 'Node' }, s.node),
        h('td', { 'data-label': 'Address' }, s.address),
        h('td', { 'data-label': 'Client' }, s.userAgent || h('span', { class: 'muted' }, 'unknown')),
        h('td', { 'data-label': 'Since' }, time(s.since)),
        h('td', { 'data-label': 'Last activity', 'data-col': 'activity' }, time(s.lastActivity)),
        h('td', { 'data-label': 'Subscriptions', 'data-col': 'subscriptions' }, String(s.subscriptions)),
        h('td', { 'data-label': 'Action' }, session.can('admin:sessions.write')
          ? h('button', { type: 'button', class: 'secondary small kick', 'aria-label': `Kick session ${s.id}`, onclick: (e) => kick(e.currentTarget, s) }, 'Kick')
          : null))));
  }
  async function kick(button, s) {
    const ok = await confirmDialog({ title: 'Kick this session?', confirm: 'Kick',
      message: `Session ${s.id} from ${s.address} gets a notice and is closed (code 4107). The key keeps working; the device reconnects after a short wait.` });
    if (!ok) return;
    await busy(button, async () => {
      try { await api('DELETE', `/v1/sessions/${q(s.id)}?node=${q(s.node)}`); announce(`Session ${s.id} ended.`); }
      catch (e) { if (e.status !== 401) announce(`Could not kick: ${e.message}`, 'bad'); }
    });
    lastSessions = '';
    loadSessions();
    reload();
  }

  async function setState(verb, button) {
    const k = current;
    if (verb === 'revoke' || verb === 'suspend') {
      const ok = await confirmDialog(verb === 'revoke'
        ? { title: `Revoke ${k.name}?`, confirm: 'Revoke key',
            message: `The key stops working at once and for good; its ${k.liveSessions} live session(s) get a notice and close (code 4001). It stays listed, disabled. This cannot be undone.` }
        : { title: `Suspend ${k.name}?`, confirm: 'Suspend key',
            message: `The key stops working until it is resumed; its ${k.liveSessions} live session(s) get a notice and close (code 4102); devices retry slowly and come back by themselves once it is resumed.` });
      if (!ok) return;
    }
    await busy(button, async () => {
      try {
        const wait = verb === 'resume' ? '' : '?wait=true';
        const result = await api('POST', `/v1/keys/${q(k.id)}/${verb}${wait}`);
        const ended = result.sessionsEnded !== undefined ? ` ${result.sessionsEnded} live session(s) ended.` : '';
        announce(`${k.name}: ${verb === 'revoke' ? 'revoked' : verb === 'suspend' ? 'suspended' : 'resumed'}.${ended}`);
      } catch (e) { if (e.status !== 401) announce(`Could not ${verb}: ${e.message}`, 'bad'); }
    });
    lastSessions = '';
    await reload();
    loadSessions();
  }

  async function remove() {
    const ok = await confirmDialog({ title: `Delete ${current.name}?`, confirm: 'Delete key',
      message: 'The key disappears from every list and stops working; live sessions close (code 4006). The audit trail keeps its history. This cannot be undone.' });
    if (!ok) return;
    try {
      await api('DELETE', `/v1/keys/${q(current.id)}`);
      announce(`${current.name} deleted.`);
      location.hash = '#/keys';
    } catch (e) { if (e.status !== 401) announce(`Could not delete: ${e.message}`, 'bad'); }
  }

  function rotate() {
    const grace = h('input', { type: 'number', min: 0, max: 43200, step: 1, value: 0, id: 'rotate-grace', 'data-label': 'Grace period', inputmode: 'numeric' });
    const submit = h('button', { type: 'submit' }, 'Rotate');
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close() }, 'Cancel');
    const form = h('form', { class: 'stack', novalidate: true },
      h('p', {}, 'A new secret replaces the current one. Sessions using the old secret close (code 4004) once it stops working.'),
      field('Grace period (minutes)', grace, 'How long the old secret keeps working, so devices can switch over: 0 to 43,200 (30 days).'),
      h('div', { class: 'dialog-actions' }, cancel, submit));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const minutes = Number(grace.value || 0);
      if (!Number.isFinite(minutes) || minutes < 0 || minutes > 43200) { formError(form, { field: 'graceSeconds', message: 'enter 0 to 43,200 minutes' }, { graceSeconds: grace }); return; }
      busy(submit, async () => {
        try {
          const issued = await api('POST', `/v1/keys/${q(current.id)}/rotate`, { graceSeconds: Math.round(minutes * 60) });
          dlg.close();
          secretDialog(issued, 'Key rotated', () => { reload(); });
        } catch (err) { if (err.status !== 401) formError(form, err, { graceSeconds: grace }); }
      });
    });
    const dlg = openDialog({ title: `Rotate ${current.name}`, body: form });
  }

  // The explain box: POST /v1/keys/{id}/explain.
  const explainAction = h('input', { type: 'text', id: 'explain-action', placeholder: 'pms:checkIn', autocomplete: 'off', spellcheck: false, class: 'mono', 'data-label': 'Action' });
  const explainProperty = h('input', { type: 'text', id: 'explain-property', placeholder: 'hotel-1', autocomplete: 'off', spellcheck: false, class: 'mono', 'data-label': 'Property' });
  const explainOut = h('output', { id: 'explain-result', class: 'explain-result', 'aria-live': 'polite', for: `${explainAction.id} ${explainProperty.id}` });
  const explainButton = h('button', { type: 'submit', id: 'explain-submit' }, 'Check');
  const explainForm = h('form', { class: 'explain', novalidate: true },
    h('div', { class: 'row' }, field('Action', explainAction), field('On property', explainProperty), explainButton), explainOut);
  explainForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { action: explainAction.value.trim() };
    if (explainProperty.value.trim()) body.property = explainProperty.value.trim();
    busy(explainButton, async () => {
      try {
        const d = await api('POST', `/v1/keys/${q(keyID)}/explain`, body);
        const what = `${body.action}${body.property ? ` on ${body.property}` : ''}`;
        const by = d.decidedBy ? [d.ruleIndex !== undefined ? `by rule ${d.ruleIndex + 1}, ` : 'by ', h('code', {}, d.decidedBy)] : null;
        replace(explainOut, h('strong', { class: d.allowed ? 'yes' : 'no' }, d.allowed ? 'Allowed' : 'Denied'), `: ${what}`,
          d.allowed ? (by ? [' — ', by] : '') : [' — ', REASONS[d.reason] || d.reason, by ? [' (', by, ')'] : ''], '.');
        explainOut.className = `explain-result ${d.allowed ? 'yes' : 'no'}`;
        explainOut.dataset.reason = d.reason;
      } catch (err) {
        if (err.status !== 401) { replace(explainOut, `Could not check: ${err.message}`); explainOut.className = 'explain-result no'; }
      }
    });
  });

  function draw() {
    const k = current;
    // A key above the caller's own rights shows no actions (the server would refuse them).
    const writes = session.can('admin:keys.write') && k.manageable !== false;
    const user = usersByID[k.userID];
    const group = k.groupID && groupsByID[k.groupID];
    const revoked = k.state === 'revoked';
    const actions = writes ? h('div', { class: 'actions', role: 'group', 'aria-label': 'Key actions' },
      h('button', { type: 'button', class: 'secondary', id: 'key-edit', disabled: revoked,
        onclick: () => keyDialog({ key: k, users, groups, onSaved: () => reload() }) }, 'Edit'),
      h('button', { type: 'button', class: 'secondary', id: 'key-rotate', disabled: revoked, onclick: rotate }, 'Rotate'),
      k.state === 'suspended'
        ? h('button', { type: 'button', class: 'secondary', id: 'key-resume', onclick: (e) => setState('resume', e.currentTarget) }, 'Resume')
        : h('button', { type: 'button', class: 'secondary', id: 'key-suspend', disabled: revoked, onclick: (e) => setState('suspend', e.currentTarget) }, 'Suspend'),
      h('button', { type: 'button', class: 'danger', id: 'key-revoke', disabled: revoked, onclick: (e) => setState('revoke', e.currentTarget) }, 'Revoke'),
      h('button', { type: 'button', class: 'danger', id: 'key-delete', onclick: remove }, 'Delete')) : null;
    const row = (label, ...value) => [h('dt', {}, label), h('dd', {}, value)];
    const heading = node.querySelector('h1');
    const hadFocus = heading && document.activeElement === heading;
    replace(node,
      h('p', { class: 'crumbs' }, h('a', { href: '#/keys' }, '← All keys')),
      h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, k.name, ' ', badge(status(k))), actions),
      h('dl', { class: 'details' },
        row('Key starts', h('code', {}, k.displayStart + '…'), h('span', { class: 'muted' }, ' (the rest is never shown again)')),
        row('ID', h('code', {}, k.id)),
        row('Description', k.description || h('span', { class: 'muted' }, 'none')),
        row('User', user ? h('a', { href: `#/keys?user=${q(user.id)}` }, user.name) : h('code', {}, k.userID),
          user && user.state === 'disabled' ? [' ', badge('disabled')] : null),
        row('Permission group', group ? group.name : k.groupID ? h('code', {}, k.groupID) : h('span', { class: 'muted' }, 'none')),
        row('Scopes', chips(k.scopes, group ? 'the group’s' : 'all of the user’s')),
        row('Properties', chips(k.properties)),
        row('Rules', k.rules.length ? h('ol', { class: 'rules' }, k.rules.map((r) => h('li', {}, h('code', {}, r)))) : h('span', { class: 'muted' }, 'none')),
        row('Rate limits', keyLimits(k, group)),
        row('Expires', time(k.expiresAt, 'never')),
        k.previousUntil ? row('Previous secret', 'works until ', time(k.previousUntil), h('span', { class: 'muted' }, ' (rotation grace)')) : null,
        row('Created', time(k.createdAt), h('span', { class: 'muted' }, ` by ${k.createdBy}`)),
        row('Updated', time(k.updatedAt)),
        row('Last used', time(k.lastUsedAt, 'never'), k.lastUsedAddress ? h('span', { class: 'muted' }, ` from ${k.lastUsedAddress}`) : null)),
      session.can('admin:sessions.read') ? h('section', { class: 'panel', 'aria-labelledby': 'sessions-title' },
        h('div', { class: 'view-head' }, h('h2', { id: 'sessions-title' }, 'Live sessions ', sessionsCount),
          h('button', { type: 'button', class: 'secondary small', id: 'sessions-refresh', onclick: () => { lastSessions = ''; loadSessions(); } }, 'Refresh')),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data sessions' },
          h('caption', { class: 'visually-hidden' }, 'Live sessions of this key on this node'),
          h('thead', {}, h('tr', {}, ['Session', 'Node', 'Address', 'Client', 'Since', 'Last activity', 'Subscriptions', ''].map((t) => h('th', { scope: 'col' }, t)))),
          sessionsBody))) : null,
      h('section', { class: 'panel', 'aria-labelledby': 'explain-title' },
        h('h2', { id: 'explain-title' }, 'May this key…?'),
        h('p', { class: 'help' }, 'Checks an action (service:api_name) and optionally a property against the key, its user, group, scopes and rules, as a live session would.'),
        explainForm));
    if (hadFocus) node.querySelector('h1').focus();
  }

  draw();
  await loadSessions();
  // Sessions come and go: refresh the table while this page is open.
  timer = setInterval(loadSessions, 4000);
  return { node, title: key.name, cleanup: () => clearInterval(timer) };
}
