// The storefront demo page in real headless Chromium against a real `oms up`: the cart totals
// live in the browser (oms-browser, WebAssembly), an invalid order is refused on the page
// before any request, a valid one is placed and its status page follows it to `routed`, then
// to `shipped` when the warehouse ships it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OMS, browser, shot, api, until } from './harness.mjs';

let b;
let page;
const posts = [];

before(async () => {
  b = await browser();
  page = b.page;
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/v1/orders') posts.push(r);
  });
});
after(async () => {
  if (b) await b.close();
});

async function fill(fields) {
  for (const [name, value] of Object.entries(fields)) {
    const el = page.locator(`#checkout [name="${name}"]`);
    if (await el.evaluate((e) => e.tagName) === 'SELECT') await el.selectOption(value);
    else await el.fill(value);
  }
}

test('the cart totals live in the browser, exactly', async () => {
  await page.goto(`${OMS}/shop`);
  await page.locator('body[data-ready="true"]').waitFor();
  assert.match(await page.locator('#engine').textContent(), /WebAssembly/);
  await page.click('[data-sku="TEE-ORG"] button.add');
  await page.click('[data-sku="TEE-ORG"] button.add');
  await page.click('[data-sku="MUG-STN"] button.add');
  // 2 × 24.00 + 16.50 = 64.50; standard shipping 5.00; tax 8 % = 5.16; total 74.66
  const total = (k) => page.locator(`[data-total="${k}"]`).textContent();
  assert.equal(await total('subtotal'), '$64.50');
  assert.equal(await total('shipping'), '$5.00');
  assert.equal(await total('tax'), '$5.16');
  assert.equal(await total('total'), '$74.66');
  await page.check('input[name=shipping][value=express]');
  assert.equal(await total('total'), '$84.66');
  await page.check('input[name=shipping][value=standard]');
});

test('an invalid order is refused on the page, naming the field, before any request', async () => {
  await fill({
    email: 'not-an-email', name: 'Ada Lovelace', line1: '1 Market St', city: 'San Francisco',
    postal_code: '94105', country: 'US',
  });
  await page.click('#place');
  const problem = page.locator('#problem .problem');
  await problem.waitFor();
  assert.match(await problem.textContent(), /E-mail/);
  assert.equal(await page.locator('[name=email]').getAttribute('aria-invalid'), 'true');
  assert.equal(posts.length, 0, 'no order was sent');
  assert.equal(new URL(page.url()).pathname, '/shop');
  await shot(page, 'shop-invalid', { fullPage: true });
});

test('a valid order is placed and its status page follows it to routed, then shipped', async () => {
  await fill({ email: 'ada@example.com' });
  await Promise.all([page.waitForURL(/\/shop\/order\?id=/), page.click('#place')]);
  assert.equal(posts.length, 1, 'one POST /v1/orders');
  assert.match(posts[0].headers()['idempotency-key'] || '', /^shop-/);
  const id = new URL(page.url()).searchParams.get('id');
  assert.equal(await page.locator('#order-id').textContent(), id);
  await page.locator('body[data-status="routed"]').waitFor({ timeout: 30000 });
  assert.match(await page.locator('#steps li.current').textContent(), /Routed/);
  assert.match(await page.locator('#history').textContent(), /routed/);
  assert.match(await page.locator('#items').textContent(), /74\.66/);
  // The token stays in the tab: the URL and the order id alone show nothing.
  assert.doesNotMatch(page.url(), /oms_ot_/);
  assert.equal((await api('GET', `/v1/orders/${id}`, { token: null })).status, 401);
  await shot(page, 'shop-order');

  // The warehouse ships it: the page moves on by itself.
  const order = (await api('GET', `/v1/orders/${id}`)).body;
  assert.ok(order.shipments.length >= 1);
  for (const s of order.shipments) {
    const r = await api('POST', `/v1/shipments/${s.id}/shipped`, { body: { carrier: 'ups', tracking: '1Z999AA10123456784' } });
    assert.ok(r.status < 300, JSON.stringify(r));
  }
  await page.locator('body[data-status="shipped"]').waitFor({ timeout: 30000 });
  await until(async () => /1Z999AA10123456784/.test(await page.locator('#shipments').textContent()), 10000, 'tracking shown');
  await shot(page, 'shop-shipped');
});

test('the shop pages broke no Content-Security-Policy rule and threw no error', () => {
  assert.deepEqual(b.problems, []);
});
