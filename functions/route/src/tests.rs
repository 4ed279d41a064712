//! The route component's steps over `MemEnv`, with faults injected at every I/O call.

use std::collections::BTreeMap;

use chrono::Duration;
use oms_domain::{
    plan, EventEnvelope, EventType, FulfilmentStatus, Location, LocationId, Order, OrderId,
    OrderRecord, OrderStatus, Quantity, RefundCause, RefundItem, Reservation, ReservedLine,
    RoutingRequest, ShipmentId, ShipmentLabel, ShipmentStatus, Sku,
};
use oms_edge::{
    create, for_every_fault, inventory_for, keys, pairs, reconcile, routing_policy, run,
    update_order_stock, Actor, Decision, Env, Fault, FaultPlan, FaultyEnv, FunctionError, Kv,
    MemEnv, StockDoc, Usable,
};
use serde_json::json;
use uuid::Uuid;

use crate::fulfilment::{apply, Update};

/// Staff, as the HTTP handler hands the caller over.
fn staff() -> Actor {
    Actor::Staff { key: None }
}
use crate::routing::{allocate, handle};

const SKU: &str = "SKU-1";
const LOCATIONS: [&str; 3] = ["wh-east", "wh-west", "store-sf"];
const ORDER: u128 = 0xA11CE;

pub(crate) fn order_id() -> String {
    Uuid::from_u128(ORDER).to_string()
}

/// The test network (wh-east, wh-west, store-sf) with `stock` units of SKU-1 per location.
pub(crate) fn network(env: &MemEnv, stock: &[(&str, u32)]) {
    let locations: Vec<Location> =
        serde_json::from_str(include_str!("../../../tests/fixtures/locations.json")).unwrap();
    env.kv.set_json(keys::LOCATIONS, &locations).unwrap();
    for (loc, n) in stock {
        let doc = StockDoc::default().recount(*n).unwrap();
        env.kv.set_json(&keys::stock(SKU, loc), &doc).unwrap();
    }
}

/// A reserved order for `qty` units shipping to San Francisco, holding `held` units per
/// location — stored through the runner as reserve leaves it (events published, route owed).
pub(crate) fn reserved(env: &MemEnv, qty: u32, held: &[(&str, u32)]) -> String {
    let body = json!({
        "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
        "lines": [{"sku": SKU, "quantity": qty, "unit_price": "1.00"}],
        "shipping": {"method": "standard", "amount": "0.00",
            "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF",
                "coordinates": {"lat": 37.77, "lon": -122.41}}},
        "tax": "0.00",
        "totals": {"subtotal": format!("{qty}.00"), "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": format!("{qty}.00")},
        "payment": {"reference": "pi_1", "status": "captured", "amount": format!("{qty}.00")}
    });
    let oid = OrderId::new(Uuid::from_u128(ORDER));
    let order = Order::from_request(&body, oid, env.now()).unwrap();
    create(
        env,
        OrderRecord::accept(order, env.new_id(), env.now()).unwrap(),
    )
    .unwrap();
    let id = order_id();
    let mut lines = Vec::new();
    for (loc, n) in held {
        update_order_stock(&env.kv, SKU, loc, &id, |d| d.hold_at_least(&id, *n)).unwrap();
        lines.push(ReservedLine {
            sku: Sku::parse(SKU).unwrap(),
            location: LocationId::parse(loc).unwrap(),
            units: *n,
        });
    }
    run(env, &id, |r| {
        r.transition(
            OrderStatus::Reserved,
            json!({"lines": lines}),
            env.new_id(),
            env.now(),
        )
        .unwrap();
        r.testkit_set_reservation(Some(Reservation::new(oid, lines.clone(), None).unwrap()));
        Ok(Decision::Changed(()))
    })
    .unwrap();
    id
}

pub(crate) fn record(env: &MemEnv) -> OrderRecord {
    env.kv.get_json(&keys::order(&order_id())).unwrap().unwrap()
}

fn doc(env: &MemEnv, loc: &str) -> StockDoc {
    env.kv
        .get_json(&keys::stock(SKU, loc))
        .unwrap()
        .unwrap_or_default()
}

fn sum(env: &MemEnv, f: impl Fn(&StockDoc) -> u32) -> u32 {
    LOCATIONS.iter().map(|l| f(&doc(env, l))).sum()
}

/// Everything published, as envelopes.
pub(crate) fn published(env: &MemEnv) -> Vec<EventEnvelope> {
    env.bus
        .sent
        .borrow()
        .iter()
        .map(|(_, p)| serde_json::from_slice(p).unwrap())
        .collect()
}

