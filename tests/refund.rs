//! refund tests: the real OMS components through `oms up` over HTTP — partial refunds, a
//! return from request to restock, Idempotency-Key races, the refund cap under concurrent
//! refunds, cancellation before shipment, and refused refund bodies.

mod support;

use std::sync::{Arc, Barrier};

use serde_json::{json, Value};
use support::oms::{money, staff_auth, Oms, OrderSpec};
use support::*;

/// `POST` with a JSON body as staff.
fn post_json(oms: &Oms, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    let auth = staff_auth();
    let mut all = vec![
        ("content-type", "application/json"),
        ("authorization", &auth),
    ];
    all.extend_from_slice(headers);
    send(
        "POST",
        &oms.url(path),
        Some(body.to_string().as_bytes()),
        &all,
    )
}

fn refund(oms: &Oms, id: &str, key: &str, body: &Value) -> Reply {
    post_json(
        oms,
        &format!("/v1/orders/{id}/refunds"),
        &[("idempotency-key", key)],
        body,
    )
}

/// Sends until the answer is not "busy, retry" (503, or 504 when the loaded test machine
/// pushes a request past the host's deadline), as a client would. Every refund-component
/// call is safe to repeat: a repeat completes an interrupted one and changes nothing twice.
fn settled(send: impl Fn() -> Reply) -> Reply {
    for _ in 0..5 {
        let r = send();
        if !matches!(r.status, 503 | 504) {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    send()
}

/// `POST` with a JSON body, repeated while the OMS answers "retry".
fn post_ok(oms: &Oms, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    settled(|| post_json(oms, path, headers, body))
}

/// A refund, repeated while the OMS answers "retry".
fn refund_ok(oms: &Oms, id: &str, key: &str, body: &Value) -> Reply {
    settled(|| refund(oms, id, key, body))
}

/// Places `spec`, waits until it is routed, ships and delivers every shipment.
fn delivered_order(oms: &Oms, spec: &OrderSpec) -> String {
    let id = oms.place_ok(&spec.body());
    let order = oms.wait_status(&id, "routed");
    for s in order["shipments"].as_array().unwrap() {
        let sid = s["id"].as_str().unwrap();
        let r = settled(|| {
            oms.staff_post(
                &format!("/v1/shipments/{sid}/shipped"),
                r#"{"carrier":"ups","tracking":"1Z1"}"#,
            )
        });
        assert_eq!(r.status, 200, "{}", r.body);
        let r = settled(|| oms.staff_post(&format!("/v1/shipments/{sid}/delivered"), "{}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    oms.wait_status(&id, "delivered");
    id
}

fn refunds_of(order: &Value) -> Vec<Value> {
    order["refunds"].as_array().cloned().unwrap_or_default()
}

fn cents(amount: &Value) -> i64 {
    let text = amount
        .as_str()
        .or_else(|| amount["amount"].as_str())
        .unwrap_or_else(|| panic!("not an amount: {amount}"));
    let (units, fraction) = text.split_once('.').unwrap_or((text, "0"));
    units.parse::<i64>().unwrap() * 100 + format!("{fraction:0<2}")[..2].parse::<i64>().unwrap()
}

#[test]
fn a_partial_refund_then_a_return_is_inspected_refunded_and_restocked() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    // 2 × $19.99 + $5.00 shipping = $44.98 captured.
    let id = delivered_order(
        &oms,
        &OrderSpec {
            lines: vec![("SKU-1", 2, 1999)],
            ..OrderSpec::default()
        },
    );
    assert_eq!(oms.availability("SKU-1")["on_hand"], 8);

    let r = refund_ok(
        &oms,
        &id,
        "goodwill-1",
        &json!({"items": [{"kind": "amount", "amount": "5.00"}], "reason": "late"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r.json();
    assert_eq!(
        (body["refunded_total"].as_str(), body["refundable"].as_str()),
        (Some("5.00"), Some(money(3998).as_str()))
    );
    // A refund is a payment matter: the order stays delivered.
    assert_eq!(
        (body["status"].as_str(), body["payment_status"].as_str()),
        (Some("delivered"), Some("partially_refunded"))
    );
    let order = oms.order(&id);
    assert_eq!(
        (order["status"].as_str(), order["payment_status"].as_str()),
        (Some("delivered"), Some("partially_refunded"))
    );

    let r = post_ok(
        &oms,
        &format!("/v1/orders/{id}/returns"),
        &[],
        &json!({"items": [{"line": 0, "quantity": 1}], "reason": "too big"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let ra = r.json();
    assert_eq!(ra["state"], "requested");
    let rid = ra["id"].as_str().unwrap().to_string();
    assert_eq!(oms.order(&id)["returns"], json!([rid]));

    let inspection = json!({"lines": [{"line": 0, "accepted": true}]});
    let early = post_ok(
        &oms,
        &format!("/v1/returns/{rid}/inspection"),
        &[],
        &inspection,
    );
    assert_eq!(
        early.status, 409,
        "inspection before the parcel arrived: {}",
        early.body
    );
    let r = settled(|| oms.staff_post(&format!("/v1/returns/{rid}/received"), ""));
    assert_eq!(
        (r.status, r.json()["state"].as_str()),
        (200, Some("received")),
        "{}",
        r.body
    );

    let r = post_ok(
        &oms,
        &format!("/v1/returns/{rid}/inspection"),
        &[],
        &inspection,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let inspected = r.json();
    assert_eq!(inspected["return"]["state"], "refunded");
    assert_eq!(inspected["refund"]["refund"]["amount"]["amount"], "19.99");
    assert_eq!(inspected["refund"]["refunded_total"], "24.99");
    assert_eq!(
        oms.availability("SKU-1")["on_hand"],
        9,
        "the accepted unit is back on hand"
    );

    // Repeating the inspection answers the same and neither refunds nor restocks again.
    let again = post_ok(
        &oms,
        &format!("/v1/returns/{rid}/inspection"),
        &[],
        &inspection,
    );
    assert_eq!((again.status, again.json()), (200, inspected));
    assert_eq!(oms.availability("SKU-1")["on_hand"], 9);
    let order = oms.order(&id);
    assert_eq!(refunds_of(&order).len(), 2);
    assert_eq!(
        (order["status"].as_str(), order["payment_status"].as_str()),
        (Some("delivered"), Some("partially_refunded"))
    );
    let r = oms.staff_get(&format!("/v1/returns/{rid}"));
    assert_eq!(
        (r.status, r.json()["state"].as_str()),
        (200, Some("refunded"))
    );
    assert_eq!(
        oms.event_types(&id)[5..],
        [
            "order.partially_refunded",
            "return.requested",
            "return.received",
            "return.inspected",
            "order.partially_refunded",
            "return.refunded"
        ]
    );
}

#[test]
fn concurrent_refunds_refund_once_per_key_and_never_above_the_capture() {
    // Waiting duplicates sleep inside the guest until the first request finishes: give them
    // more than the default 1 s deadline so the test sees the OMS's answers, not timeouts.
    let oms = Arc::new(Oms::start_with(&["--http-deadline-ms", "10000"], &[]));
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    let spec = OrderSpec {
        lines: vec![("SKU-1", 2, 1999)],
        ..OrderSpec::default()
    };
    let (same, many) = (delivered_order(&oms, &spec), delivered_order(&oms, &spec));

    // 50 identical requests with one key: one refund, every answer the same.
    let body = json!({"items": [{"kind": "line", "line": 0, "quantity": 1}]});
    let gate = Arc::new(Barrier::new(50));
    let replies: Vec<Reply> = (0..50)
        .map(|_| {
            let (oms, gate, id, body) = (oms.clone(), gate.clone(), same.clone(), body.clone());
            std::thread::spawn(move || {
                gate.wait();
                refund(&oms, &id, "one-key", &body)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty(), "{replies:?}");
    assert!(
        created.iter().all(|r| r.body == created[0].body),
        "every success is the same answer"
    );
    // A request that waited too long for the first to finish is told to retry (409).
    assert!(
        replies.iter().all(|r| matches!(r.status, 201 | 409)),
        "{replies:?}"
    );
    assert_eq!(refunds_of(&oms.order(&same)).len(), 1, "exactly one refund");
    let late = refund_ok(&oms, &same, "one-key", &body);
    assert_eq!((late.status, &late.body), (201, &created[0].body));

    // 20 different $5 refunds against $44.98: at most 8 fit, and the cap holds whatever wins.
    let gate = Arc::new(Barrier::new(20));
    let replies: Vec<Reply> = (0..20)
        .map(|i| {
            let (oms, gate, id) = (oms.clone(), gate.clone(), many.clone());
            std::thread::spawn(move || {
                gate.wait();
                refund(
                    &oms,
                    &id,
                    &format!("key-{i}"),
                    &json!({"items": [{"kind": "amount", "amount": "5.00"}]}),
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let won = replies.iter().filter(|r| r.status == 201).count();
    assert!(
        replies.iter().all(|r| matches!(r.status, 201 | 422 | 503)),
        "{replies:?}"
    );
    let order = oms.order(&many);
    let refunds = refunds_of(&order);
    let total: i64 = refunds.iter().map(|r| cents(&r["amount"])).sum();
    assert_eq!(refunds.len(), won, "one refund per success");
    assert!(total <= 4498, "refunded {total} of 4498 captured");
    assert_eq!(total, 500 * won as i64);
    if replies.iter().all(|r| r.status != 503) {
        assert_eq!(won, 8, "{replies:?}");
    }
    assert_eq!(cents(&order["refunded_total"]), total);
}

#[test]
fn cancelling_before_shipment_releases_the_stock_and_refunds_the_capture() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    let id = oms.place_ok(
        &OrderSpec {
            lines: vec![("SKU-1", 3, 1999)],
            ..OrderSpec::default()
        }
        .body(),
    );
    let order = oms.wait_status(&id, "routed");
    assert_eq!(oms.availability("SKU-1")["available"], 7);

    let r = post_ok(
        &oms,
        &format!("/v1/orders/{id}/cancel"),
        &[],
        &json!({"reason": "changed mind"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cancelled = r.json();
    assert_eq!(
        (
            cancelled["status"].as_str(),
            cancelled["payment_status"].as_str()
        ),
        (Some("cancelled"), Some("refunded")),
        "a captured payment is refunded in full"
    );
    assert_eq!(cancelled["refund"]["refunded_total"], money(3 * 1999 + 500));
    let a = oms.availability("SKU-1");
    assert_eq!(
        (
            a["available"].as_u64(),
            a["allocated"].as_u64(),
            a["on_hand"].as_u64()
        ),
        (Some(10), Some(0), Some(10))
    );
    let events = oms.event_types(&id);
    assert_eq!(
        events[events.len() - 2..],
        ["order.cancelled", "order.refunded"]
    );

    // A repeat answers the same; the cancelled order's shipment can no longer ship.
    let again = settled(|| oms.staff_post(&format!("/v1/orders/{id}/cancel"), ""));
    assert_eq!((again.status, again.json()), (200, cancelled));
    let sid = order["shipments"][0]["id"].as_str().unwrap();
    let shipped = oms.staff_post(
        &format!("/v1/shipments/{sid}/shipped"),
        r#"{"carrier":"ups","tracking":"1Z1"}"#,
    );
    assert!(matches!(shipped.status, 404 | 409), "{}", shipped.body);
    assert_eq!(oms.availability("SKU-1")["on_hand"], 10);

    // Once delivered, an order is returned or refunded, not cancelled.
    let delivered = delivered_order(&oms, &OrderSpec::default());
    let r = settled(|| oms.staff_post(&format!("/v1/orders/{delivered}/cancel"), ""));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(oms.order(&delivered)["status"], "delivered");
    let unknown = oms.staff_post("/v1/orders/7f1d3c1e-0000-4000-8000-000000000000/cancel", "");
    assert_eq!(unknown.status, 404);
}

#[test]
fn bad_refunds_are_refused_naming_the_field_and_change_nothing() {
    let oms = Oms::start();
    oms.seed();
    oms.stock("SKU-1", "wh-west", 10);
    let id = delivered_order(
        &oms,
        &OrderSpec {
            lines: vec![("SKU-1", 2, 1999)],
            ..OrderSpec::default()
        },
    );
    let before = oms.order(&id);
    let cases = [
        (
            json!({"items": [{"kind": "amount", "amount": "44.99"}]}),
            "/items/0/amount",
        ),
        (
            json!({"items": [{"kind": "amount", "amount": "1.999"}]}),
            "/items/0/amount",
        ),
        (
            json!({"items": [{"kind": "line", "line": 0, "quantity": 3}]}),
            "/items/0/quantity",
        ),
        (
            json!({"items": [{"kind": "line", "line": 0, "quantity": 0}]}),
            "/items/0/quantity",
        ),
        (
            json!({"items": [{"kind": "shipping"}, {"kind": "line", "line": 7, "quantity": 1}]}),
            "/items/1/line",
        ),
        (json!({"items": [{"kind": "voucher"}]}), "/items/0/kind"),
        (json!({"items": []}), "/items"),
        (json!({"refund": "all"}), "/refund"),
    ];
    for (i, (body, pointer)) in cases.iter().enumerate() {
        let r = refund_ok(&oms, &id, &format!("bad-{i}"), body);
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(
            r.json()["invalid-params"][0]["name"],
            *pointer,
            "{body}: {}",
            r.body
        );
    }
    let r = post_ok(
        &oms,
        &format!("/v1/orders/{id}/refunds"),
        &[],
        &json!({"items": [{"kind": "shipping"}]}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["invalid-params"][0]["name"], "Idempotency-Key");
    let r = send(
        "POST",
        &oms.url(&format!("/v1/orders/{id}/refunds")),
        Some(b"{not json"),
        &[
            ("idempotency-key", "bad-json"),
            ("authorization", &staff_auth()),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.body);

    let after = oms.order(&id);
    assert_eq!(after, before, "nothing changed");
    assert!(refunds_of(&after).is_empty());
    assert_eq!(
        oms.event_types(&id).last().map(String::as_str),
        Some("order.delivered")
    );
}
