//! One order through every rule the lifecycle components apply, in the order they apply them:
//! intake → catalogue → reservation → routing → allocation → shipment → delivery → return →
//! refund, with each step recorded on the order's timeline.

use chrono::{Duration, TimeZone, Utc};
use oms_domain::{
    plan, Catalog, Coordinates, Currency, EventType, Fingerprint, FulfilmentPlan, Inspection,
    Inventory, Location, LocationId, LocationKind, Money, Order, OrderId, OrderRecord, OrderStatus,
    PaymentError, PaymentState, Quantity, RefundCause, RefundItem, RefundLedger, Reservation,
    ReturnAuthorization, ReturnError, ReturnId, ReturnState, ReturnedItem, RoutingPolicy,
    RoutingRequest, Shipment, ShipmentId, ShipmentLabel, ShipmentLine, Sku, StockDoc, StockLevel,
    Timeline,
};
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::BTreeMap;
use uuid::Uuid;

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn lid(s: &str) -> LocationId {
    LocationId::parse(s).unwrap()
}

#[test]
fn an_order_from_checkout_to_refund() {
    let t0 = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    let mut ids = (1u128..).map(Uuid::from_u128);
    let body = json!({
        "channel": "web",
        "customer": {"email": "ada@example.com"},
        "currency": "USD",
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"},
            {"sku": "SKU-2", "quantity": 1, "unit_price": "5.50"}
        ],
        "shipping": {"method": "standard", "amount": "4.95", "address": {
            "country": "US", "postal_code": "10001", "line1": "1 Broadway", "city": "New York",
            "coordinates": {"lat": 40.75, "lon": -73.99}}},
        "tax": "0.00",
        "totals": {"subtotal": "45.48", "discount": "0.00", "shipping": "4.95", "tax": "0.00", "grand_total": "50.43"},
        "payment": {"reference": "pi_9", "status": "captured", "amount": "50.43"}
    });

    // validate: idempotency fingerprint, intake, catalogue.
    let fingerprint = Fingerprint::of_json(&body);
    let reordered: serde_json::Value =
        serde_json::from_str(&serde_json::to_string_pretty(&body).unwrap()).unwrap();
    assert_eq!(Fingerprint::of_json(&reordered), fingerprint);
    let order = Order::from_request(&body, OrderId::new(ids.next().unwrap()), t0).unwrap();
    let catalog: Catalog =
        serde_json::from_value(json!({"SKU-1": {"USD": "19.99"}, "SKU-2": {"USD": "5.50"}}))
            .unwrap();
    catalog.check(&order).unwrap();
    let mut timeline = Timeline::new(order.id());
    timeline
        .transition(OrderStatus::Validated, ids.next().unwrap(), t0, json!({}))
        .unwrap();

    // reserve: SKU-1 only in the west, SKU-2 only in the east → two locations.
    let locations = vec![
        Location::new(
            lid("wh-east"),
            LocationKind::Warehouse,
            Coordinates::new(40.7, -74.2).unwrap(),
        ),
        Location::new(
            lid("wh-west"),
            LocationKind::Warehouse,
            Coordinates::new(37.4, -122.0).unwrap(),
        ),
        Location::new(
            lid("dropship-1"),
            LocationKind::Dropship,
            Coordinates::new(41.9, -87.6).unwrap(),
        )
        .with_costs(Decimal::new(2500, 2), Decimal::ZERO)
        .unwrap(),
    ];
    let mut inventory = Inventory::new();
    inventory.set(sku("SKU-1"), lid("wh-west"), StockLevel::with_on_hand(5));
    inventory.set(
        sku("SKU-1"),
        lid("dropship-1"),
        StockLevel::with_on_hand(100),
    );
    inventory.set(sku("SKU-2"), lid("wh-east"), StockLevel::with_on_hand(1));
    inventory.set(
        sku("SKU-2"),
        lid("dropship-1"),
        StockLevel::with_on_hand(100),
    );
    assert!(inventory.shortfalls(&order.units_by_sku()).is_empty());
    let policy = RoutingPolicy::new(2, Decimal::new(1, 2)).unwrap();
    let request = RoutingRequest::for_order(&order);
    let fulfilment = plan(&request, &locations, &inventory, &policy).unwrap();
    // The drop-shipper alone can serve the whole order: one shipment beats two.
    assert_eq!(fulfilment.shipments.len(), 1);
    assert_eq!(fulfilment.shipments[0].location, lid("dropship-1"));
    let reservation =
        Reservation::from_plan(order.id(), &fulfilment, Some(t0 + Duration::minutes(30))).unwrap();
    // The stock ledger per (SKU, location), as the steps keep it in the store.
    let oid = order.id().to_string();
    let mut docs: BTreeMap<(Sku, LocationId), StockDoc> = inventory
        .iter()
        .map(|(s, l, level)| {
            let doc = StockDoc::default().recount(level.on_hand()).unwrap();
            ((s.clone(), l.clone()), doc)
        })
        .collect();
    let levels = |docs: &BTreeMap<(Sku, LocationId), StockDoc>| {
        let mut inv = Inventory::new();
        for ((s, l), d) in docs {
            inv.set(s.clone(), l.clone(), d.level);
        }
        inv
    };
    for line in reservation.lines() {
        let doc = docs
            .get_mut(&(line.sku.clone(), line.location.clone()))
            .unwrap();
        let (next, got) = doc.hold_up_to(&oid, line.units).unwrap();
        assert_eq!(got, line.units);
        *doc = next;
    }
    assert_eq!(
        levels(&docs)
            .level(&sku("SKU-1"), &lid("dropship-1"))
            .reserved(),
        2
    );
    timeline
        .transition(OrderStatus::Reserved, ids.next().unwrap(), t0, json!({}))
        .unwrap();

    // route: the drop-shipper drops out, so re-route with the order's own hold released.
    let without_dropship = &locations[..2];
    for doc in docs.values_mut() {
        *doc = doc.release(&oid).unwrap();
    }
    let released = levels(&docs);
    let rerouted = plan(&request, without_dropship, &released, &policy).unwrap();
    assert_eq!(rerouted.shipments.len(), 2);
    let moved = Reservation::from_plan(order.id(), &rerouted, None).unwrap();
    for line in moved.lines() {
        let doc = docs
            .get_mut(&(line.sku.clone(), line.location.clone()))
            .unwrap();
        *doc = doc.allocate(&oid, line.units).unwrap();
    }
    assert_eq!(
        levels(&docs)
            .level(&sku("SKU-1"), &lid("wh-west"))
            .allocated(),
        2
    );
    assert_eq!(
        levels(&docs)
            .level(&sku("SKU-1"), &lid("dropship-1"))
            .reserved(),
        0
    );
    timeline
        .transition(
            OrderStatus::Routed,
            ids.next().unwrap(),
            t0,
            serde_json::to_value(&rerouted).unwrap(),
        )
        .unwrap();

    // ship each parcel, then deliver.
    for (i, shipment) in rerouted.shipments.iter().enumerate() {
        for line in &shipment.lines {
            let doc = docs
                .get_mut(&(line.sku.clone(), shipment.location.clone()))
                .unwrap();
            *doc = doc.ship(&oid).unwrap();
        }
        let status = if i + 1 == rerouted.shipments.len() {
            OrderStatus::Shipped
        } else {
            OrderStatus::PartiallyShipped
        };
        timeline
            .transition(
                status,
                ids.next().unwrap(),
                t0 + Duration::hours(i as i64 + 1),
                json!({}),
            )
            .unwrap();
    }
    assert_eq!(
        levels(&docs)
            .level(&sku("SKU-1"), &lid("wh-west"))
            .on_hand(),
        3
    );
    timeline
        .transition(
            OrderStatus::Delivered,
            ids.next().unwrap(),
            t0 + Duration::days(2),
            json!({}),
        )
        .unwrap();

    // return one unit of SKU-1, accept it, restock and refund it.
    let ret = ReturnAuthorization::request(
        ReturnId::new(ids.next().unwrap()),
        &order,
        &[2, 1],
        &[ReturnedItem {
            line: 0,
            quantity: Quantity::ONE,
        }],
        &[],
    )
    .unwrap();
    timeline
        .record(
            EventType::ReturnRequested,
            ids.next().unwrap(),
            t0 + Duration::days(3),
            json!({}),
        )
        .unwrap();
    let ret = ret
        .receive()
        .unwrap()
        .inspect(&[Inspection {
            line: 0,
            accepted: 1,
        }])
        .unwrap();
    for (s, units) in ret.restock() {
        let doc = docs.get_mut(&(s, lid("wh-west"))).unwrap();
        *doc = doc
            .receive_once(&format!("return:{}", ret.id()), units)
            .unwrap();
    }
    assert_eq!(
        levels(&docs)
            .level(&sku("SKU-1"), &lid("wh-west"))
            .available(),
        4
    );
    let (ledger, refund) = RefundLedger::for_order(&order)
        .refund(&order, &ret.refund_items().unwrap())
        .unwrap();
    assert_eq!(refund.amount, Money::parse("19.99", Currency::USD).unwrap());
    let refunded = if ledger.is_fully_refunded() {
        EventType::OrderRefunded
    } else {
        EventType::OrderPartiallyRefunded
    };
    timeline
        .record(
            refunded,
            ids.next().unwrap(),
            t0 + Duration::days(4),
            json!({}),
        )
        .unwrap();
    assert_eq!(
        PaymentState::of(&ledger, false),
        PaymentState::PartiallyRefunded
    );

    // The timeline is the ordered history, and it survives storage.
    let types: Vec<&str> = timeline
        .events()
        .iter()
        .map(|e| e.event_type().as_str())
        .collect();
    assert_eq!(
        types,
        [
            "order.validated",
            "order.reserved",
            "order.routed",
            "order.partially_shipped",
            "order.shipped",
            "order.delivered",
            "return.requested",
            "order.partially_refunded"
        ]
    );
    let stored = serde_json::to_string(timeline.events()).unwrap();
    let replayed =
        Timeline::from_events(order.id(), serde_json::from_str(&stored).unwrap()).unwrap();
    // The refund is the payment dimension's: the order stays delivered.
    assert_eq!(replayed.status(), Some(OrderStatus::Delivered));
    // Too late to cancel.
    assert!(!replayed.status().unwrap().is_cancellable());
}

