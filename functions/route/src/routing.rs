//! The routing step over any `Kv` and `Bus`.
//!
//! The order's own holds are allocated where they are whenever they make a valid plan (reserve
//! placed them where the planner ships from), so routing normally moves no unit between
//! locations; only when they do not is the order re-planned on all stock. Whatever the order
//! holds stays its own until the outcome is stored; then its stock is settled to the stored
//! plan, also by a redelivery or a duplicate that lost the race to store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::{
    plan, EventEnvelope, EventType, FulfilmentPlan, Location, LocationId, OrderStatus,
    RoutingRequest, Sku,
};
use oms_edge::{
    inventory_for, keys, pairs, routing_policy, settle, update_json, update_stock, Bus, Change,
    FunctionError, Kv, OrderRecord, ShipmentRecord, ShipmentStatus, StockDoc, Usable,
};
use serde_json::json;
use uuid::Uuid;

/// Plans tried before giving up on a race-heavy SKU (each retry sees fresher stock).
const MAX_PLANS: usize = 5;

/// Handles one `order.reserved` event.
///
/// # Errors
/// Storage or publish failures (the queue redelivers; the step is idempotent).
pub fn handle(
    kv: &impl Kv,
    bus: &impl Bus,
    event: &EventEnvelope,
    now: DateTime<Utc>,
    mut ids: impl FnMut() -> Uuid,
) -> Result<(), FunctionError> {
    let order_id = event.order_id().to_string();
    let Some(record) = kv.get_json::<OrderRecord>(&keys::order(&order_id))? else {
        eprintln!("route: order {order_id} not found; ignoring");
        return Ok(());
    };
    let locations: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    let pairs = pairs(record.order.units_by_sku().keys(), &locations);
    if record.status() != OrderStatus::Reserved {
        // Past this step already (or cancelled): finish what it owes and re-publish its
        // outcome, in case the first run crashed between storing and publishing.
        settle_to_stored(kv, &order_id, &pairs, &record)?;
        if let Some(e) = record
            .events
            .iter()
            .rev()
            .find(|e| e.event_type() == EventType::OrderRouted)
        {
            bus.publish_event(e).map_err(FunctionError::Internal)?;
        }
        return Ok(());
    }
    let policy = routing_policy(kv)?;
    let request = RoutingRequest::for_order(&record.order);

    let mut outcome = Err(String::from("no plan attempted"));
    for _ in 0..MAX_PLANS {
        let own = inventory_for(kv, &order_id, &pairs, Usable::OwnOnly)?;
        let planned = match plan(&request, &locations, &own, &policy) {
            Ok(p) => p,
            Err(_) => {
                let all = inventory_for(kv, &order_id, &pairs, Usable::OwnAndAvailable)?;
                match plan(&request, &locations, &all, &policy) {
                    Ok(p) => p,
                    Err(e) => {
                        outcome = Err(e.to_string());
                        break;
                    }
                }
            }
        };
        if allocate(kv, &order_id, &planned)? {
            outcome = Ok(planned);
            break;
        }
        outcome = Err("allocation lost a race; re-planning".into());
    }

    let event_id = ids();
    let (to, data, plan_opt, reason) = match outcome {
        Ok(p) => {
            let data = json!({"shipments": p.shipments.len(), "total_cost": p.total_cost});
            (OrderStatus::Routed, data, Some(p), None)
        }
        Err(why) => (
            OrderStatus::Backordered,
            json!({"reason": why}),
            None,
            Some(why),
        ),
    };
    let published = update_json(kv, &keys::order(&order_id), |cur: Option<OrderRecord>| {
        let Some(mut rec) = cur else {
            return Ok(Change::Keep(None));
        };
        if rec.status() != OrderStatus::Reserved {
            return Ok(Change::Keep(None));
        }
        let event = rec
            .transition(to, data.clone(), event_id, now)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        if let Some(p) = &plan_opt {
            rec.shipments = shipments(&order_id, p);
            rec.plan = Some(p.clone());
            rec.reservation = None;
        }
        rec.reason = reason.clone();
        Ok::<_, FunctionError>(Change::Write(rec, Some(event)))
    })?;
    match published {
        Some(e) => {
            if let Some(p) = &plan_opt {
                // Holds the plan does not ship from, now that the plan is stored.
                settle(kv, &order_id, &pairs, &BTreeMap::new(), Some(&p.units_at()))?;
            }
            bus.publish_event(&e).map_err(FunctionError::Internal)
        }
        // The order moved on while we planned (a duplicate stored its plan, or it was
        // cancelled): settle this run's stock changes to what was stored.
        None => match kv.get_json::<OrderRecord>(&keys::order(&order_id))? {
            Some(rec) => settle_to_stored(kv, &order_id, &pairs, &rec),
            None => Ok(()),
        },
    }
}

