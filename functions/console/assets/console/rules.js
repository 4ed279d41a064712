// The browser package (oms-browser: the domain crate's rules compiled to WebAssembly, served by
// this component under /shop/pkg/), loaded on first use.
let ready;

async function pkg() {
  ready ||= import('/shop/pkg/oms_browser.js').then(async (m) => {
    await m.default();
    return m;
  });
  return ready;
}

/** What can still be refunded of an order view, by the refund component's own ledger rules:
 * {allowed, reason?, refundable, lines: [{line, sku, remaining, amount}], ...} or a problem. */
export async function refundable(order) {
  const m = await pkg();
  // The view sends money as {amount, currency}; the package reads these two as amount strings.
  const flat = { ...order };
  for (const k of ['refunded_total', 'refundable']) {
    if (flat[k] && typeof flat[k] === 'object') flat[k] = flat[k].amount;
  }
  const r = m.refundable(JSON.stringify(flat));
  return typeof r === 'string' ? JSON.parse(r) : r;
}