/// A captured order of 2 × SKU-1 (19.99) and 1 × SKU-2 (5.50), routed as two shipments:
/// SKU-1 from wh-west (`{order}-1`), SKU-2 from wh-east (`{order}-2`).
fn split_order() -> (OrderRecord, impl FnMut() -> Uuid) {
    let t0 = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    let mut n = 100u128;
    let mut ids = move || {
        n += 1;
        Uuid::from_u128(n)
    };
    let body = json!({
        "channel": "web",
        "customer": {"email": "ada@example.com"},
        "currency": "USD",
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": "19.99"},
            {"sku": "SKU-2", "quantity": 1, "unit_price": "5.50"}
        ],
        "shipping": {"method": "standard", "amount": "4.95", "address": {
            "country": "US", "postal_code": "10001", "line1": "1 Broadway", "city": "New York"}},
        "tax": "0.00",
        "totals": {"subtotal": "45.48", "discount": "0.00", "shipping": "4.95", "tax": "0.00", "grand_total": "50.43"},
        "payment": {"reference": "pi_9", "status": "captured", "amount": "50.43"}
    });
    let order = Order::from_request(&body, OrderId::new(ids()), t0).unwrap();
    let mut record = OrderRecord::accept(order, ids(), t0).unwrap();
    record
        .transition(OrderStatus::Reserved, json!({}), ids(), t0)
        .unwrap();
    let shipment = |loc: &str, s: &str, units| Shipment {
        location: lid(loc),
        kind: LocationKind::Warehouse,
        lines: vec![ShipmentLine { sku: sku(s), units }],
        distance_km: None,
        cost: Decimal::ZERO,
    };
    let plan = FulfilmentPlan {
        shipments: vec![
            shipment("wh-west", "SKU-1", 2),
            shipment("wh-east", "SKU-2", 1),
        ],
        total_cost: Decimal::ZERO,
    };
    record.route(plan, ids(), t0).unwrap();
    (record, ids)
}

