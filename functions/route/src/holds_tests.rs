//! Order holds over `MemEnv`: a held order is reserved but not routed (neither by the queue
//! nor by the reconciler), and placing, releasing and the routing after a release end the
//! same with a fault injected at every I/O call.

use chrono::Duration;
use oms_domain::{
    ChannelId, EventEnvelope, EventType, HoldNote, HoldReason, Order, OrderId, OrderRecord,
    OrderStatus, Sku,
};
use oms_edge::aliases::{self, AliasKind};
use oms_edge::{
    create, for_every_fault, keys, reconcile, Actor, Env, FunctionError, Kv, MemEnv, RacingEnv,
    StockDoc,
};
use serde_json::json;

use crate::holds::{place, release, PlaceHold, ReleaseHold};
use crate::routing::handle;
use crate::tests::{
    assert_all_published, commitments, count, network, order_id, planned, record,
    redeliver_and_reconcile, reserved,
};

const STOCK: [(&str, u32); 2] = [("wh-west", 1), ("wh-east", 1)];

fn staff() -> Actor {
    Actor::Staff { key: None }
}

fn id() -> OrderId {
    OrderId::parse(&order_id()).unwrap()
}

fn staff_hold() -> PlaceHold {
    PlaceHold {
        reason: HoldReason::Staff,
        note: Some(HoldNote::parse("customer asked to wait").unwrap()),
    }
}

fn no_note() -> ReleaseHold {
    ReleaseHold {
        note: None,
        address: None,
    }
}

/// A reserved order (one unit held at wh-west) with everything published.
fn setup(env: &MemEnv) {
    network(env, &STOCK);
    reserved(env, 1, &[("wh-west", 1)]);
}

/// `setup`, then held by staff (published).
fn setup_held(env: &MemEnv) {
    setup(env);
    place(env, &staff(), &id(), &staff_hold()).unwrap();
}

/// What a client retry, the queue and the reconciler do next: `again` (a retry, which may
/// answer 409 when the first attempt was stored), every owed event published, and the routing
/// step delivered the order's events.
fn retry_and_settle(env: &MemEnv, again: impl Fn(&MemEnv) -> Result<(), FunctionError>) {
    match again(env) {
        Ok(()) => {}
        Err(FunctionError::Problem(p)) if p.status == 409 => {}
        Err(e) => panic!("retry: {e:?}"),
    }
    redeliver_and_reconcile(env);
}

#[test]
fn a_held_order_stays_reserved_and_nothing_re_drives_it() {
    let env = MemEnv::new();
    setup_held(&env);
    let r = record(&env);
    assert!(r.has_hold(HoldReason::Staff));
    assert_eq!(r.events().last().unwrap().actor(), Some("staff:root"));
    // The order.reserved delivery, redeliveries, and the reconciler long after.
    for _ in 0..3 {
        handle(&env, &order_id()).unwrap();
        env.advance(Duration::minutes(10));
        let report = reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert!(report.redriven.is_empty(), "{report:?}");
    }
    let r = record(&env);
    assert_eq!(r.status(), OrderStatus::Reserved);
    assert!(r.shipments().is_empty());
    assert!(env.owed.keys().unwrap().is_empty(), "nothing owed");
    assert_all_published(&env, "held");
    assert_eq!(
        commitments(&env).get("wh-west"),
        Some(&(1, 0)),
        "the reservation is kept"
    );

    assert_eq!(
        place(&env, &staff(), &id(), &staff_hold()).unwrap_err_status(),
        409,
        "one hold per reason"
    );
    let released = release(&env, &staff(), &id(), HoldReason::Staff, &no_note()).unwrap();
    assert!(released.holds.is_empty());
    assert_eq!(
        release(&env, &staff(), &id(), HoldReason::Staff, &no_note()).unwrap_err_status(),
        409,
        "released once"
    );
    handle(&env, &order_id()).unwrap();
    let r = record(&env);
    assert_eq!(r.status(), OrderStatus::Routed);
    assert_eq!(commitments(&env), planned(&r));
}

