// The audit trail, newest first, filtered by the server (action, actor, target), a page at a time.
import { api, all, q } from './api.js';
import { h, replace, time, field } from './dom.js';
import { session } from './session.js';

const ACTIONS = [
  'key.create', 'key.update', 'key.rotate', 'key.suspend', 'key.resume', 'key.revoke', 'key.delete',
  'user.create', 'user.update', 'user.disable', 'user.enable', 'user.delete',
  'group.create', 'group.update', 'group.delete',
];
const PAGE = 50;

export async function auditView(params) {
  const [keys, users, groups] = await Promise.all([
    session.can('admin:keys.read') ? all('/v1/keys?limit=1000', 'after') : [],
    session.can('admin:users.read') ? api('GET', '/v1/users') : [],
    session.can('admin:groups.read') ? api('GET', '/v1/groups') : [],
  ]);
  // Names for the ids the trail holds (deleted objects keep showing their id).
  const names = Object.fromEntries([...keys, ...users, ...groups].map((x) => [x.id, x.name]));
  const pages = { key: (id) => `#/keys/${q(id)}`, user: () => '#/users', group: () => '#/groups' };

  const action = h('select', { id: 'audit-action' }, h('option', { value: '' }, 'any action'),
    ACTIONS.map((a) => h('option', { value: a, selected: params.get('action') === a }, a)));
  const actor = h('select', { id: 'audit-actor' }, h('option', { value: '' }, 'anyone'),
    h('option', { value: 'bootstrap', selected: params.get('actor') === 'bootstrap' }, 'bootstrap (first start)'),
    keys.map((k) => h('option', { value: k.id, selected: params.get('actor') === k.id }, `${k.name} (${k.displayStart}…)`)));
  const target = h('input', { type: 'text', id: 'audit-target', placeholder: 'key_…, usr_…, grp_…', value: params.get('target') || '', autocomplete: 'off', spellcheck: false, class: 'mono' });
  const tbody = h('tbody');
  const more = h('button', { type: 'button', class: 'secondary', id: 'audit-more', hidden: true }, 'Load older entries');
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  let next = null;
  let shown = 0;

  function query() {
    const p = [`limit=${PAGE}`];
    if (action.value) p.push(`action=${q(action.value)}`);
    if (actor.value) p.push(`actor=${q(actor.value)}`);
    if (target.value.trim()) p.push(`target=${q(target.value.trim())}`);
    return p.join('&');
  }

  const who = (id) => id === 'bootstrap' ? 'bootstrap' : names[id] ? [names[id], ' ', h('code', { class: 'muted small' }, id)] : h('code', {}, id);
  const targetCell = (e) => {
    const idText = h('code', { class: 'small' }, e.targetID);
    const name = names[e.targetID];
    const link = name && pages[e.targetType] ? [h('a', { href: pages[e.targetType](e.targetID) }, name), ' ', idText] : idText;
    return [h('span', { class: 'muted' }, e.targetType + ' '), link];
  };
  const change = (text) => {
    let pretty = text;
    try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* shown as stored */ }
    if (pretty === '{}') return h('span', { class: 'muted' }, '—');
    return h('details', {}, h('summary', {}, 'details'), h('pre', {}, pretty));
  };

  async function load(reset) {
    if (reset) { next = null; shown = 0; tbody.replaceChildren(); }
    const page = await api('GET', `/v1/audit?${query()}${next ? `&before=${q(next)}` : ''}`);
    next = page.next || null;
    shown += page.items.length;
    for (const e of page.items) {
      tbody.append(h('tr', { dataset: { seq: e.seq, action: e.action } },
        h('td', { 'data-label': 'Time' }, time(e.time)),
        h('td', { 'data-label': 'Actor' }, who(e.actor)),
        h('td', { 'data-label': 'Action' }, h('code', {}, e.action)),
        h('td', { 'data-label': 'Target' }, targetCell(e)),
        h('td', { 'data-label': 'Change' }, change(e.change))));
    }
    if (shown === 0) tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No entries match.')));
    more.hidden = !next;
    count.textContent = `${shown} entr${shown === 1 ? 'y' : 'ies'}${next ? ' (more available)' : ''}`;
  }

  // Filters apply at once; the hash keeps them (ids and action names only), so Back works.
  const apply = () => {
    const p = new URLSearchParams();
    if (action.value) p.set('action', action.value);
    if (actor.value) p.set('actor', actor.value);
    if (target.value.trim()) p.set('target', target.value.trim());
    history.replaceState(null, '', '#/audit' + (p.toString() ? '?' + p : ''));
    load(true).catch(() => {});
  };
  action.addEventListener('change', apply);
  actor.addEventListener('change', apply);
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Action', action), field('Actor', actor), field('Target id', target),
    h('button', { type: 'submit', class: 'secondary', id: 'audit-apply' }, 'Apply'));
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  more.addEventListener('click', () => load(false).catch(() => {}));

  await load(true);
  const node = h('section', { class: 'view' },
    h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'Audit log')),
    h('p', { class: 'help' }, 'Every change, by whom and when, kept after its target is deleted. Secrets never appear here.'),
    form, count,
    h('div', { class: 'table-wrap' }, h('table', { class: 'data audit' },
      h('caption', { class: 'visually-hidden' }, 'Audit log, newest first'),
      h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Action', 'Target', 'Change'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody)),
    more);
  return { node, title: 'Audit log' };
}