fn label(s: &str) -> ShipmentLabel {
    ShipmentLabel::parse(s).unwrap()
}

#[test]
fn a_partial_refund_on_a_split_order_leaves_the_rest_to_ship_and_deliver() {
    let (mut record, mut ids) = split_order();
    let now = Utc.with_ymd_and_hms(2025, 6, 2, 12, 0, 0).unwrap();
    let (first, second) = (
        ShipmentId::new(record.order().id(), 1).unwrap(),
        ShipmentId::new(record.order().id(), 2).unwrap(),
    );
    assert_eq!(record.payment_status(), PaymentState::Paid);
    record
        .ship(&first, label("ups"), label("1Z1"), ids(), now)
        .unwrap();
    assert_eq!(record.status(), OrderStatus::PartiallyShipped);

    // A goodwill refund on the partly shipped order: the payment moves, the order does not.
    let cause = RefundCause::Request {
        idempotency_key: "k-1".into(),
    };
    let five = [RefundItem::Amount {
        amount: Money::parse("5.00", Currency::USD).unwrap(),
    }];
    assert!(record
        .refund(cause.clone(), &five, Some("late".into()), ids(), now)
        .unwrap());
    assert_eq!(record.status(), OrderStatus::PartiallyShipped);
    assert_eq!(record.payment_status(), PaymentState::PartiallyRefunded);
    assert_eq!(
        record.owed_events().last().unwrap().event_type(),
        EventType::OrderPartiallyRefunded,
        "the refund's event is in the outbox"
    );
    // The same cause again (a retry, a redelivery) books nothing.
    let before = record.ledger().clone();
    assert!(!record
        .refund(cause.clone(), &five, None, ids(), now)
        .unwrap());
    assert_eq!(record.ledger(), &before);
    assert_eq!(record.refund_for(&cause).unwrap().refunded_total, "5.00");

    // The second shipment still ships, and the order is delivered.
    record
        .ship(&second, label("ups"), label("1Z2"), ids(), now)
        .unwrap();
    assert_eq!(record.status(), OrderStatus::Shipped);
    record.deliver(&first, ids(), now).unwrap();
    record.deliver(&second, ids(), now).unwrap();
    assert_eq!(record.status(), OrderStatus::Delivered);
    assert_eq!(record.payment_status(), PaymentState::PartiallyRefunded);
    record.timeline().unwrap();

    // Refunding the rest makes the payment refunded; the order stays delivered.
    let rest = [RefundItem::Amount {
        amount: record.ledger().refundable(),
    }];
    let all = RefundCause::Request {
        idempotency_key: "k-2".into(),
    };
    assert!(record.refund(all, &rest, None, ids(), now).unwrap());
    assert_eq!(
        (record.status(), record.payment_status()),
        (OrderStatus::Delivered, PaymentState::Refunded)
    );
    assert!(matches!(
        record.refund(
            RefundCause::Request {
                idempotency_key: "k-3".into()
            },
            &five,
            None,
            ids(),
            now
        ),
        Err(PaymentError::FullyRefunded)
    ));
}

