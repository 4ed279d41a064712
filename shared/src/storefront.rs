//! What `POST /v1/orders` decides from the request alone, as plain functions: the JSON body
//! (its refusals), the order's rules (every violation with its JSON Pointer), the catalogue's
//! price check, and a cart's totals. `functions/validate` answers with these, and the browser
//! package (`shared/browser`) runs the very same functions, so a storefront gets the same
//! problem document, field by field, before the round trip.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::catalog::Catalog;
use crate::currency::Currency;
use crate::idempotency::IdempotencyKey;
use crate::ids::Sku;
use crate::money::Money;
use crate::order::{Order, Totals};
use crate::problem::ProblemDocument;
use crate::violation::Violations;

/// The JSON body of a request: 400 when it is empty or not JSON. Numbers with an integral
/// value (`2.0`, `1e3`) are read as integers, so a quantity written `2.0` is the quantity 2.
///
/// # Errors
/// 400 naming `body` (`missing`, `invalid_json` with serde_json's message).
pub fn parse_body(body: &[u8]) -> Result<Value, ProblemDocument> {
    if body.is_empty() {
        return Err(ProblemDocument::field(
            400,
            "malformed",
            "Malformed request",
            "body",
            "missing",
            "a JSON body is required",
        ));
    }
    let mut value = serde_json::from_slice(body).map_err(|e| {
        ProblemDocument::field(
            400,
            "malformed",
            "Malformed request",
            "body",
            "invalid_json",
            format!("not valid JSON: {e}"),
        )
    })?;
    integral_numbers(&mut value);
    Ok(value)
}

