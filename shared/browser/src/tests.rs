//! The crate's JSON in and out, natively. (The package's agreement with the server on every
//! golden fixture is `tests/browser_pkg.rs` + `tests/golden.test.mjs`.)

use serde_json::{json, Value};

use super::*;

fn order() -> Value {
    json!({
        "channel": "web",
        "customer": {"email": "ada@example.com", "name": "Ada"},
        "currency": "USD",
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"},
            {"sku": "SKU-2", "quantity": 3, "unit_price": "5.00", "discount": "1.00"}
        ],
        "shipping": {"method": "standard", "amount": "5.00",
            "address": {"country": "US", "postal_code": "90012", "line1": "1 Main St", "city": "Los Angeles"}},
        "tax": "0.00",
        "totals": {"subtotal": "54.98", "discount": "1.00", "shipping": "5.00", "tax": "0.00", "grand_total": "58.98"},
        "payment": {"reference": "pi_1", "status": "captured", "amount": "58.98"}
    })
}

fn call(f: impl Fn(&[u8]) -> String, input: &Value) -> Value {
    serde_json::from_str(&f(input.to_string().as_bytes())).unwrap()
}

fn validate(body: &Value, catalog: Option<&Value>) -> Value {
    let catalog = catalog.map(Value::to_string);
    serde_json::from_str(&validate_order(
        body.to_string().as_bytes(),
        catalog.as_deref(),
    ))
    .unwrap()
}

