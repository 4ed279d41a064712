// The KPI dashboard: GET /v1/kpis (the insights projection of the lifecycle events), drawn as
// tiles and SVG charts; refreshed every 5 seconds while shown.
import { api } from './api.js';
import { h, clear, fmtNumber } from './dom.js';
import { bars, donut, columns, gauge } from './charts.js';

const STATUSES = ['validated', 'reserved', 'backordered', 'rejected', 'routed',
  'partially_shipped', 'shipped', 'delivered', 'cancelled'];

// One colour per status, by meaning: waiting greys and blues, trouble amber and red, done green.
const STATUS_COLOURS = [7, 1, 3, 4, 0, 5, 6, 2, 4];

const pct = (r) => (r === null || r === undefined ? '—' : `${fmtNumber(r * 100, 1)}%`);
const secs = (s) => {
  if (s === null || s === undefined) return '—';
  return s < 1 ? `${fmtNumber(s * 1000)} ms` : `${fmtNumber(s, 2)} s`;
};
const money = (byCurrency) => {
  const entries = Object.entries(byCurrency || {});
  return entries.length ? entries.map(([c, a]) => `${a} ${c}`).join(' · ') : '0';
};

function tile(label, value, sub, { testid, extra } = {}) {
  return h('div', { class: 'tile', dataset: { kpi: testid || label } },
    h('div', { class: 'tile-label' }, label),
    h('div', { class: 'tile-value' }, value),
    sub ? h('div', { class: 'tile-sub' }, sub) : null,
    extra || null);
}

function panel(title, body, cls = '') {
  return h('section', { class: `card panel ${cls}` }, h('h2', {}, title), body);
}

function render(k) {
  const o = k.orders || {};
  const byStatus = o.by_status || {};
  const fr = k.fill_rate || {};
  const split = k.split_shipments || {};
  const a2r = k.accepted_to_routed || {};
  const wh = k.webhooks || {};
  const ret = k.returns || {};
  const refunds = k.refunds || {};
  const tiles = h('div', { class: 'tiles' },
    tile('Orders accepted', fmtNumber(o.accepted || 0), `${fmtNumber(byStatus.routed || 0)} routed now`, { testid: 'accepted' }),
    tile('Fill rate (units)', pct(fr.units), `${fmtNumber(fr.units_fulfilled || 0)} of ${fmtNumber(fr.units_ordered || 0)} units · lines ${pct(fr.lines)}`, { testid: 'fill-rate', extra: gauge(fr.units) }),
    tile('Accepted → routed', secs(a2r.p50_seconds), `p95 ${secs(a2r.p95_seconds)} · ${fmtNumber(a2r.count || 0)} orders`, { testid: 'cycle' }),
    tile('Split shipments', pct(split.rate), `${fmtNumber(split.split_orders || 0)} of ${fmtNumber(split.routed_orders || 0)} routed`, { testid: 'split' }),
    tile('Backorders', fmtNumber(k.backorders || 0), `${fmtNumber(k.rejections || 0)} rejected`, { testid: 'backorders' }),
    tile('Cancellations', fmtNumber((k.cancellations || {}).total || 0), null, { testid: 'cancellations' }),
    tile('Refunded', money(refunds.amount), `${fmtNumber(refunds.count || 0)} refunds`, { testid: 'refunds' }),
    tile('Webhooks', pct(wh.success_rate), `${fmtNumber(wh.delivered || 0)} delivered · ${fmtNumber(wh.dead_lettered || 0)} dead`, { testid: 'webhooks' }),
  );
  const statusItems = STATUSES.map((s, i) => ({ label: s.replace(/_/g, ' '), value: byStatus[s] || 0, colour: STATUS_COLOURS[i] }));
  const channelItems = Object.entries(o.by_channel || {})
    .sort((x, y) => y[1] - x[1]).map(([label, value]) => ({ label, value }));
  const hist = (a2r.buckets || []).map((b) => ({
    label: b.le === '+Inf' ? '>1h' : ({ 60: '1m', 300: '5m', 3600: '1h' }[b.le] || b.le.replace(/^0\./, '.')),
    value: b.count,
  }));
  const reasons = Object.entries(refunds.by_reason || {}).map(([label, v]) => ({ label, value: v.count }));
  const returns = [
    { label: 'requested', value: ret.requested || 0 }, { label: 'received', value: ret.received || 0 },
    { label: 'inspected', value: ret.inspected || 0 }, { label: 'accepted', value: ret.accepted || 0 },
    { label: 'rejected', value: ret.rejected || 0 },
  ];
  return [
    tiles,
    h('div', { class: 'grid-2' },
      panel('Orders by status', donut(statusItems.filter((i) => i.value > 0).length ? statusItems : [], { title: 'orders by status', centre: 'orders' })),
      panel('Orders by channel', bars(channelItems, { title: 'orders by channel' }))),
    h('div', { class: 'grid-2' },
      panel('Time from accepted to routed (seconds)', columns(hist, { title: 'accepted to routed histogram' })),
      panel('Refunds by reason', bars(reasons, { title: 'refunds by reason' }))),
    h('div', { class: 'grid-2' },
      panel('Returns', bars(returns, { title: 'returns' })),
      panel('Webhook deliveries', bars([
        { label: 'delivered', value: wh.delivered || 0 },
        { label: 'dead-lettered', value: wh.dead_lettered || 0 },
      ], { title: 'webhook deliveries' }))),
  ];
}

export async function dashboard(view, alive) {
  const k = await api('GET', '/v1/kpis');
  if (!alive()) return;
  const stamp = h('span', { class: 'muted small', id: 'kpi-updated' });
  const body = h('div', { id: 'kpis' }, render(k));
  const refresh = h('button', { class: 'ghost', onclick: () => tick() }, 'Refresh');
  clear(view,
    h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'), h('span', { class: 'spacer' }), stamp, refresh),
    body);
  const touch = () => { stamp.textContent = `updated ${new Date().toLocaleTimeString()}`; };
  touch();
  async function tick() {
    if (!alive()) return;
    try {
      const next = await api('GET', '/v1/kpis');
      if (!alive()) return;
      clear(body, render(next));
      touch();
    } catch { /* keep the last numbers; the next tick tries again */ }
  }
  const timer = setInterval(() => (alive() ? tick() : clearInterval(timer)), 5000);
}
