//! The reservation step (`order.validated`) on the step runner.
//!
//! Stock is held where the routing planner would ship it from (the order's own holds counted,
//! so a re-run converges to what it already holds), so route can allocate the holds where
//! they are instead of moving units between locations; when no plan covers the order (a
//! shortfall, the split limit) the locations are walked by priority. A shortfall is promised
//! on backorder per SKU in one compare-and-swap of the SKU's [`BackorderDoc`] when its policy
//! allows. Holds and promises are written inside the runner's decision, idempotent per order
//! (a hold is never taken twice, a promise is set, not added), so a decision re-run after a
//! lost compare-and-swap, a crash or a redelivery takes nothing twice; the outcome itself is
//! decided by [`OrderRecord::record_reservation`]. What the order holds or was promised
//! beyond its stored outcome is given back only once that outcome is stored — by this run,
//! a redelivery, or a duplicate that lost the race to store.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use oms_domain::{
    plan, BackorderPolicy, Location, LocationId, Order, OrderRecord, OrderStatus, ReservedLine,
    RoutingPolicy, RoutingRequest, Sku,
};
use oms_edge::{
    inventory_for, keys, pairs, routing_policy, run, settle, update_backorders, update_commitment,
    update_json, BackorderDoc, Change, Decision, Env, FunctionError, Kv, Usable,
};

/// Plans tried before falling back to the walk by priority (each retry sees fresher stock).
const MAX_PLANS: usize = 5;

/// Units short per SKU.
type Shortfalls = BTreeMap<Sku, u32>;

/// Reserves one order (on its `order.validated` event): hold, promise backorders, store the
/// outcome with its event (`order.reserved`, `order.backordered` or `order.rejected`),
/// publish, then settle the order's holds and promises to what was stored. A reservation of
/// an order paid by authorization only expires after `ttl` (indexed for the expiry sweep
/// before the order's swap).
///
/// # Errors
/// Storage errors (the queue redelivers, the reconciler re-drives; the step is idempotent).
/// An unknown order is logged and ignored.
pub fn handle<E: Env>(env: &E, order_id: &str, ttl: Duration) -> Result<(), FunctionError> {
    let kv = env.kv();
    let locations: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    let policy = routing_policy(kv)?;
    let (event_id, now) = (env.new_id(), env.now());
    let stored = run(env, order_id, |record| {
        // An unmapped_item hold: a SKU is not known yet, so nothing can be reserved until
        // staff resolve it and release the hold (`order.hold_released` runs this again).
        if !record.awaits_reservation() || record.reserve_blocked() {
            return Ok(Decision::Unchanged(record.clone()));
        }
        let order = &record.order();
        let (held, shortfalls) = match place(kv, order_id, order, &locations, &policy)? {
            Some(lines) => (lines, Shortfalls::new()),
            None => walk(kv, order_id, order, &locations)?,
        };
        let promised = !shortfalls.is_empty() && promise(kv, order_id, &shortfalls)?;
        record
            .record_reservation(held, &shortfalls, promised, ttl, event_id, now)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        if let Some(at) = record.reservation().as_ref().and_then(|r| r.expires_at()) {
            index_expiry(kv, order_id, at)?;
        }
        Ok(Decision::Changed(record.clone()))
    });
    let record = match stored {
        Err(FunctionError::Problem(p)) if p.status == 404 => {
            eprintln!("reserve: order {order_id} not found; ignoring");
            return Ok(());
        }
        other => other?,
    };
    settle_to_stored(kv, order_id, &locations, &record)
}

/// Adds the order's expiry to the sweeper's index (idempotent: the same order, the same
/// instant). Written before the order's swap, so the sweeper misses no expiring reservation;
/// it checks the order itself before acting.
fn index_expiry(kv: &impl Kv, order_id: &str, at: DateTime<Utc>) -> Result<(), FunctionError> {
    update_json(
        kv,
        keys::EXPIRING,
        |cur: Option<BTreeMap<String, DateTime<Utc>>>| {
            let mut index = cur.unwrap_or_default();
            if index.get(order_id) == Some(&at) {
                return Ok::<_, FunctionError>(Change::Keep(()));
            }
            index.insert(order_id.to_string(), at);
            Ok(Change::Write(index, ()))
        },
    )
}

