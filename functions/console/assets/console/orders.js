// Order search: GET /v1/search/orders with q (an order id or an e-mail), status and channel;
// newest first, paged by cursor. An order id opens the order directly.
import { api } from './api.js';
import { h, clear, fmtTime, statusPill, shortId } from './dom.js';

const STATUSES = ['', 'validated', 'reserved', 'backordered', 'rejected', 'routed',
  'partially_shipped', 'shipped', 'delivered', 'cancelled'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function orders(view, params, alive) {
  const q = params.get('q') || '';
  const status = params.get('status') || '';
  const channel = params.get('channel') || '';
  const cursor = params.get('cursor') || '';
  const form = h('form', { class: 'search card', id: 'search-form' },
    h('input', { name: 'q', type: 'search', value: q, placeholder: 'Order id or e-mail', 'aria-label': 'Order id or e-mail', class: 'grow' }),
    h('select', { name: 'status', 'aria-label': 'Status' },
      STATUSES.map((s) => h('option', { value: s, selected: s === status }, s ? s.replace(/_/g, ' ') : 'any status'))),
    h('input', { name: 'channel', value: channel, placeholder: 'Channel', 'aria-label': 'Channel', size: 12 }),
    h('button', { type: 'submit', class: 'primary' }, 'Search'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const term = String(data.get('q') || '').trim();
    if (UUID.test(term)) { location.hash = `#/orders/${term}`; return; }
    const next = new URLSearchParams();
    for (const [k, v] of data.entries()) if (String(v).trim()) next.set(k, String(v).trim());
    location.hash = `#/orders?${next}`;
  });
  const query = new URLSearchParams({ limit: '25' });
  if (q) query.set('q', q);
  if (status) query.set('status', status);
  if (channel) query.set('channel', channel);
  if (cursor) query.set('cursor', cursor);
  const results = h('div', { class: 'card table-card' });
  clear(view, h('div', { class: 'page-head' }, h('h1', {}, 'Orders')), form, results);
  const page = await api('GET', `/v1/search/orders?${query}`);
  if (!alive()) return;
  const rows = page.orders || [];
  if (!rows.length) {
    clear(results, h('p', { class: 'empty' }, 'No orders match.'));
    return;
  }
  const more = new URLSearchParams(params);
  if (page.next_cursor) more.set('cursor', page.next_cursor);
  clear(results,
    h('table', { class: 'table', id: 'order-results' },
      h('thead', {}, h('tr', {}, ['Order', 'Placed', 'Customer', 'Channel', 'Status', 'Total'].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows.map((o) => h('tr', { dataset: { orderId: o.order_id } },
        h('td', {}, h('a', { href: `#/orders/${o.order_id}`, class: 'mono', title: o.order_id }, shortId(o.order_id))),
        h('td', {}, fmtTime(o.created_at)),
        h('td', {}, o.email || h('span', { class: 'muted' }, '—')),
        h('td', {}, o.channel),
        h('td', {}, statusPill(o.status)),
        h('td', { class: 'num' }, `${o.total} ${o.currency}`))))),
    page.next_cursor ? h('div', { class: 'pager' }, h('a', { href: `#/orders?${more}`, class: 'button ghost' }, 'Older orders →')) : null);
}