#[test]
fn returns_are_capped_by_units_shipped_and_replayed_from_the_timeline() {
    let (mut record, mut ids) = split_order();
    let now = Utc.with_ymd_and_hms(2025, 6, 2, 12, 0, 0).unwrap();
    let item = |line, q| ReturnedItem {
        line,
        quantity: Quantity::new(q).unwrap(),
    };
    let rid = ReturnId::new(Uuid::from_u128(7));
    // Nothing shipped: nothing to return.
    assert_eq!(
        record.request_return(rid, &[item(0, 1)], None, ids(), now),
        Err(PaymentError::Return(ReturnError::NothingShipped))
    );
    // Only SKU-1's shipment left: SKU-2 (line 1) cannot come back yet.
    let first = ShipmentId::new(record.order().id(), 1).unwrap();
    record
        .ship(&first, label("ups"), label("1Z1"), ids(), now)
        .unwrap();
    assert_eq!(record.units_shipped(), [2, 0]);
    let before = record.events().len();
    assert!(matches!(
        record.request_return(rid, &[item(0, 1), item(1, 1)], None, ids(), now),
        Err(PaymentError::Return(ReturnError::QuantityExceeded {
            line: 1,
            remaining: 0,
            ..
        }))
    ));
    assert_eq!(
        record.events().len(),
        before,
        "a refused return records nothing"
    );
    assert!(record
        .request_return(rid, &[item(0, 2)], Some("too big".into()), ids(), now)
        .unwrap());
    assert!(
        !record
            .request_return(rid, &[item(0, 2)], None, ids(), now)
            .unwrap(),
        "the same return again opens nothing"
    );
    assert_eq!(record.returns(), [rid]);
    assert!(matches!(
        record.inspect_return(rid, &[], [ids(), ids(), ids()], now),
        Err(PaymentError::Return(ReturnError::WrongState { .. }))
    ));
    assert!(record.receive_return(rid, ids(), now).unwrap());
    assert!(!record.receive_return(rid, ids(), now).unwrap());
    let verdicts = [Inspection {
        line: 0,
        accepted: 1,
    }];
    assert!(record
        .inspect_return(rid, &verdicts, [ids(), ids(), ids()], now)
        .unwrap());
    let ra = record.find_return(rid).unwrap();
    assert_eq!(ra.state(), ReturnState::Refunded);
    assert_eq!(
        record.restock_of(rid)[0].placements[0].location,
        lid("wh-west")
    );
    let refund = record
        .refund_for(&RefundCause::Return { return_id: rid })
        .unwrap();
    assert_eq!(
        refund.refund.amount,
        Money::parse("19.99", Currency::USD).unwrap()
    );
    // A repeat with the same verdicts changes nothing; other verdicts are refused.
    assert!(!record
        .inspect_return(rid, &verdicts, [ids(), ids(), ids()], now)
        .unwrap());
    assert_eq!(
        record.inspect_return(
            rid,
            &[Inspection {
                line: 0,
                accepted: 2
            }],
            [ids(), ids(), ids()],
            now
        ),
        Err(PaymentError::VerdictsDiffer(ReturnState::Refunded))
    );
    assert_eq!(record.refunds().len(), 1);
    // The rejected unit of line 0 can come back again; still nothing of line 1.
    let again = ReturnId::new(Uuid::from_u128(8));
    assert!(record
        .request_return(again, &[item(0, 1)], None, ids(), now)
        .unwrap());
    let types: Vec<&str> = record
        .events()
        .iter()
        .skip(before)
        .map(|e| e.event_type().as_str())
        .collect();
    assert_eq!(
        types,
        [
            "return.requested",
            "return.received",
            "return.inspected",
            "order.partially_refunded",
            "return.refunded",
            "return.requested"
        ]
    );
    assert_eq!(record.status(), OrderStatus::PartiallyShipped);
}