/// Promises every shortfall on backorder, each SKU in one compare-and-swap of its
/// [`BackorderDoc`] under its policy; `false` when some SKU's policy refuses — then the
/// promises this order got for the other SKUs are given back before the outcome is decided.
fn promise(kv: &impl Kv, order_id: &str, shortfalls: &Shortfalls) -> Result<bool, FunctionError> {
    for (sku, short) in shortfalls {
        let policy: BackorderPolicy = kv
            .get_json(&keys::backorder(sku.as_str()))?
            .unwrap_or_default();
        let granted = update_backorders(kv, sku.as_str(), |d| d.promise(order_id, *short, policy))?;
        if granted.is_none() {
            for sku in shortfalls.keys() {
                update_backorders(kv, sku.as_str(), |d| Some(d.release(order_id)))?;
            }
            return Ok(false);
        }
    }
    Ok(true)
}

/// Holds the order's units where the routing planner would ship them from; the lines held, or
/// `None` when no plan covers the order now (a shortfall, more shipments than the split limit)
/// or every plan lost its race. Holds the order already has count as its own, so a re-run
/// keeps them; holds a lost race leaves behind stay the order's until its outcome is stored.
fn place(
    kv: &impl Kv,
    order_id: &str,
    order: &Order,
    locations: &[Location],
    policy: &RoutingPolicy,
) -> Result<Option<Vec<ReservedLine>>, FunctionError> {
    let pairs = pairs(order.units_by_sku().keys(), locations);
    let request = RoutingRequest::for_order(order);
    'plans: for _ in 0..MAX_PLANS {
        let own = inventory_for(kv, order_id, &pairs, Usable::OwnOnly)?;
        let planned = match plan(&request, locations, &own, policy) {
            Ok(p) => p,
            Err(_) => {
                let all = inventory_for(kv, order_id, &pairs, Usable::OwnAndAvailable)?;
                match plan(&request, locations, &all, policy) {
                    Ok(p) => p,
                    Err(_) => return Ok(None),
                }
            }
        };
        let units = planned.units_at();
        for ((sku, loc), n) in &units {
            let held = update_commitment(kv, sku.as_str(), loc.as_str(), order_id, |doc| {
                Ok(match doc.hold_at_least(order_id, *n) {
                    Ok(next) => Change::Write(next, true),
                    Err(_) => Change::Keep(false),
                })
            })?;
            if !held {
                continue 'plans;
            }
        }
        return Ok(Some(ReservedLine::all_from(units)));
    }
    Ok(None)
}

/// Holds what it can per SKU, walking the candidate locations by priority: the lines held and
/// the shortfalls.
fn walk(
    kv: &impl Kv,
    order_id: &str,
    order: &Order,
    locations: &[Location],
) -> Result<(Vec<ReservedLine>, Shortfalls), FunctionError> {
    let pickup = order.shipping().pickup_location().cloned();
    let mut candidates: Vec<&Location> = locations
        .iter()
        .filter(|l| match &pickup {
            Some(store) => l.id() == store,
            None => l.ships(),
        })
        .collect();
    candidates.sort_by(|a, b| (a.priority(), a.id()).cmp(&(b.priority(), b.id())));

    let mut lines = Vec::new();
    let mut shortfalls = Shortfalls::new();
    for (sku, wanted) in order.units_by_sku() {
        let mut need = wanted;
        for loc in &candidates {
            if need == 0 {
                break;
            }
            let held = hold(kv, &sku, loc, order_id, need)?;
            if held > 0 {
                lines.push(ReservedLine {
                    sku: sku.clone(),
                    location: loc.id().clone(),
                    units: held,
                });
                need = need.saturating_sub(held);
            }
        }
        if need > 0 {
            shortfalls.insert(sku, need);
        }
    }
    Ok((lines, shortfalls))
}

/// Holds up to `need` units at `loc`; how many the order holds there now.
fn hold(
    kv: &impl Kv,
    sku: &Sku,
    loc: &Location,
    order: &str,
    need: u32,
) -> Result<u32, FunctionError> {
    update_commitment(kv, sku.as_str(), loc.id().as_str(), order, |doc| {
        let (next, held) = doc
            .hold_up_to(order, need)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        Ok(Change::Write(next, held))
    })
}

