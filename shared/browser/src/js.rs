//! The JS face of the crate (wasm32 only): JSON text in, plain objects out.

// wasm-bindgen's export and import glue expands to unsafe FFI code; nothing here is written
// unsafe by hand.
#![allow(unsafe_code)]

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Decimal amounts as strings in the order's currency ("19.99"): exact, never floats. */
export type Amount = string;

export interface Totals {
  subtotal: Amount;
  discount: Amount;
  shipping: Amount;
  tax: Amount;
  grand_total: Amount;
}

/** What passed: the totals the server recomputes (and checks the body's `totals` against). */
export interface Passed {
  ok: true;
  /** ISO 4217 code. */
  currency: string;
  totals: Totals;
}

/** RFC 9457 problem document: exactly what the server answers for the same input. */
export interface Problem {
  ok?: undefined;
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The fields at fault: JSON Pointers into the body ("/lines/0/unit_price") or "body". */
  "invalid-params"?: { name: string; code: string; reason: string }[];
}

/**
 * Unit prices per SKU and currency, the server's own catalogue shape
 * (`catalog:{sku}` = `{"USD": "19.99"}`): `{"SKU-1": {"USD": "19.99"}}`.
 */
export type Catalog = Record<string, Record<string, Amount>>;

export interface RefundableLine {
  /** Index into the order's lines (a refund item `{kind: "line", line, quantity}`). */
  line: number;
  sku: string;
  quantity: number;
  /** Units refunded so far. */
  refunded: number;
  /** Units that can still be refunded. */
  remaining: number;
  /** What refunding every remaining unit is worth (the refund as a whole is capped by `refundable`). */
  amount: Amount;
}

export interface Refundable {
  currency: string;
  captured: Amount;
  refunded: Amount;
  /** Captured minus refunded: the most a refund can still be. */
  refundable: Amount;
  /** Whether POST /v1/orders/{id}/refunds takes a refund in the order's state. */
  allowed: boolean;
  /** Why not, when `allowed` is false (the refund component's words). */
  reason?: string;
  lines: RefundableLine[];
  shipping: { amount: Amount; refunded: boolean };
}

/**
 * `POST /v1/orders` for this body (JSON text, or an object that is stringified): the same
 * rules, the same problem document field by field (type, title, status, detail,
 * invalid-params), or `{ok: true, currency, totals}`. Not checked here: the
 * `Idempotency-Key` header and key reuse (the server's), and stock.
 *
 * Prices: the server checks every line's unit price against its catalogue. Pass the catalogue
 * the page knows to run the same check (`unknown_sku`, `price_mismatch`, `price_unavailable`,
 * detail "the order does not match the catalog"); without it that check is skipped, and the
 * server remains the judge of prices.
 */
export function validateOrder(body: string | object, catalog?: Catalog | string | null): Passed | Problem;

/**
 * Exact totals of a cart: a draft order (same field names as the order body). Read: `currency`,
 * `lines`, and optionally `discounts`, `shipping` (an object; only `amount` is read), `tax`,
 * `taxes_included`; other order fields may be present. Computed by the server's code, so
 * these are the `totals` (and `payment.amount` = `grand_total`) the server accepts.
 * A cart that cannot be totalled gets a 422 problem document ("the cart is invalid").
 */
export function quoteTotals(cart: string | object): Passed | Problem;

/**
 * What can still be refunded of an order, from its `GET /v1/orders/{id}` JSON: the refunds are
 * replayed through the refund component's ledger. A body that is not an order view gets a
 * 422 problem document.
 */
export function refundable(order: string | object): Refundable | Problem;
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = JSON, js_name = parse)]
    fn json_parse(text: &str) -> JsValue;
    #[wasm_bindgen(js_namespace = JSON, js_name = stringify)]
    fn json_stringify(value: &JsValue) -> Option<String>;
}

/// A JSON argument: text as given, anything else stringified.
fn text(value: &JsValue) -> String {
    value
        .as_string()
        .or_else(|| json_stringify(value))
        .unwrap_or_default()
}

/// An optional JSON argument: `undefined` and `null` are "not given".
fn optional_text(value: &JsValue) -> Option<String> {
    if value.is_undefined() || value.is_null() {
        None
    } else {
        Some(text(value))
    }
}

/// See the TypeScript declaration above.
#[wasm_bindgen(js_name = validateOrder, skip_typescript)]
pub fn validate_order(body: JsValue, catalog: JsValue) -> JsValue {
    let catalog = optional_text(&catalog);
    json_parse(&crate::validate_order(
        text(&body).as_bytes(),
        catalog.as_deref(),
    ))
}

/// See the TypeScript declaration above.
#[wasm_bindgen(js_name = quoteTotals, skip_typescript)]
pub fn quote_totals(cart: JsValue) -> JsValue {
    json_parse(&crate::quote_totals(text(&cart).as_bytes()))
}

/// See the TypeScript declaration above.
#[wasm_bindgen(js_name = refundable, skip_typescript)]
pub fn refundable(order: JsValue) -> JsValue {
    json_parse(&crate::refundable(text(&order).as_bytes()))
}
