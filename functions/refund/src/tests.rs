//! Handler tests on `MemKv`/`MemBus` through the same routing the Spin entry uses: orders are
//! staged the way the reserve and route steps leave them, then cancelled, refunded and
//! returned over the component's HTTP surface.

use std::cell::{Cell, RefCell};

use chrono::{DateTime, TimeZone, Utc};
use oms_domain::{
    LocationId, Order, OrderId, OrderStatus, Reservation, ReservedLine, ShipmentLine, Sku,
};
use oms_edge::{
    keys, Bus, Kv, KvError, MemBus, MemKv, OrderRecord, ShipmentRecord, ShipmentStatus, StockDoc,
};
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request};
use uuid::Uuid;

use crate::context::Ctx;

/// A store that can be told to fail writes to keys with a prefix (a crash at that point).
#[derive(Default)]
struct FlakyKv {
    inner: MemKv,
    fail: RefCell<Option<&'static str>>,
}

impl FlakyKv {
    fn refuses(&self, key: &str) -> Result<(), KvError> {
        match *self.fail.borrow() {
            Some(prefix) if key.starts_with(prefix) => {
                Err(KvError::Store(format!("injected failure writing {key}")))
            }
            _ => Ok(()),
        }
    }
}

impl Kv for FlakyKv {
    type Cas = <MemKv as Kv>::Cas;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.refuses(key)?;
        self.inner.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.inner.delete(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.inner.get_many(keys)
    }
    fn read(&self, key: &str) -> Result<(Option<Vec<u8>>, Self::Cas), KvError> {
        self.inner.read(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<bool, KvError> {
        self.refuses(&cas.0)?;
        self.inner.swap(cas, value)
    }

    fn keys(&self) -> Result<Vec<String>, KvError> {
        self.inner.keys()
    }
}

/// A bus that can be switched off (the broker is down).
#[derive(Default)]
struct FlakyBus {
    inner: MemBus,
    down: Cell<bool>,
}

impl Bus for FlakyBus {
    fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), String> {
        if self.down.get() {
            return Err("broker down".into());
        }
        self.inner.publish(channel, payload)
    }
}

struct World {
    kv: FlakyKv,
    bus: FlakyBus,
    ids: Cell<u128>,
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 1, 12, 0, 0).unwrap()
}

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

impl World {
    fn new() -> World {
        World {
            kv: FlakyKv::default(),
            bus: FlakyBus::default(),
            ids: Cell::new(1000),
        }
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut b = Request::builder();
        b.method(method).uri(path);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.get(1) == Some(&"orders") {
            b.header("spin-path-match-id", parts[2]);
        } else {
            b.header("spin-path-info", path.trim_start_matches("/v1/returns"));
        }
        for (k, v) in headers {
            b.header(*k, *v);
        }
        if let Some(body) = body {
            b.body(body.to_string());
        }
        let req = b.build();
        let clock = at;
        let next = || {
            self.ids.set(self.ids.get() + 1);
            Uuid::from_u128(self.ids.get())
        };
        let ctx = Ctx {
            kv: &self.kv,
            bus: &self.bus,
            clock: &clock,
            ids: &next,
        };
        let resp = crate::routes::handle(&ctx, &req);
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
        self.kv
            .get_json(&keys::order(&id.to_string()))
            .unwrap()
            .unwrap()
    }

    fn save(&self, record: &OrderRecord) {
        self.kv
            .set_json(&keys::order(&record.order.id().to_string()), record)
            .unwrap();
    }

    fn stock(&self, s: &str, l: &str) -> StockDoc {
        self.kv
            .get_json(&keys::stock(s, l))
            .unwrap()
            .unwrap_or_default()
    }

    fn set_stock(&self, s: &str, l: &str, on_hand: u32) {
        self.kv
            .set_json(
                &keys::stock(s, l),
                &StockDoc::default().recount(on_hand).unwrap(),
            )
            .unwrap();
    }