/// Every event on the order's timeline went out at least once with its stored id, and
/// nothing is owed any more.
pub(crate) fn assert_all_published(env: &MemEnv, label: &str) {
    let r = record(env);
    assert!(
        r.outbox().is_empty(),
        "{label}: still owed {:?}",
        r.outbox()
    );
    let sent = published(env);
    for e in r.events() {
        assert!(
            sent.iter().any(|s| s == e),
            "{label}: {} {} was never published as stored",
            e.event_type(),
            e.id()
        );
    }
}

pub(crate) fn count(r: &OrderRecord, t: EventType) -> usize {
    r.events().iter().filter(|e| e.event_type() == t).count()
}

/// The stock an order's routing left: what it holds and what it has allocated, per location.
pub(crate) fn commitments(env: &MemEnv) -> BTreeMap<String, (u32, u32)> {
    LOCATIONS
        .iter()
        .map(|l| (l.to_string(), doc(env, l).commitment(&order_id())))
        .filter(|(_, c)| *c != (0, 0))
        .collect()
}

pub(crate) fn planned(r: &OrderRecord) -> BTreeMap<String, (u32, u32)> {
    r.plan()
        .as_ref()
        .unwrap()
        .units_at()
        .into_iter()
        .map(|((_, l), n)| (l.to_string(), (0, n)))
        .collect()
}

pub(crate) fn redeliver_and_reconcile(env: &MemEnv) {
    handle(env, &order_id()).unwrap();
    env.advance(Duration::seconds(120));
    reconcile(env, Duration::seconds(60), 100).unwrap();
}

#[test]
fn every_fault_while_routing_ends_routed_once_with_the_plans_allocations() {
    // Two units held at store-sf and wh-west: a split plan, two shipments.
    let stock = [("store-sf", 1), ("wh-west", 1), ("wh-east", 3)];
    for_every_fault(
        |env| {
            network(env, &stock);
            reserved(env, 2, &[("store-sf", 1), ("wh-west", 1)]);
        },
        |env| {
            let _ = handle(env, &order_id());
        },
        |env| {
            // A crashed run never keeps more than the order's own units from other orders.
            let own: u32 = commitments(env).values().map(|(h, a)| h + a).sum();
            assert_eq!(own, 2, "the crashed route took units from others");
            redeliver_and_reconcile(env);
        },
        |env, fault| {
            let r = record(env);
            assert_eq!(r.status(), OrderStatus::Routed, "{fault}");
            assert_eq!(count(&r, EventType::OrderRouted), 1, "{fault}: routed once");
            assert_eq!(r.shipments().len(), 2, "{fault}");
            assert_eq!(commitments(env), planned(&r), "{fault}: allocations = plan");
            assert_eq!(sum(env, StockDoc::available), 3, "{fault}: units conserved");
            assert_eq!(sum(env, |d| d.level.on_hand()), 5, "{fault}");
            assert_all_published(env, fault);
            assert!(env.owed.keys().unwrap().is_empty(), "{fault}: nothing owed");
        },
    );
}

/// Route's redelivery publishes everything the order still owes, oldest first (the old code
/// re-published only `order.routed`).
#[test]
fn a_redelivery_publishes_everything_still_owed_not_only_order_routed() {
    let env = MemEnv::new();
    network(&env, &[("wh-west", 1)]);
    let id = reserved(&env, 1, &[("wh-west", 1)]);
    handle(&env, &id).unwrap();
    // Both publishes were refused (reserve's and route's): both events are owed.
    let mut r = record(&env);
    let owed: Vec<EventEnvelope> = r.events()[1..].to_vec();
    r.testkit_set_outbox(owed.iter().map(EventEnvelope::id).collect());
    env.kv.set_json(&keys::order(&id), &r).unwrap();
    let before = published(&env).len();
    handle(&env, &id).unwrap();
    assert_eq!(
        published(&env)[before..],
        owed[..],
        "both, in order, same ids"
    );
    assert_eq!(
        owed.iter().map(|e| e.event_type()).collect::<Vec<_>>(),
        [EventType::OrderReserved, EventType::OrderRouted]
    );
    assert_all_published(&env, "redelivery");
}