fn params(problem: &Value) -> Vec<(String, String)> {
    problem["invalid-params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_valid_order_passes_with_the_totals_the_server_recomputes() {
    assert_eq!(
        validate(&order(), None),
        json!({"ok": true, "currency": "USD", "totals":
            {"subtotal": "54.98", "discount": "1.00", "shipping": "5.00", "tax": "0.00", "grand_total": "58.98"}})
    );
}

#[test]
fn an_invalid_order_gets_the_full_problem_document() {
    let mut body = order();
    body["totals"]["grand_total"] = json!("58.99");
    body["lines"][0]["unit_price"] = json!(19.99);
    body["surprise"] = json!(1);
    let p = validate(&body, None);
    assert_eq!(p["type"], "https://oms.dev/problems/validation");
    assert_eq!(p["title"], "Invalid request");
    assert_eq!(p["status"], 422);
    assert_eq!(p["detail"], "the order is invalid");
    assert_eq!(
        params(&p),
        [
            ("/surprise".into(), "unknown_field".into()),
            ("/lines/0/unit_price".into(), "invalid_type".into()),
        ]
    );
    assert!(p.get("ok").is_none(), "a problem has no ok field");
}

#[test]
fn text_that_is_not_json_is_a_400_naming_the_body() {
    let p: Value = serde_json::from_str(&validate_order(b"{\"channel\": ", None)).unwrap();
    assert_eq!(p["status"], 400);
    assert_eq!(p["title"], "Malformed request");
    assert_eq!(params(&p), [("body".into(), "invalid_json".into())]);
    let empty: Value = serde_json::from_str(&validate_order(b"", None)).unwrap();
    assert_eq!(params(&empty), [("body".into(), "missing".into())]);
}

#[test]
fn prices_are_checked_only_against_a_catalog_given() {
    let catalog = json!({"SKU-1": {"USD": "19.99"}, "SKU-2": {"EUR": "5.00"}});
    let p = validate(&order(), Some(&catalog));
    assert_eq!(p["detail"], "the order does not match the catalog");
    assert_eq!(
        params(&p),
        [("/lines/1/unit_price".into(), "price_unavailable".into())]
    );
    let cheaper = json!({"SKU-1": {"USD": "18.99"}});
    assert_eq!(
        params(&validate(&order(), Some(&cheaper))),
        [
            ("/lines/0/unit_price".into(), "price_mismatch".into()),
            ("/lines/1/sku".into(), "unknown_sku".into()),
        ]
    );
    let right = json!({"SKU-1": {"USD": "19.99"}, "SKU-2": {"USD": "5.00"}});
    assert_eq!(validate(&order(), Some(&right))["ok"], true);
    let p: Value =
        serde_json::from_str(&validate_order(order().to_string().as_bytes(), Some("[1]"))).unwrap();
    assert_eq!(params(&p), [("catalog".into(), "invalid_json".into())]);
}

#[test]
fn a_cart_is_quoted_with_exact_decimal_strings() {
    let cart = json!({
        "currency": "USD",
        "lines": [{"sku": "SKU-1", "quantity": 3, "unit_price": "0.10"}],
        "shipping": {"amount": "0.20"},
        "tax": "0.01"
    });
    assert_eq!(
        call(quote_totals, &cart),
        json!({"ok": true, "currency": "USD", "totals":
            {"subtotal": "0.30", "discount": "0.00", "shipping": "0.20", "tax": "0.01", "grand_total": "0.51"}})
    );
    // A whole draft order is a cart, and quotes to its own totals.
    assert_eq!(
        call(quote_totals, &order())["totals"],
        validate(&order(), None)["totals"]
    );
    let kwd =
        json!({"currency": "KWD", "lines": [{"sku": "A", "quantity": 3, "unit_price": "0.333"}]});
    assert_eq!(call(quote_totals, &kwd)["totals"]["grand_total"], "0.999");
    let bad = call(
        quote_totals,
        &json!({"currency": "USD", "lines": [{"sku": "A", "quantity": 1, "unit_price": "1.001"}], "shipping": "5.00"}),
    );
    assert_eq!(bad["status"], 422);
    assert_eq!(bad["detail"], "the cart is invalid");
    assert_eq!(
        params(&bad),
        [
            ("/lines/0/unit_price".into(), "decimal_places".into()),
            ("/shipping".into(), "invalid_type".into()),
        ]
    );
}

/// An order view (`GET /v1/orders/{id}`) after one unit of line 0 was refunded.
fn view() -> Value {
    let mut v = order();
    let o = v.as_object_mut().unwrap();
    o.remove("tax");
    o.insert("id".into(), json!("6f1c2b1e-8a54-4d3c-9f3e-2b7d9c1a0e11"));
    o.insert("placed_at".into(), json!("2026-01-01T00:00:00Z"));
    o.insert("status".into(), json!("shipped"));
    o.insert("discounts".into(), json!([]));
    o.insert("metadata".into(), json!({}));
    o.insert(
        "refunds".into(),
        json!([{"amount": {"amount": "19.99", "currency": "USD"},
                "items": [{"kind": "line", "line": 0, "quantity": 1}]}]),
    );
    o.insert(
        "refunded_total".into(),
        json!({"amount": "19.99", "currency": "USD"}),
    );
    o.insert(
        "refundable".into(),
        json!({"amount": "38.99", "currency": "USD"}),
    );
    v
}

#[test]
fn refundable_replays_the_refunds_through_the_ledger() {
    assert_eq!(
        call(refundable, &view()),
        json!({
            "currency": "USD", "captured": "58.98", "refunded": "19.99", "refundable": "38.99",
            "allowed": true,
            "lines": [
                {"line": 0, "sku": "SKU-1", "quantity": 2, "refunded": 1, "remaining": 1, "amount": "19.99"},
                {"line": 1, "sku": "SKU-2", "quantity": 3, "refunded": 0, "remaining": 3, "amount": "14.00"}
            ],
            "shipping": {"amount": "5.00", "refunded": false}
        })
    );
    let mut before = view();
    before["status"] = json!("routed");
    let r = call(refundable, &before);
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["reason"],
        "an order that is routed cannot be refunded; cancel it instead, or wait until it ships"
    );
    // Bare amount strings are read too.
    let mut wrong = view();
    wrong["refunded_total"] = json!("5.00");
    wrong["refundable"] = json!("53.98");
    let p = call(refundable, &wrong);
    assert_eq!(p["status"], 422);
    assert_eq!(
        params(&p),
        [("/refunded_total".into(), "total_mismatch".into())]
    );
    let mut other = view();
    other["refundable"]["currency"] = json!("EUR");
    assert_eq!(
        params(&call(refundable, &other)),
        [("/refundable/currency".into(), "invalid_format".into())]
    );
}

#[test]
fn refundable_reads_views_of_orders_with_taxes_included() {
    let mut v = view();
    v["totals"]["tax"] = json!("3.00");
    // With tax on top, the grand total would be 61.98: the view's 58.98 says included.
    let r = call(refundable, &v);
    assert_eq!(r["refundable"], "38.99", "{r}");
    assert_eq!(r["allowed"], true);
}
