// Webhook subscriptions (GET /v1/webhooks) and, for each, its dead-lettered deliveries and
// those staff re-drove (GET /v1/webhooks/:id/deliveries, newest first), with their re-drive:
//   one    POST /v1/webhooks/:id/deliveries/:event_id/redrive  (202: pending again)
//   all    POST /v1/webhooks/:id/redrive                       (the newest 50 dead ones)
// A problem document answer (409 for one already pending or delivered, …) is shown in place.
import { api } from './api.js';
import { h, clear, problemBox, fmtTime, statusPill, shortId } from './dom.js';

/** A button running `act`; its problem appears in `slot`, success re-renders the page. */
function actionButton(cls, label, title, act, slot, reload) {
  const button = h('button', { type: 'button', class: `small ${cls}`, title }, label);
  button.addEventListener('click', async () => {
    button.disabled = true;
    clear(slot);
    try {
      await act();
      await reload();
    } catch (err) {
      clear(slot, problemBox(err));
      button.disabled = false;
    }
  });
  return button;
}

function redriven(d) {
  const r = d.redrives || [];
  if (!r.length) return null;
  const last = r[r.length - 1];
  return h('div', { class: 'muted small redriven' },
    `re-driven ${r.length}× · last by ${last.by} ${fmtTime(last.at)}`);
}

export async function webhooks(view, alive) {
  const reload = () => (alive() ? webhooks(view, alive) : undefined);
  const { webhooks: subs = [] } = await api('GET', '/v1/webhooks');
  if (!alive()) return;
  // Dead letters, and what staff re-drove (so its new state shows until it drops off the log).
  const shown = await Promise.all(subs.map((s) => api('GET', `/v1/webhooks/${s.id}/deliveries`)
    .then((r) => (r.deliveries || []).filter((d) => d.state === 'dead' || (d.redrives || []).length))
    .catch(() => [])));
  if (!alive()) return;
  const total = shown.reduce((a, d) => a + d.filter((x) => x.state === 'dead').length, 0);
  const row = (s, d) => {
    const slot = h('div', { class: 'problem-slot' });
    return h('tr', { dataset: { event: d.event_id, state: d.state } },
      h('td', {}, d.event_type, ' ', h('span', { class: 'muted small' }, `#${d.sequence}`)),
      h('td', {}, h('a', { href: `#/orders/${d.order_id}`, class: 'mono' }, shortId(d.order_id))),
      h('td', { class: 'state' }, statusPill(d.state), redriven(d)),
      h('td', { class: 'num' }, d.attempts),
      h('td', {}, d.last_status ? statusPill(String(d.last_status)) : (d.last_error || '—')),
      h('td', {}, fmtTime(d.settled_at || d.last_attempt_at)),
      h('td', {},
        d.state === 'dead'
          ? actionButton('redrive', 'Re-drive', 'Send it again (same webhook-id) with a fresh attempt budget',
            () => api('POST', `/v1/webhooks/${s.id}/deliveries/${d.event_id}/redrive`), slot, reload)
          : null,
        slot));
  };
  const section = (s, rows) => {
    const dead = rows.filter((d) => d.state === 'dead').length;
    const slot = h('div', { class: 'problem-slot' });
    return h('section', { class: 'card panel', dataset: { webhook: s.id } },
      h('div', { class: 'page-head' },
        h('h2', {}, h('span', { class: 'mono' }, s.url)), h('span', { class: 'spacer' }),
        dead > 1
          ? actionButton('redrive-all', `Re-drive all ${dead}`, 'Re-drive every dead delivery of this subscriber (50 at a time)',
            () => api('POST', `/v1/webhooks/${s.id}/redrive`), slot, reload)
          : null),
      slot,
      h('p', { class: 'muted small' }, `${(s.events || []).join(', ')} · since ${fmtTime(s.created_at)} · id ${s.id}`),
      rows.length
        ? h('table', { class: 'table deliveries' },
          h('thead', {}, h('tr', {}, ['Event', 'Order', 'State', 'Attempts', 'Last answer', 'Since', ''].map((x) => h('th', {}, x)))),
          h('tbody', {}, rows.map((d) => row(s, d))))
        : h('p', { class: 'muted' }, 'No dead-lettered deliveries.'));
  };
  clear(view,
    h('div', { class: 'page-head' }, h('h1', {}, 'Webhooks'), h('span', { class: 'spacer' }),
      h('span', { class: total ? 'badge bad' : 'badge ok', id: 'dead-count' }, `${total} dead-lettered`)),
    subs.length ? subs.map((s, i) => section(s, shown[i]))
      : h('section', { class: 'card panel' }, h('p', { class: 'muted' }, 'No webhook subscriptions.')),
    h('p', { class: 'muted small' },
      'A dead-lettered webhook is settled: notify tries it no more until staff re-drive it. A re-drive sends it ',
      'again with the same webhook-id (receivers de-duplicate on it) and a fresh budget of attempts, retried ',
      'as before; it is dead-lettered again if they all fail.'));
}