#[test]
fn every_fault_while_placing_a_hold_ends_held_once_and_not_routed() {
    for_every_fault(
        setup,
        |env| {
            let _ = place(env, &staff(), &id(), &staff_hold());
        },
        |env| {
            retry_and_settle(env, |env| {
                place(env, &staff(), &id(), &staff_hold()).map(drop)
            })
        },
        |env, fault| {
            let r = record(env);
            assert_eq!(count(&r, EventType::OrderHeld), 1, "{fault}: held once");
            assert_eq!(r.holds().len(), 1, "{fault}");
            assert_eq!(r.status(), OrderStatus::Reserved, "{fault}: not routed");
            assert_all_published(env, fault);
            assert!(env.owed.keys().unwrap().is_empty(), "{fault}: nothing owed");
        },
    );
}

#[test]
fn every_fault_while_releasing_ends_released_once_and_routed() {
    for_every_fault(
        setup_held,
        |env| {
            let _ = release(env, &staff(), &id(), HoldReason::Staff, &no_note());
        },
        |env| {
            retry_and_settle(env, |env| {
                release(env, &staff(), &id(), HoldReason::Staff, &no_note()).map(drop)
            })
        },
        |env, fault| {
            let r = record(env);
            assert_eq!(count(&r, EventType::OrderHoldReleased), 1, "{fault}");
            assert!(!r.is_held(), "{fault}");
            assert_eq!(r.status(), OrderStatus::Routed, "{fault}");
            assert_eq!(count(&r, EventType::OrderRouted), 1, "{fault}: routed once");
            assert_eq!(commitments(env), planned(&r), "{fault}: allocations = plan");
            assert_all_published(env, fault);
            assert!(env.owed.keys().unwrap().is_empty(), "{fault}: nothing owed");
        },
    );
}

#[test]
fn every_fault_while_routing_after_a_release_ends_routed_once() {
    for_every_fault(
        |env| {
            setup_held(env);
            release(env, &staff(), &id(), HoldReason::Staff, &no_note()).unwrap();
        },
        |env| {
            // The order.hold_released delivery.
            let _ = handle(env, &order_id());
        },
        redeliver_and_reconcile,
        |env, fault| {
            let r = record(env);
            assert_eq!(r.status(), OrderStatus::Routed, "{fault}");
            assert_eq!(count(&r, EventType::OrderRouted), 1, "{fault}: routed once");
            assert_eq!(commitments(env), planned(&r), "{fault}: allocations = plan");
            assert_all_published(env, fault);
            assert!(env.owed.keys().unwrap().is_empty(), "{fault}: nothing owed");
        },
    );
}

#[test]
fn bodies_are_parsed_strictly_naming_the_field() {
    let field = |e: FunctionError| match e {
        FunctionError::Problem(p) => (p.status, p.invalid_params[0].name.clone()),
        e => panic!("{e:?}"),
    };
    let place_err = |body| field(PlaceHold::parse(&body).unwrap_err());
    assert_eq!(
        place_err(json!({"reason": "on_ice"})),
        (422, "/reason".into())
    );
    assert_eq!(place_err(json!({"note": "x"})), (422, "/reason".into()));
    assert_eq!(place_err(json!({"reason": 3})), (422, "/reason".into()));
    assert_eq!(
        place_err(json!({"reason": "staff", "note": " "})),
        (422, "/note".into())
    );
    assert_eq!(
        place_err(json!({"reason": "staff", "until": "never"})),
        (422, "/until".into())
    );
    assert_eq!(place_err(json!(["staff"])), (422, "".into()));
    assert_eq!(
        PlaceHold::parse(&json!({"reason": "fraud_review"})).unwrap(),
        PlaceHold {
            reason: HoldReason::FraudReview,
            note: None
        }
    );

    let address =
        json!({"country": "US", "postal_code": "10001", "line1": "5 Park Ave", "city": "New York"});
    assert_eq!(
        ReleaseHold::parse(&json!({"address": address}))
            .unwrap()
            .address,
        Some(address.clone()),
        "read once the hold is known"
    );
    assert_eq!(
        field(ReleaseHold::parse(&json!({"note": ""})).unwrap_err()),
        (422, "/note".into())
    );
    assert_eq!(
        ReleaseHold::parse(&serde_json::Value::Null).unwrap(),
        no_note(),
        "an empty body"
    );

    // Against a stored order: an address for another hold is a conflict, a bad one for
    // address_needed is a 422 naming it.
    let env = MemEnv::new();
    setup_held(&env);
    let with = |address: serde_json::Value| ReleaseHold {
        note: None,
        address: Some(address),
    };
    let conflict = release(
        &env,
        &staff(),
        &id(),
        HoldReason::Staff,
        &with(address.clone()),
    );
    assert_eq!(field(conflict.unwrap_err()), (409, "/address".into()));
    let hold = PlaceHold {
        reason: HoldReason::AddressNeeded,
        note: None,
    };
    place(&env, &staff(), &id(), &hold).unwrap();
    let bad = with(json!({"country": "US"}));
    let refused = release(&env, &staff(), &id(), HoldReason::AddressNeeded, &bad);
    assert_eq!(field(refused.unwrap_err()), (422, "/address".into()));
    assert_eq!(record(&env).holds().len(), 2, "nothing changed");
}

