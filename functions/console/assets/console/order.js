// One order: GET /v1/orders/:id and /events, with the staff actions of the public API —
//   release a hold    POST /v1/orders/:id/holds/:reason/release {note}
//   place a hold      POST /v1/orders/:id/holds {reason, note}
//   cancel            POST /v1/orders/:id/cancel {reason}
//   refund            POST /v1/orders/:id/refunds {items:[{kind:"amount", amount}], reason} + Idempotency-Key
//   inspect a return  GET /v1/returns/:id, POST …/received, POST …/inspection {lines:[{line, accepted}]}
// Every answer is shown: success reloads the order, a problem document is shown beside the form.
import { api, newKey } from './api.js';
import { refundable } from './rules.js';
import { h, clear, problemBox, fmtTime, fmtMoney, statusPill, field, shortId } from './dom.js';

const HOLD_REASONS = ['fraud_review', 'payment_pending', 'address_needed', 'unmapped_item', 'staff'];

/** A form whose submit runs `act`; its problems appear in the form, success re-renders. */
function actionForm(cls, fields, label, act, reload, { danger = false } = {}) {
  const slot = h('div', { class: 'problem-slot' });
  const button = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, label);
  const form = h('form', { class: `action ${cls}` }, fields, button, slot);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    clear(slot);
    try {
      await act(new FormData(form));
      await reload();
    } catch (err) {
      clear(slot, problemBox(err));
      button.disabled = false;
    }
  });
  return form;
}

const section = (title, ...body) => h('section', { class: 'card panel' }, h('h2', {}, title), ...body);
const table = (heads, rows, attrs = {}) => h('table', { class: 'table', ...attrs },
  h('thead', {}, h('tr', {}, heads.map((x) => h('th', {}, x)))), h('tbody', {}, rows));

function summary(o) {
  const c = o.customer || {};
  const addr = (o.shipping && o.shipping.address) || null;
  return h('section', { class: 'card panel summary' },
    h('div', { class: 'status-row' },
      h('div', {}, h('div', { class: 'tile-label' }, 'Order'), statusPill(o.status)),
      h('div', {}, h('div', { class: 'tile-label' }, 'Fulfilment'), statusPill(o.fulfillment_status)),
      h('div', {}, h('div', { class: 'tile-label' }, 'Payment'), statusPill(o.payment_status))),
    h('dl', { class: 'fields' },
      field('Placed', fmtTime(o.placed_at)),
      field('Channel', o.channel),
      field('Customer', [c.name || '', c.email ? ` <${c.email}>` : ''].join('') || '—'),
      field('Ship to', addr ? [addr.line1, addr.city, addr.postal_code, addr.country].filter(Boolean).join(', ') : 'no address'),
      field('Shipping', o.shipping ? `${o.shipping.method} · ${fmtMoney(o.shipping.amount, o.currency)}` : '—'),
      field('Payment', o.payment ? `${o.payment.status} · ${fmtMoney(o.payment.amount, o.currency)} (${o.payment.reference || '—'})` : '—'),
      field('Refunded', fmtMoney(o.refunded_total, o.currency)),
      field('Refundable', fmtMoney(o.refundable, o.currency)),
      o.reason ? field('Reason', o.reason) : null));
}

function lines(o) {
  const t = o.totals || {};
  return section('Lines',
    table(['#', 'SKU', 'Qty', 'Unit price', ''], (o.lines || []).map((l, i) => h('tr', {},
      h('td', {}, i), h('td', { class: 'mono' }, l.sku), h('td', { class: 'num' }, l.quantity),
      h('td', { class: 'num' }, fmtMoney(l.unit_price, o.currency)), h('td', {}, l.requires_shipping === false ? 'digital' : '')))),
    h('dl', { class: 'totals' },
      ['subtotal', 'discount', 'shipping', 'tax'].map((k) => field(k, fmtMoney(t[k], o.currency))),
      h('div', { class: 'field grand' }, h('dt', {}, 'Grand total'), h('dd', {}, fmtMoney(t.grand_total, o.currency)))));
}