#[test]
fn cancelling_records_the_cancellation_and_refunds_a_capture_once() {
    let (mut record, mut ids) = split_order();
    let now = Utc.with_ymd_and_hms(2025, 6, 2, 12, 0, 0).unwrap();
    assert!(record
        .cancel(Some("changed mind".into()), [ids(), ids()], now)
        .unwrap());
    assert_eq!(record.status(), OrderStatus::Cancelled);
    assert_eq!(record.payment_status(), PaymentState::Refunded);
    let owed: Vec<EventType> = record
        .owed_events()
        .iter()
        .map(|e| e.event_type())
        .collect();
    assert_eq!(
        &owed[owed.len() - 2..],
        [EventType::OrderCancelled, EventType::OrderRefunded]
    );
    assert!(!record.cancel(None, [ids(), ids()], now).unwrap());
    assert_eq!(record.refunds().len(), 1);

    // Shipped orders cannot be cancelled, and nothing changes when refused.
    let (mut shipped, mut ids) = split_order();
    let first = ShipmentId::new(shipped.order().id(), 1).unwrap();
    shipped
        .ship(&first, label("ups"), label("1Z1"), ids(), now)
        .unwrap();
    let before = shipped.events().len();
    assert_eq!(
        shipped.cancel(None, [ids(), ids()], now),
        Err(PaymentError::NotCancellable(OrderStatus::PartiallyShipped))
    );
    assert_eq!(shipped.events().len(), before);
}