/// Rewrites every number with an integral value in `i64` or `u64` range as an integer.
fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let whole = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0);
            // The bounds are exact powers of two, so the casts below never saturate.
            if let Some(f) = whole
                .filter(|f| (-9.223_372_036_854_776e18..1.844_674_407_370_955_2e19).contains(f))
            {
                *n = if f < 0.0 {
                    (f as i64).into()
                } else {
                    (f as u64).into()
                };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// A storefront order request ([`Order::from_storefront_request`]), refused as `POST /v1/orders`
/// refuses it: 422 "the order is invalid" with every violation.
///
/// # Errors
/// The 422 problem document.
pub fn order(
    body: &Value,
    key: &IdempotencyKey,
    placed_at: DateTime<Utc>,
) -> Result<Order, ProblemDocument> {
    Order::from_storefront_request(body, key, placed_at)
        .map_err(|v| ProblemDocument::invalid("the order is invalid", &v.0))
}

/// The order's prices against the catalogue ([`Catalog::check`]), refused as `POST /v1/orders`
/// refuses them: 422 "the order does not match the catalog".
///
/// # Errors
/// The 422 problem document.
pub fn check_prices(catalog: &Catalog, order: &Order) -> Result<(), ProblemDocument> {
    catalog.check(order).map_err(|v| catalog_problem(&v))
}

/// The 422 for an order whose lines do not match the catalogue.
pub fn catalog_problem(violations: &Violations) -> ProblemDocument {
    ProblemDocument::invalid("the order does not match the catalog", &violations.0)
}

/// Adds one SKU's stored prices (`catalog:{sku}` = `{"USD": "19.99"}`) to `catalog`. An entry
/// whose currency or amount does not parse is left out (that SKU has no price in it).
pub fn add_prices(catalog: &mut Catalog, sku: &Sku, prices: &BTreeMap<String, String>) {
    for (code, amount) in prices {
        let price = Currency::parse(code)
            .ok()
            .and_then(|c| Money::parse(amount, c).ok());
        if let Some(price) = price {
            catalog.set_price(sku.clone(), price);
        }
    }
}

/// The totals of a cart (its `currency`, `lines`, `discounts`, `shipping.amount`, `tax`,
/// `taxes_included`; other order fields may be present and are not read), computed by the
/// same rules as an order's: what a storefront puts in `totals` and `payment.amount`.
///
/// # Errors
/// 422 "the cart is invalid" with every violation.
pub fn quote(cart: &Value) -> Result<(Currency, Totals), ProblemDocument> {
    crate::order_intake::quote(cart)
        .map_err(|v| ProblemDocument::invalid("the cart is invalid", &v.0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order_body() -> Value {
        json!({
            "channel": "web",
            "customer": {"email": "a@example.com"},
            "currency": "USD",
            "lines": [{"sku": "A", "quantity": 2, "unit_price": "1.25"}],
            "discounts": [{"code": "X", "amount": "0.50"}],
            "shipping": {"method": "pickup", "amount": "0", "pickup_location": "store-1"},
            "tax": "0.10",
            "totals": {"subtotal": "2.50", "discount": "0.50", "shipping": "0", "tax": "0.10", "grand_total": "2.10"},
            "payment": {"reference": "p", "status": "authorized", "amount": "2.10"}
        })
    }

    #[test]
    fn integral_numbers_are_integers_however_written() {
        let v =
            parse_body(br#"{"a": 2.0, "b": [1e3, -4.0, 0.5], "c": {"d": 18446744073709551615.0}}"#)
                .unwrap();
        assert_eq!(
            v,
            json!({"a": 2, "b": [1000, -4, 0.5], "c": {"d": 18446744073709551615.0}})
        );
        assert!(v["a"].is_u64() && v["b"][1].is_i64() && v["b"][2].is_f64());
        assert_eq!(parse_body(b"1e300").unwrap(), json!(1e300));
    }

    #[test]
    fn empty_and_broken_bodies_are_400s_naming_the_body() {
        let empty = parse_body(b"").unwrap_err();
        assert_eq!(
            (empty.status, empty.invalid_params[0].code.as_str()),
            (400, "missing")
        );
        let broken = parse_body(b"{\"a\": [").unwrap_err();
        assert_eq!(broken.status, 400);
        assert_eq!(broken.invalid_params[0].name, "body");
        assert_eq!(broken.invalid_params[0].code, "invalid_json");
        assert!(
            broken.detail.starts_with("body: not valid JSON: "),
            "{}",
            broken.detail
        );
    }

    #[test]
    fn a_cart_is_totalled_like_the_order_it_becomes() {
        let body = order_body();
        let (currency, totals) = quote(&body).unwrap();
        let key = IdempotencyKey::parse("k-1").unwrap();
        let order = order(&body, &key, DateTime::UNIX_EPOCH).unwrap();
        assert_eq!(currency, order.currency());
        assert_eq!(&totals, order.totals());
        let cart = json!({
            "currency": "USD",
            "lines": [{"sku": "SKU-1", "quantity": 3, "unit_price": "0.10"}],
            "discounts": [{"code": "TEN", "amount": "0.05"}],
            "shipping": {"amount": "4.99"},
            "tax": "0.02",
        });
        let (_, t) = quote(&cart).unwrap();
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            json!({"subtotal": "0.30", "discount": "0.05", "shipping": "4.99", "tax": "0.02", "grand_total": "5.26"})
        );
        let bad = quote(&json!({"currency": "USD", "lines": [], "tax": 1})).unwrap_err();
        let fields: Vec<_> = bad
            .invalid_params
            .iter()
            .map(|p| (p.name.as_str(), p.code.as_str()))
            .collect();
        assert_eq!(fields, [("/lines", "empty"), ("/tax", "invalid_type")]);
        assert_eq!(bad.detail, "the cart is invalid");
    }

    #[test]
    fn stored_prices_that_do_not_parse_are_left_out() {
        let mut catalog = Catalog::new();
        let sku = Sku::parse("SKU-1").unwrap();
        let prices: BTreeMap<String, String> = [("USD", "19.99"), ("XYZ", "1"), ("EUR", "x")]
            .map(|(c, a)| (c.to_string(), a.to_string()))
            .into();
        add_prices(&mut catalog, &sku, &prices);
        assert_eq!(
            catalog
                .price(&sku, Currency::USD)
                .unwrap()
                .amount()
                .to_string(),
            "19.99"
        );
        assert!(catalog.price(&sku, Currency::EUR).is_none());
    }
}