#[test]
fn a_lost_allocation_race_gives_the_orders_holds_back_to_the_order() {
    // Two units held at store-sf and wh-west; the split plan loses at wh-west.
    let env = MemEnv::new();
    network(&env, &[("store-sf", 1), ("wh-west", 1)]);
    let id = reserved(&env, 2, &[("store-sf", 1), ("wh-west", 1)]);
    let locations: Vec<Location> = env.kv.get_json(keys::LOCATIONS).unwrap().unwrap();
    let pairs = pairs([&Sku::parse(SKU).unwrap()], &locations);
    let own = inventory_for(&env.kv, &id, &pairs, Usable::OwnOnly).unwrap();
    let p = plan(
        &RoutingRequest::for_order(record(&env).order()),
        &locations,
        &own,
        &routing_policy(&env.kv).unwrap(),
    )
    .unwrap();
    assert_eq!(p.units_at().len(), 2, "{p:?}");
    // wh-west's unit is counted away (shrinkage) between the plan and the allocation: the
    // allocation at store-sf succeeds, the one at wh-west fails.
    update_order_stock(&env.kv, SKU, "wh-west", &id, |d| d.release(&id)?.recount(0)).unwrap();
    assert!(!allocate(&env.kv, &id, &p).unwrap());
    let store = doc(&env, "store-sf");
    assert_eq!(
        (store.commitment(&id), store.available()),
        ((1, 0), 0),
        "the order still holds its unit at store-sf; none became free stock"
    );
}

#[test]
fn a_duplicate_delivery_leaves_only_the_stored_plans_allocations() {
    let env = MemEnv::new();
    network(&env, &[("wh-east", 2), ("wh-west", 2)]);
    let id = reserved(&env, 1, &[("wh-west", 1)]);
    // An earlier run allocated at wh-east and died before storing its plan.
    update_order_stock(&env.kv, SKU, "wh-east", &id, |d| d.allocate(&id, 1)).unwrap();
    handle(&env, &id).unwrap();
    handle(&env, &id).unwrap();
    let r = record(&env);
    assert_eq!(r.status(), OrderStatus::Routed);
    assert_eq!(count(&r, EventType::OrderRouted), 1);
    assert_eq!(commitments(&env), planned(&r), "one unit, as planned");
    assert_eq!(sum(&env, StockDoc::available), 3);
    assert_all_published(&env, "duplicate");
}

/// A duplicate run that allocated more units at a planned location than the stored plan
/// (it planned differently and lost the race to store): the redelivery settles the
/// allocation to the plan's units, and the extra unit becomes available again.
#[test]
fn a_duplicates_extra_units_at_a_planned_location_are_settled_to_the_plan() {
    let env = MemEnv::new();
    network(&env, &[("store-sf", 1), ("wh-west", 2)]);
    let id = reserved(&env, 2, &[("store-sf", 1), ("wh-west", 1)]);
    handle(&env, &id).unwrap();
    let r = record(&env);
    assert_eq!(
        planned(&r),
        BTreeMap::from([("store-sf".into(), (0, 1)), ("wh-west".into(), (0, 1))]),
        "a split plan on the order's own holds"
    );
    // The losing duplicate's allocation of both units at wh-west lands after the plan.
    update_order_stock(&env.kv, SKU, "wh-west", &id, |d| d.allocate(&id, 2)).unwrap();
    assert_eq!(sum(&env, StockDoc::available), 0);
    handle(&env, &id).unwrap();
    assert_eq!(commitments(&env), planned(&r));
    assert_eq!(sum(&env, StockDoc::available), 1);
}

/// A routed order (one shipment of `qty` units from wh-west) and its shipment id.
fn routed(env: &MemEnv, qty: u32) -> ShipmentId {
    network(env, &[("wh-west", qty), ("wh-east", qty)]);
    reserved(env, qty, &[("wh-west", qty)]);
    handle(env, &order_id()).unwrap();
    record(env).shipments()[0].id
}

fn shipped() -> Update {
    Update::Shipped {
        carrier: ShipmentLabel::parse("ups").unwrap(),
        tracking: ShipmentLabel::parse("1Z999").unwrap(),
    }
}

#[test]
fn every_fault_while_shipping_and_delivering_ends_delivered_once() {
    let sid = || ShipmentId::new(OrderId::new(Uuid::from_u128(ORDER)), 1).unwrap();
    for_every_fault(
        |env| {
            routed(env, 2);
        },
        |env| {
            let _ = apply(env, &staff(), &sid(), &shipped());
            let _ = apply(env, &staff(), &sid(), &Update::Delivered);
        },
        |env| {
            // The 3PL retries both requests until answered; the reconciler runs.
            apply(env, &staff(), &sid(), &shipped()).unwrap();
            apply(env, &staff(), &sid(), &Update::Delivered).unwrap();
            env.advance(Duration::seconds(120));
            reconcile(env, Duration::seconds(60), 100).unwrap();
        },
        |env, fault| {
            let r = record(env);
            assert_eq!(r.status(), OrderStatus::Delivered, "{fault}");
            assert_eq!(
                r.fulfilment_status(),
                FulfilmentStatus::Delivered,
                "{fault}"
            );
            assert_eq!(count(&r, EventType::OrderShipped), 1, "{fault}");
            assert_eq!(count(&r, EventType::OrderDelivered), 1, "{fault}");
            assert_eq!(
                r.shipments()[0].tracking.as_deref(),
                Some("1Z999"),
                "{fault}"
            );
            assert_all_published(env, fault);
            // The two units left wh-west exactly once; wh-east untouched.
            let west = doc(env, "wh-west");
            assert_eq!(west.level.on_hand(), 0, "{fault}");
            assert_eq!(west.commitment(&order_id()), (0, 0), "{fault}");
            assert_eq!(doc(env, "wh-east").available(), 2, "{fault}");
            assert!(env.owed.keys().unwrap().is_empty(), "{fault}");
        },
    );
}

