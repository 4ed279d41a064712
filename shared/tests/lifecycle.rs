//! One order through every rule the lifecycle components apply, in the order they apply them:
//! intake → catalogue → reservation → routing → allocation → shipment → delivery → return →
//! refund, with each step recorded on the order's timeline.

use chrono::{Duration, TimeZone, Utc};
use oms_domain::{
    plan, Catalog, Coordinates, Currency, EventType, Fingerprint, Inspection, Inventory, Location,
    LocationId, LocationKind, Money, Order, OrderId, OrderStatus, Quantity, RefundLedger,
    Reservation, ReturnAuthorization, ReturnId, ReturnedItem, RoutingPolicy, RoutingRequest, Sku,
    StockLevel, Timeline,
};
use rust_decimal::Decimal;
use serde_json::json;
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
    inventory = reservation.hold(&inventory).unwrap();
    assert_eq!(
        inventory
            .level(&sku("SKU-1"), &lid("dropship-1"))
            .reserved(),
        2
    );
    timeline
        .transition(OrderStatus::Reserved, ids.next().unwrap(), t0, json!({}))
        .unwrap();

    // route: the drop-shipper drops out, so re-route with the order's own hold released.
    let without_dropship = &locations[..2];
    let released = reservation.release(&inventory).unwrap();
    let rerouted = plan(&request, without_dropship, &released, &policy).unwrap();
    assert_eq!(rerouted.shipments.len(), 2);
    let moved = Reservation::from_plan(order.id(), &rerouted, None).unwrap();
    inventory = moved.allocate(&moved.hold(&released).unwrap()).unwrap();
    assert_eq!(
        inventory.level(&sku("SKU-1"), &lid("wh-west")).allocated(),
        2
    );
    assert_eq!(
        inventory
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
            inventory = inventory
                .update(&line.sku, &shipment.location, |l| l.ship(line.units))
                .unwrap();
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
    assert_eq!(inventory.level(&sku("SKU-1"), &lid("wh-west")).on_hand(), 3);
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
        timeline.status().unwrap(),
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
        inventory = inventory
            .update(&s, &lid("wh-west"), |l| l.receive(units))
            .unwrap();
    }
    assert_eq!(
        inventory.level(&sku("SKU-1"), &lid("wh-west")).available(),
        4
    );
    let (ledger, refund) = RefundLedger::for_order(&order)
        .refund(&order, &ret.refund_items().unwrap())
        .unwrap();
    assert_eq!(refund.amount, Money::parse("19.99", Currency::USD).unwrap());
    let next = if ledger.is_fully_refunded() {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    };
    timeline
        .transition(next, ids.next().unwrap(), t0 + Duration::days(4), json!({}))
        .unwrap();

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
    assert_eq!(replayed.status(), Some(OrderStatus::PartiallyRefunded));
    // Too late to cancel.
    assert!(!replayed.status().unwrap().is_cancellable());
}
