// The storefront demo: a cart that validates and totals live in the browser with oms-browser
// (the domain crate compiled to WebAssembly), then places the order (POST /v1/orders with an
// Idempotency-Key) and opens its status page with the customer token of the 202.
import { load, validateOrder, quoteTotals } from './rules.js';
import { h, problemBox, money } from './ui.js';

const $ = (id) => document.getElementById(id);
const CART = 'oms.shop.cart';
const ATTEMPT = 'oms.shop.attempt';

let catalog;
let cart = JSON.parse(sessionStorage.getItem(CART) || '{}'); // sku → quantity

const product = (sku) => catalog.products.find((p) => p.sku === sku);
const cents = (s) => Math.round(Number(s) * 100);
const decimal = (c) => (c / 100).toFixed(2);

function swatch(p) {
  return h('div', { class: `swatch hue-${p.hue}` }, h('span', {}, p.name.split(' ').map((w) => w[0]).join('').slice(0, 2)));
}

function renderProducts() {
  $('products').replaceChildren(...catalog.products.map((p) => h('article', { class: 'product', dataset: { sku: p.sku } },
    swatch(p),
    h('div', { class: 'product-body' },
      h('h3', {}, p.name), h('p', {}, p.blurb),
      h('div', { class: 'product-foot' },
        h('span', { class: 'price' }, money(p.price, catalog.currency)),
        h('span', { class: 'stock', dataset: { stockFor: p.sku } }),
        h('button', { type: 'button', class: 'add', onclick: () => change(p.sku, 1) }, 'Add to cart'))))));
  for (const p of catalog.products) availability(p.sku);
}

async function availability(sku) {
  const el = document.querySelector(`[data-stock-for="${sku}"]`);
  try {
    const res = await fetch(`/v1/availability/${encodeURIComponent(sku)}`);
    if (!res.ok) return;
    const a = await res.json();
    const n = a.available;
    if (typeof n === 'number') {
      el.textContent = n > 0 ? `${n} in stock` : 'backorder';
      el.classList.toggle('out', n <= 0);
    }
  } catch { /* availability is a nicety */ }
}

function change(sku, delta) {
  const q = Math.max(0, (cart[sku] || 0) + delta);
  if (q) cart[sku] = q; else delete cart[sku];
  sessionStorage.setItem(CART, JSON.stringify(cart));
  sessionStorage.removeItem(ATTEMPT);
  render();
}

function shippingChoice() {
  const m = new FormData($('checkout')).get('shipping') || catalog.shipping[0].method;
  return catalog.shipping.find((s) => s.method === m);
}

/** The page's catalogue in the server's shape ({sku: {currency: price}}): validateOrder checks
 * the lines' prices against it as the server checks its own. */
function prices() {
  return Object.fromEntries(catalog.products.map((p) => [p.sku, { [catalog.currency]: p.price }]));
}

/** The order body POST /v1/orders takes, from the cart and the form. */
function buildOrder() {
  const f = new FormData($('checkout'));
  const ship = shippingChoice();
  const lines = Object.entries(cart).map(([sku, quantity]) => ({ sku, quantity, unit_price: product(sku).price }));
  const subtotal = lines.reduce((a, l) => a + cents(l.unit_price) * l.quantity, 0);
  const tax = Math.round((subtotal * catalog.tax_rate_percent) / 100);
  // A draft order: the server's own code totals it (exact decimals, the currency's scale).
  const quote = quoteTotals({
    currency: catalog.currency, lines, shipping: { method: ship.method, amount: ship.amount }, tax: decimal(tax),
  });
  const totals = quote.ok ? quote.totals : {};
  const text = (k) => String(f.get(k) || '').trim();
  const order = {
    channel: 'web',
    customer: { email: text('email'), name: text('name') },
    currency: catalog.currency,
    lines,
    shipping: {
      method: ship.method,
      amount: ship.amount,
      address: { country: text('country'), postal_code: text('postal_code'), line1: text('line1'), city: text('city') },
    },
    tax: decimal(tax),
    totals,
    payment: { reference: `demo_${crypto.randomUUID().slice(0, 8)}`, status: 'captured', amount: totals.grand_total },
  };
  return { order, quote };
}