function holds(o, reload) {
  const active = o.holds || [];
  const list = active.length
    ? h('ul', { class: 'holds' }, active.map((hold) => h('li', { class: 'hold', dataset: { reason: hold.reason } },
      h('div', {}, h('span', { class: 'pill st-held' }, hold.reason.replace(/_/g, ' ')), ' ',
        h('span', { class: 'muted' }, hold.note || ''), ' ',
        h('span', { class: 'muted small' }, hold.placed_at ? `since ${fmtTime(hold.placed_at)}` : '')),
      actionForm('release', [h('input', { name: 'note', placeholder: 'Release note', 'aria-label': 'Release note' })],
        'Release hold', (d) => {
          const body = {};
          if (d.get('note')) body.note = d.get('note');
          return api('POST', `/v1/orders/${o.id}/holds/${encodeURIComponent(hold.reason)}/release`, { body });
        }, reload))))
    : h('p', { class: 'muted' }, 'No active holds.');
  const place = actionForm('place-hold', [
    h('select', { name: 'reason', 'aria-label': 'Hold reason' }, HOLD_REASONS.map((r) => h('option', { value: r }, r.replace(/_/g, ' ')))),
    h('input', { name: 'note', placeholder: 'Note', 'aria-label': 'Hold note' }),
  ], 'Place hold', (d) => api('POST', `/v1/orders/${o.id}/holds`, {
    body: { reason: d.get('reason'), ...(d.get('note') ? { note: d.get('note') } : {}) },
  }), reload);
  return section('Holds', list, h('details', { class: 'more' }, h('summary', {}, 'Place a hold'), place));
}

function shipments(o) {
  const rows = (o.shipments || []).map((s) => h('tr', {},
    h('td', { class: 'mono' }, s.id), h('td', {}, s.location),
    h('td', {}, (s.lines || []).map((l) => `${l.sku} × ${l.units ?? l.quantity}`).join(', ')),
    h('td', {}, statusPill(s.status)),
    h('td', {}, s.carrier ? `${s.carrier} ${s.tracking || ''}` : '—'),
    h('td', {}, fmtTime(s.delivered_at || s.shipped_at))));
  return section('Shipments', rows.length
    ? table(['Shipment', 'From', 'Items', 'Status', 'Carrier', 'Updated'], rows)
    : h('p', { class: 'muted' }, o.plan ? 'Planned, not yet allocated.' : 'Not routed yet.'));
}

function refunds(o, reload) {
  const item = (x) => (x.kind === 'line' ? `line ${x.line} × ${x.quantity}` : x.kind === 'amount' ? `amount ${fmtMoney(x.amount)}` : x.kind);
  const rows = (o.refunds || []).map((r, i) => h('tr', {},
    h('td', {}, i + 1), h('td', { class: 'num' }, fmtMoney(r.amount, o.currency)),
    h('td', {}, (r.items || []).map(item).join(', '))));
  const refund = actionForm('refund', [
    h('input', { name: 'amount', placeholder: `Amount (${o.currency})`, 'aria-label': 'Refund amount', inputmode: 'decimal', required: true, size: 10 }),
    h('input', { name: 'reason', placeholder: 'Reason', 'aria-label': 'Refund reason' }),
  ], 'Refund', (d) => api('POST', `/v1/orders/${o.id}/refunds`, {
    idempotencyKey: newKey('console-refund'),
    body: { items: [{ kind: 'amount', amount: String(d.get('amount')).trim() }], ...(d.get('reason') ? { reason: d.get('reason') } : {}) },
  }), reload);
  // What the refund component would take, worked out here by the same rules (oms-browser).
  const hint = h('div', { class: 'refundable', id: 'refundable' });
  refundable(o).then((r) => {
    if (!r || r.status) return;
    clear(hint,
      r.allowed ? null : h('p', { class: 'note' }, `Not refundable now: ${r.reason || 'refused'}.`),
      (r.lines || []).length ? h('p', { class: 'muted small' }, 'Per line: ',
        r.lines.map((l) => `${l.sku} ${l.remaining} of ${l.quantity} (${fmtMoney(l.amount, r.currency)})`).join(' · ')) : null);
  }).catch(() => {});
  return section('Refunds',
    rows.length ? table(['#', 'Amount', 'Items'], rows) : h('p', { class: 'muted' }, 'No refunds.'),
    h('p', { class: 'muted small' }, `Refundable: ${fmtMoney(o.refundable, o.currency)}`), hint, refund);
}