    fn published(&self) -> Vec<String> {
        self.bus
            .inner
            .sent
            .borrow()
            .iter()
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn next_id(&self) -> Uuid {
        self.ids.set(self.ids.get() + 1);
        Uuid::from_u128(self.ids.get())
    }

    /// An accepted order: `lines` are (sku, quantity, unit price cents); $5 shipping.
    fn order(&self, lines: &[(&str, u32, i64)], captured: bool) -> OrderId {
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
        let id = OrderId::new(self.next_id());
        let order = Order::from_request(&body, id, at()).unwrap();
        self.save(&OrderRecord::accept(order, self.next_id(), at()).unwrap());
        id
    }

    /// What the reserve step leaves: holds on the stock documents and the reservation.
    fn reserve(&self, id: OrderId, at_location: &[(&str, &str, u32)]) {
        let mut record = self.record(id);
        let mut lines = Vec::new();
        for (s, l, units) in at_location {
            let (doc, held) = self
                .stock(s, l)
                .hold_up_to(&id.to_string(), *units)
                .unwrap();
            assert_eq!(held, *units);
            self.kv.set_json(&keys::stock(s, l), &doc).unwrap();
            lines.push(ReservedLine {
                sku: sku(s),
                location: loc(l),
                units: *units,
            });
        }
        record.reservation = Some(Reservation::new(id, lines, None).unwrap());
        record
            .transition(OrderStatus::Reserved, json!({}), self.next_id(), at())
            .unwrap();
        self.save(&record);
    }

    /// What the route step leaves: one allocated shipment per location.
    fn route(&self, id: OrderId) {
        let mut record = self.record(id);
        let lines = record.reservation.take().unwrap().lines().to_vec();
        let mut shipments: Vec<ShipmentRecord> = Vec::new();
        for l in lines {
            let key = keys::stock(l.sku.as_str(), l.location.as_str());
            let doc = self
                .stock(l.sku.as_str(), l.location.as_str())
                .allocate(&id.to_string(), l.units)
                .unwrap();
            self.kv.set_json(&key, &doc).unwrap();
            let line = ShipmentLine {
                sku: l.sku.clone(),
                units: l.units,
            };
            match shipments.iter_mut().find(|s| s.location == l.location) {
                Some(s) => s.lines.push(line),
                None => shipments.push(ShipmentRecord {
                    id: format!("{id}-{}", shipments.len() + 1),
                    location: l.location.clone(),
                    lines: vec![line],
                    status: ShipmentStatus::Allocated,
                    carrier: None,
                    tracking: None,
                    shipped_at: None,
                    delivered_at: None,
                }),
            }
        }
        record.shipments = shipments;
        record
            .transition(OrderStatus::Routed, json!({}), self.next_id(), at())
            .unwrap();
        self.save(&record);
    }

    /// Ships and delivers every shipment.
    fn deliver(&self, id: OrderId) {
        let mut record = self.record(id);
        for s in &mut record.shipments {
            for l in &s.lines {
                let doc = self
                    .stock(l.sku.as_str(), s.location.as_str())
                    .ship(&id.to_string())
                    .unwrap();
                self.kv
                    .set_json(&keys::stock(l.sku.as_str(), s.location.as_str()), &doc)
                    .unwrap();
            }
            s.status = ShipmentStatus::Delivered;
        }
        record
            .transition(OrderStatus::Shipped, json!({}), self.next_id(), at())
            .unwrap();
        record
            .transition(OrderStatus::Delivered, json!({}), self.next_id(), at())
            .unwrap();
        self.save(&record);
    }

    /// A delivered order of 2 × SKU-1 ($19.99) from wh-west, captured ($44.98).
    fn delivered(&self) -> OrderId {
        self.set_stock("SKU-1", "wh-west", 10);
        let id = self.order(&[("SKU-1", 2, 1999)], true);
        self.reserve(id, &[("SKU-1", "wh-west", 2)]);
        self.route(id);
        self.deliver(id);
        id
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
    w.set_stock("SKU-1", "wh-west", 10);
    let id = w.order(&[("SKU-1", 3, 1999)], true);
    w.reserve(id, &[("SKU-1", "wh-west", 3)]);
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 7);

    let (status, body) = w.post(
        &format!("/v1/orders/{id}/cancel"),
        &[],
        json!({"reason": "changed mind"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "refunded");
    assert_eq!(body["refund"]["refunded_total"], "64.97");
    assert_eq!(body["refund"]["refundable"], "0.00");
    assert_eq!(body["released"][0]["units"], 3);
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 10);
    assert_eq!(w.published(), ["order.cancelled", "order.refunded"]);
    let record = w.record(id);
    assert!(
        record.reservation.is_none(),
        "the pending-release mark is cleared"
    );
    assert_eq!(record.refunds.len(), 1);

    // A repeat answers the same, releases nothing more and refunds nothing more.
    let (again, same) = w.post(
        &format!("/v1/orders/{id}/cancel"),
        &[],
        json!({"reason": "changed mind"}),
    );
    assert_eq!((again, &same), (200, &body));
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 10);
    assert_eq!(w.record(id).refunds.len(), 1);
}

#[test]
fn cancelling_a_routed_authorized_order_deallocates_without_a_refund() {
    let w = World::new();
    w.set_stock("SKU-1", "wh-west", 4);
    w.set_stock("SKU-2", "wh-east", 4);
    let id = w.order(&[("SKU-1", 1, 1999), ("SKU-2", 2, 500)], false);
    w.reserve(id, &[("SKU-1", "wh-west", 1), ("SKU-2", "wh-east", 2)]);
    w.route(id);
    assert_eq!(w.stock("SKU-2", "wh-east").allocated_to(&id.to_string()), 2);

    let (status, body) = w.call(Method::Post, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), &body["refund"]),
        (Some("cancelled"), &Value::Null)
    );
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 4);
    assert_eq!(w.stock("SKU-2", "wh-east").available(), 4);
    assert!(
        w.record(id).shipments.is_empty(),
        "allocated shipments go with the allocation"
    );
    assert_eq!(w.published(), ["order.cancelled"]);
}

