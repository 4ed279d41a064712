// The operations console in real headless Chromium against a real `oms up`: sign-in (a wrong
// token's 401 problem shown, the right one accepted), KPIs that change as orders are placed
// through the API, order search by e-mail, an order's timeline, re-driving dead-lettered
// webhooks once their receiver listens, and releasing a hold.
import http from 'node:http';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { OMS, STAFF, browser, shot, api, place, until } from './harness.mjs';

let b;
let page;

before(async () => {
  b = await browser();
  page = b.page;
});
after(async () => {
  if (b) await b.close();
});

const accepted = async () => Number((await page.locator('[data-kpi="accepted"] .tile-value').textContent()).replace(/[^0-9]/g, ''));
const statusOf = async (id) => (await api('GET', `/v1/orders/${id}`)).body.status;

test('staff sign in with their token; a wrong token is refused with the problem shown', async () => {
  await page.goto(`${OMS}/console`);
  await page.locator('#signin').waitFor({ state: 'visible' });
  await page.fill('#token', 'not-a-staff-token');
  await page.click('#signin-form button[type=submit]');
  const problem = page.locator('#signin-error .problem');
  await problem.waitFor();
  assert.equal(await problem.getAttribute('data-status'), '401');
  assert.match(await problem.textContent(), /Authorization/i);
  await shot(page, 'console-signin-refused');

  await page.fill('#token', STAFF);
  await page.click('#signin-form button[type=submit]');
  await page.locator('#kpis').waitFor();
  assert.equal(await page.locator('#signin').isHidden(), true);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('oms.staff-token')), STAFF);
});

let placed = [];
let hookId;
// The subscriber's port: nothing listens on it until the re-drive test opens it.
let hookPort;

/** A loopback port that was free a moment ago. */
async function freePort() {
  const s = http.createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}
const email = `kpi-${Date.now()}@example.com`;

const kpi = async (name) => (await page.locator(`[data-kpi="${name}"]`).textContent());

test('the dashboard KPIs change as orders are placed through the API', async () => {
  const before = await accepted();
  // A subscriber nothing answers for now (nothing listens on its port): its deliveries dead-letter.
  hookPort = await freePort();
  const hook = await api('POST', '/v1/webhooks', { body: { url: `http://127.0.0.1:${hookPort}/hook`, events: ['order.routed'] } });
  assert.equal(hook.status, 201, JSON.stringify(hook));
  hookId = hook.body.id;
  placed = [];
  for (const [sku, quantity, price, channel] of [
    ['TEE-ORG', 2, 2400, 'web'], ['MUG-STN', 1, 1650, 'web'], ['CAP-WAX', 1, 3200, 'mobile-app'],
  ]) {
    placed.push(await place({ sku, quantity, price, email, channel }));
  }
  for (const o of placed) await until(async () => (await statusOf(o.id)) === 'routed', 20000, `order ${o.id} routed`);
  // More shapes for the charts: a point-of-sale order, cancelled by staff.
  const pos = await place({ sku: 'BAG-TOT', quantity: 3, price: 1999, channel: 'pos', email: 'walk-in@example.com' });
  await until(async () => (await statusOf(pos.id)) === 'routed', 20000, 'pos order routed');
  const cancel = await api('POST', `/v1/orders/${pos.id}/cancel`, { body: { reason: 'customer changed mind' } });
  assert.ok(cancel.status < 300, JSON.stringify(cancel));
  await until(async () => {
    await page.click('.page-head button');
    await page.waitForTimeout(300);
    return (await accepted()) >= before + 4 && /[1-9]/.test(await kpi('cancellations'));
  }, 30000, 'accepted KPI to grow by 4 and a cancellation counted');
  const channels = await page.locator('svg.bars').first().textContent();
  for (const ch of ['web', 'mobile-app', 'pos']) assert.ok(channels.includes(ch), `${ch} in the channel chart`);
  const routed = await page.locator('[data-kpi="accepted"] .tile-sub').textContent();
  assert.match(routed, /[1-9]\d* routed/);
  assert.ok(await page.locator('svg.donut circle.donut-part').count() >= 1, 'orders-by-status donut drawn');
  assert.ok(await page.locator('svg.bars rect').count() >= 1, 'bar charts drawn');
  await shot(page, 'console-dashboard');
});