/// The defect: the shipped event was lost when its publish failed after the write, and the
/// retry answered 200 without publishing it. Now the write owes it (outbox): whichever I/O
/// call fails — the publish after the write included — the shipped event goes out, always
/// with the id it was stored under (sent by the same request's stock-move step or by the
/// retry).
#[test]
fn a_shipped_event_whose_publish_failed_is_sent_later_with_its_stored_id() {
    let counting = FaultPlan::new(None, Fault::Error);
    {
        let env = MemEnv::new();
        let sid = routed(&env, 1);
        apply(&FaultyEnv::new(&env, &counting), &staff(), &sid, &shipped()).unwrap();
    }
    assert!(counting.calls() > 4, "{}", counting.calls());
    for at in 1..=counting.calls() {
        let env = MemEnv::new();
        let sid = routed(&env, 1);
        let before = published(&env).len();
        let plan = FaultPlan::new(Some(at), Fault::Error);
        let _ = apply(&FaultyEnv::new(&env, &plan), &staff(), &sid, &shipped());
        assert!(plan.fired(), "call {at}");
        let retry = apply(&env, &staff(), &sid, &shipped()).unwrap();
        assert_eq!(retry.status, ShipmentStatus::Shipped);
        let r = record(&env);
        let stored = r
            .events()
            .iter()
            .find(|e| e.event_type() == EventType::OrderShipped)
            .cloned()
            .unwrap();
        // At least once, always the stored event (a failure after the publish, while marking
        // it published, sends it again — the same id, which receivers de-duplicate on).
        let sent = &published(&env)[before..];
        assert!(!sent.is_empty(), "call {at}: never sent");
        assert!(sent.iter().all(|e| *e == stored), "call {at}: {sent:?}");
        assert!(r.outbox().is_empty(), "call {at}");
    }
}

