// The browser package (oms-browser, built from the domain crate with wasm-bindgen, served from
// /shop/pkg/): the server's order rules, run locally. One place adapts its API to the page.
import init, * as oms from './pkg/oms_browser.js';

let ready;

/** Loads the WebAssembly module once. */
export function load() {
  ready ||= init();
  return ready;
}

const parse = (v) => (typeof v === 'string' ? JSON.parse(v) : v);

/** The order as POST /v1/orders would judge it: {ok: true, totals} or a problem document. */
export function validateOrder(order, catalog) {
  return parse(oms.validateOrder(JSON.stringify(order), catalog ? JSON.stringify(catalog) : null));
}

/** Exact totals of a cart (a draft order): {ok: true, currency, totals} with decimal strings,
 * or a problem document. */
export function quoteTotals(cart) {
  return parse(oms.quoteTotals(JSON.stringify(cart)));
}
