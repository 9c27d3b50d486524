// Permission groups: named sets of permission patterns that users hold and keys narrow to.
import { api, all, q } from './api.js';
import { h, replace, time, chips, lines, unlines, announce, field, formError, openDialog, confirmDialog } from './dom.js';
import { session } from './session.js';
import { limitsFieldset, limitsText } from './limits.js';

export async function groupsView() {
  const node = h('section', { class: 'view' });
  let groups = [];
  let usedBy = {};

  async function load() {
    const [g, users, keys] = await Promise.all([
      api('GET', '/v1/groups'),
      session.can('admin:users.read') ? api('GET', '/v1/users') : [],
      session.can('admin:keys.read') ? all('/v1/keys?limit=1000', 'after') : [],
    ]);
    groups = g;
    usedBy = {};
    const note = (id, what) => { (usedBy[id] = usedBy[id] || { users: 0, keys: 0 })[what] += 1; };
    for (const u of users) for (const id of u.groups) note(id, 'users');
    for (const k of keys) if (k.groupID) note(k.groupID, 'keys');
    draw();
  }

  const writes = () => session.can('admin:groups.write');

  function draw() {
    const td = (label, ...c) => h('td', { 'data-label': label }, c);
    const rows = groups.map((g) => {
      const use = usedBy[g.id] || { users: 0, keys: 0 };
      return h('tr', { dataset: { group: g.id } },
        h('th', { scope: 'row', 'data-label': 'Name' }, g.name, h('div', { class: 'muted small' }, h('code', {}, g.id))),
        td('Description', g.description || h('span', { class: 'muted' }, 'none')),
        td('Permissions', chips(g.permissions)),
        td('Rate limits', limitsText(g.limits, 'server defaults')),
        td('Used by', `${use.users} user${use.users === 1 ? '' : 's'}, ${use.keys} key${use.keys === 1 ? '' : 's'}`),
        td('Updated', time(g.updatedAt)),
        td('Actions', writes() && g.manageable !== false ? h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit ${g.name}`, onclick: () => groupDialog(g) }, 'Edit'),
          h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${g.name}`, onclick: () => remove(g) }, 'Delete')) : null));
    });
    const heading = node.querySelector('h1');
    const hadFocus = heading && document.activeElement === heading;
    replace(node,
      h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'Permission groups'),
        writes() ? h('button', { type: 'button', id: 'create-group', onclick: () => groupDialog(null) }, 'Create group') : null),
      h('p', { class: 'help' }, 'A group’s permissions add to a user’s own; a key given a group is narrowed to it. Changing a group changes every live session that depends on it at once.'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data groups' },
        h('caption', { class: 'visually-hidden' }, `Permission groups: ${groups.length}`),
        h('thead', {}, h('tr', {}, ['Name', 'Description', 'Permissions', 'Rate limits', 'Used by', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No groups yet.'))))));
    if (hadFocus) node.querySelector('h1').focus();
  }

  async function remove(g) {
    const ok = await confirmDialog({ title: `Delete ${g.name}?`, confirm: 'Delete group',
      message: 'Only a group no user or key uses can be deleted.' });
    if (!ok) return;
    try { await api('DELETE', `/v1/groups/${q(g.id)}`); announce(`${g.name} deleted.`); await load(); }
    catch (e) { if (e.status !== 401) announce(e.code === 'group_in_use' ? `${g.name} is still in use: ${e.message}.` : `Could not delete: ${e.message}`, 'bad'); }
  }

  function groupDialog(g) {
    const editing = !!g;
    const group = g || { name: '', description: '', permissions: [] };
    const f = {
      name: h('input', { type: 'text', value: group.name, maxlength: 200, autocomplete: 'off', required: true, 'data-label': 'Name' }),
      description: h('textarea', { rows: 2, maxlength: 2000, 'data-label': 'Description' }, group.description),
      permissions: h('textarea', { rows: 5, class: 'mono', spellcheck: false, 'data-label': 'Permissions' }, unlines(group.permissions)),
    };
    const limits = limitsFieldset(group.limits, f,
      'Rates per second, bursts in tokens. Empty = the server’s default; 0 = no limit. A key’s own limits come first.');
    const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create group');
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close() }, 'Cancel');
    const form = h('form', { class: 'stack', novalidate: true },
      field('Name', f.name), field('Description', f.description),
      field('Permissions', f.permissions, 'One pattern per line: service:api_name, with * and ?.'),
      limits.node,
      h('div', { class: 'dialog-actions' }, cancel, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!f.name.value.trim()) { formError(form, { field: 'name', message: 'a name is required' }, f); return; }
      const problem = limits.check();
      if (problem) { formError(form, problem, f); return; }
      const body = { name: f.name.value, description: f.description.value, permissions: lines(f.permissions.value) };
      const rates = limits.body(editing);
      if (rates) body.limits = rates;
      submit.disabled = true;
      try {
        const saved = editing ? await api('PATCH', `/v1/groups/${q(g.id)}`, body) : await api('POST', '/v1/groups', body);
        dlg.close();
        announce(editing ? `Saved ${saved.name}.` : `Created ${saved.name}.`);
        await load();
      } catch (err) { if (err.status !== 401) formError(form, err, f); } finally { submit.disabled = false; }
    });
    const dlg = openDialog({ title: editing ? `Edit ${group.name}` : 'Create a group', body: form, className: 'wide' });
  }

  await load();
  return { node, title: 'Groups' };
}
