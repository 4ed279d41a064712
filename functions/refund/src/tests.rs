//! Handler tests on `MemEnv` through the component's router, and fault injection
//! ([`oms_edge::for_every_fault`]) at every I/O call of cancel, refund and each return step:
//! orders are staged the way the reserve and route steps leave them (stock documents and the
//! record), then cancelled, refunded and returned.

// The fault tests pass each handler as `|e, i, r| handler(e, i, r)`: the closure instantiates
// the generic handler for the faulty world of each run (a generic fn item names one lifetime
// of `FaultyEnv`, which the harness's higher-ranked bound cannot take).
#![allow(clippy::redundant_closure)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use chrono::Duration;
use oms_domain::{
    EventEnvelope, FulfilmentPlan, LocationId, Order, OrderId, OrderRecord, OrderStatus,
    PaymentState, Reservation, ReservedLine, ShipmentId, ShipmentLabel, Sku,
};
use oms_edge::api_keys::{self, KeyRole};
use oms_edge::{
    for_every_fault, keys, reconcile, release_cancelled, Actor, Env, FaultyEnv, Kv, MemEnv,
    RacingEnv, StockDoc,
};
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request};
use uuid::Uuid;

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn loc(s: &str) -> LocationId {
    LocationId::parse(s).unwrap()
}

/// `12.34` from cents.
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Request {
    let mut b = Request::builder();
    b.method(method).uri(path);
    for (k, v) in headers {
        b.header(*k, *v);
    }
    if let Some(body) = body {
        b.body(body.to_string());
    }
    b.build()
}

fn record(env: &MemEnv, id: OrderId) -> OrderRecord {
    env.kv
        .get_json(&keys::order(&id.to_string()))
        .unwrap()
        .unwrap()
}

/// Stores a staged record as the earlier steps would have left it: published.
fn save(env: &MemEnv, mut record: OrderRecord) {
    record.testkit_set_outbox(Vec::new());
    env.kv
        .set_json(&keys::order(&record.order().id().to_string()), &record)
        .unwrap();
}

fn stock(env: &MemEnv, s: &str, l: &str) -> StockDoc {
    env.kv
        .get_json(&keys::stock(s, l))
        .unwrap()
        .unwrap_or_default()
}

fn set_stock(env: &MemEnv, s: &str, l: &str, on_hand: u32) {
    let doc = StockDoc::default().recount(on_hand).unwrap();
    env.kv.set_json(&keys::stock(s, l), &doc).unwrap();
}

fn update_stock(env: &MemEnv, s: &str, l: &str, op: impl Fn(StockDoc) -> StockDoc) {
    let doc = op(stock(env, s, l));
    env.kv.set_json(&keys::stock(s, l), &doc).unwrap();
}

/// An accepted order: `lines` are (sku, quantity, unit price cents); $5 shipping.
fn order(env: &MemEnv, lines: &[(&str, u32, i64)], captured: bool) -> OrderId {
    let subtotal: i64 = lines.iter().map(|(_, q, p)| i64::from(*q) * p).sum();
    let body = json!({
        "channel": "web",
        "customer": {"email": "ada@example.com"},
        "currency": "USD",
        "lines": lines.iter().map(|(s, q, p)| json!({"sku": s, "quantity": q, "unit_price": money(*p)})).collect::<Vec<_>>(),
        "shipping": {"method": "standard", "amount": "5.00", "address": {
            "country": "US", "postal_code": "90012", "line1": "1 Main St", "city": "Los Angeles"}},
        "tax": "0.00",
        "totals": {"subtotal": money(subtotal), "discount": "0.00", "shipping": "5.00", "tax": "0.00",
                   "grand_total": money(subtotal + 500)},
        "payment": {"reference": "pi_1", "status": if captured {"captured"} else {"authorized"},
                    "amount": money(subtotal + 500)}
    });
    let id = OrderId::new(env.new_id());
    let order = Order::from_request(&body, id, env.now()).unwrap();
    save(
        env,
        OrderRecord::accept(order, env.new_id(), env.now()).unwrap(),
    );
    id
}

/// What the reserve step leaves: holds on the stock documents and the reservation.
fn reserve(env: &MemEnv, id: OrderId, at_location: &[(&str, &str, u32)]) {
    let mut r = record(env, id);
    let mut lines = Vec::new();
    for (s, l, units) in at_location {
        update_stock(env, s, l, |d| {
            let (d, held) = d.hold_up_to(&id.to_string(), *units).unwrap();
            assert_eq!(held, *units);
            d
        });
        lines.push(ReservedLine {
            sku: sku(s),
            location: loc(l),
            units: *units,
        });
    }
    r.testkit_set_reservation(Some(Reservation::new(id, lines, None).unwrap()));
    r.transition(OrderStatus::Reserved, json!({}), env.new_id(), env.now())
        .unwrap();
    save(env, r);
}

/// What the route step leaves: one allocated shipment per location, in reservation order.
fn route(env: &MemEnv, id: OrderId) {
    let mut r = record(env, id);
    let mut shipments: Vec<Value> = Vec::new();
    for l in r.reservation().as_ref().unwrap().lines() {
        update_stock(env, l.sku.as_str(), l.location.as_str(), |d| {
            d.allocate(&id.to_string(), l.units).unwrap()
        });
        let line = json!({"sku": l.sku, "units": l.units});
        match shipments
            .iter_mut()
            .find(|s| s["location"] == l.location.as_str())
        {
            Some(s) => s["lines"].as_array_mut().unwrap().push(line),
            None => shipments.push(json!({"location": l.location, "kind": "warehouse",
                "lines": [line], "distance_km": null, "cost": "0"})),
        }
    }
    let plan: FulfilmentPlan =
        serde_json::from_value(json!({"shipments": shipments, "total_cost": "0"})).unwrap();
    r.route(plan, env.new_id(), env.now()).unwrap();
    save(env, r);
}

