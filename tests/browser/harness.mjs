// Shared set-up of the browser tests: the OMS under test (OMS_URL, OMS_STAFF_TOKEN, given by
// tests/console.rs), a real headless Chromium driven by playwright-core, and screenshots
// under OMS_SCREENSHOTS (target/screenshots).
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const OMS = process.env.OMS_URL;
export const STAFF = process.env.OMS_STAFF_TOKEN;
const SHOTS = process.env.OMS_SCREENSHOTS || 'screenshots';
if (!OMS || !STAFF) throw new Error('OMS_URL and OMS_STAFF_TOKEN must be set (tests/console.rs sets them)');

/** A fresh Chromium (its own empty profile) and a page that records CSP violations and page errors. */
export async function browser() {
  const profile = mkdtempSync(join(tmpdir(), 'oms-chromium-'));
  // A fresh, empty profile each run (playwright takes it as the persistent context's folder
  // and passes it as --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
    ],
    viewport: { width: 1360, height: 900 },
    deviceScaleFactor: 1,
  });
  const page = context.pages()[0] || await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.setDefaultTimeout(20000);
  return {
    page,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function shot(page, name, { fullPage = false } = {}) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

/** A call to the OMS API from the test itself (not the page). */
export async function api(method, path, { body, token = STAFF, key } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (key) headers['idempotency-key'] = key;
  const res = await fetch(`${OMS}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A storefront order body with exact totals (amounts in cents). */
export function orderBody({ sku, quantity = 1, price, email = 'grace@example.com', shipping = 500, channel = 'web' }) {
  const money = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
  const subtotal = price * quantity;
  const grand = subtotal + shipping;
  return {
    channel,
    customer: { email, name: 'Grace Hopper' },
    currency: 'USD',
    lines: [{ sku, quantity, unit_price: money(price) }],
    shipping: {
      method: 'standard', amount: money(shipping),
      address: { country: 'US', postal_code: '94103', line1: '500 Howard St', city: 'San Francisco' },
    },
    tax: '0.00',
    totals: { subtotal: money(subtotal), discount: '0.00', shipping: money(shipping), tax: '0.00', grand_total: money(grand) },
    payment: { reference: `pi_${Math.random().toString(36).slice(2, 10)}`, status: 'captured', amount: money(grand) },
  };
}

/** Places an order through the API; returns the 202's body ({id, access_token, ...}). */
export async function place(spec) {
  const r = await api('POST', '/v1/orders', { body: orderBody(spec), token: null, key: `bt-${crypto.randomUUID()}` });
  if (r.status !== 202) throw new Error(`POST /v1/orders: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Polls `f` until it returns a truthy value (or throws after `ms`). */
export async function until(f, ms = 20000, what = 'condition') {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}
