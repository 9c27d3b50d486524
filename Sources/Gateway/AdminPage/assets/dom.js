// Small DOM helpers. Text from the API only ever goes in as text (textContent, attribute
// values), never as markup, so a key named `<img onerror=…>` stays a name.

/** h('button', {class: 'x', onclick: f}, 'text', child…) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function replace(el, ...children) { el.replaceChildren(); append(el, children); return el; }

let uid = 0;
export function id(prefix) { return `${prefix}-${++uid}`; }

// ---------- formatting ----------

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A <time> with the local date and the exact UTC time as its tooltip. */
export function time(iso, empty = '—') {
  if (!iso) return h('span', { class: 'muted' }, empty);
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, dateFormat.format(d), ' ', h('span', { class: 'muted' }, '(' + relative(d) + ')'));
}

export function relative(d) {
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 10) return 'just now';
  const [n, unit] = a < 60 ? [a, 'second'] : a < 3600 ? [Math.round(a / 60), 'minute'] : a < 86400 ? [Math.round(a / 3600), 'hour'] : [Math.round(a / 86400), 'day'];
  const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

export function chips(list, empty = 'none') {
  if (!list || list.length === 0) return h('span', { class: 'muted' }, empty);
  return h('ul', { class: 'chips' }, list.map((x) => h('li', {}, h('code', {}, x))));
}

export function badge(state) { return h('span', { class: `badge ${state}` }, state); }

/** Lines of a textarea → a list (blank lines dropped); a list → lines. */
export function lines(text) { return text.split('\n').map((s) => s.trim()).filter((s) => s.length > 0); }
export function unlines(list) { return (list || []).join('\n'); }

/** datetime-local value ↔ RFC 3339 UTC with whole seconds (what the API writes). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return isNaN(d) ? null : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---------- status line ----------

let statusTimer = 0;
/** A polite announcement (screen readers read it; it fades after a while). */
export function announce(text, kind = 'ok') {
  const el = document.getElementById('status');
  el.className = `toast ${kind} shown`;
  el.textContent = text;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { el.className = 'toast'; }, 8000);
}

// ---------- form fields ----------

/** A labelled field: {label, help, input} → a div with the label tied to the input. */
export function field(label, input, help) {
  const inputId = input.id || (input.id = id('f'));
  const helpEl = help ? h('p', { class: 'help', id: inputId + '-help' }, help) : null;
  if (helpEl) input.setAttribute('aria-describedby', helpEl.id);
  return h('div', { class: 'field' }, h('label', { for: inputId }, label), input, helpEl);
}

/** Shows an API error inside a form: the message, and the field it names marked invalid. */
export function formError(form, error, fieldsByName = {}) {
  let box = form.querySelector('.form-error');
  if (!box) { box = h('p', { class: 'error form-error', role: 'alert' }); form.prepend(box); }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const name = error.field ? error.field.replace(/\[\d+\]$/, '') : null;
  const input = name && fieldsByName[name];
  box.textContent = (input ? `${input.dataset.label || name}: ` : '') + error.message;
  if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
}

// ---------- dialogs ----------

/**
 * A modal dialog (native <dialog>: focus stays inside, Escape closes). Focus goes to the first
 * field (or `initial`) and back to whatever had it when the dialog closes. Returns the dialog;
 * `onClose` runs once it is closed and removed.
 */
export function openDialog({ title, body, actions = [], onClose, initial, className = '' }) {
  const opener = document.activeElement;
  const titleId = id('dlg');
  const dlg = h('dialog', { class: `dialog ${className}`, 'aria-labelledby': titleId },
    h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Close', onclick: () => dlg.close() }, '×')),
    h('div', { class: 'dialog-body' }, body),
    actions.length ? h('div', { class: 'dialog-actions' }, actions) : null);
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
  });
  document.body.append(dlg);
  dlg.showModal();
  const target = initial || dlg.querySelector('input:not([type=hidden]):not([readonly]), select, textarea') || dlg.querySelector('.dialog-actions button');
  if (target) target.focus();
  return dlg;
}

/** Asks before a destructive action; resolves true on confirm. Cancel has the focus. */
export function confirmDialog({ title, message, confirm, danger = true }) {
  return new Promise((resolve) => {
    let answer = false;
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dlg.close() }, 'Cancel');
    const ok = h('button', { type: 'button', class: danger ? 'danger' : '', onclick: () => { answer = true; dlg.close(); } }, confirm);
    const dlg = openDialog({ title, body: h('p', {}, message), actions: [cancel, ok], initial: cancel, onClose: () => resolve(answer) });
  });
}

/** Runs `work` with the button busy (disabled, aria-busy) so a double click sends one request. */
export async function busy(button, work) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try { return await work(); } finally { button.disabled = false; button.removeAttribute('aria-busy'); }
}