/// Ships shipment `n` (from 1): its units leave on-hand stock.
fn ship(env: &MemEnv, id: OrderId, n: u32) {
    let mut r = record(env, id);
    let sid = ShipmentId::new(id, n).unwrap();
    let label = |s: &str| ShipmentLabel::parse(s).unwrap();
    let s = r.shipment(&sid).unwrap().clone();
    for l in &s.lines {
        update_stock(env, l.sku.as_str(), s.location.as_str(), |d| {
            d.ship(&id.to_string()).unwrap()
        });
    }
    r.ship(&sid, label("ups"), label("1Z"), env.new_id(), env.now())
        .unwrap();
    save(env, r);
}

fn deliver(env: &MemEnv, id: OrderId, n: u32) {
    let mut r = record(env, id);
    r.deliver(&ShipmentId::new(id, n).unwrap(), env.new_id(), env.now())
        .unwrap();
    save(env, r);
}

/// A delivered order of 2 × SKU-1 ($19.99) from wh-west, captured ($44.98).
fn delivered(env: &MemEnv) -> OrderId {
    set_stock(env, "SKU-1", "wh-west", 10);
    let id = order(env, &[("SKU-1", 2, 1999)], true);
    reserve(env, id, &[("SKU-1", "wh-west", 2)]);
    route(env, id);
    ship(env, id, 1);
    deliver(env, id, 1);
    id
}

/// Staff, as the router hands the caller to a handler.
fn staff() -> Actor {
    Actor::Staff { key: None }
}

/// The component over one in-memory world, through its router; requests are sent as staff
/// (a staff API key) unless they carry their own `authorization`.
struct World {
    env: Rc<MemEnv>,
    staff: String,
}

impl World {
    fn new() -> World {
        let env = Rc::new(MemEnv::new());
        let (_, staff) = api_keys::create(
            &env.kv,
            KeyRole::Staff,
            None,
            "tests".into(),
            "staff:root".into(),
            env.now(),
        )
        .unwrap();
        World { env, staff }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth = format!("Bearer {}", self.staff);
        let mut headers = headers.to_vec();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            headers.push(("authorization", &auth));
        }
        let req = request(method, path, &headers, body.as_ref());
        let resp = crate::router(Rc::clone(&self.env)).handle(req);
        let body = if resp.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(resp.body()).unwrap()
        };
        (*resp.status(), body)
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
        self.call(Method::Post, path, headers, Some(body))
    }

    fn refund(&self, id: OrderId, key: &str, body: Value) -> (u16, Value) {
        self.post(
            &format!("/v1/orders/{id}/refunds"),
            &[("idempotency-key", key)],
            body,
        )
    }

    fn record(&self, id: OrderId) -> OrderRecord {
        record(&self.env, id)
    }

    fn stock(&self, s: &str, l: &str) -> StockDoc {
        stock(&self.env, s, l)
    }

    fn published(&self) -> Vec<String> {
        self.env.published()
    }
}

fn field(problem: &Value) -> &str {
    problem["invalid-params"][0]["name"]
        .as_str()
        .unwrap_or_default()
}

// --- cancellation -------------------------------------------------------------------------

#[test]
fn cancelling_a_reserved_order_releases_its_holds_and_refunds_the_capture() {
    let w = World::new();
    set_stock(&w.env, "SKU-1", "wh-west", 10);
    let id = order(&w.env, &[("SKU-1", 3, 1999)], true);
    reserve(&w.env, id, &[("SKU-1", "wh-west", 3)]);
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 7);

    let path = format!("/v1/orders/{id}/cancel");
    let (status, body) = w.post(&path, &[], json!({"reason": "changed mind"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["payment_status"].as_str()),
        (Some("cancelled"), Some("refunded"))
    );
    assert_eq!(body["refund"]["refunded_total"], "64.97");
    assert_eq!(body["refund"]["refundable"], "0.00");
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 10);
    assert_eq!(w.published(), ["order.cancelled", "order.refunded"]);
    let r = w.record(id);
    assert!(!r.release_pending(), "the release is done");
    assert_eq!(r.refunds().len(), 1);
    assert!(w.env.owed.keys().unwrap().is_empty(), "nothing owed");

    // A repeat answers the same, releases nothing more and refunds nothing more.
    let (again, same) = w.post(&path, &[], json!({"reason": "changed mind"}));
    assert_eq!((again, &same), (200, &body));
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 10);
    assert_eq!(w.record(id).refunds().len(), 1);
    assert_eq!(w.published().len(), 2);
}

#[test]
fn cancelling_a_routed_authorized_order_deallocates_and_voids_the_payment() {
    let w = World::new();
    set_stock(&w.env, "SKU-1", "wh-west", 4);
    set_stock(&w.env, "SKU-2", "wh-east", 4);
    let id = order(&w.env, &[("SKU-1", 1, 1999), ("SKU-2", 2, 500)], false);
    reserve(
        &w.env,
        id,
        &[("SKU-1", "wh-west", 1), ("SKU-2", "wh-east", 2)],
    );
    route(&w.env, id);
    assert_eq!(w.stock("SKU-2", "wh-east").allocated_to(&id.to_string()), 2);

    let (status, body) = w.call(Method::Post, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["status"].as_str(),
            body["payment_status"].as_str(),
            &body["refund"]
        ),
        (Some("cancelled"), Some("voided"), &Value::Null)
    );
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 4);
    assert_eq!(w.stock("SKU-2", "wh-east").available(), 4);
    assert!(
        w.record(id).shipments().is_empty(),
        "allocated shipments go with the allocation"
    );
    assert_eq!(w.published(), ["order.cancelled"]);
}

