// The order-status page: GET /v1/orders/:id and /events with the order's customer token
// (Authorization: Bearer oms_ot_…, kept in sessionStorage by the checkout), polled every 1.5 s
// until the order rests (delivered, cancelled, rejected). The browser revalidates with the
// ETag, so an unchanged order costs a 304.
import { h, problemBox, money } from './ui.js';

const $ = (id) => document.getElementById(id);
const STEPS = [
  ['validated', 'Placed'], ['reserved', 'Reserved'], ['routed', 'Routed'], ['shipped', 'Shipped'], ['delivered', 'Delivered'],
];
const RANK = { validated: 0, reserved: 1, backordered: 1, routed: 2, partially_shipped: 3, shipped: 3, delivered: 4 };
const RESTING = new Set(['delivered', 'cancelled', 'rejected']);
const SAY = {
  validated: 'We have your order and are checking stock.',
  reserved: 'Your items are reserved. Choosing the warehouse…',
  backordered: 'Some items are on backorder; we will ship as soon as they arrive.',
  routed: 'Your order is with the warehouse, getting packed.',
  partially_shipped: 'Part of your order is on its way.',
  shipped: 'Your order is on its way.',
  delivered: 'Delivered. Enjoy!',
  cancelled: 'This order was cancelled.',
  rejected: 'We could not take this order.',
};

const id = new URLSearchParams(location.search).get('id') || '';
const token = sessionStorage.getItem(`oms.order-token.${id}`);

async function get(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-cache' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.title || `HTTP ${res.status}`), { problem: body });
  return body;
}

function render(o, events) {
  document.body.dataset.status = o.status;
  const rank = RANK[o.status] ?? -1;
  $('steps').replaceChildren(...STEPS.map(([key, label], i) => h('li', {
    class: i < rank ? 'done' : i === rank ? 'current' : '', dataset: { step: key },
  }, h('span', { class: 'bullet' }, i < rank ? '✓' : String(i + 1)), h('span', {}, label))));
  $('status-line').replaceChildren(h('span', { class: `badge st-${o.status}`, id: 'status' }, o.status.replace(/_/g, ' ')), ' ', SAY[o.status] || '');
  $('items').replaceChildren(h('table', { class: 'items' },
    h('tbody', {}, (o.lines || []).map((l) => h('tr', {}, h('td', {}, l.sku), h('td', {}, `× ${l.quantity}`), h('td', { class: 'num' }, money(l.unit_price, o.currency))))),
    h('tfoot', {}, h('tr', {}, h('td', { colspan: 2 }, 'Total'), h('td', { class: 'num' }, money(o.totals.grand_total, o.currency))))));
  const ships = o.shipments || [];
  $('shipments').replaceChildren(ships.length
    ? h('ul', { class: 'ships' }, ships.map((s) => h('li', {},
      h('strong', {}, `From ${s.location}`), ' ', h('span', { class: `badge st-${s.status}` }, s.status),
      s.tracking ? h('div', { class: 'muted' }, `${s.carrier || ''} ${s.tracking}`) : null)))
    : h('p', { class: 'muted' }, 'Not shipped yet.'));
  $('history').replaceChildren(...events.slice().reverse().map((e) => h('li', {},
    h('span', { class: 'when' }, new Date(e.occurred_at).toLocaleTimeString()), ' ', e.type.replace('order.', '').replace(/_/g, ' '))));
}

async function poll() {
  try {
    const [o, tl] = await Promise.all([get(`/v1/orders/${encodeURIComponent(id)}`), get(`/v1/orders/${encodeURIComponent(id)}/events`)]);
    $('problem').replaceChildren();
    render(o, tl.events || []);
    if (RESTING.has(o.status)) return;
  } catch (err) {
    $('problem').replaceChildren(problemBox(err.problem && err.problem.title ? err.problem : { title: err.message }));
    if (err.problem && (err.problem.status === 401 || err.problem.status === 403 || err.problem.status === 404)) return;
  }
  setTimeout(poll, 1500);
}

$('order-id').textContent = id || 'unknown order';
if (!id || !token) {
  $('status-line').textContent = '';
  $('problem').replaceChildren(problemBox({
    title: 'No access to this order from this tab',
    detail: 'Open it from the tab that placed it: the page needs the order\'s access token.',
  }));
} else {
  poll();
}