function returns(o, reload) {
  const ids = o.returns || [];
  const box = h('div', { class: 'returns' });
  if (!ids.length) return section('Returns', h('p', { class: 'muted' }, 'No returns.'));
  for (const id of ids) {
    const item = h('div', { class: 'return', dataset: { returnId: id } }, h('span', { class: 'mono' }, shortId(id)), ' ',
      h('button', { class: 'ghost', onclick: () => inspect(id, item, o, reload) }, 'Inspect'));
    box.append(item);
  }
  return section('Returns', box);
}

async function inspect(id, item, o, reload) {
  const slot = h('div', { class: 'return-detail' }, 'Loading…');
  item.querySelector('.return-detail')?.remove();
  item.append(slot);
  try {
    const r = await api('GET', `/v1/returns/${id}`);
    const lines = r.lines || r.items || [];
    const state = r.status || r.state;
    const forms = [];
    if (state === 'requested') {
      forms.push(actionForm('received', [], 'Mark received', () => api('POST', `/v1/returns/${id}/received`), reload));
    }
    if (state === 'received') {
      forms.push(actionForm('inspection', lines.map((l) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: `line-${l.line}`, checked: true }),
        ` line ${l.line} × ${l.quantity} accepted`)), 'Record inspection', (d) => api('POST', `/v1/returns/${id}/inspection`, {
        body: { lines: lines.map((l) => ({ line: l.line, accepted: d.get(`line-${l.line}`) === 'on' })) },
      }), reload));
    }
    clear(slot, h('dl', { class: 'fields' },
      field('Status', statusPill(state)),
      field('Lines', lines.map((l) => `line ${l.line} × ${l.quantity}${l.accepted == null ? '' : l.accepted ? ' accepted' : ' rejected'}`).join(', ') || '—')),
    forms);
  } catch (err) {
    clear(slot, problemBox(err));
  }
}

function actions(o, reload) {
  const closed = ['cancelled', 'rejected', 'shipped', 'delivered'].includes(o.status);
  return section('Actions', closed
    ? h('p', { class: 'muted' }, `A ${o.status} order cannot be cancelled.`)
    : actionForm('cancel', [h('input', { name: 'reason', placeholder: 'Cancellation reason', 'aria-label': 'Cancellation reason' })],
      'Cancel order', (d) => api('POST', `/v1/orders/${o.id}/cancel`, { body: d.get('reason') ? { reason: d.get('reason') } : {} }),
      reload, { danger: true }));
}

function describe(e) {
  const d = e.data || {};
  const bits = [];
  if (d.reason) bits.push(`reason: ${d.reason}`);
  if (d.note) bits.push(`note: ${d.note}`);
  if (d.amount) bits.push(`amount: ${d.amount}`);
  if (d.shipment_id || d.shipment) bits.push(`shipment ${d.shipment_id || d.shipment}`);
  if (d.tracking) bits.push(`tracking ${d.tracking}`);
  if (d.status) bits.push(String(d.status));
  return bits.join(' · ');
}

function timeline(events) {
  return section('Timeline', h('ol', { class: 'timeline', id: 'timeline' }, events.map((e) => h('li', { dataset: { type: e.type } },
    h('span', { class: 'dot' }),
    h('div', { class: 'tl-body' },
      h('div', {}, h('strong', {}, e.type), ' ', h('span', { class: 'muted small' }, `#${e.sequence}`)),
      h('div', { class: 'muted small' }, fmtTime(e.occurred_at), e.actor ? ` · by ${e.actor}` : ''),
      describe(e) ? h('div', { class: 'small' }, describe(e)) : null)))));
}

export async function order(view, id, alive) {
  const reload = async () => {
    const [o, tl] = await Promise.all([
      api('GET', `/v1/orders/${encodeURIComponent(id)}`),
      api('GET', `/v1/orders/${encodeURIComponent(id)}/events`),
    ]);
    if (!alive()) return;
    clear(view,
      h('div', { class: 'page-head' },
        h('a', { href: '#/orders', class: 'back' }, '← Orders'),
        h('h1', {}, 'Order ', h('span', { class: 'mono', id: 'order-id' }, o.id)),
        h('span', { class: 'spacer' }),
        h('button', { class: 'ghost', onclick: () => reload() }, 'Refresh')),
      h('div', { class: 'order-grid' },
        h('div', { class: 'col' }, summary(o), lines(o), shipments(o), refunds(o, reload), returns(o, reload)),
        h('div', { class: 'col' }, holds(o, reload), actions(o, reload), timeline(tl.events || []))));
  };
  await reload();
}
