//! Shopify deliveries as Shopify sends them, through the real components on `oms up`: signed
//! payloads from the golden corpus (`tests/fixtures/shopify`), redelivered with another
//! `X-Shopify-Webhook-Id` but the same `X-Shopify-Event-Id`, cancelled by an
//! `orders/cancelled` delivery, a topic we do not handle, and a line whose SKU nobody mapped:
//! the order waits on an `unmapped_item` hold until staff add the alias and release it.

mod support;

use std::time::Duration;

use serde_json::{json, Value};

use support::oms::{shopify_signature, Oms, SHOPIFY_CHANNEL};
use support::*;

fn corpus(name: &str) -> Value {
    let path = app_root().join(format!("tests/fixtures/shopify/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A signed Shopify delivery of `body` on `topic`, attempt `webhook_id` of event `event_id`.
fn deliver(oms: &Oms, topic: &str, event_id: &str, webhook_id: &str, body: &str) -> Reply {
    send(
        "POST",
        &oms.url(&format!("/v1/channels/{SHOPIFY_CHANNEL}/orders")),
        Some(body.as_bytes()),
        &[
            ("x-shopify-hmac-sha256", &shopify_signature(body)),
            ("x-shopify-topic", topic),
            ("x-shopify-event-id", event_id),
            ("x-shopify-webhook-id", webhook_id),
            ("x-shopify-shop-domain", "test-shop.myshopify.com"),
            ("content-type", "application/json"),
        ],
    )
}

fn available(oms: &Oms, sku: &str) -> u64 {
    oms.availability(sku)["available"].as_u64().unwrap()
}

#[test]
fn a_redelivered_event_is_one_order_and_orders_cancelled_cancels_it() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-east", 10);
    let body = corpus("01-paid-with-sku").to_string();

    let first = deliver(&oms, "orders/create", "evt-1", "whk-1", &body);
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_string();
    let order = oms.wait_status(&id, "routed");
    assert_eq!(order["channel"], SHOPIFY_CHANNEL);
    assert_eq!(order["totals"]["grand_total"], "47.48");
    assert_eq!(order["metadata"]["shopify_order_id"], "820982911946154508");

    // Shopify retries the same event: a new webhook id, the same event id. The first answer
    // again, and still one order.
    let again = deliver(&oms, "orders/create", "evt-1", "whk-2", &body);
    assert_eq!(
        (again.status, again.body.as_str()),
        (202, first.body.as_str())
    );
    // Even as another event (no header, or a second orders/create), the order id holds.
    let other = deliver(&oms, "orders/create", "evt-9", "whk-3", &body);
    assert_eq!(
        (other.status, other.json()["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(oms.stored_order_ids(), std::slice::from_ref(&id));
    assert_eq!(available(&oms, "SKU-1"), 8, "two units, once");

    // A topic we do not handle is answered 200 (a 4xx would make Shopify retry for hours).
    let ignored = deliver(&oms, "orders/updated", "evt-2", "whk-4", &body);
    assert_eq!(ignored.status, 200, "{}", ignored.body);
    assert_eq!(ignored.json()["status"], "ignored");

    // orders/cancelled: the domain's cancel through the step runner; the stock comes back.
    let mut cancelled = corpus("01-paid-with-sku");
    cancelled["cancelled_at"] = json!("2026-12-02T08:00:00-05:00");
    cancelled["cancel_reason"] = json!("customer");
    let cancelled = cancelled.to_string();
    let cancel = deliver(&oms, "orders/cancelled", "evt-3", "whk-5", &cancelled);
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    assert_eq!(cancel.json()["status"], "cancelled");
    let order = oms.wait_status(&id, "cancelled");
    assert_eq!(order["payment_status"], "refunded", "{order:#}");
    eventually(Duration::from_secs(20), "the stock to come back", || {
        (available(&oms, "SKU-1") == 10).then_some(())
    });
    let repeat = deliver(&oms, "orders/cancelled", "evt-3", "whk-6", &cancelled);
    assert_eq!(
        (repeat.status, repeat.body.as_str()),
        (200, cancel.body.as_str())
    );

    // A forged delivery changes nothing.
    let forged = send(
        "POST",
        &oms.url(&format!("/v1/channels/{SHOPIFY_CHANNEL}/orders")),
        Some(body.as_bytes()),
        &[
            ("x-shopify-hmac-sha256", "AAAA"),
            ("x-shopify-topic", "orders/cancelled"),
        ],
    );
    assert_eq!(forged.status, 401);
}

#[test]
fn a_cancellation_before_its_order_takes_the_order_in_cancelled() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-east", 10);
    // Shopify's own test notification is a voided, cancelled order: taken in cancelled.
    let voided = deliver(
        &oms,
        "orders/create",
        "evt-v",
        "whk-v",
        &corpus("16-financial-voided-test-notification").to_string(),
    );
    assert_eq!(voided.status, 202, "{}", voided.body);
    assert_eq!(voided.json()["status"], "cancelled");
    let id = voided.json()["id"].as_str().unwrap().to_string();
    let order = oms.wait_status(&id, "cancelled");
    assert_eq!(order["payment_status"], "voided");

    // orders/cancelled first (Shopify does not promise order), orders/create after it.
    let mut body = corpus("14-financial-authorized");
    body["cancelled_at"] = json!("2026-12-02T08:00:00-05:00");
    let cancel = deliver(
        &oms,
        "orders/cancelled",
        "evt-c",
        "whk-c",
        &body.to_string(),
    );
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    let id = cancel.json()["id"].as_str().unwrap().to_string();
    oms.wait_status(&id, "cancelled");
    let create = deliver(
        &oms,
        "orders/create",
        "evt-o",
        "whk-o",
        &corpus("14-financial-authorized").to_string(),
    );
    assert_eq!(
        (create.status, create.json()["status"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(oms.order(&id)["status"], "cancelled");
    assert_eq!(available(&oms, "SKU-1"), 10, "nothing was ever reserved");
}

#[test]
fn an_unmapped_item_holds_the_order_until_staff_map_it_and_release_the_hold() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-2", "wh-east", 10);
    oms.stock("SKU-3", "wh-east", 5);
    let first = deliver(
        &oms,
        "orders/create",
        "evt-u",
        "whk-u",
        &corpus("04-unmapped-item-held").to_string(),
    );
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_string();
    let order = oms.order(&id);
    assert_eq!(order["holds"][0]["reason"], "unmapped_item", "{order:#}");
    assert!(
        order["holds"][0]["note"]
            .as_str()
            .unwrap()
            .contains("variant 39072856"),
        "{order:#}"
    );
    assert_eq!(order["lines"][1]["unmapped"], true);

    // Nothing is reserved while the item is unknown, by the queue or the reconciler.
    oms.reconcile_until_quiet(Duration::from_secs(20));
    assert_eq!(oms.order(&id)["status"], "validated");
    assert_eq!(available(&oms, "SKU-2"), 10);

    // Releasing before the alias exists is refused, naming the line.
    let release = format!("/v1/orders/{id}/holds/unmapped_item/release");
    let early = oms.staff_post(&release, r#"{"note": "mapped"}"#);
    assert_eq!(early.status, 409, "{}", early.body);

    // Staff map the variant (the admin alias API), then release the hold.
    let alias = format!("/v1/admin/channels/{SHOPIFY_CHANNEL}/aliases/variant/39072856");
    let put = oms.staff_send("PUT", &alias, Some(br#"{"sku": "SKU-3"}"#), &[]);
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.json()["sku"], "SKU-3");
    let listed = oms.staff_get(&format!("/v1/admin/channels/{SHOPIFY_CHANNEL}/aliases"));
    assert_eq!(listed.json()["aliases"][0]["external_id"], "39072856");
    let anonymous = send("PUT", &oms.url(&alias), Some(br#"{"sku": "SKU-1"}"#), &[]);
    assert_eq!(anonymous.status, 401, "staff only");
    let bad = oms.staff_send("PUT", &alias, Some(br#"{"sku": "no spaces"}"#), &[]);
    assert_eq!(bad.status, 422);

    let released = oms.staff_post(&release, r#"{"note": "mapped"}"#);
    assert_eq!(released.status, 200, "{}", released.body);
    let order = oms.wait_status(&id, "routed");
    assert_eq!(order["lines"][1]["sku"], "SKU-3", "{order:#}");
    assert!(order["lines"][1].get("unmapped").is_none());
    assert_eq!(available(&oms, "SKU-3"), 4);
    assert_eq!(available(&oms, "SKU-2"), 8);

    let gone = oms.staff_send("DELETE", &alias, None, &[]);
    assert_eq!(gone.status, 204);
    assert_eq!(oms.staff_send("DELETE", &alias, None, &[]).status, 404);
}

#[test]
fn a_digital_order_needs_no_stock_and_no_address() {
    let oms = Oms::start();
    oms.seed();
    let r = deliver(
        &oms,
        "orders/create",
        "evt-d",
        "whk-d",
        &corpus("06-digital-goods-no-address").to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let order = oms.wait_status(&id, "routed");
    assert_eq!(order["shipping"]["method"], "digital", "{order:#}");
    assert!(
        order["holds"].as_array().is_none_or(Vec::is_empty),
        "{order:#}"
    );
    oms.reconcile_until_quiet(Duration::from_secs(20));
    assert_eq!(oms.order(&id)["status"], "routed", "nothing left owed");
}