/// Settles the order's holds and backorder promises to its stored outcome while this step
/// owns them: a reserved or backordered order keeps its reservation's holds (and, backordered,
/// its promises) and nothing more; a rejected or cancelled one none. Allocations are route's
/// and left alone; a routed order's holds too.
fn settle_to_stored(
    kv: &impl Kv,
    order_id: &str,
    locations: &[Location],
    record: &OrderRecord,
) -> Result<(), FunctionError> {
    let (held, promised): (BTreeMap<(Sku, LocationId), u32>, BTreeMap<Sku, u32>) =
        match (record.status(), &record.reservation()) {
            (OrderStatus::Reserved | OrderStatus::Backordered, Some(r)) => (
                r.lines()
                    .iter()
                    .map(|l| ((l.sku.clone(), l.location.clone()), l.units))
                    .collect(),
                r.backordered().clone(),
            ),
            (OrderStatus::Rejected | OrderStatus::Cancelled, _) => Default::default(),
            _ => return Ok(()),
        };
    let skus = record.order().units_by_sku();
    settle(kv, order_id, &pairs(skus.keys(), locations), &held, None)?;
    // One batch read; a write only where a promise is not backed by the stored outcome.
    let keys: Vec<String> = skus.keys().map(|s| BackorderDoc::key(s.as_str())).collect();
    for (sku, raw) in skus.keys().zip(kv.get_many(&keys)?) {
        let Some(raw) = raw else { continue };
        let doc: BackorderDoc = serde_json::from_slice(&raw)?;
        let keep = promised.get(sku).copied().unwrap_or(0);
        // Only ever lowered here (what was promised beyond the stored outcome); a promise
        // below it was given back by someone else (a cancel) and is not taken again.
        if doc.promised_to(order_id) > keep {
            update_backorders(kv, sku.as_str(), |d| {
                let lower = keep.min(d.promised_to(order_id));
                d.promise(order_id, lower, BackorderPolicy::Unlimited)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use chrono::Duration;
    use oms_domain::{Coordinates, EventEnvelope, LocationKind, OrderId};
    use oms_edge::{
        create, for_every_fault, reconcile, release_cancelled, MemEnv, OrderRecord, RacingEnv,
        StockDoc,
    };
    use serde_json::json;
    use uuid::Uuid;

    pub(crate) const TTL: i64 = 30;

    pub(crate) fn ttl() -> Duration {
        Duration::minutes(TTL)
    }

    /// An order for `qty` units of SKU-1 (`payment`: captured or authorized), created through
    /// the runner (so `order.validated` is published); its id.
    pub(crate) fn order(env: &MemEnv, n: u128, qty: u32, payment: &str) -> String {
        let body = json!({
            "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
            "lines": [{"sku": "SKU-1", "quantity": qty, "unit_price": "1.00"}],
            "shipping": {"method": "standard", "amount": "0.00",
                "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
            "tax": "0.00",
            "totals": {"subtotal": format!("{qty}.00"), "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": format!("{qty}.00")},
            "payment": {"reference": "pi_1", "status": payment, "amount": format!("{qty}.00")}
        });
        let id = OrderId::new(Uuid::from_u128(n));
        let o = Order::from_request(&body, id, env.now()).unwrap();
        let rec = OrderRecord::accept(o, Uuid::from_u128(1000 + n), env.now()).unwrap();
        create(env, rec).unwrap();
        id.to_string()
    }

    /// Warehouses with SKU-1 on hand.
    pub(crate) fn setup(env: &MemEnv, stock: &[(&str, u32)]) {
        let locations: Vec<Location> = stock
            .iter()
            .map(|(id, _)| {
                Location::new(
                    LocationId::parse(id).unwrap(),
                    LocationKind::Warehouse,
                    Coordinates::new(0.0, 0.0).unwrap(),
                )
            })
            .collect();
        env.kv.set_json(keys::LOCATIONS, &locations).unwrap();
        for (id, n) in stock {
            env.kv
                .set_json(
                    &keys::stock("SKU-1", id),
                    &StockDoc::default().recount(*n).unwrap(),
                )
                .unwrap();
        }
    }

    pub(crate) fn stored(env: &MemEnv, id: &str) -> OrderRecord {
        env.kv.get_json(&keys::order(id)).unwrap().unwrap()
    }

    pub(crate) fn status(env: &MemEnv, id: &str) -> OrderStatus {
        stored(env, id).status()
    }

    pub(crate) fn doc(env: &MemEnv, loc: &str) -> StockDoc {
        env.kv
            .get_json(&keys::stock("SKU-1", loc))
            .unwrap()
            .unwrap_or_default()
    }

    fn available(env: &MemEnv, loc: &str) -> u32 {
        doc(env, loc).available()
    }

    fn promised(env: &MemEnv) -> BackorderDoc {
        env.kv
            .get_json(&BackorderDoc::key("SKU-1"))
            .unwrap()
            .unwrap_or_default()
    }

    /// Every event published on `channel`, in order.
    pub(crate) fn sent(env: &MemEnv, channel: &str) -> Vec<EventEnvelope> {
        env.bus
            .sent
            .borrow()
            .iter()
            .filter(|(c, _)| c == channel)
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }

    fn upto(env: &MemEnv, limit: u32) {
        env.kv
            .set_json(&keys::backorder("SKU-1"), &BackorderPolicy::UpTo(limit))
            .unwrap();
    }

    #[test]
    fn holds_where_the_order_ships_from_and_a_redelivery_changes_nothing() {
        let env = MemEnv::new();
        setup(&env, &[("a", 2), ("b", 5)]);
        let id = order(&env, 1, 4, "captured");
        handle(&env, &id, ttl()).unwrap();
        assert_eq!(status(&env, &id), OrderStatus::Reserved);
        assert_eq!(
            (available(&env, "a"), available(&env, "b")),
            (2, 1),
            "one shipment from b, as route will plan it"
        );
        handle(&env, &id, ttl()).unwrap();
        assert_eq!(
            (available(&env, "a"), available(&env, "b")),
            (2, 1),
            "no double reservation"
        );
        assert_eq!(
            env.published(),
            ["order.validated", "order.reserved"],
            "a redelivery publishes only what is still owed: nothing"
        );
    }

    /// An earlier delivery held at b (a was sold out then) and died before storing the
    /// outcome; a has stock again when the event is redelivered. The redelivery keeps the
    /// order's hold at b instead of taking a second unit at a (freed only later, by route).
    #[test]
    fn a_redelivery_keeps_the_hold_an_earlier_delivery_took() {
        let env = MemEnv::new();
        setup(&env, &[("a", 5), ("b", 5)]);
        let id = order(&env, 1, 1, "captured");
        oms_edge::update_order_stock(&env.kv, "SKU-1", "b", &id, |d| {
            d.hold_up_to(&id, 1).map(|(d, _)| d)
        })
        .unwrap();
        handle(&env, &id, ttl()).unwrap();
        assert_eq!(status(&env, &id), OrderStatus::Reserved);
        assert_eq!(
            (available(&env, "a"), available(&env, "b")),
            (5, 4),
            "one unit held, where it already was"
        );
    }

    /// An `unmapped_item` hold (a line's SKU is not known) keeps the order from being
    /// reserved — by a delivery or by the reconciler — until it is released.
    #[test]
    fn an_unmapped_item_hold_blocks_reserving_until_released() {
        use oms_domain::HoldReason::UnmappedItem;
        let env = MemEnv::new();
        setup(&env, &[("a", 5)]);
        let id = order(&env, 1, 1, "captured");
        let hold = |place: bool, n: u128| {
            run(&env, &id, |r| {
                let (event, now) = (Uuid::from_u128(n), env.now());
                if place {
                    r.place_hold(UnmappedItem, None, event, now).unwrap();
                } else {
                    r.release_hold(UnmappedItem, None, event, now).unwrap();
                }
                Ok(Decision::Changed(()))
            })
            .unwrap()
        };
        hold(true, 9);
        handle(&env, &id, ttl()).unwrap();
        env.advance(Duration::minutes(5));
        let report = oms_edge::reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert!(report.redriven.is_empty(), "{report:?}");
        assert_eq!(status(&env, &id), OrderStatus::Validated);
        assert_eq!(available(&env, "a"), 5, "nothing reserved");
        hold(false, 10);
        // The order.hold_released delivery.
        handle(&env, &id, ttl()).unwrap();
        assert_eq!(status(&env, &id), OrderStatus::Reserved);
        assert_eq!(available(&env, "a"), 4);
    }

    #[test]
    fn a_shortfall_without_backorders_rejects_and_releases() {
        let env = MemEnv::new();
        setup(&env, &[("a", 3)]);
        let id = order(&env, 1, 5, "captured");
        handle(&env, &id, ttl()).unwrap();
        assert_eq!(status(&env, &id), OrderStatus::Rejected);
        assert_eq!(available(&env, "a"), 3);
        assert_eq!(sent(&env, "order.rejected").len(), 1);
    }

    #[test]
    fn a_shortfall_within_the_backorder_limit_backorders_once_and_a_cancel_gives_it_back() {
        let env = MemEnv::new();
        setup(&env, &[("a", 3)]);
        upto(&env, 2);
        let first = order(&env, 1, 5, "captured");
        handle(&env, &first, ttl()).unwrap();
        assert_eq!(status(&env, &first), OrderStatus::Backordered);
        handle(&env, &first, ttl()).unwrap();
        assert_eq!(promised(&env).outstanding(), 2, "a redelivery counts once");
        let second = order(&env, 2, 1, "captured");
        handle(&env, &second, ttl()).unwrap();
        assert_eq!(
            status(&env, &second),
            OrderStatus::Rejected,
            "the backorder allowance is used up"
        );
        assert_eq!(
            promised(&env).promised_to(&second),
            0,
            "a rejection keeps no promise"
        );

        oms_edge::run(&env, &first, |r| {
            r.cancel(None, [env.new_id(), env.new_id()], env.now())
                .map_err(|e| FunctionError::Internal(e.to_string()))?;
            Ok(Decision::Changed(()))
        })
        .unwrap();
        release_cancelled(&env, &first).unwrap();
        assert_eq!(
            promised(&env).outstanding(),
            0,
            "the cancel gave the promise back"
        );
        assert_eq!(available(&env, "a"), 3, "and the holds");
        let third = order(&env, 3, 5, "captured");
        handle(&env, &third, ttl()).unwrap();
        assert_eq!(status(&env, &third), OrderStatus::Backordered);
    }

    /// An earlier delivery promised a backorder and died before storing it; stock arrived
    /// before the redelivery, which reserves in full and gives the stale promise back.
    #[test]
    fn a_promise_beyond_the_stored_outcome_goes_back() {
        let env = MemEnv::new();
        setup(&env, &[("a", 3)]);
        upto(&env, 2);
        let id = order(&env, 1, 3, "captured");
        update_backorders(&env.kv, "SKU-1", |d| {
            d.promise(&id, 2, BackorderPolicy::UpTo(2))
        })
        .unwrap();
        handle(&env, &id, ttl()).unwrap();
        assert_eq!(status(&env, &id), OrderStatus::Reserved);
        assert_eq!(promised(&env).outstanding(), 0);
    }

    /// Two orders race for the last backorder unit: the second reads the SKU's promises and,
    /// before its swap, the first takes the unit. Only one order gets it.
    #[test]
    fn two_orders_racing_the_last_backorder_unit_one_gets_it() {
        let env = MemEnv::new();
        setup(&env, &[("a", 0)]);
        upto(&env, 1);
        let (first, second) = (order(&env, 1, 1, "captured"), order(&env, 2, 1, "captured"));
        let key = BackorderDoc::key("SKU-1");
        let racing = RacingEnv::new(
            &env,
            move |k| k == key,
            || handle(&env, &first, ttl()).unwrap(),
        );
        handle(&racing, &second, ttl()).unwrap();
        assert!(racing.raced(), "the race happened");
        assert_eq!(status(&env, &first), OrderStatus::Backordered);
        assert_eq!(status(&env, &second), OrderStatus::Rejected);
        let promises = promised(&env);
        assert_eq!(
            (promises.outstanding(), promises.promised_to(&first)),
            (1, 1),
            "the limit holds: {promises:?}"
        );
    }

    /// A cancel lands between reserve's read of a stock document and its swap: the order's
    /// swap then loses, the re-run finds it cancelled, and whatever reserve held goes back.
    #[test]
    fn a_cancel_racing_the_reservation_leaves_no_hold() {
        let env = MemEnv::new();
        setup(&env, &[("a", 3)]);
        let id = order(&env, 1, 2, "captured");
        let cancel = || {
            oms_edge::run(&env, &id, |r| {
                r.cancel(None, [env.new_id(), env.new_id()], env.now())
                    .map_err(|e| FunctionError::Internal(e.to_string()))?;
                Ok(Decision::Changed(()))
            })
            .unwrap();
            release_cancelled(&env, &id).unwrap();
        };
        let key = keys::stock("SKU-1", "a");
        let racing = RacingEnv::new(&env, move |k| k == key, cancel);
        handle(&racing, &id, ttl()).unwrap();
        assert!(racing.raced(), "the race happened");
        let r = stored(&env, &id);
        assert_eq!(r.status(), OrderStatus::Cancelled);
        assert!(!r.has_event(oms_domain::EventType::OrderReserved));
        assert_eq!(available(&env, "a"), 3, "{:?}", doc(&env, "a"));
        // The losing swap may leave an index entry behind (the runner's design: an entry
        // naming an order that rests); the reconciler drops it and re-drives nothing.
        env.advance(Duration::seconds(120));
        let pass = reconcile(&env, Duration::seconds(60), 100).unwrap();
        assert!(pass.redriven.is_empty(), "{pass:?}");
        assert!(env.owed.keys().unwrap().is_empty(), "nothing owed");
    }

    /// Redelivery and the reconciler after a fault at any I/O call of a reservation; the
    /// recovery checks what a subscriber sees.
    pub(crate) fn recover(env: &MemEnv, id: &str) {
        // The queue's redelivery (when the message survived), then the reconciler, and the
        // delivery of whatever it re-drove.
        let _ = handle(env, id, ttl());
        env.advance(Duration::seconds(120));
        reconcile(env, Duration::seconds(60), 100).unwrap();
        if status(env, id) == OrderStatus::Validated {
            handle(env, id, ttl()).unwrap();
        }
    }

    /// Every event of `channel` the bus carried has one id (re-publishes are the same event).
    pub(crate) fn one_id(env: &MemEnv, channel: &str, fault: &str) {
        let events = sent(env, channel);
        assert!(!events.is_empty(), "{fault}: no {channel}");
        assert!(
            events.iter().all(|e| e.id() == events[0].id()),
            "{fault}: {channel} ids differ"
        );
    }

    #[test]
    fn every_fault_in_a_reservation_ends_reserved_with_each_unit_held_once() {
        let id = Uuid::from_u128(1).to_string();
        for_every_fault(
            |env| {
                setup(env, &[("a", 2), ("b", 5)]);
                order(env, 1, 4, "captured");
            },
            |env| {
                let _ = handle(env, &id, ttl());
            },
            |env| recover(env, &id),
            |env, fault| {
                let r = stored(env, &id);
                assert_eq!(r.status(), OrderStatus::Reserved, "{fault}");
                assert!(r.outbox().is_empty(), "{fault}");
                let lines = r.reservation().as_ref().unwrap().lines().to_vec();
                let held: u32 = ["a", "b"].iter().map(|l| doc(env, l).held_by(&id)).sum();
                assert_eq!(held, 4, "{fault}: the order's units, held once");
                for l in &lines {
                    assert_eq!(
                        doc(env, l.location.as_str()).held_by(&id),
                        l.units,
                        "{fault}"
                    );
                }
                let on_hand: u32 = ["a", "b"].iter().map(|l| doc(env, l).level.on_hand()).sum();
                assert_eq!(on_hand, 7, "{fault}: units conserved");
                one_id(env, "order.reserved", fault);
            },
        );
    }

    #[test]
    fn every_fault_in_a_backorder_counts_the_promise_once() {
        let id = Uuid::from_u128(1).to_string();
        for_every_fault(
            |env| {
                setup(env, &[("a", 1)]);
                upto(env, 5);
                order(env, 1, 3, "captured");
            },
            |env| {
                let _ = handle(env, &id, ttl());
            },
            |env| recover(env, &id),
            |env, fault| {
                assert_eq!(status(env, &id), OrderStatus::Backordered, "{fault}");
                let promises = promised(env);
                assert_eq!(promises.outstanding(), 2, "{fault}: {promises:?}");
                assert_eq!(doc(env, "a").held_by(&id), 1, "{fault}");
                one_id(env, "order.backordered", fault);
            },
        );
    }

    #[test]
    fn a_cancelled_order_is_released_when_its_event_arrives() {
        let env = MemEnv::new();
        setup(&env, &[("a", 3)]);
        let id = order(&env, 1, 2, "captured");
        handle(&env, &id, ttl()).unwrap();
        oms_edge::run(&env, &id, |r| {
            r.cancel(None, [env.new_id(), env.new_id()], env.now())
                .map_err(|e| FunctionError::Internal(e.to_string()))?;
            Ok(Decision::Changed(()))
        })
        .unwrap();
        assert!(stored(&env, &id).release_pending());
        // What the queue would deliver to reserve: the published `order.cancelled`.
        let cancelled = sent(&env, "order.cancelled");
        release_cancelled(&env, &cancelled[0].order_id().to_string()).unwrap();
        assert_eq!(available(&env, "a"), 3);
        assert!(!stored(&env, &id).lists_stock());
    }
}