/// A cancel that lands between the update's checks and its write (it drops the allocated
/// shipments) made the old code panic in `.position(..).unwrap()`; now it is a 409.
#[test]
fn shipping_a_cancelled_order_is_a_conflict_even_when_its_shipment_is_gone() {
    let env = MemEnv::new();
    let sid = routed(&env, 1);
    run(&env, &order_id(), |r| {
        r.transition(OrderStatus::Cancelled, json!({}), env.new_id(), env.now())
            .unwrap();
        r.testkit_shipments_mut()
            .retain(|s| s.status != ShipmentStatus::Allocated);
        Ok(Decision::Changed(()))
    })
    .unwrap();
    for update in [shipped(), Update::Delivered] {
        match apply(&env, &staff(), &sid, &update) {
            Err(FunctionError::Problem(p)) => assert_eq!(p.status, 409, "{p:?}"),
            other => panic!("expected a 409, got {other:?}"),
        }
    }
    let unknown = ShipmentId::new(OrderId::new(Uuid::from_u128(7)), 1).unwrap();
    match apply(&env, &staff(), &unknown, &shipped()) {
        Err(FunctionError::Problem(p)) => assert_eq!(p.status, 404, "{p:?}"),
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[test]
fn shipped_bodies_are_parsed_into_labels_or_refused_naming_the_field() {
    assert_eq!(
        Update::shipped(&json!({"carrier": "ups", "tracking": "1Z999"})).unwrap(),
        shipped()
    );
    for (body, field) in [
        (json!({"tracking": "1Z"}), "/carrier"),
        (json!({"carrier": "ups", "tracking": " "}), "/tracking"),
        (
            json!({"carrier": "ups", "tracking": "x".repeat(129)}),
            "/tracking",
        ),
        (json!({"carrier": 5, "tracking": "1Z"}), "/carrier"),
    ] {
        match Update::shipped(&body) {
            Err(FunctionError::Problem(p)) => {
                assert_eq!(p.status, 422);
                assert_eq!(p.invalid_params[0].name, field);
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

/// Payment is its own dimension: after a partial refund of a split order, its remaining
/// shipment still ships and every shipment is delivered (a refund used to move the order to
/// `partially_refunded`, after which shipping was a 409 forever).
#[test]
fn a_partially_refunded_split_order_still_ships_and_delivers() {
    let env = MemEnv::new();
    network(&env, &[("store-sf", 1), ("wh-west", 1)]);
    let id = reserved(&env, 2, &[("store-sf", 1), ("wh-west", 1)]);
    handle(&env, &id).unwrap();
    let ids: Vec<ShipmentId> = record(&env).shipments().iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2, "a split order");
    apply(&env, &staff(), &ids[0], &shipped()).unwrap();
    run(&env, &id, |r| {
        let items = [RefundItem::Line {
            line: 0,
            quantity: Quantity::new(1).unwrap(),
        }];
        let cause = RefundCause::Request {
            idempotency_key: "k1".into(),
        };
        r.refund(cause, &items, None, env.new_id(), env.now())
            .unwrap();
        Ok(Decision::Changed(()))
    })
    .unwrap();
    apply(&env, &staff(), &ids[1], &shipped()).unwrap();
    for sid in &ids {
        apply(&env, &staff(), sid, &Update::Delivered).unwrap();
    }
    let r = record(&env);
    assert_eq!(r.status(), OrderStatus::Delivered);
    assert_eq!(r.fulfilment_status(), FulfilmentStatus::Delivered);
    assert_eq!(count(&r, EventType::OrderPartiallyRefunded), 1);
    assert_all_published(&env, "split");
}

/// The crash window between a shipment's write and its stock leaving: with no retry from the
/// 3PL at all, the reconciler alone moves the stock — once — for every write that stood.
#[test]
fn a_shipment_update_that_dies_after_its_write_moves_its_stock_through_the_reconciler() {
    let sid = || ShipmentId::new(OrderId::new(Uuid::from_u128(ORDER)), 1).unwrap();
    for_every_fault(
        |env| {
            routed(env, 2);
        },
        |env| {
            let _ = apply(env, &staff(), &sid(), &shipped());
        },
        |env| {
            env.advance(Duration::seconds(120));
            reconcile(env, Duration::seconds(60), 100).unwrap();
        },
        |env, fault| {
            let r = record(env);
            let west = doc(env, "wh-west");
            if r.shipments()[0].status == ShipmentStatus::Allocated {
                assert_eq!(west.level.on_hand(), 2, "{fault}: nothing shipped");
                assert_eq!(west.allocated_to(&order_id()), 2, "{fault}");
            } else {
                assert_eq!(west.level.on_hand(), 0, "{fault}: shipped once");
                assert_eq!(west.commitment(&order_id()), (0, 0), "{fault}");
            }
            assert!(r.pending_moves().is_empty(), "{fault}");
            assert_all_published(env, fault);
        },
    );
}

/// A fulfilment key acts for its own location's shipments only: another location's key is a
/// 403 that changes nothing; the key that may is recorded on the event.
#[test]
fn a_fulfilment_key_updates_only_its_own_locations_shipments() {
    let env = MemEnv::new();
    network(&env, &[("store-sf", 1), ("wh-west", 1)]);
    let id = reserved(&env, 2, &[("store-sf", 1), ("wh-west", 1)]);
    handle(&env, &id).unwrap();
    let shipments: Vec<(ShipmentId, String)> = record(&env)
        .shipments()
        .iter()
        .map(|s| (s.id, s.location.as_str().to_string()))
        .collect();
    let (sid, location) = shipments[0].clone();
    let other = shipments[1].1.clone();
    let dock = |location: &str, key: &str| Actor::Fulfilment {
        key: key.into(),
        location: location.into(),
    };
    let before = serde_json::to_string(&record(&env)).unwrap();
    let sent = env.published().len();
    for update in [shipped(), Update::Delivered] {
        match apply(&env, &dock(&other, "k-other"), &sid, &update) {
            Err(FunctionError::Problem(p)) => assert_eq!(p.status, 403, "{p:?}"),
            got => panic!("another location's key: {got:?}"),
        }
    }
    assert_eq!(serde_json::to_string(&record(&env)).unwrap(), before);
    assert_eq!(env.published().len(), sent, "nothing published");
    apply(&env, &dock(&location, "k-own"), &sid, &shipped()).unwrap();
    let last = record(&env).events().last().cloned().unwrap();
    assert_eq!(last.actor(), Some("fulfilment:k-own"));
}
