// Rate limits of a key or a permission group: the "Rate limits" fieldset of their dialogs and a
// short text for the tables and the key's page. Every field is optional: one left out falls
// back to the key's group, then to the server's defaults; 0 means no limit.
import { h, id } from './dom.js';

/** [what, rate field, burst field], in the API's order. */
const KINDS = [
  ['Messages', 'messagesPerSecond', 'messageBurst', 'Message burst'],
  ['Calls', 'callsPerSecond', 'callBurst', 'Call burst'],
  ['Handshakes', 'handshakesPerSecond', 'handshakeBurst', 'Handshake burst'],
];
export const LIMIT_FIELDS = KINDS.flatMap(([, rate, burst]) => [rate, burst]);
const MAX = 1000000;

const set = (v) => v !== undefined && v !== null;
const spell = (n) => (Number.isInteger(n) ? n.toLocaleString('en-US') : String(n));

/** True when `limits` sets at least one field. */
export function hasLimits(limits) { return !!limits && LIMIT_FIELDS.some((name) => set(limits[name])); }

/**
 * The limits that are set, one phrase per kind ("calls 5/s, burst 10"), or [] when none.
 * A rate or burst of 0 reads "no limit".
 */
export function limitPhrases(limits) {
  if (!hasLimits(limits)) return [];
  const out = [];
  for (const [what, rate, burst] of KINDS) {
    const r = limits[rate];
    const b = limits[burst];
    if (!set(r) && !set(b)) continue;
    const parts = [];
    if (set(r)) parts.push(r === 0 ? 'no limit' : `${spell(r)}/s`);
    if (set(b)) parts.push(b === 0 ? 'burst: no limit' : `burst ${spell(b)}`);
    out.push(`${what.toLowerCase()} ${parts.join(', ')}`);
  }
  return out;
}

/** The limits that are set as a list, or a muted `empty` text. */
export function limitsText(limits, empty) {
  const phrases = limitPhrases(limits);
  if (!phrases.length) return h('span', { class: 'muted' }, empty);
  return h('ul', { class: 'limits' }, phrases.map((p) => h('li', {}, p)));
}

/**
 * The "Rate limits" fieldset: six labelled number inputs, filled from `limits`. Each input is
 * added to `fields` under its API name (`limits.callsPerSecond`), so `formError` puts the
 * API's field error on it. Returns {node, body(editing), check()}.
 */
export function limitsFieldset(limits, fields, help) {
  const current = limits || {};
  const helpID = id('limits-help');
  const inputs = {};
  const cells = [];
  for (const [what, rate, burst, burstLabel] of KINDS) {
    for (const [name, label] of [[rate, `${what} per second`], [burst, burstLabel]]) {
      const input = h('input', {
        type: 'number', min: 0, max: MAX, step: 'any', inputmode: 'decimal', autocomplete: 'off',
        id: id('limit'), value: set(current[name]) ? String(current[name]) : '', 'data-label': label,
        'data-limit': name, 'aria-describedby': helpID,
      });
      inputs[name] = input;
      fields[`limits.${name}`] = input;
      cells.push(h('div', { class: 'field' }, h('label', { for: input.id }, label), input));
    }
  }
  const node = h('fieldset', { class: 'limits' },
    h('legend', {}, 'Rate limits'),
    h('p', { class: 'help', id: helpID }, help),
    h('div', { class: 'limit-grid' }, cells));

  return {
    node,
    /** A local problem ({field, message}) the API would not see: text a number input rejected. */
    check() {
      for (const name of LIMIT_FIELDS) {
        if (inputs[name].validity.badInput) return { field: `limits.${name}`, message: `enter a number from 0 to ${spell(MAX)} (0 = no limit)` };
      }
      return null;
    },
    /**
     * What to send as `limits`: the filled fields; on create undefined when none is filled,
     * on edit `{}` when none is filled but the key or group had limits (that removes them).
     */
    body(editing) {
      const out = {};
      for (const name of LIMIT_FIELDS) {
        const text = inputs[name].value.trim();
        if (text !== '') out[name] = Number(text);
      }
      if (Object.keys(out).length) return out;
      return editing && hasLimits(limits) ? {} : undefined;
    },
  };
}