/// Settles the order's stock to its stored outcome where this step owns it: a routed order
/// keeps only its plan's allocations, a cancelled or rejected one nothing.
fn settle_to_stored(
    kv: &impl Kv,
    order: &str,
    pairs: &[(Sku, LocationId)],
    record: &OrderRecord,
) -> Result<(), FunctionError> {
    match (record.status(), &record.plan) {
        (OrderStatus::Routed, Some(p)) => {
            settle(kv, order, pairs, &BTreeMap::new(), Some(&p.units_at()))
        }
        (OrderStatus::Cancelled | OrderStatus::Rejected, _) => {
            settle(kv, order, pairs, &BTreeMap::new(), Some(&BTreeMap::new()))
        }
        _ => Ok(()),
    }
}

/// Allocates every planned line by CAS; on the first failure puts back what this attempt
/// changed — units converted from the order's holds become its holds again — and returns
/// `false` (the caller re-plans).
fn allocate(kv: &impl Kv, order: &str, planned: &FulfilmentPlan) -> Result<bool, FunctionError> {
    type Commitment = (u32, u32);
    let mut done: Vec<(Sku, LocationId, Commitment, Commitment)> = Vec::new();
    for ((sku, loc), units) in planned.units_at() {
        let key = keys::stock(sku.as_str(), loc.as_str());
        let moved = update_json(kv, &key, |doc: Option<StockDoc>| {
            let doc = doc.unwrap_or_default();
            match doc.allocate(order, units) {
                Ok(next) if next == doc => Ok::<_, FunctionError>(Change::Keep(Some(None))),
                Ok(next) => {
                    let change = (doc.commitment(order), next.commitment(order));
                    Ok(Change::Write(next, Some(Some(change))))
                }
                Err(_) => Ok(Change::Keep(None)),
            }
        })?;
        match moved {
            Some(Some((before, after))) => done.push((sku, loc, before, after)),
            Some(None) => {}
            None => {
                for (sku, loc, before, after) in done.iter().rev() {
                    update_stock(kv, sku.as_str(), loc.as_str(), |d| {
                        d.restore(order, *after, *before)
                    })?;
                }
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn shipments(order: &str, p: &FulfilmentPlan) -> Vec<ShipmentRecord> {
    p.shipments
        .iter()
        .enumerate()
        .map(|(i, s)| ShipmentRecord {
            id: format!("{order}-{}", i + 1),
            location: s.location.clone(),
            lines: s.lines.clone(),
            status: ShipmentStatus::Allocated,
            carrier: None,
            tracking: None,
            shipped_at: None,
            delivered_at: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use oms_domain::{Order, OrderId, Reservation, ReservedLine};
    use oms_edge::{KvError, MemBus, MemKv};

    /// A store whose writes to one key fail while `fail` is set (the host dies there).
    #[derive(Default)]
    struct FlakyKv {
        inner: MemKv,
        fail: RefCell<Option<String>>,
    }

    impl FlakyKv {
        fn refuses(&self, key: &str) -> Result<(), KvError> {
            match &*self.fail.borrow() {
                Some(k) if k == key => Err(KvError::Store(format!("injected failure on {key}"))),
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

    const SKU: &str = "SKU-1";

    /// The test network (wh-east, wh-west, store-sf) with `stock` units of SKU-1 per location.
    fn setup(stock: &[(&str, u32)]) -> FlakyKv {
        let kv = FlakyKv::default();
        let locations: Vec<Location> =
            serde_json::from_str(include_str!("../../../tests/fixtures/locations.json")).unwrap();
        kv.set_json(keys::LOCATIONS, &locations).unwrap();
        for (loc, n) in stock {
            kv.set_json(
                &keys::stock(SKU, loc),
                &StockDoc::default().recount(*n).unwrap(),
            )
            .unwrap();
        }
        kv
    }

    fn doc(kv: &impl Kv, loc: &str) -> StockDoc {
        kv.get_json(&keys::stock(SKU, loc))
            .unwrap()
            .unwrap_or_default()
    }

    fn available(kv: &impl Kv) -> u32 {
        ["wh-east", "wh-west", "store-sf"]
            .iter()
            .map(|l| doc(kv, l).available())
            .sum()
    }

    /// A reserved order for `qty` units shipping to San Francisco, holding `held` units per
    /// location (as reserve left it).
    fn reserved(kv: &impl Kv, qty: u32, held: &[(&str, u32)]) -> EventEnvelope {
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
        let order =
            Order::from_request(&body, OrderId::new(oms_edge::new_id()), oms_edge::now()).unwrap();
        let id = order.id().to_string();
        let mut rec = OrderRecord::accept(order, oms_edge::new_id(), oms_edge::now()).unwrap();
        let mut lines = Vec::new();
        for (loc, n) in held {
            update_stock(kv, SKU, loc, |d| d.hold_at_least(&id, *n)).unwrap();
            lines.push(ReservedLine {
                sku: Sku::parse(SKU).unwrap(),
                location: LocationId::parse(loc).unwrap(),
                units: *n,
            });
        }
        let event = rec
            .transition(
                OrderStatus::Reserved,
                json!({"lines": lines}),
                oms_edge::new_id(),
                oms_edge::now(),
            )
            .unwrap();
        rec.reservation = Some(Reservation::new(rec.order.id(), lines, None).unwrap());
        kv.set_json(&keys::order(&id), &rec).unwrap();
        event
    }

    fn record(kv: &impl Kv, e: &EventEnvelope) -> OrderRecord {
        kv.get_json(&keys::order(&e.order_id().to_string()))
            .unwrap()
            .unwrap()
    }

    /// The host running route dies on its first write to the stock the order holds; until its
    /// message is redelivered, the order must not keep units at two locations, or another
    /// order is refused for a unit that is freed right after.
    #[test]
    fn a_route_that_dies_midway_keeps_no_unit_from_another_order() {
        let kv = setup(&[("wh-east", 1), ("wh-west", 1)]);
        let bus = MemBus::default();
        let first = reserved(&kv, 1, &[("wh-east", 1)]);
        *kv.fail.borrow_mut() = Some(keys::stock(SKU, "wh-east"));
        assert!(handle(&kv, &bus, &first, oms_edge::now(), oms_edge::new_id).is_err());

        // Meanwhile another order asks for the one unit that is left.
        let taken = update_json(&kv, &keys::stock(SKU, "wh-west"), |d: Option<StockDoc>| {
            let (next, held) = d.unwrap_or_default().hold_up_to("other", 1).unwrap();
            Ok::<_, FunctionError>(Change::Write(next, held))
        })
        .unwrap();
        assert_eq!(
            taken, 1,
            "the crashed route keeps the unit at wh-west from the other order"
        );

        // The redelivery routes the first order with its own unit; nothing is left free.
        *kv.fail.borrow_mut() = None;
        handle(&kv, &bus, &first, oms_edge::now(), oms_edge::new_id).unwrap();
        assert_eq!(record(&kv, &first).status(), OrderStatus::Routed);
        assert_eq!(available(&kv), 0);
        assert_eq!(
            doc(&kv, "wh-east").allocated_to(&first.order_id().to_string()),
            1
        );
    }

    /// A second plan after a lost allocation race: the units converted from the order's
    /// holds go back to its holds, not to stock anyone may take.
    #[test]
    fn a_lost_allocation_race_gives_the_orders_holds_back_to_the_order() {
        // Two units held at store-sf and wh-west; the split plan loses at wh-west.
        let kv = setup(&[("store-sf", 1), ("wh-west", 1)]);
        let e = reserved(&kv, 2, &[("store-sf", 1), ("wh-west", 1)]);
        let id = e.order_id().to_string();
        let locations: Vec<Location> = kv.get_json(keys::LOCATIONS).unwrap().unwrap();
        let pairs = pairs([&Sku::parse(SKU).unwrap()], &locations);
        let own = inventory_for(&kv, &id, &pairs, Usable::OwnOnly).unwrap();
        let rec = record(&kv, &e);
        let p = plan(
            &RoutingRequest::for_order(&rec.order),
            &locations,
            &own,
            &routing_policy(&kv).unwrap(),
        )
        .unwrap();
        assert_eq!(p.units_at().len(), 2, "{p:?}");
        // wh-west's unit is counted away (shrinkage) between the plan and the allocation:
        // the allocation at store-sf succeeds, the one at wh-west fails.
        update_stock(&kv, SKU, "wh-west", |d| d.release(&id)?.recount(0)).unwrap();
        assert!(!allocate(&kv, &id, &p).unwrap());
        let store = doc(&kv, "store-sf");
        assert_eq!(
            (
                store.held_by(&id),
                store.allocated_to(&id),
                store.available()
            ),
            (1, 0, 0),
            "the order still holds its unit at store-sf"
        );
    }

    /// A duplicate `order.reserved` (reserve re-published after a crash) routes once and
    /// leaves no allocation outside the stored plan.
    #[test]
    fn a_duplicate_delivery_leaves_only_the_stored_plans_allocations() {
        let kv = setup(&[("wh-east", 2), ("wh-west", 2)]);
        let bus = MemBus::default();
        let e = reserved(&kv, 1, &[("wh-west", 1)]);
        let id = e.order_id().to_string();
        // An earlier run allocated at wh-east and died before storing its plan.
        update_stock(&kv, SKU, "wh-east", |d| d.allocate(&id, 1)).unwrap();
        handle(&kv, &bus, &e, oms_edge::now(), oms_edge::new_id).unwrap();
        handle(&kv, &bus, &e, oms_edge::now(), oms_edge::new_id).unwrap();
        let rec = record(&kv, &e);
        assert_eq!(rec.status(), OrderStatus::Routed);
        let planned = rec.plan.unwrap().units_at();
        let allocated: u32 = ["wh-east", "wh-west", "store-sf"]
            .iter()
            .map(|l| doc(&kv, l).allocated_to(&id))
            .sum();
        assert_eq!((planned.len(), allocated), (1, 1), "one unit, as planned");
        assert_eq!(available(&kv), 3);
        let sent: Vec<String> = bus.sent.borrow().iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(sent, ["order.routed", "order.routed"]);
    }
}
