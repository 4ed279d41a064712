// DOM helpers shared by the storefront pages (elements from data; no HTML strings).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A problem document (RFC 9457) as a readable box listing the fields at fault. */
export function problemBox(p, labelOf = (name) => name) {
  const params = p['invalid-params'] || [];
  return h('div', { class: 'problem', role: 'alert', dataset: { status: p.status || '' } },
    h('strong', {}, p.title || 'Something is not right'),
    p.detail ? h('p', {}, p.detail) : null,
    params.length ? h('ul', {}, params.map((x) => h('li', {}, h('b', {}, labelOf(x.name)), ': ', x.reason || x.code))) : null);
}

export const money = (amount, currency) => `${currency === 'USD' ? '$' : ''}${amount}${currency === 'USD' ? '' : ` ${currency}`}`;