function renderTotals(quote) {
  const t = quote.ok ? quote.totals : null;
  if (!t) {
    $('totals').replaceChildren(h('div', { class: 'row' }, h('dt', {}, 'Totals'), h('dd', {}, '—')));
    return;
  }
  const row = (label, v, cls = '') => h('div', { class: `row ${cls}` }, h('dt', {}, label), h('dd', { dataset: { total: label.toLowerCase() } }, money(v, catalog.currency)));
  $('totals').replaceChildren(
    row('Subtotal', t.subtotal), row('Shipping', t.shipping), row('Tax', t.tax), row('Total', t.grand_total, 'grand'));
}

function render() {
  const skus = Object.keys(cart);
  $('cart').replaceChildren(...(skus.length ? skus.map((sku) => {
    const p = product(sku);
    return h('li', { dataset: { sku } },
      h('span', { class: 'cart-name' }, p.name),
      h('span', { class: 'qty' },
        h('button', { type: 'button', 'aria-label': `one less ${p.name}`, onclick: () => change(sku, -1) }, '−'),
        h('span', { class: 'n' }, cart[sku]),
        h('button', { type: 'button', 'aria-label': `one more ${p.name}`, onclick: () => change(sku, 1) }, '+')),
      h('span', { class: 'line-total' }, money(decimal(cents(p.price) * cart[sku]), catalog.currency)));
  }) : [h('li', { class: 'empty' }, 'Your cart is empty.')]));
  const { quote } = buildOrder();
  renderTotals(quote);
  $('place').disabled = !skus.length;
}

const LABELS = {
  '/customer/email': 'E-mail', '/customer/name': 'Full name', '/shipping/address/line1': 'Address',
  '/shipping/address/city': 'City', '/shipping/address/postal_code': 'Postal code',
  '/shipping/address/country': 'Country', '/lines': 'Cart',
};

function showProblem(p) {
  for (const el of document.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  if (!p) { $('problem').replaceChildren(); return; }
  for (const x of p['invalid-params'] || []) {
    const el = document.querySelector(`[data-field="${x.name}"]`);
    if (el) el.setAttribute('aria-invalid', 'true');
  }
  $('problem').replaceChildren(problemBox(p, (n) => LABELS[n] || n));
  const first = document.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

async function place(e) {
  e.preventDefault();
  const { order } = buildOrder();
  // The same rules as the server, before any request: a bad cart never leaves the page.
  const verdict = validateOrder(order, prices());
  if (!verdict || verdict.ok !== true) {
    showProblem(verdict);
    return;
  }
  showProblem(null);
  // One key per checkout attempt: a retry of the same cart (a lost answer, a double click)
  // finds the same order instead of placing another.
  const key = sessionStorage.getItem(ATTEMPT) || `shop-${crypto.randomUUID()}`;
  sessionStorage.setItem(ATTEMPT, key);
  const button = $('place');
  button.disabled = true;
  button.textContent = 'Placing…';
  try {
    const res = await fetch('/v1/orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(order),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      showProblem(body.title ? body : { title: `The order was not accepted (HTTP ${res.status})` });
      return;
    }
    sessionStorage.removeItem(ATTEMPT);
    sessionStorage.removeItem(CART);
    sessionStorage.setItem(`oms.order-token.${body.id}`, body.access_token);
    location.assign(`/shop/order?id=${encodeURIComponent(body.id)}`);
  } catch (err) {
    showProblem({ title: 'Network error', detail: `${err.message}. Your cart is kept; try again.` });
  } finally {
    button.disabled = false;
    button.textContent = 'Place order';
  }
}

async function main() {
  const [res] = await Promise.all([fetch(new URL('./products.json', import.meta.url)), load()]);
  catalog = await res.json();
  for (const sku of Object.keys(cart)) if (!product(sku)) delete cart[sku];
  $('shipping').append(...catalog.shipping.map((s, i) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'shipping', value: s.method, checked: i === 0 }),
    h('span', {}, s.label), h('span', { class: 'muted' }, money(s.amount, catalog.currency)))));
  $('checkout').addEventListener('change', render);
  $('checkout').addEventListener('submit', place);
  $('engine').textContent = 'Totals computed in your browser by oms-browser (WebAssembly), exactly as the server will.';
  $('engine').classList.add('ready');
  renderProducts();
  render();
  document.body.dataset.ready = 'true';
}

main().catch((err) => {
  $('engine').textContent = `The order rules did not load: ${err.message}`;
  $('engine').classList.add('failed');
});