#[test]
fn only_unshipped_orders_can_be_cancelled() {
    let w = World::new();
    let id = w.delivered();
    let before = w.record(id).events.len();
    let (status, body) = w.call(Method::Post, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(status, 409, "{body}");
    assert_eq!(w.record(id).events.len(), before);
    let unknown = OrderId::new(Uuid::from_u128(1));
    assert_eq!(
        w.call(
            Method::Post,
            &format!("/v1/orders/{unknown}/cancel"),
            &[],
            None
        )
        .0,
        404
    );
    assert_eq!(
        w.call(Method::Post, "/v1/orders/not-an-id/cancel", &[], None)
            .0,
        404
    );
    assert_eq!(
        w.call(Method::Get, &format!("/v1/orders/{id}/cancel"), &[], None)
            .0,
        405
    );
}

#[test]
fn a_crash_before_the_stock_is_released_is_completed_by_a_repeated_cancel() {
    let w = World::new();
    w.set_stock("SKU-1", "wh-west", 10);
    let id = w.order(&[("SKU-1", 2, 1999)], true);
    w.reserve(id, &[("SKU-1", "wh-west", 2)]);

    *w.kv.fail.borrow_mut() = Some("stock:");
    let (status, _) = w.call(Method::Post, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(status, 503, "a storage failure is worth a retry");
    let record = w.record(id);
    assert_eq!(
        record.status(),
        OrderStatus::Refunded,
        "the cancel itself was saved"
    );
    assert!(
        record.reservation.is_some(),
        "…with the stock marked as still to release"
    );
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 8);

    *w.kv.fail.borrow_mut() = None;
    let (status, body) = w.call(Method::Post, &format!("/v1/orders/{id}/cancel"), &[], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.stock("SKU-1", "wh-west").available(), 10);
    assert!(w.record(id).reservation.is_none());
    assert_eq!(w.record(id).refunds.len(), 1);
    assert_eq!(w.published(), ["order.cancelled", "order.refunded"]);
}

// --- refunds ------------------------------------------------------------------------------

#[test]
fn partial_then_full_refund_with_idempotent_replay() {
    let w = World::new();
    let id = w.delivered();
    let one_unit =
        json!({"items": [{"kind": "line", "line": 0, "quantity": 1}], "reason": "scratched"});
    let (status, body) = w.refund(id, "r-1", one_unit.clone());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["refund"]["amount"]["amount"], "19.99");
    assert_eq!(
        (body["refunded_total"].as_str(), body["refundable"].as_str()),
        (Some("19.99"), Some("24.99"))
    );
    assert_eq!(body["status"], "partially_refunded");

    // Same key, same body: the same answer and no second refund.
    assert_eq!(w.refund(id, "r-1", one_unit.clone()), (201, body.clone()));
    assert_eq!(w.record(id).refunds.len(), 1);
    // Same key, different body: refused.
    let (status, problem) = w.refund(id, "r-1", json!({"items": [{"kind": "shipping"}]}));
    assert_eq!((status, field(&problem)), (422, "Idempotency-Key"));

    let rest = json!({"items": [{"kind": "line", "line": 0, "quantity": 1}, {"kind": "shipping"}]});
    let (status, body) = w.refund(id, "r-2", rest);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["refundable"].as_str()),
        (Some("refunded"), Some("0.00"))
    );
    assert_eq!(
        w.published(),
        ["order.partially_refunded", "order.refunded"]
    );
    let (status, _) = w.refund(
        id,
        "r-3",
        json!({"items": [{"kind": "amount", "amount": "1.00"}]}),
    );
    assert_eq!(status, 409, "a fully refunded order takes no more refunds");
}

