// The operations console: staff sign-in, then a hash-routed single page —
//   #/dashboard        KPIs (GET /v1/kpis) with SVG charts
//   #/orders?q=…       order search (GET /v1/search/orders)
//   #/orders/<id>      one order: status, lines, holds, shipments, refunds, returns, timeline,
//                      actions (release hold, cancel, refund, inspect a return)
//   #/webhooks         subscriptions and their dead-lettered deliveries
import { api, token, ApiError } from './api.js';
import { h, clear, problemBox } from './dom.js';
import { dashboard } from './dashboard.js';
import { orders } from './orders.js';
import { order } from './order.js';
import { webhooks } from './webhooks.js';

const $ = (id) => document.getElementById(id);

async function signIn(candidate) {
  // Any staff-only read proves the token: the webhook list is one every deployment serves.
  await api('GET', '/v1/webhooks', { auth: candidate });
  token.set(candidate);
}

function showSignIn(err) {
  $('app').hidden = true;
  $('signin').hidden = false;
  clear($('signin-error'), err ? problemBox(err) : null);
  $('token').focus();
}

function showApp() {
  $('signin').hidden = true;
  $('app').hidden = false;
  const t = token.get() || '';
  $('who').textContent = t.startsWith('oms_sk_') ? `staff key ${t.slice(0, 12)}…` : 'staff (bootstrap token)';
  route();
}

let generation = 0;

async function route() {
  if (!token.get()) return showSignIn();
  const view = $('view');
  const hash = location.hash.replace(/^#/, '') || '/dashboard';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean);
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === parts[0]);
  }
  const mine = ++generation;
  const alive = () => mine === generation;
  clear(view, h('div', { class: 'loading' }, 'Loading…'));
  try {
    if (parts[0] === 'orders' && parts[1]) await order(view, decodeURIComponent(parts[1]), alive);
    else if (parts[0] === 'orders') await orders(view, params, alive);
    else if (parts[0] === 'webhooks') await webhooks(view, alive);
    else await dashboard(view, alive);
  } catch (err) {
    if (!alive()) return;
    if (err instanceof ApiError && err.status === 401) {
      token.clear();
      return showSignIn(err);
    }
    clear(view, problemBox(err));
  }
}

function init() {
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = e.target.querySelector('button');
    button.disabled = true;
    try {
      await signIn($('token').value.trim());
      $('token').value = '';
      if (!location.hash) location.hash = '#/dashboard';
      showApp();
    } catch (err) {
      showSignIn(err);
    } finally {
      button.disabled = false;
    }
  });
  $('signout').addEventListener('click', () => {
    token.clear();
    generation++;
    showSignIn();
  });
  window.addEventListener('hashchange', () => { if (token.get()) route(); });
  if (token.get()) showApp(); else showSignIn();
}

init();
