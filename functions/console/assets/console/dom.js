// Small DOM helpers: elements built from data, never from HTML strings (no innerHTML of API
// data anywhere), and problem documents rendered readably.

/** h('div', {class: 'x', onclick: f}, child, 'text', [more]) */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
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

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An RFC 9457 problem document (or any error) as a readable box. */
export function problemBox(err) {
  const p = err && err.problem ? err.problem : null;
  if (!p) {
    return h('div', { class: 'problem', role: 'alert' },
      h('strong', {}, 'Something went wrong'), h('p', {}, String(err && err.message || err)));
  }
  const params = p['invalid-params'] || [];
  return h('div', { class: 'problem', role: 'alert', dataset: { status: p.status } },
    h('div', { class: 'problem-head' },
      h('span', { class: 'badge bad' }, String(p.status || '')),
      h('strong', {}, p.title || 'Request failed')),
    p.detail ? h('p', { class: 'problem-detail' }, p.detail) : null,
    params.length ? h('ul', { class: 'problem-params' },
      params.map((x) => h('li', {},
        h('code', {}, x.name), ' ', h('span', {}, x.reason || x.code)))) : null);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export function fmtMoney(amount, currency) {
  if (amount === undefined || amount === null || amount === '') return '—';
  if (typeof amount === 'object') return `${amount.amount} ${amount.currency || currency || ''}`.trim();
  return currency ? `${amount} ${currency}` : String(amount);
}

export function fmtNumber(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(Number(n))) return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function statusPill(status) {
  const s = String(status || 'unknown');
  return h('span', { class: `pill st-${s.replace(/[^a-z_]/gi, '')}` }, s.replace(/_/g, ' '));
}

export function shortId(id) {
  return String(id || '').slice(0, 8);
}

export function field(label, value) {
  return h('div', { class: 'field' }, h('dt', {}, label), h('dd', {}, value));
}