#[test]
fn only_unshipped_orders_can_be_cancelled() {
    let w = World::new();
    let id = delivered(&w.env);
    let before = w.record(id).events().len();
    let (status, body) = w.call(Method::Post, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(status, 409, "{body}");
    assert_eq!(w.record(id).events().len(), before);
    let unknown = OrderId::new(Uuid::from_u128(999_999));
    let cancel = |path: &str, method| w.call(method, path, &[], None).0;
    assert_eq!(
        cancel(&format!("/v1/orders/{unknown}/cancel"), Method::Post),
        404
    );
    assert_eq!(cancel("/v1/orders/not-an-id/cancel", Method::Post), 404);
    let (status, problem) = w.call(Method::Get, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(
        (status, problem["type"].as_str()),
        (405, Some("https://oms.dev/problems/method-not-allowed"))
    );
    assert_eq!(cancel("/v1/nothing/here", Method::Post), 404);
}

#[test]
fn a_cancel_with_an_idempotency_key_replays_and_refuses_another_body() {
    let w = World::new();
    set_stock(&w.env, "SKU-1", "wh-west", 5);
    let id = order(&w.env, &[("SKU-1", 1, 1999)], false);
    reserve(&w.env, id, &[("SKU-1", "wh-west", 1)]);
    let path = format!("/v1/orders/{id}/cancel");
    let key = [("idempotency-key", "c-1")];
    let (status, first) = w.post(&path, &key, json!({"reason": "duplicate order"}));
    assert_eq!(
        (status, first["status"].as_str()),
        (200, Some("cancelled")),
        "{first}"
    );
    assert_eq!(
        w.post(&path, &key, json!({"reason": "duplicate order"})),
        (200, first)
    );
    let (status, problem) = w.post(&path, &key, json!({"reason": "other"}));
    assert_eq!((status, field(&problem)), (422, "Idempotency-Key"));
    assert_eq!(
        w.published(),
        ["order.cancelled"],
        "the replay published nothing again"
    );
    let (status, problem) = w.post(&path, &[], json!({"why": "x"}));
    assert_eq!((status, field(&problem)), (422, "/why"));
    let bad_key = [("idempotency-key", "has space")];
    let (status, problem) = w.post(&path, &bad_key, json!({}));
    assert_eq!((status, field(&problem)), (400, "Idempotency-Key"));
}

// --- refunds ------------------------------------------------------------------------------

#[test]
fn partial_then_full_refund_with_idempotent_replay() {
    let w = World::new();
    let id = delivered(&w.env);
    let one_unit =
        json!({"items": [{"kind": "line", "line": 0, "quantity": 1}], "reason": "scratched"});
    let (status, body) = w.refund(id, "r-1", one_unit.clone());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["refund"]["amount"]["amount"], "19.99");
    assert_eq!(
        (body["refunded_total"].as_str(), body["refundable"].as_str()),
        (Some("19.99"), Some("24.99"))
    );
    assert_eq!(
        (body["payment_status"].as_str(), body["status"].as_str()),
        (Some("partially_refunded"), Some("delivered")),
        "a refund moves the payment, not the order"
    );

    // Same key, same body: the same answer and no second refund.
    assert_eq!(w.refund(id, "r-1", one_unit.clone()), (201, body.clone()));
    assert_eq!(w.record(id).refunds().len(), 1);
    // Same key, different body: refused.
    let (status, problem) = w.refund(id, "r-1", json!({"items": [{"kind": "shipping"}]}));
    assert_eq!((status, field(&problem)), (422, "Idempotency-Key"));

    let rest = json!({"items": [{"kind": "line", "line": 0, "quantity": 1}, {"kind": "shipping"}]});
    let (status, body) = w.refund(id, "r-2", rest);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["payment_status"].as_str(), body["refundable"].as_str()),
        (Some("refunded"), Some("0.00"))
    );
    assert_eq!(
        w.published(),
        ["order.partially_refunded", "order.refunded"]
    );
    assert_eq!(w.record(id).status(), OrderStatus::Delivered);
    let (status, _) = w.refund(
        id,
        "r-3",
        json!({"items": [{"kind": "amount", "amount": "1.00"}]}),
    );
    assert_eq!(status, 409, "a fully refunded order takes no more refunds");
}

