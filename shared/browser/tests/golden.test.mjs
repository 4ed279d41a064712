// The browser package (target/browser-pkg, built by scripts/build-browser.sh) in Node 20,
// against every golden order fixture:
//   tests/fixtures/orders/invalid/*.json         (expected: status + invalid-params)
//   shared/tests/fixtures/{valid,invalid}/*.json (expected: accepted / the problems)
// with the catalogue shared/tests/fixtures/catalog.json.
//
// With OMS_BROWSER_SERVER_ANSWERS=<file> (written by tests/browser_pkg.rs, which posted every
// fixture to a live `oms up`), each browser answer must equal the server's field by field:
// the whole problem document, or for a 202 the order's totals as the server stored them.
//
//   node --test shared/browser/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const pkg = process.env.OMS_BROWSER_PKG || join(repo, 'target/browser-pkg');
if (!existsSync(join(pkg, 'oms_browser_bg.wasm'))) {
  throw new Error(`${pkg} is not built: run scripts/build-browser.sh`);
}
const oms = await import(pathToFileURL(join(pkg, 'oms_browser.js')).href);
await oms.default({ module_or_path: readFileSync(join(pkg, 'oms_browser_bg.wasm')) });
const { validateOrder, quoteTotals, refundable } = oms;

const catalog = JSON.parse(readFileSync(join(repo, 'shared/tests/fixtures/catalog.json'), 'utf8'));

/** Every golden fixture: {file (repo-relative), text, expected: {status, params: [[name, code]]} | {accepted}}. */
function fixtures() {
  const out = [];
  const list = (dir) => readdirSync(join(repo, dir))
    .filter((n) => n.endsWith('.json') && !n.endsWith('.expected.json'))
    .sort()
    .map((n) => join(repo, dir, n));
  const pairs = (p) => p.map(([name, code]) => [name, code]);
  for (const file of list('tests/fixtures/orders/invalid')) {
    const e = JSON.parse(readFileSync(file.replace(/\.json$/, '.expected.json'), 'utf8'));
    out.push({ file, expected: { status: e.status, params: pairs(e['invalid-params']) } });
  }
  for (const file of list('shared/tests/fixtures/invalid')) {
    const e = JSON.parse(readFileSync(file.replace(/\.json$/, '.expected.json'), 'utf8'));
    out.push({ file, expected: { status: 422, params: e.problems.map((p) => [p.field, p.code]) } });
  }
  for (const file of list('shared/tests/fixtures/valid')) {
    out.push({ file, expected: { accepted: true } });
  }
  return out.map((f) => ({ ...f, name: relative(repo, f.file), text: readFileSync(f.file, 'utf8') }));
}

/** An amount as the server writes it ({amount, currency}) or as a bare string. */
const amount = (m) => (typeof m === 'string' ? m : m.amount);
const sorted = (pairs) => [...pairs].map((p) => p.join(' ')).sort();
const paramsOf = (problem) => (problem['invalid-params'] || []).map((p) => [p.name, p.code]);