test('orders are found by e-mail and an order opens with its timeline', async () => {
  await page.click('nav a[data-nav="orders"]');
  await page.fill('#search-form input[name=q]', email);
  await page.click('#search-form button[type=submit]');
  await until(async () => (await page.locator('#order-results tbody tr').count()) === 3, 20000, 'three results');
  const ids = await page.locator('#order-results tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.orderId));
  assert.deepEqual([...ids].sort(), placed.map((o) => o.id).sort());
  await shot(page, 'console-search');

  await page.click(`#order-results tr[data-order-id="${placed[0].id}"] a`);
  await page.locator('#timeline').waitFor();
  assert.equal(await page.locator('#order-id').textContent(), placed[0].id);
  const types = await page.locator('#timeline li').evaluateAll((lis) => lis.map((li) => li.dataset.type));
  for (const t of ['order.validated', 'order.reserved', 'order.routed']) assert.ok(types.includes(t), `${t} in ${types}`);
  assert.match(await page.locator('#timeline').textContent(), /by storefront/);
  assert.ok(await page.locator('table.table').filter({ hasText: 'wh-' }).count() >= 1, 'the shipment is listed with its location');
  await shot(page, 'console-order');
});

test('staff refund and cancel from the order view; a refused refund shows its problem', async () => {
  const o = placed[1];
  await page.goto(`${OMS}/console#/orders/${o.id}`);
  await page.locator('#timeline').waitFor();
  const refund = () => page.locator('form.refund');
  // A routed order is not refunded (it is cancelled instead): the page knows it beforehand, by
  // the refund rules running in the browser (oms-browser's refundable), and the server's 409 is
  // shown when tried anyway; nothing changes.
  await page.locator('#refundable .note').waitFor();
  assert.match(await page.locator('#refundable').textContent(), /routed cannot be refunded.*TEE-ORG|routed cannot be refunded/s);
  await refund().locator('input[name=amount]').fill('2.50');
  await refund().locator('button[type=submit]').click();
  const problem = refund().locator('.problem');
  await problem.waitFor();
  assert.equal(await problem.getAttribute('data-status'), '409');
  assert.match(await problem.textContent(), /cannot be refunded/);
  // Once it ships, the refund goes through.
  const shipment = (await api('GET', `/v1/orders/${o.id}`)).body.shipments[0];
  const shipped = await api('POST', `/v1/shipments/${shipment.id}/shipped`, { body: { carrier: 'dhl', tracking: 'JD014600006281230704' } });
  assert.ok(shipped.status < 300, JSON.stringify(shipped));
  await page.click('.page-head button');
  await page.locator('#timeline li[data-type="order.shipped"]').waitFor();
  await until(async () => /MUG-STN 1 of 1/.test(await page.locator('#refundable').textContent()), 10000, 'refundable per line');
  assert.equal(await page.locator('#refundable .note').count(), 0, 'refundable once shipped');
  await refund().locator('input[name=amount]').fill('2.50');
  await refund().locator('input[name=reason]').fill('gift wrap missing');
  await refund().locator('button[type=submit]').click();
  await page.locator('#timeline li[data-type="order.partially_refunded"]').waitFor();
  assert.match(await page.locator('section.panel', { hasText: 'Refundable' }).last().textContent(), /2\.50 USD/);
  await shot(page, 'console-order-refunded');

  // Cancel another, still routed, from its view.
  const c = placed[2];
  await page.goto(`${OMS}/console#/orders/${c.id}`);
  await page.locator('form.cancel input[name=reason]').fill('duplicate order');
  await page.locator('form.cancel button[type=submit]').click();
  await page.locator('#timeline li[data-type="order.cancelled"]').waitFor();
  assert.equal((await api('GET', `/v1/orders/${c.id}`)).body.status, 'cancelled');
});

test('the webhook page lists dead-lettered deliveries', async () => {
  await page.click('nav a[data-nav="webhooks"]');
  await until(async () => {
    await page.reload();
    await page.locator('#dead-count').waitFor();
    return /^[1-9]/.test(await page.locator('#dead-count').textContent());
  }, 30000, 'dead-lettered deliveries listed');
  const section = page.locator(`section[data-webhook="${hookId}"]`);
  assert.ok((await section.textContent()).includes(`127.0.0.1:${hookPort}/hook`));
  assert.match(await section.textContent(), /order\.routed/);
  await shot(page, 'console-webhooks');
});

test('dead letters are re-driven from the console and delivered once the receiver listens', async () => {
  // The receiver comes up on the subscriber's port and answers 204, noting each webhook-id.
  const got = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      got.push({ id: req.headers['webhook-id'], event: JSON.parse(body).id });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(hookPort, '127.0.0.1', resolve);
  });
  try {
    await page.reload();
    const section = page.locator(`section[data-webhook="${hookId}"]`);
    await section.locator('tr[data-state="dead"]').first().waitFor();
    const rowOf = (id) => section.locator(`tr[data-event="${id}"]`);
    const deadIds = async () => section.locator('tr[data-state="dead"]')
      .evaluateAll((rows) => rows.map((r) => r.dataset.event));
    const [first, second] = await deadIds();
    assert.ok(first && second, 'two dead letters to re-drive one by one');

    // Someone else re-drives the first behind this page's back: its button is stale now, and
    // pressing it shows the 409 problem naming the state the delivery is in.
    const behind = await api('POST', `/v1/webhooks/${hookId}/deliveries/${first}/redrive`);
    assert.equal(behind.status, 202, JSON.stringify(behind));
    assert.equal(behind.body.state, 'pending');
    await rowOf(first).locator('button.redrive').click();
    const problem = rowOf(first).locator('.problem');
    await problem.waitFor();
    assert.equal(await problem.getAttribute('data-status'), '409');
    assert.match(await problem.textContent(), /is (pending|delivered); only a dead delivery can be re-driven/);
    await shot(page, 'console-webhooks-redrive-conflict');

    // The second, re-driven from the console.
    await rowOf(second).locator('button.redrive').click();
    for (const id of [first, second]) {
      await until(async () => {
        await page.reload();
        await section.waitFor();
        return (await rowOf(id).getAttribute('data-state')) === 'delivered';
      }, 30000, `re-driven delivery ${id} shown delivered`);
    }
    assert.match(await rowOf(second).textContent(), /re-driven 1× · last by staff:root/);
    assert.equal(await rowOf(second).locator('button.redrive').count(), 0, 'no re-drive for a delivered one');
    const again = await api('POST', `/v1/webhooks/${hookId}/deliveries/${second}/redrive`);
    assert.equal(again.status, 409);
    assert.match(again.body.detail, /is delivered/);

    // The rest at once; the receiver is listening now, so nothing is left dead.
    const rest = await deadIds();
    if (rest.length > 1) await section.locator('button.redrive-all').click();
    else if (rest.length === 1) await rowOf(rest[0]).locator('button.redrive').click();
    await until(async () => {
      await page.reload();
      await page.locator('#dead-count').waitFor();
      return /^0 dead-lettered/.test(await page.locator('#dead-count').textContent())
        && (await section.locator('tbody tr:not([data-state="delivered"])').count()) === 0;
    }, 30000, 'every re-driven delivery delivered');
    await shot(page, 'console-webhooks-redriven');
    // Each went out again with its own event id as the webhook-id, the one receivers saw first.
    for (const id of [first, second, ...rest]) {
      const seen = got.filter((g) => g.id === id);
      assert.ok(seen.length >= 1, `webhook ${id} received`);
      assert.ok(seen.every((g) => g.event === id), 'webhook-id is the event id');
    }
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a held order is released from the console', async () => {
  const o = await place({ sku: 'PRE-ORD', quantity: 1, price: 4500, email: 'held@example.com' });
  await until(async () => (await statusOf(o.id)) === 'backordered', 20000, 'order backordered');
  const held = await api('POST', `/v1/orders/${o.id}/holds`, { body: { reason: 'fraud_review', note: 'card country mismatch' } });
  assert.ok(held.status >= 200 && held.status < 300, JSON.stringify(held));

  await page.goto(`${OMS}/console#/orders/${o.id}`);
  const hold = page.locator('li.hold[data-reason="fraud_review"]');
  await hold.waitFor();
  assert.match(await hold.textContent(), /card country mismatch/);
  await shot(page, 'console-hold');
  await hold.locator('input[name=note]').fill('cleared by phone');
  await hold.locator('button[type=submit]').click();
  await until(async () => (await page.locator('li.hold').count()) === 0, 20000, 'the hold gone from the view');
  await page.locator('#timeline li[data-type="order.hold_released"]').waitFor();
  assert.match(await page.locator('#timeline li[data-type="order.hold_released"]').textContent(), /staff:root|staff/);
  const view = (await api('GET', `/v1/orders/${o.id}`)).body;
  assert.deepEqual(view.holds, []);
});

test('the dashboard shows the day\'s work: shipments, refunds, holds released', async () => {
  await page.click('nav a[data-nav="dashboard"]');
  await page.locator('#kpis').waitFor();
  await until(async () => {
    await page.click('.page-head button');
    await page.waitForTimeout(300);
    return /[2-9]\d* refunds|1\d+ refunds/.test(await kpi('refunds')) && !/^\D*0\.0%/.test(await kpi('fill-rate'));
  }, 20000, 'refunds and shipped units counted');
  await shot(page, 'console-dashboard-later');
});

test('the console pages broke no Content-Security-Policy rule and threw no error', () => {
  assert.deepEqual(b.problems, []);
});