#[test]
fn refused_refunds_name_the_field_and_change_nothing() {
    let w = World::new();
    let id = w.delivered();
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

    let (status, problem) = w.post(
        &format!("/v1/orders/{id}/refunds"),
        &[],
        json!({"items": [{"kind": "shipping"}]}),
    );
    assert_eq!((status, field(&problem)), (400, "Idempotency-Key"));
    let (status, problem) = w.call(
        Method::Post,
        &format!("/v1/orders/{id}/refunds"),
        &[("idempotency-key", "x")],
        None,
    );
    assert_eq!((status, field(&problem)), (400, "body"));
    let unknown = OrderId::new(Uuid::from_u128(2));
    assert_eq!(
        w.refund(unknown, "k", json!({"items": [{"kind": "shipping"}]}))
            .0,
        404
    );
}

#[test]
fn orders_that_have_not_shipped_are_cancelled_not_refunded() {
    let w = World::new();
    let id = w.order(&[("SKU-1", 1, 1999)], true);
    let (status, problem) = w.refund(id, "k", json!({"items": [{"kind": "shipping"}]}));
    assert_eq!(status, 409, "{problem}");
    assert!(w.record(id).refunds.is_empty());
}

#[test]
fn a_refund_booked_before_a_failed_publish_is_not_booked_again_on_retry() {
    let w = World::new();
    let id = w.delivered();
    let body = json!({"items": [{"kind": "amount", "amount": "10.00"}]});
    w.bus.down.set(true);
    let (status, _) = w.refund(id, "k-1", body.clone());
    assert_eq!(status, 503);
    assert_eq!(w.record(id).refunds.len(), 1, "booked, not yet published");
    w.bus.down.set(false);
    let (status, answer) = w.refund(id, "k-1", body);
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["refunded_total"], "10.00");
    assert_eq!(w.record(id).refunds.len(), 1);
    assert_eq!(w.published(), ["order.partially_refunded"]);
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

#[test]
fn a_return_is_received_inspected_refunded_and_restocked_once() {
    let w = World::new();
    let id = w.delivered();
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 8);
    let rid = open_return(&w, id, 2);
    assert_eq!(w.record(id).returns.len(), 1);

    let inspection = json!({"lines": [{"line": 0, "accepted": true}]});
    assert_eq!(
        w.post(
            &format!("/v1/returns/{rid}/inspection"),
            &[],
            inspection.clone()
        )
        .0,
        409,
        "not received yet"
    );
    let (status, received) = w.call(
        Method::Post,
        &format!("/v1/returns/{rid}/received"),
        &[],
        None,
    );
    assert_eq!(
        (status, received["state"].as_str()),
        (200, Some("received"))
    );
    assert_eq!(
        w.call(
            Method::Post,
            &format!("/v1/returns/{rid}/received"),
            &[],
            None
        ),
        (200, received)
    );

    let (status, body) = w.post(
        &format!("/v1/returns/{rid}/inspection"),
        &[],
        inspection.clone(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["return"]["state"], "refunded");
    assert_eq!(body["refund"]["refund"]["amount"]["amount"], "39.98");
    assert_eq!(body["refund"]["status"], "partially_refunded");
    assert_eq!(
        body["restocked"],
        json!([{"line": 0, "placements": [{"sku": "SKU-1", "location": "wh-west", "units": 2}]}])
    );
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 10);
    // The repeated `received` published its event again, with the same id (at-least-once).
    assert_eq!(
        w.published(),
        [
            "return.requested",
            "return.received",
            "return.received",
            "return.inspected",
            "order.partially_refunded",
            "return.refunded"
        ]
    );
    let sent = w.bus.inner.sent.borrow().clone();
    assert_eq!(sent[1].1, sent[2].1);

    // A repeat answers the same and changes nothing; other verdicts are refused.
    assert_eq!(
        w.post(&format!("/v1/returns/{rid}/inspection"), &[], inspection),
        (200, body)
    );
    assert_eq!(w.stock("SKU-1", "wh-west").level.on_hand(), 10);
    assert_eq!(w.record(id).refunds.len(), 1);
    let (status, _) = w.post(
        &format!("/v1/returns/{rid}/inspection"),
        &[],
        json!({"lines": [{"line": 0, "accepted": 1}]}),
    );
    assert_eq!(status, 409);
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
fn an_inspection_interrupted_after_the_refund_completes_on_retry() {
    let w = World::new();
    let id = w.delivered();
    let rid = open_return(&w, id, 2);
    w.call(
        Method::Post,
        &format!("/v1/returns/{rid}/received"),
        &[],
        None,
    );
    let inspection = json!({"lines": [{"line": 0, "accepted": 1}]});
    w.bus.down.set(true);
    assert_eq!(
        w.post(
            &format!("/v1/returns/{rid}/inspection"),
            &[],
            inspection.clone()
        )
        .0,
        503
    );
    assert_eq!(
        w.stock("SKU-1", "wh-west").level.on_hand(),
        9,
        "restocked before publishing"
    );
    w.bus.down.set(false);
    let (status, body) = w.post(&format!("/v1/returns/{rid}/inspection"), &[], inspection);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refund"]["refund"]["amount"]["amount"], "19.99");
    assert_eq!(
        w.stock("SKU-1", "wh-west").level.on_hand(),
        9,
        "not restocked twice"
    );
    assert_eq!(w.record(id).refunds.len(), 1, "not refunded twice");
    assert_eq!(body["return"]["state"], "refunded");
}