#[test]
fn a_partially_refunded_split_order_still_ships_its_second_shipment() {
    let w = World::new();
    set_stock(&w.env, "SKU-1", "wh-west", 5);
    set_stock(&w.env, "SKU-2", "wh-east", 5);
    let id = order(&w.env, &[("SKU-1", 1, 1999), ("SKU-2", 1, 500)], true);
    reserve(
        &w.env,
        id,
        &[("SKU-1", "wh-west", 1), ("SKU-2", "wh-east", 1)],
    );
    route(&w.env, id);
    ship(&w.env, id, 1);
    let (status, body) = w.refund(
        id,
        "goodwill",
        json!({"items": [{"kind": "amount", "amount": "3.00"}]}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "partially_shipped");
    ship(&w.env, id, 2);
    deliver(&w.env, id, 1);
    deliver(&w.env, id, 2);
    let r = w.record(id);
    assert_eq!(
        (r.status(), r.payment_status()),
        (OrderStatus::Delivered, PaymentState::PartiallyRefunded)
    );
}

#[test]
fn refused_refunds_name_the_field_and_change_nothing() {
    let w = World::new();
    let id = delivered(&w.env);
    let before = serde_json::to_value(w.record(id)).unwrap();
    let cases = [
        (
            json!({"items": [{"kind": "amount", "amount": "44.99"}]}),
            "/items/0/amount",
        ),
        (
            json!({"items": [{"kind": "line", "line": 0, "quantity": 3}]}),
            "/items/0/quantity",
        ),
        (
            json!({"items": [{"kind": "shipping"}, {"kind": "line", "line": 4, "quantity": 1}]}),
            "/items/1/line",
        ),
        (
            json!({"items": [{"kind": "line", "line": 0, "quantity": 2}, {"kind": "amount", "amount": "5.01"}]}),
            "/items/1/amount",
        ),
        (
            json!({"items": [{"kind": "shipping"}, {"kind": "shipping"}]}),
            "/items/1/kind",
        ),
        (
            json!({"items": [{"kind": "line", "line": 0, "quantity": 0}]}),
            "/items/0/quantity",
        ),
        (json!({"items": []}), "/items"),
        (
            json!({"items": [{"kind": "amount", "amount": -1}]}),
            "/items/0/amount",
        ),
    ];
    for (i, (body, pointer)) in cases.into_iter().enumerate() {
        let (status, problem) = w.refund(id, &format!("bad-{i}"), body.clone());
        assert_eq!(
            (status, field(&problem)),
            (422, pointer),
            "{body} → {problem}"
        );
        assert_eq!(problem["type"], "https://oms.dev/problems/validation");
    }
    assert_eq!(serde_json::to_value(w.record(id)).unwrap(), before);
    assert!(w.published().is_empty());

    let path = format!("/v1/orders/{id}/refunds");
    let (status, problem) = w.post(&path, &[], json!({"items": [{"kind": "shipping"}]}));
    assert_eq!((status, field(&problem)), (400, "Idempotency-Key"));
    let (status, problem) = w.call(Method::Post, &path, &[("idempotency-key", "x")], None);
    assert_eq!((status, field(&problem)), (400, "body"));
    let unknown = OrderId::new(Uuid::from_u128(999_999));
    let shipping = json!({"items": [{"kind": "shipping"}]});
    assert_eq!(w.refund(unknown, "k", shipping).0, 404);
}

#[test]
fn orders_that_have_not_shipped_are_cancelled_not_refunded() {
    let w = World::new();
    let id = order(&w.env, &[("SKU-1", 1, 1999)], true);
    let (status, problem) = w.refund(id, "k", json!({"items": [{"kind": "shipping"}]}));
    assert_eq!(status, 409, "{problem}");
    assert!(w.record(id).refunds().is_empty());
}

// --- returns ------------------------------------------------------------------------------

fn open_return(w: &World, id: OrderId, quantity: u32) -> String {
    let (status, body) = w.post(
        &format!("/v1/orders/{id}/returns"),
        &[],
        json!({"items": [{"line": 0, "quantity": quantity}], "reason": "too big"}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "requested");
    body["id"].as_str().unwrap().to_string()
}

fn receive(w: &World, rid: &str) -> (u16, Value) {
    w.call(
        Method::Post,
        &format!("/v1/returns/{rid}/received"),
        &[],
        None,
    )
}

#[test]
fn a_return_is_received_inspected_refunded_and_restocked_once() {
    let w = World::new();
    let id = delivered(&w.env);
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 8);
    let rid = open_return(&w, id, 2);
    assert_eq!(w.record(id).returns().len(), 1);

    let inspect = format!("/v1/returns/{rid}/inspection");
    let inspection = json!({"lines": [{"line": 0, "accepted": true}]});
    assert_eq!(
        w.post(&inspect, &[], inspection.clone()).0,
        409,
        "not received yet"
    );
    let (status, received) = receive(&w, &rid);
    assert_eq!(
        (status, received["state"].as_str()),
        (200, Some("received"))
    );
    assert_eq!(
        receive(&w, &rid),
        (200, received),
        "a repeat answers the same"
    );

    let (status, body) = w.post(&inspect, &[], inspection.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["return"]["state"], "refunded");
    assert_eq!(body["refund"]["refund"]["amount"]["amount"], "39.98");
    assert_eq!(body["refund"]["payment_status"], "partially_refunded");
    assert_eq!(
        body["restocked"],
        json!([{"line": 0, "placements": [{"sku": "SKU-1", "location": "wh-west", "units": 2}]}])
    );
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 10);
    assert_eq!(
        w.published(),
        [
            "return.requested",
            "return.received",
            "return.inspected",
            "order.partially_refunded",
            "return.refunded"
        ]
    );

    // A repeat answers the same and changes nothing; other verdicts are refused.
    assert_eq!(w.post(&inspect, &[], inspection), (200, body));
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 10);
    assert_eq!(w.record(id).refunds().len(), 1);
    let other = json!({"lines": [{"line": 0, "accepted": 1}]});
    assert_eq!(w.post(&inspect, &[], other).0, 409);
    let (status, read) = w.call(Method::Get, &format!("/v1/returns/{rid}"), &[], None);
    assert_eq!((status, read["state"].as_str()), (200, Some("refunded")));
    // Everything was returned: nothing more can be.
    let (status, problem) = w.post(
        &format!("/v1/orders/{id}/returns"),
        &[],
        json!({"items": [{"line": 0, "quantity": 1}]}),
    );
    assert_eq!((status, field(&problem)), (422, "/items/0/quantity"));
}

