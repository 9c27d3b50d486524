// Users: the identities keys act for. List, create, edit, disable/enable, delete.
import { api, all, q } from './api.js';
import { h, replace, time, chips, badge, lines, unlines, announce, field, formError, openDialog, confirmDialog, busy } from './dom.js';
import { session } from './session.js';

export async function usersView() {
  const node = h('section', { class: 'view' });
  let users = [];
  let groups = [];
  let keyCounts = {};

  async function load() {
    const [u, g, keys] = await Promise.all([
      api('GET', '/v1/users'),
      session.can('admin:groups.read') ? api('GET', '/v1/groups') : [],
      session.can('admin:keys.read') ? all('/v1/keys?limit=1000', 'after') : [],
    ]);
    users = u; groups = g;
    keyCounts = {};
    for (const k of keys) if (k.state !== 'revoked') keyCounts[k.userID] = (keyCounts[k.userID] || 0) + 1;
    draw();
  }

  const writes = () => session.can('admin:users.write');

  function draw() {
    const groupsByID = Object.fromEntries(groups.map((g) => [g.id, g]));
    const td = (label, ...c) => h('td', { 'data-label': label }, c);
    const rows = users.map((u) => h('tr', { class: u.state === 'disabled' ? 'revoked' : '', dataset: { user: u.id } },
      h('th', { scope: 'row', 'data-label': 'Name' }, u.name, h('div', { class: 'muted small' }, h('code', {}, u.id))),
      td('State', badge(u.state)),
      td('Permissions', chips(u.permissions)),
      td('Groups', u.groups.length ? h('ul', { class: 'chips' }, u.groups.map((g) => h('li', {}, groupsByID[g] ? groupsByID[g].name : g))) : h('span', { class: 'muted' }, 'none')),
      td('Properties', chips(u.properties)),
      td('Keys', h('a', { href: `#/keys?user=${q(u.id)}` }, `${keyCounts[u.id] || 0} key${keyCounts[u.id] === 1 ? '' : 's'}`)),
      td('Updated', time(u.updatedAt)),
      // A user above the caller's own rights shows no actions (the server would refuse them).
      td('Actions', writes() && u.manageable !== false ? h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit ${u.name}`, onclick: () => userDialog(u) }, 'Edit'),
        u.state === 'active'
          ? h('button', { type: 'button', class: 'secondary small', 'aria-label': `Disable ${u.name}`, onclick: (e) => setState(u, 'disable', e.currentTarget) }, 'Disable')
          : h('button', { type: 'button', class: 'secondary small', 'aria-label': `Enable ${u.name}`, onclick: (e) => setState(u, 'enable', e.currentTarget) }, 'Enable'),
        h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${u.name}`, onclick: () => remove(u) }, 'Delete')) : null)));
    const heading = node.querySelector('h1');
    const hadFocus = heading && document.activeElement === heading;
    replace(node,
      h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'Users'),
        writes() ? h('button', { type: 'button', id: 'create-user', onclick: () => userDialog(null) }, 'Create user') : null),
      h('p', { class: 'help' }, 'A key acts for one user and can never do more than that user. Disabling a user stops all of their keys at once (live sessions close with code 4105; devices retry slowly and come back once the user is enabled).'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data users' },
        h('caption', { class: 'visually-hidden' }, `Users: ${users.length}`),
        h('thead', {}, h('tr', {}, ['Name', 'State', 'Permissions', 'Groups', 'Properties', 'Keys', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No users yet.'))))));
    if (hadFocus) node.querySelector('h1').focus();
  }

  async function setState(u, verb, button) {
    if (verb === 'disable') {
      const ok = await confirmDialog({ title: `Disable ${u.name}?`, confirm: 'Disable user',
        message: `Every key of ${u.name} stops working until the user is enabled again; their live sessions close (code 4105) and come back once the user is enabled.` });
      if (!ok) return;
    }
    await busy(button, async () => {
      try { await api('POST', `/v1/users/${q(u.id)}/${verb}`); announce(`${u.name} ${verb}d.`); }
      catch (e) { if (e.status !== 401) announce(`Could not ${verb} ${u.name}: ${e.message}`, 'bad'); }
    });
    await load();
  }

  async function remove(u) {
    const ok = await confirmDialog({ title: `Delete ${u.name}?`, confirm: 'Delete user',
      message: 'Only a user without keys can be deleted. The audit trail keeps their history.' });
    if (!ok) return;
    try { await api('DELETE', `/v1/users/${q(u.id)}`); announce(`${u.name} deleted.`); await load(); }
    catch (e) { if (e.status !== 401) announce(e.code === 'user_has_keys' ? `${u.name} still has keys: delete them first.` : `Could not delete: ${e.message}`, 'bad'); }
  }

  function userDialog(u) {
    const editing = !!u;
    const user = u || { name: '', permissions: [], groups: [], properties: ['*'] };
    const f = {
      name: h('input', { type: 'text', value: user.name, maxlength: 200, autocomplete: 'off', required: true, 'data-label': 'Name' }),
      permissions: h('textarea', { rows: 4, class: 'mono', spellcheck: false, 'data-label': 'Permissions' }, unlines(user.permissions)),
      properties: h('textarea', { rows: 2, class: 'mono', spellcheck: false, 'data-label': 'Properties' }, unlines(user.properties)),
    };
    const boxes = groups.map((g) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: g.id, checked: user.groups.includes(g.id) }), ' ', g.name));
    const groupSet = h('fieldset', { class: 'checks' }, h('legend', {}, 'Permission groups'),
      boxes.length ? boxes : h('p', { class: 'muted' }, 'No groups yet.'));
    f.groups = groupSet;
    const submit = h('button', { type: 'submit' }, editing ? 'Save' : 'Create user');
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close() }, 'Cancel');
    const form = h('form', { class: 'stack', novalidate: true },
      field('Name', f.name),
      field('Permissions', f.permissions, 'One pattern per line: service:api_name, with * and ?. admin:… patterns make an administrator.'),
      groupSet,
      field('Properties', f.properties, 'One property id per line; * = all.'),
      h('div', { class: 'dialog-actions' }, cancel, submit));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!f.name.value.trim()) { formError(form, { field: 'name', message: 'a name is required' }, f); return; }
      const body = {
        name: f.name.value,
        permissions: lines(f.permissions.value),
        groups: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value),
        properties: lines(f.properties.value).length ? lines(f.properties.value) : ['*'],
      };
      busy(submit, async () => {
        try {
          const saved = editing ? await api('PATCH', `/v1/users/${q(u.id)}`, body) : await api('POST', '/v1/users', body);
          dlg.close();
          announce(editing ? `Saved ${saved.name}.` : `Created ${saved.name}.`);
          await load();
        } catch (err) { if (err.status !== 401) formError(form, err, f); }
      });
    });
    const dlg = openDialog({ title: editing ? `Edit ${user.name}` : 'Create a user', body: form, className: 'wide' });
  }

  await load();
  return { node, title: 'Users' };
}