#[test]
fn rejected_units_are_neither_refunded_nor_restocked() {
    let w = World::new();
    let id = w.delivered();
    let rid = open_return(&w, id, 1);
    w.call(
        Method::Post,
        &format!("/v1/returns/{rid}/received"),
        &[],
        None,
    );
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
    assert!(w.record(id).refunds.is_empty());
    // The rejected unit can be returned again.
    open_return(&w, id, 2);
}

#[test]
fn returns_restock_where_the_units_shipped_from() {
    let w = World::new();
    w.set_stock("SKU-1", "wh-west", 1);
    w.set_stock("SKU-1", "wh-east", 5);
    let id = w.order(&[("SKU-1", 3, 1000)], true);
    w.reserve(id, &[("SKU-1", "wh-west", 1), ("SKU-1", "wh-east", 2)]);
    w.route(id);
    w.deliver(id);
    let first = open_return(&w, id, 2);
    w.call(
        Method::Post,
        &format!("/v1/returns/{first}/received"),
        &[],
        None,
    );
    let (_, body) = w.post(
        &format!("/v1/returns/{first}/inspection"),
        &[],
        json!({"lines": [{"line": 0, "accepted": 2}]}),
    );
    let placed = |body: &Value| body["restocked"][0]["placements"].clone();
    assert_eq!(
        placed(&body),
        json!([{"sku": "SKU-1", "location": "wh-east", "units": 2}]),
        "{body}"
    );
    // wh-east got back all it shipped: the last unit goes home to wh-west.
    let second = open_return(&w, id, 1);
    w.call(
        Method::Post,
        &format!("/v1/returns/{second}/received"),
        &[],
        None,
    );
    let (_, body) = w.post(
        &format!("/v1/returns/{second}/inspection"),
        &[],
        json!({"lines": [{"line": 0, "accepted": true}]}),
    );
    assert_eq!(
        placed(&body),
        json!([{"sku": "SKU-1", "location": "wh-west", "units": 1}]),
        "{body}"
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
    let id = w.delivered();
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
    assert!(w.record(id).returns.is_empty());
    let fresh = w.order(&[("SKU-1", 1, 1999)], true);
    assert_eq!(
        w.post(
            &format!("/v1/orders/{fresh}/returns"),
            &[],
            json!({"items": [{"line": 0, "quantity": 1}]})
        )
        .0,
        409
    );

    let rid = open_return(&w, id, 1);
    w.call(
        Method::Post,
        &format!("/v1/returns/{rid}/received"),
        &[],
        None,
    );
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
    assert_eq!(
        w.call(
            Method::Get,
            &format!("/v1/returns/{}", Uuid::from_u128(9)),
            &[],
            None
        )
        .0,
        404
    );
    assert_eq!(w.call(Method::Get, "/v1/returns/nope", &[], None).0, 404);
    assert_eq!(
        w.call(Method::Post, &format!("/v1/returns/{rid}"), &[], None)
            .0,
        405
    );
}

#[test]
fn a_cancel_with_an_idempotency_key_replays_and_refuses_another_body() {
    let w = World::new();
    w.set_stock("SKU-1", "wh-west", 5);
    let id = w.order(&[("SKU-1", 1, 1999)], false);
    w.reserve(id, &[("SKU-1", "wh-west", 1)]);
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
