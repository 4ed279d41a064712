// Webhook subscriptions (GET /v1/webhooks) and, for each, its dead-lettered deliveries
// (GET /v1/webhooks/:id/deliveries?state=dead), newest first.
import { api } from './api.js';
import { h, clear, fmtTime, statusPill, shortId } from './dom.js';

export async function webhooks(view, alive) {
  const { webhooks: subs = [] } = await api('GET', '/v1/webhooks');
  if (!alive()) return;
  const dead = await Promise.all(subs.map((s) => api('GET', `/v1/webhooks/${s.id}/deliveries?state=dead`)
    .then((r) => r.deliveries || []).catch(() => [])));
  if (!alive()) return;
  const total = dead.reduce((a, d) => a + d.length, 0);
  clear(view,
    h('div', { class: 'page-head' }, h('h1', {}, 'Webhooks'), h('span', { class: 'spacer' }),
      h('span', { class: total ? 'badge bad' : 'badge ok', id: 'dead-count' }, `${total} dead-lettered`)),
    subs.length ? subs.map((s, i) => h('section', { class: 'card panel', dataset: { webhook: s.id } },
      h('h2', {}, h('span', { class: 'mono' }, s.url)),
      h('p', { class: 'muted small' }, `${(s.events || []).join(', ')} · since ${fmtTime(s.created_at)} · id ${s.id}`),
      dead[i].length
        ? h('table', { class: 'table' },
          h('thead', {}, h('tr', {}, ['Event', 'Order', 'Attempts', 'Last answer', 'Dead since'].map((x) => h('th', {}, x)))),
          h('tbody', {}, dead[i].map((d) => h('tr', {},
            h('td', {}, d.event_type, ' ', h('span', { class: 'muted small' }, `#${d.sequence}`)),
            h('td', {}, h('a', { href: `#/orders/${d.order_id}`, class: 'mono' }, shortId(d.order_id))),
            h('td', { class: 'num' }, d.attempts),
            h('td', {}, d.last_status ? statusPill(String(d.last_status)) : (d.last_error || '—')),
            h('td', {}, fmtTime(d.settled_at || d.last_attempt_at))))))
        : h('p', { class: 'muted' }, 'No dead-lettered deliveries.')))
      : h('section', { class: 'card panel' }, h('p', { class: 'muted' }, 'No webhook subscriptions.')),
    total ? h('p', { class: 'muted small' },
      'A dead-lettered webhook is settled: notify tries it no more. The API has no re-drive route yet; ',
      'the subscriber can fetch the order (linked above) to catch up.') : null);
}