#[test]
fn unshipped_units_cannot_be_returned() {
    let w = World::new();
    set_stock(&w.env, "SKU-1", "wh-west", 5);
    set_stock(&w.env, "SKU-2", "wh-east", 5);
    let id = order(&w.env, &[("SKU-1", 2, 1999), ("SKU-2", 1, 500)], true);
    reserve(
        &w.env,
        id,
        &[("SKU-1", "wh-west", 2), ("SKU-2", "wh-east", 1)],
    );
    route(&w.env, id);
    let returns = format!("/v1/orders/{id}/returns");
    let (status, problem) = w.post(
        &returns,
        &[],
        json!({"items": [{"line": 0, "quantity": 1}]}),
    );
    assert_eq!(status, 409, "nothing shipped yet: {problem}");
    ship(&w.env, id, 1);
    // SKU-1 (line 0) shipped, SKU-2 (line 1) did not: it cannot come back, nor be refunded
    // and restocked as stock that does not exist.
    let (status, problem) = w.post(
        &returns,
        &[],
        json!({"items": [{"line": 0, "quantity": 2}, {"line": 1, "quantity": 1}]}),
    );
    assert_eq!(
        (status, field(&problem)),
        (422, "/items/1/quantity"),
        "{problem}"
    );
    assert!(w.record(id).returns().is_empty());
    assert!(w.published().is_empty());
    open_return(&w, id, 2);
}

