//! The OMS order rules in the browser: the domain crate's intake, totals and refund rules,
//! exported with `wasm-bindgen` (`scripts/build-browser.sh` builds the npm package into
//! `target/browser-pkg/`).
//!
//! Every answer is what the server would say for the same input, because it is the same code:
//! [`oms_domain::storefront`] (the body, the order's rules, the catalogue price check, a cart's
//! totals) is what `functions/validate` answers `POST /v1/orders` with, and
//! [`oms_domain::refundable`] replays the order's refunds through the refund component's
//! ledger. The functions here only move JSON text in and out: natively testable, and thin on
//! the JS side.

use std::collections::BTreeMap;

use chrono::DateTime;
use oms_domain::{storefront, Catalog, IdempotencyKey, ProblemDocument, Sku, Totals};
use serde::Serialize;
use serde_json::Value;

#[cfg(target_arch = "wasm32")]
mod js;

/// A request that passed: what the storefront shows and sends.
#[derive(Serialize)]
struct Passed<'a> {
    ok: bool,
    currency: &'a str,
    totals: &'a Totals,
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn passed(currency: &str, totals: &Totals) -> String {
    to_json(&Passed {
        ok: true,
        currency,
        totals,
    })
}

/// The catalogue the caller knows, in the server's stored shape (`{"SKU-1": {"USD": "19.99"}}`),
/// read as the server reads its `catalog:{sku}` documents. `None` when it is not JSON.
fn catalog(text: &str, skus: &[Sku]) -> Option<Catalog> {
    let all: BTreeMap<String, Value> = serde_json::from_str(text).ok()?;
    let mut catalog = Catalog::new();
    for sku in skus {
        let prices: Option<BTreeMap<String, String>> = all
            .get(sku.as_str())
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        if let Some(prices) = prices {
            storefront::add_prices(&mut catalog, sku, &prices);
        }
    }
    Some(catalog)
}

/// `POST /v1/orders` for this body, as JSON: `{"ok": true, "currency", "totals"}` or the
/// problem document the server answers with. With a `catalog` (JSON text), its prices are
/// checked as the server checks its own; without, that check is skipped.
pub fn validate_order(body: &[u8], catalog_json: Option<&str>) -> String {
    let checked = (|| -> Result<oms_domain::Order, ProblemDocument> {
        let body = storefront::parse_body(body)?;
        // The key and time only name and date the order; no rule reads them.
        let key = IdempotencyKey::parse("browser")
            .map_err(|e| ProblemDocument::new(500, "internal", "Internal error", e.to_string()))?;
        let order = storefront::order(&body, &key, DateTime::UNIX_EPOCH)?;
        if let Some(text) = catalog_json {
            let skus: Vec<Sku> = order.units_by_sku().into_keys().collect();
            let catalog = catalog(text, &skus).ok_or_else(|| {
                ProblemDocument::field(
                    400,
                    "malformed",
                    "Malformed request",
                    "catalog",
                    "invalid_json",
                    "the catalog must be a JSON object of SKU to {currency: price}",
                )
            })?;
            storefront::check_prices(&catalog, &order)?;
        }
        Ok(order)
    })();
    match checked {
        Ok(order) => passed(order.currency().code(), order.totals()),
        Err(problem) => to_json(&problem),
    }
}

/// The totals of a cart (a draft order: see [`storefront::quote`]), as JSON:
/// `{"ok": true, "currency", "totals"}` or a 422 problem document.
pub fn quote_totals(cart: &[u8]) -> String {
    let quoted = storefront::parse_body(cart).and_then(|v| storefront::quote(&v));
    match quoted {
        Ok((currency, totals)) => passed(currency.code(), &totals),
        Err(problem) => to_json(&problem),
    }
}

/// What can still be refunded of an order (`GET /v1/orders/{id}`'s JSON), as JSON (see
/// [`oms_domain::Refundable`]) or a problem document.
pub fn refundable(order: &[u8]) -> String {
    match storefront::parse_body(order).and_then(|v| oms_domain::refundable(&v)) {
        Ok(r) => to_json(&r),
        Err(problem) => to_json(&problem),
    }
}

#[cfg(test)]
mod tests;