#[test]
fn an_address_release_sets_the_shipping_address_and_routes() {
    let env = MemEnv::new();
    setup(&env);
    let hold = PlaceHold {
        reason: HoldReason::AddressNeeded,
        note: None,
    };
    place(&env, &staff(), &id(), &hold).unwrap();
    let address =
        json!({"country": "US", "postal_code": "10001", "line1": "5 Park Ave", "city": "New York"});
    let body = ReleaseHold::parse(&json!({"address": address})).unwrap();
    release(&env, &staff(), &id(), HoldReason::AddressNeeded, &body).unwrap();
    let r = record(&env);
    let stored = serde_json::to_value(r.order().shipping().address()).unwrap();
    assert_eq!(stored["postal_code"], "10001");
    handle(&env, &order_id()).unwrap();
    assert_eq!(record(&env).status(), OrderStatus::Routed);
}

#[test]
fn unmapped_item_is_released_once_every_line_has_an_alias() {
    let env = MemEnv::new();
    network(&env, &STOCK);
    // A marketplace order whose line came without a SKU: validated, held unmapped_item.
    let body = json!({
        "channel": "shop", "customer": {}, "currency": "USD",
        "lines": [{"sku": "SHOP-V-42", "quantity": 1, "unit_price": "1.00",
            "item": {"variant_id": "42", "title": "Hat"}, "unmapped": true}],
        "shipping": {"method": "standard", "amount": "0.00",
            "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
        "tax": "0.00",
        "totals": {"subtotal": "1.00", "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": "1.00"},
        "payment": {"reference": "p", "status": "captured", "amount": "1.00"}
    });
    let order = Order::from_marketplace_request(&body, id(), env.now()).unwrap();
    create(
        &env,
        OrderRecord::accept(order, env.new_id(), env.now()).unwrap(),
    )
    .unwrap();
    let hold = PlaceHold {
        reason: HoldReason::UnmappedItem,
        note: None,
    };
    place(&env, &staff(), &id(), &hold).unwrap();
    assert_eq!(record(&env).owed_step(), None, "reserve is blocked");

    let refused = release(&env, &staff(), &id(), HoldReason::UnmappedItem, &no_note());
    match refused {
        Err(FunctionError::Problem(p)) => {
            assert_eq!(
                (p.status, p.invalid_params[0].name.as_str()),
                (409, "/lines/0")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        record(&env).has_hold(HoldReason::UnmappedItem),
        "nothing changed"
    );

    let shop = ChannelId::parse("shop").unwrap();
    let sku = Sku::parse("SKU-1").unwrap();
    aliases::put(
        &env.kv,
        &shop,
        AliasKind::Variant,
        "42",
        sku.clone(),
        env.now(),
    )
    .unwrap();
    release(&env, &staff(), &id(), HoldReason::UnmappedItem, &no_note()).unwrap();
    let r = record(&env);
    assert!(!r.is_held());
    assert_eq!(*r.order().lines()[0].sku(), sku);
    assert_eq!(
        r.events().last().unwrap().data()["note"],
        "mapped line 0 → SKU-1",
        "the mapping is the release's note"
    );
    assert_eq!(
        r.owed_step().map(EventEnvelope::event_type),
        Some(EventType::OrderValidated),
        "reserve's turn"
    );
}

#[test]
fn an_order_without_address_is_released_with_one_unless_it_was_cancelled() {
    let env = MemEnv::new();
    network(&env, &STOCK);
    // A marketplace order that came without a shipping address.
    let body = json!({
        "channel": "shop", "customer": {}, "currency": "USD",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "1.00"}],
        "shipping": {"method": "standard", "amount": "0.00"},
        "tax": "0.00",
        "totals": {"subtotal": "1.00", "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": "1.00"},
        "payment": {"reference": "p", "status": "captured", "amount": "1.00"}
    });
    let order = Order::from_marketplace_request(&body, id(), env.now()).unwrap();
    create(
        &env,
        OrderRecord::accept(order, env.new_id(), env.now()).unwrap(),
    )
    .unwrap();
    let hold = PlaceHold {
        reason: HoldReason::AddressNeeded,
        note: None,
    };
    place(&env, &staff(), &id(), &hold).unwrap();
    let refused = release(&env, &staff(), &id(), HoldReason::AddressNeeded, &no_note());
    match refused {
        Err(FunctionError::Problem(p)) => {
            assert_eq!(
                (p.status, p.invalid_params[0].name.as_str()),
                (422, "/address")
            )
        }
        other => panic!("{other:?}"),
    }
    oms_edge::run(&env, &order_id(), |r| {
        r.cancel(None, [env.new_id(), env.new_id()], env.now())
            .unwrap();
        Ok(oms_edge::Decision::Changed(()))
    })
    .unwrap();
    assert_eq!(
        place(&env, &staff(), &id(), &staff_hold()).unwrap_err_status(),
        409,
        "no new hold on a cancelled order"
    );
    let released = release(&env, &staff(), &id(), HoldReason::AddressNeeded, &no_note());
    assert!(
        released.unwrap().holds.is_empty(),
        "cleared without an address"
    );
}

/// A hold placed while the routing step runs (between its read of the order and its
/// compare-and-swap): the step loses the swap, re-reads a held order and leaves it reserved;
/// what its lost attempt allocated stays the order's own, and the routing after the release
/// ends with exactly the plan's allocations and every unit accounted for.
#[test]
fn a_hold_placed_while_routing_runs_stops_the_routing() {
    let env = MemEnv::new();
    setup(&env);
    let key = keys::order(&order_id());
    let racing = RacingEnv::new(
        &env,
        |k| k == key,
        || {
            place(&env, &staff(), &id(), &staff_hold()).unwrap();
        },
    );
    handle(&racing, &order_id()).unwrap();
    assert!(racing.raced());
    let r = record(&env);
    assert_eq!(r.status(), OrderStatus::Reserved, "not routed");
    assert_eq!(count(&r, EventType::OrderRouted), 0);
    let own: u32 = commitments(&env).values().map(|(h, a)| h + a).sum();
    assert_eq!(own, 1, "the order's own unit, nothing more");
    release(&env, &staff(), &id(), HoldReason::Staff, &no_note()).unwrap();
    handle(&env, &order_id()).unwrap();
    let r = record(&env);
    assert_eq!(r.status(), OrderStatus::Routed);
    assert_eq!(commitments(&env), planned(&r));
    let available: u32 = STOCK
        .iter()
        .map(|(loc, _)| {
            env.kv
                .get_json::<StockDoc>(&keys::stock("SKU-1", loc))
                .unwrap()
                .unwrap_or_default()
                .available()
        })
        .sum();
    assert_eq!(available, 1, "2 on hand, 1 allocated");
}

/// The status of an expected problem.
trait ErrStatus {
    fn unwrap_err_status(self) -> u16;
}

impl<T: std::fmt::Debug> ErrStatus for Result<T, FunctionError> {
    fn unwrap_err_status(self) -> u16 {
        match self.unwrap_err() {
            FunctionError::Problem(p) => p.status,
            e => panic!("{e:?}"),
        }
    }
}