#[test]
fn rejected_units_are_neither_refunded_nor_restocked() {
    let w = World::new();
    let id = delivered(&w.env);
    let rid = open_return(&w, id, 1);
    receive(&w, &rid);
    let (status, body) = w.post(
        &format!("/v1/returns/{rid}/inspection"),
        &[],
        json!({"lines": [{"line": 0, "accepted": false}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["return"]["state"].as_str(), &body["refund"]),
        (Some("inspected"), &Value::Null)
    );
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 8);
    assert!(w.record(id).refunds().is_empty());
    // The rejected unit can be returned again.
    open_return(&w, id, 2);
}

#[test]
fn returns_restock_where_the_units_shipped_from() {
    let w = World::new();
    set_stock(&w.env, "SKU-1", "wh-west", 1);
    set_stock(&w.env, "SKU-1", "wh-east", 5);
    let id = order(&w.env, &[("SKU-1", 3, 1000)], true);
    reserve(
        &w.env,
        id,
        &[("SKU-1", "wh-west", 1), ("SKU-1", "wh-east", 2)],
    );
    route(&w.env, id);
    ship(&w.env, id, 1);
    ship(&w.env, id, 2);
    let inspect = |rid: &str, verdict: Value| {
        receive(&w, rid);
        let path = format!("/v1/returns/{rid}/inspection");
        let (_, body) = w.post(
            &path,
            &[],
            json!({"lines": [{"line": 0, "accepted": verdict}]}),
        );
        body["restocked"][0]["placements"].clone()
    };
    let first = open_return(&w, id, 2);
    assert_eq!(
        inspect(&first, json!(2)),
        json!([{"sku": "SKU-1", "location": "wh-east", "units": 2}])
    );
    // wh-east got back all it shipped: the last unit goes home to wh-west.
    let second = open_return(&w, id, 1);
    assert_eq!(
        inspect(&second, json!(true)),
        json!([{"sku": "SKU-1", "location": "wh-west", "units": 1}])
    );
    assert_eq!(
        (
            w.stock("SKU-1", "wh-west").level.on_hand(),
            w.stock("SKU-1", "wh-east").level.on_hand()
        ),
        (1, 5)
    );
}

#[test]
fn bad_return_and_inspection_requests_name_the_field() {
    let w = World::new();
    let id = delivered(&w.env);
    let returns = format!("/v1/orders/{id}/returns");
    for (body, pointer) in [
        (
            json!({"items": [{"line": 3, "quantity": 1}]}),
            "/items/0/line",
        ),
        (
            json!({"items": [{"line": 0, "quantity": 1}, {"line": 0, "quantity": 1}]}),
            "/items/1/line",
        ),
        (json!({"items": [{"line": 0}]}), "/items/0/quantity"),
        (json!({"items": []}), "/items"),
    ] {
        let (status, problem) = w.post(&returns, &[], body);
        assert_eq!((status, field(&problem)), (422, pointer), "{problem}");
    }
    assert!(w.record(id).returns().is_empty());

    let rid = open_return(&w, id, 1);
    receive(&w, &rid);
    let inspection = format!("/v1/returns/{rid}/inspection");
    for (body, pointer) in [
        (
            json!({"lines": [{"line": 0, "accepted": 2}]}),
            "/lines/0/accepted",
        ),
        (
            json!({"lines": [{"line": 0, "accepted": true}, {"line": 1, "accepted": true}]}),
            "/lines/1/line",
        ),
        (
            json!({"lines": [{"line": 0, "accepted": "yes"}]}),
            "/lines/0/accepted",
        ),
    ] {
        let (status, problem) = w.post(&inspection, &[], body);
        assert_eq!((status, field(&problem)), (422, pointer), "{problem}");
    }
    let (status, read) = w.call(Method::Get, &format!("/v1/returns/{rid}"), &[], None);
    assert_eq!((status, read["state"].as_str()), (200, Some("received")));
    let unknown = format!("/v1/returns/{}", Uuid::from_u128(999_999));
    assert_eq!(w.call(Method::Get, &unknown, &[], None).0, 404);
    assert_eq!(w.call(Method::Get, "/v1/returns/nope", &[], None).0, 404);
    assert_eq!(
        w.call(Method::Post, &format!("/v1/returns/{rid}"), &[], None)
            .0,
        405
    );
}

// --- fault injection ----------------------------------------------------------------------

/// The staged order of the fault tests: the first id `MemEnv` hands out.
fn staged() -> OrderId {
    OrderId::new(Uuid::from_u128(1))
}

type Answer = Result<oms_edge::StoredResponse, oms_edge::FunctionError>;

/// What the world does after a faulty step: the client sends the same request again (on a
/// clean world), then the reconciler runs late and reserve releases what it re-drives.
fn recover(env: &MemEnv, retry: impl Fn(&MemEnv)) {
    retry(env);
    env.advance(Duration::seconds(120));
    reconcile(env, Duration::seconds(60), 100).unwrap();
    if env.published().iter().any(|c| c == "order.cancelled") {
        release_cancelled(env, &staged().to_string()).unwrap();
    }
}

/// Every published event is one the order recorded (ids are stable: a republish is the same
/// event), and every event of `types` the order recorded was published at least once.
fn assert_published(env: &MemEnv, r: &OrderRecord, types: &[&str], fault: &str) {
    let sent: Vec<EventEnvelope> = env
        .bus
        .sent
        .borrow()
        .iter()
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .collect();
    let recorded: BTreeSet<Uuid> = r.events().iter().map(EventEnvelope::id).collect();
    for e in &sent {
        assert!(recorded.contains(&e.id()), "{fault}: stray {e:?}");
    }
    let sent_ids: BTreeSet<Uuid> = sent.iter().map(EventEnvelope::id).collect();
    for t in types {
        let of_type: Vec<&EventEnvelope> = r
            .events()
            .iter()
            .filter(|e| e.event_type().as_str() == *t)
            .collect();
        assert_eq!(of_type.len(), 1, "{fault}: {t} recorded once");
        assert!(
            sent_ids.contains(&of_type[0].id()),
            "{fault}: {t} published"
        );
    }
    assert!(r.outbox().is_empty(), "{fault}: outbox {:?}", r.outbox());
    assert!(
        env.owed.keys().unwrap().is_empty(),
        "{fault}: owed {:?}",
        env.owed.keys().unwrap()
    );
}

/// Runs `call` under every fault, then the same request again and the reconciler.
fn every_fault(
    setup: impl Fn(&MemEnv),
    req: impl Fn() -> Request,
    call: impl Fn(&FaultyEnv<'_, MemEnv>, &str, &Request) -> Answer,
    retry: impl Fn(&MemEnv, &str, &Request) -> Answer,
    id: impl Fn(&MemEnv) -> String,
    check: impl Fn(&MemEnv, &str),
) {
    for_every_fault(
        setup,
        |env| {
            let _ = call(env, &id(env.inner()), &req());
        },
        |env| {
            recover(env, |env| {
                let answer = retry(env, &id(env), &req()).unwrap();
                assert!(answer.status < 300, "{answer:?}");
            })
        },
        check,
    );
}

#[test]
fn every_fault_in_a_cancel_ends_cancelled_released_and_refunded_once() {
    let setup = |env: &MemEnv| {
        set_stock(env, "SKU-1", "wh-west", 10);
        let id = order(env, &[("SKU-1", 3, 1999)], true);
        reserve(env, id, &[("SKU-1", "wh-west", 3)]);
    };
    let req = || request(Method::Post, "/", &[("idempotency-key", "c-1")], None);
    every_fault(
        setup,
        req,
        |e, i, r| crate::cancel::handle(e, &staff(), i, r),
        |e, i, r| crate::cancel::handle(e, &staff(), i, r),
        |_| staged().to_string(),
        |env, fault| {
            let r = record(env, staged());
            assert_eq!(r.status(), OrderStatus::Cancelled, "{fault}");
            assert_eq!(r.payment_status(), PaymentState::Refunded, "{fault}");
            assert_eq!(r.refunds().len(), 1, "{fault}: refunded exactly once");
            assert_eq!(r.ledger().refunded(), r.ledger().captured(), "{fault}");
            assert!(!r.release_pending(), "{fault}");
            let doc = stock(env, "SKU-1", "wh-west");
            assert_eq!((doc.available(), doc.level.on_hand()), (10, 10), "{fault}");
            assert_published(env, &r, &["order.cancelled", "order.refunded"], fault);
        },
    );
}

#[test]
fn every_fault_in_a_refund_books_it_exactly_once() {
    let req = || {
        let body = json!({"items": [{"kind": "line", "line": 0, "quantity": 1}]});
        request(
            Method::Post,
            "/",
            &[("idempotency-key", "r-1")],
            Some(&body),
        )
    };
    every_fault(
        |env| {
            delivered(env);
        },
        req,
        |e, i, r| crate::refunds::handle(e, &staff(), i, r),
        |e, i, r| crate::refunds::handle(e, &staff(), i, r),
        |_| staged().to_string(),
        |env, fault| {
            let r = record(env, staged());
            assert_eq!(r.refunds().len(), 1, "{fault}: refunded exactly once");
            assert_eq!(
                r.ledger().refunded().amount().to_string(),
                "19.99",
                "{fault}"
            );
            assert_eq!(
                (r.status(), r.payment_status()),
                (OrderStatus::Delivered, PaymentState::PartiallyRefunded),
                "{fault}"
            );
            assert_published(env, &r, &["order.partially_refunded"], fault);
        },
    );
}

/// A delivered order with return `rid` opened (and received, when `received`).
fn with_return(env: &MemEnv, received: bool) -> String {
    let id = delivered(env);
    let body = json!({"items": [{"line": 0, "quantity": 2}]});
    let open = request(
        Method::Post,
        "/",
        &[("idempotency-key", "ret-1")],
        Some(&body),
    );
    let ra = crate::returns::open(env, &staff(), &id.to_string(), &open).unwrap();
    let rid = serde_json::from_str::<Value>(&ra.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    if received {
        let post = request(Method::Post, "/", &[], None);
        crate::returns::receive(env, &staff(), &rid, &post).unwrap();
    }
    env.bus.sent.borrow_mut().clear();
    rid
}

fn return_id(env: &MemEnv) -> String {
    record(env, staged()).returns()[0].to_string()
}

#[test]
fn every_fault_in_opening_a_return_opens_exactly_one() {
    let req = || {
        let body = json!({"items": [{"line": 0, "quantity": 2}]});
        request(
            Method::Post,
            "/",
            &[("idempotency-key", "ret-1")],
            Some(&body),
        )
    };
    every_fault(
        |env| {
            delivered(env);
        },
        req,
        |e, i, r| crate::returns::open(e, &staff(), i, r),
        |e, i, r| crate::returns::open(e, &staff(), i, r),
        |_| staged().to_string(),
        |env, fault| {
            let r = record(env, staged());
            assert_eq!(r.returns().len(), 1, "{fault}: one return");
            let ra = r.find_return(r.returns()[0]).unwrap();
            assert_eq!(ra.state(), oms_domain::ReturnState::Requested, "{fault}");
            let pointer: Option<Value> = env.kv.get_json(&keys::return_(&return_id(env))).unwrap();
            assert!(pointer.is_some(), "{fault}: the return can be found");
            assert_published(env, &r, &["return.requested"], fault);
        },
    );
}

#[test]
fn every_fault_in_receiving_a_return_receives_it_once() {
    every_fault(
        |env| {
            with_return(env, false);
        },
        || request(Method::Post, "/", &[], None),
        |e, i, r| crate::returns::receive(e, &staff(), i, r),
        |e, i, r| crate::returns::receive(e, &staff(), i, r),
        return_id,
        |env, fault| {
            let r = record(env, staged());
            let ra = r.find_return(r.returns()[0]).unwrap();
            assert_eq!(ra.state(), oms_domain::ReturnState::Received, "{fault}");
            assert_published(env, &r, &["return.received"], fault);
        },
    );
}

#[test]
fn every_fault_in_an_inspection_refunds_and_restocks_exactly_once() {
    let req = || {
        let body = json!({"lines": [{"line": 0, "accepted": 1}]});
        request(Method::Post, "/", &[], Some(&body))
    };
    every_fault(
        |env| {
            with_return(env, true);
        },
        req,
        |e, i, r| crate::inspection::handle(e, &staff(), i, r),
        |e, i, r| crate::inspection::handle(e, &staff(), i, r),
        return_id,
        |env, fault| {
            let r = record(env, staged());
            let ra = r.find_return(r.returns()[0]).unwrap();
            assert_eq!(ra.state(), oms_domain::ReturnState::Refunded, "{fault}");
            assert_eq!(r.refunds().len(), 1, "{fault}: refunded exactly once");
            assert_eq!(
                r.ledger().refunded().amount().to_string(),
                "19.99",
                "{fault}"
            );
            let doc = stock(env, "SKU-1", "wh-west");
            assert_eq!(
                doc.level.on_hand(),
                9,
                "{fault}: 8 left after shipping, 1 back"
            );
            assert_published(
                env,
                &r,
                &[
                    "return.inspected",
                    "order.partially_refunded",
                    "return.refunded",
                ],
                fault,
            );
        },
    );
}

// --- races --------------------------------------------------------------------------------

#[test]
fn the_same_refund_racing_itself_is_booked_once() {
    let env = MemEnv::new();
    let id = delivered(&env).to_string();
    let body = json!({"items": [{"kind": "amount", "amount": "10.00"}]});
    let req = || {
        request(
            Method::Post,
            "/",
            &[("idempotency-key", "r-1")],
            Some(&body),
        )
    };
    let inner = RefCell::new(None);
    let racing = RacingEnv::new(
        &env,
        |k| k.starts_with("order:"),
        || {
            *inner.borrow_mut() =
                Some(crate::refunds::handle(&env, &staff(), &id, &req()).unwrap());
        },
    );
    let outer = crate::refunds::handle(&racing, &staff(), &id, &req()).unwrap();
    drop(racing);
    let inner = inner.into_inner().expect("the race ran");
    assert_eq!((outer.status, &outer.body), (201, &inner.body));
    let r = record(&env, staged());
    assert_eq!(r.refunds().len(), 1, "refunded once");
    assert_eq!(r.ledger().refunded().amount().to_string(), "10.00");
    assert_eq!(env.published(), ["order.partially_refunded"]);
}

#[test]
fn a_cancel_losing_the_race_to_a_shipment_changes_nothing() {
    let env = MemEnv::new();
    set_stock(&env, "SKU-1", "wh-west", 5);
    let id = order(&env, &[("SKU-1", 1, 1999)], true);
    reserve(&env, id, &[("SKU-1", "wh-west", 1)]);
    route(&env, id);
    let racing = RacingEnv::new(
        &env,
        |k| k.starts_with("order:"),
        || {
            let label = |s: &str| ShipmentLabel::parse(s).unwrap();
            let sid = ShipmentId::new(id, 1).unwrap();
            oms_edge::run(&env, &id.to_string(), |r| {
                r.ship(&sid, label("ups"), label("1Z"), env.new_id(), env.now())
                    .unwrap();
                Ok(oms_edge::Decision::Changed(()))
            })
            .unwrap();
        },
    );
    let cancel = crate::cancel::handle(
        &racing,
        &staff(),
        &id.to_string(),
        &request(Method::Post, "/", &[], None),
    );
    match cancel {
        Err(oms_edge::FunctionError::Problem(p)) => assert_eq!(p.status, 409, "{p:?}"),
        other => panic!("{other:?}"),
    }
    let r = record(&env, id);
    assert_eq!(
        (r.status(), r.payment_status()),
        (OrderStatus::Shipped, PaymentState::Paid)
    );
    assert!(r.refunds().is_empty());
    assert_eq!(env.published(), ["order.shipped"]);
}

/// The crash window between an inspection's write and its restock: with no retry of the
/// inspection, the reconciler alone puts the accepted units back — once — whenever the
/// inspection's write stood.
#[test]
fn an_inspection_that_dies_after_its_write_is_restocked_by_the_reconciler_alone() {
    for_every_fault(
        |env| {
            with_return(env, true);
        },
        |env| {
            let body = json!({"lines": [{"line": 0, "accepted": true}]});
            let req = request(Method::Post, "/", &[], Some(&body));
            let _ = crate::inspection::handle(env, &staff(), &return_id(env.inner()), &req);
        },
        |env| {
            env.advance(Duration::seconds(120));
            reconcile(env, Duration::seconds(60), 100).unwrap();
        },
        |env, fault| {
            let r = record(env, staged());
            let ra = r.find_return(r.returns()[0]).unwrap();
            let on_hand = stock(env, "SKU-1", "wh-west").level.on_hand();
            if ra.state() == oms_domain::ReturnState::Refunded {
                assert_eq!(on_hand, 10, "{fault}: restocked once");
            } else {
                assert_eq!(on_hand, 8, "{fault}: nothing restocked");
            }
            assert!(r.pending_moves().is_empty(), "{fault}");
        },
    );
}

// --- who may call what --------------------------------------------------------------------

#[test]
fn customers_cancel_and_return_their_own_order_and_staff_do_the_rest() {
    let w = World::new();
    let id = delivered(&w.env);
    let other = order(&w.env, &[("SKU-1", 1, 1999)], true);
    let own = oms_edge::order_token::issue(&w.env.kv, id).unwrap();
    let foreign = oms_edge::order_token::issue(&w.env.kv, other).unwrap();
    let (_, dock) = api_keys::create(
        &w.env.kv,
        KeyRole::Fulfilment,
        Some("wh-west".into()),
        "dock".into(),
        "staff:root".into(),
        w.env.now(),
    )
    .unwrap();
    let bearer = |t: &str| format!("Bearer {t}");
    let (own, foreign, dock) = (bearer(&own), bearer(&foreign), bearer(&dock));
    let before = serde_json::to_string(&w.record(id)).unwrap();
    let returns = format!("/v1/orders/{id}/returns");
    let refunds = format!("/v1/orders/{id}/refunds");
    let ret = json!({"items": [{"line": 0, "quantity": 1}]});
    let refund = json!({"items": [{"kind": "amount", "amount": "1.00"}]});
    let refusals: [(&str, Option<&str>, &Value, u16); 8] = [
        (&returns, None, &ret, 401),
        (&returns, Some("Bearer oms_ot_AAAA"), &ret, 403),
        (&returns, Some(&foreign), &ret, 403),
        (&returns, Some(&dock), &ret, 403),
        (&refunds, None, &refund, 401),
        (&refunds, Some(&own), &refund, 403),
        (&refunds, Some(&dock), &refund, 403),
        (&refunds, Some("Bearer nope"), &refund, 401),
    ];
    for (path, auth, body, status) in refusals {
        let got = match auth {
            Some(a) => w.post(
                path,
                &[("idempotency-key", "k-1"), ("authorization", a)],
                body.clone(),
            ),
            // No credential at all (the world adds staff's to requests without one).
            None => {
                let req = request(
                    Method::Post,
                    path,
                    &[("idempotency-key", "k-1")],
                    Some(body),
                );
                let resp = crate::router(Rc::clone(&w.env)).handle(req);
                (*resp.status(), serde_json::from_slice(resp.body()).unwrap())
            }
        };
        assert_eq!(got.0, status, "{path} {auth:?}: {}", got.1);
        assert_eq!(got.1["invalid-params"][0]["name"], "Authorization");
    }
    assert_eq!(
        serde_json::to_string(&w.record(id)).unwrap(),
        before,
        "nothing changed"
    );
    assert!(w.published().is_empty(), "nothing published");

    // The customer opens a return on their own order; staff receive it.
    let (status, ra) = w.post(&returns, &[("authorization", &own)], ret.clone());
    assert_eq!(status, 201, "{ra}");
    let rid = ra["id"].as_str().unwrap();
    let received = format!("/v1/returns/{rid}/received");
    let (status, _) = w.post(&received, &[("authorization", &own)], json!({}));
    assert_eq!(status, 403, "the customer does not receive returns");
    let (status, _) = w.post(&received, &[], json!({}));
    assert_eq!(status, 200);
    let actors: Vec<(String, Option<String>)> = w
        .record(id)
        .events()
        .iter()
        .map(|e| {
            (
                e.event_type().as_str().to_string(),
                e.actor().map(str::to_string),
            )
        })
        .collect();
    let of = |t: &str| actors.iter().find(|(et, _)| et == t).unwrap().1.clone();
    assert_eq!(of("return.requested").as_deref(), Some("customer"));
    assert!(
        of("return.received").unwrap().starts_with("staff:"),
        "{actors:?}"
    );

    // The customer may cancel their own (unshipped) order, not another's.
    let cancel = format!("/v1/orders/{other}/cancel");
    let (status, _) = w.post(&cancel, &[("authorization", &own)], json!({}));
    assert_eq!(status, 403);
    let (status, body) = w.post(&cancel, &[("authorization", &foreign)], json!({}));
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("cancelled")),
        "{body}"
    );
    assert_eq!(
        w.record(other).events().last().unwrap().actor(),
        Some("customer")
    );
}