test('every golden fixture gets its expected answer', () => {
  const all = fixtures();
  assert.ok(all.length >= 30, `only ${all.length} fixtures`);
  for (const f of all) {
    const got = validateOrder(f.text, catalog);
    if (f.expected.accepted) {
      assert.equal(got.ok, true, `${f.name}: ${JSON.stringify(got)}`);
      assert.equal(got.currency, JSON.parse(f.text).currency, f.name);
      // The body's totals are what the server recomputes (else it would not be accepted).
      const claimed = JSON.parse(f.text).totals;
      for (const k of Object.keys(got.totals)) {
        assert.equal(Number(got.totals[k]), Number(claimed[k]), `${f.name}: totals.${k}`);
      }
    } else {
      assert.equal(got.ok, undefined, `${f.name}: a problem has no ok`);
      assert.equal(got.status, f.expected.status, `${f.name}: ${JSON.stringify(got)}`);
      assert.deepEqual(sorted(paramsOf(got)), sorted(f.expected.params), f.name);
      assert.match(got.type, /^https:\/\/oms\.dev\/problems\//, f.name);
      assert.ok(got.title && got.detail, f.name);
    }
  }
});

const answers = process.env.OMS_BROWSER_SERVER_ANSWERS;
test('the browser answers exactly what the live server answered', { skip: !answers && 'no OMS_BROWSER_SERVER_ANSWERS (tests/browser_pkg.rs sets it)' }, () => {
  const live = JSON.parse(readFileSync(answers, 'utf8'));
  const byName = new Map(live.cases.map((c) => [c.fixture, c]));
  const all = fixtures();
  assert.equal(byName.size, all.length, 'the server answered every fixture');
  let accepted = 0;
  for (const f of all) {
    const server = byName.get(f.name);
    assert.ok(server, `${f.name}: no server answer`);
    const got = validateOrder(f.text, live.catalog);
    if (server.status === 202) {
      accepted += 1;
      assert.equal(got.ok, true, `${f.name}: server accepted, browser said ${JSON.stringify(got)}`);
      assert.deepEqual(got.totals, server.view.totals, `${f.name}: totals`);
      assert.equal(got.currency, server.view.currency, f.name);
      // What the server says can be refunded of it, the browser says too.
      const r = refundable(server.view);
      assert.equal(r.refundable, amount(server.view.refundable), `${f.name}: ${JSON.stringify(r)}`);
      assert.equal(r.refunded, amount(server.view.refunded_total), f.name);
      assert.equal(r.allowed, false, `${f.name}: ${server.view.status} orders are not refundable`);
      assert.match(r.reason, /cannot be refunded/, f.name);
    } else {
      // The whole RFC 9457 document, field by field: type, title, status, detail, invalid-params.
      assert.deepEqual(got, server.body, f.name);
    }
  }
  assert.ok(accepted >= 3, `only ${accepted} accepted`);
});

test('a cart quotes the totals its order is accepted with', () => {
  for (const file of readdirSync(join(repo, 'shared/tests/fixtures/valid')).sort()) {
    const order = JSON.parse(readFileSync(join(repo, 'shared/tests/fixtures/valid', file), 'utf8'));
    const { totals, payment, customer, channel, ...cart } = order;
    const quote = quoteTotals(cart);
    assert.equal(quote.ok, true, `${file}: ${JSON.stringify(quote)}`);
    assert.deepEqual(quote.totals, validateOrder(order, catalog).totals, file);
  }
  // Decimal, not binary floating point: 0.1 + 0.2 is 0.30.
  const q = quoteTotals(JSON.stringify({
    currency: 'USD',
    lines: [{ sku: 'A', quantity: 1, unit_price: '0.10' }, { sku: 'B', quantity: 1, unit_price: '0.20' }],
    shipping: { amount: '0.05' },
  }));
  assert.deepEqual(q, {
    ok: true,
    currency: 'USD',
    totals: { subtotal: '0.30', discount: '0.00', shipping: '0.05', tax: '0.00', grand_total: '0.35' },
  });
  const bad = quoteTotals({ currency: 'USD', lines: [], shipping: '5.00' });
  assert.equal(bad.status, 422);
  assert.deepEqual(sorted(paramsOf(bad)), sorted([['/lines', 'empty'], ['/shipping', 'invalid_type']]));
});

test('refundable follows the refunds already made', () => {
  const order = JSON.parse(readFileSync(join(repo, 'shared/tests/fixtures/valid/standard_usd.json'), 'utf8'));
  const view = {
    ...order,
    id: '6f1c2b1e-8a54-4d3c-9f3e-2b7d9c1a0e11',
    placed_at: '2026-01-01T00:00:00Z',
    status: 'delivered',
    refunds: [],
    refunded_total: { amount: '0.00', currency: order.currency },
    refundable: { amount: order.payment.amount, currency: order.currency },
  };
  delete view.tax;
  const fresh = refundable(view);
  assert.equal(fresh.allowed, true, JSON.stringify(fresh));
  assert.equal(fresh.refundable, order.payment.amount);
  assert.equal(fresh.lines.length, order.lines.length);
  assert.ok(fresh.lines.every((l) => l.refunded === 0 && l.remaining === l.quantity));
  assert.equal(fresh.shipping.refunded, false);

  const shipped = {
    ...view,
    refunds: [{ amount: { amount: order.shipping.amount, currency: order.currency }, items: [{ kind: 'shipping' }] }],
    refunded_total: { amount: order.shipping.amount, currency: order.currency },
    refundable: {
      amount: (Number(order.payment.amount) - Number(order.shipping.amount)).toFixed(2),
      currency: order.currency,
    },
  };
  const after = refundable(JSON.stringify(shipped));
  assert.equal(after.shipping.refunded, true, JSON.stringify(after));
  assert.equal(after.refunded, order.shipping.amount);
  assert.equal(after.refundable, shipped.refundable.amount);

  const notAView = refundable('[1, 2]');
  assert.equal(notAView.status, 422);
});

test('text that is not JSON is the same 400 the server sends', () => {
  const got = validateOrder('{"channel": "web", "lines": [');
  assert.equal(got.status, 400);
  assert.equal(got.type, 'https://oms.dev/problems/malformed');
  assert.deepEqual(paramsOf(got), [['body', 'invalid_json']]);
  assert.match(got.detail, /^body: not valid JSON: EOF while parsing/);
});
