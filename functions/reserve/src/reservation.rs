//! The reservation step over any `Kv` and `Bus`.
//!
//! Stock is held where the routing planner would ship it from (the order's own holds counted,
//! so a redelivery converges to what it already holds), so route can allocate the holds where
//! they are instead of moving units between locations; when no plan covers the order
//! (a shortfall, the split limit) the locations are walked by priority. What the order holds
//! beyond its stored reservation is given back only once that outcome is stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use oms_domain::{
    plan, BackorderPolicy, EventEnvelope, EventType, Location, LocationId, Order, OrderStatus,
    PaymentStatus, Reservation, ReservedLine, RoutingRequest, Sku,
};
use oms_edge::{
    inventory_for, keys, pairs, routing_policy, settle, update_json, update_stock, Bus, Change,
    FunctionError, Kv, OrderRecord, StockDoc, Usable,
};
use serde_json::json;
use uuid::Uuid;

/// Outcome events of this step, for re-publishing on redelivery.
const OUTCOMES: [EventType; 3] = [
    EventType::OrderReserved,
    EventType::OrderBackordered,
    EventType::OrderRejected,
];

/// Plans tried before falling back to the walk by priority (each retry sees fresher stock).
const MAX_PLANS: usize = 5;

/// Handles one `order.validated` event.
///
/// # Errors
/// Storage or publish failures (the queue redelivers; the step is idempotent).
pub fn handle(
    kv: &impl Kv,
    bus: &impl Bus,
    event: &EventEnvelope,
    now: DateTime<Utc>,
    ttl_minutes: i64,
    mut ids: impl FnMut() -> Uuid,
) -> Result<(), FunctionError> {
    let order_id = event.order_id().to_string();
    let Some(record) = kv.get_json::<OrderRecord>(&keys::order(&order_id))? else {
        eprintln!("reserve: order {order_id} not found; ignoring");
        return Ok(());
    };
    let order = &record.order;
    let locations: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    let pairs = pairs(order.units_by_sku().keys(), &locations);
    if record.status() != OrderStatus::Validated {
        // Finish what the stored outcome owes (a crash may have come before it), re-publish it.
        settle_holds(
            kv,
            &order_id,
            &pairs,
            record.status(),
            record.reservation.as_ref(),
        )?;
        return republish(bus, &record);
    }
    let (lines, shortfalls) = match place(kv, &order_id, order, &locations, &pairs)? {
        Some(lines) => (lines, Vec::new()),
        None => walk(kv, &order_id, order, &locations)?,
    };

    // Stock held for an order whose payment is only authorized is held for a while only.
    let expires = (order.payment().status() == PaymentStatus::Authorized)
        .then(|| now + Duration::minutes(ttl_minutes));
    let (to, data, reservation, reason) = if shortfalls.is_empty() {
        let reservation = Reservation::new(order.id(), lines.clone(), expires)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        (
            OrderStatus::Reserved,
            json!({"lines": lines, "expires_at": expires}),
            Some(reservation),
            None,
        )
    } else if backorder_allowed(kv, &shortfalls)? {
        let reservation = Reservation::new(order.id(), lines.clone(), expires).ok();
        let short = shortfall_json(&shortfalls);
        (
            OrderStatus::Backordered,
            json!({"held": lines, "shortfalls": short}),
            reservation,
            Some(describe(&shortfalls)),
        )
    } else {
        let short = shortfall_json(&shortfalls);
        (
            OrderStatus::Rejected,
            json!({"reason": "insufficient_stock", "shortfalls": short}),
            None,
            Some(describe(&shortfalls)),
        )
    };

    if let Some(at) = reservation.as_ref().and_then(Reservation::expires_at) {
        // Indexed before the order changes, so the sweeper misses no expiring reservation;
        // it checks the order itself before acting.
        update_json(
            kv,
            keys::EXPIRING,
            |cur: Option<BTreeMap<String, DateTime<Utc>>>| {
                let mut index = cur.unwrap_or_default();
                index.insert(order_id.clone(), at);
                Ok::<_, FunctionError>(Change::Write(index, ()))
            },
        )?;
    }
    let event_id = ids();
    let published = update_json(kv, &keys::order(&order_id), |cur: Option<OrderRecord>| {
        let Some(mut rec) = cur else {
            return Ok(Change::Keep(None));
        };
        if rec.status() != OrderStatus::Validated {
            return Ok(Change::Keep(None));
        }
        let event = rec
            .transition(to, data.clone(), event_id, now)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        rec.reservation = reservation.clone();
        rec.reason = reason.clone();
        Ok::<_, FunctionError>(Change::Write(rec, Some(event)))
    })?;
    // Whichever run stored the outcome (this one, or another delivery of the same event that
    // got there first and publishes), what the order holds beyond it goes back now.
    match published {
        Some(event) => {
            settle_holds(kv, &order_id, &pairs, to, reservation.as_ref())?;
            bus.publish_event(&event).map_err(FunctionError::Internal)
        }
        None => match kv.get_json::<OrderRecord>(&keys::order(&order_id))? {
            Some(stored) => settle_holds(
                kv,
                &order_id,
                &pairs,
                stored.status(),
                stored.reservation.as_ref(),
            ),
            None => Ok(()),
        },
    }
}

/// Holds the order's units where the routing planner would ship them from; the lines held, or
/// `None` when no plan covers the order now (a shortfall, more shipments than the split limit)
/// or every plan lost its race. Holds the order already has count as its own, so a redelivery
/// keeps them; holds a lost race leaves behind stay the order's until its outcome is stored.
fn place(
    kv: &impl Kv,
    order_id: &str,
    order: &Order,
    locations: &[Location],
    pairs: &[(Sku, LocationId)],
) -> Result<Option<Vec<ReservedLine>>, FunctionError> {
    let request = RoutingRequest::for_order(order);
    let policy = routing_policy(kv)?;
    'plans: for _ in 0..MAX_PLANS {
        let own = inventory_for(kv, order_id, pairs, Usable::OwnOnly)?;
        let planned = match plan(&request, locations, &own, &policy) {
            Ok(p) => p,
            Err(_) => {
                let all = inventory_for(kv, order_id, pairs, Usable::OwnAndAvailable)?;
                match plan(&request, locations, &all, &policy) {
                    Ok(p) => p,
                    Err(_) => return Ok(None),
                }
            }
        };
        let units = planned.units_at();
        for ((sku, loc), n) in &units {
            let key = keys::stock(sku.as_str(), loc.as_str());
            let held = update_json(kv, &key, |doc: Option<StockDoc>| {
                let doc = doc.unwrap_or_default();
                match doc.hold_at_least(order_id, *n) {
                    Ok(next) if next == doc => Ok::<_, FunctionError>(Change::Keep(true)),
                    Ok(next) => Ok(Change::Write(next, true)),
                    Err(_) => Ok(Change::Keep(false)),
                }
            })?;
            if !held {
                continue 'plans;
            }
        }
        let lines = units
            .into_iter()
            .map(|((sku, location), units)| ReservedLine {
                sku,
                location,
                units,
            })
            .collect();
        return Ok(Some(lines));
    }
    Ok(None)
}

/// Units short per SKU.
type Shortfalls = Vec<(Sku, u32)>;

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
    let mut shortfalls: Vec<(Sku, u32)> = Vec::new();
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
            shortfalls.push((sku, need));
        }
    }
    Ok((lines, shortfalls))
}

/// Settles the order's holds to its stored outcome while this step owns them: a reserved or
/// backordered order keeps its reservation's holds and nothing more, a rejected or cancelled
/// one none. Allocations are route's and left alone.
fn settle_holds(
    kv: &impl Kv,
    order_id: &str,
    pairs: &[(Sku, LocationId)],
    status: OrderStatus,
    reservation: Option<&Reservation>,
) -> Result<(), FunctionError> {
    let keep: BTreeMap<(Sku, LocationId), u32> = match status {
        OrderStatus::Reserved | OrderStatus::Backordered => reservation
            .iter()
            .flat_map(|r| r.lines())
            .map(|l| ((l.sku.clone(), l.location.clone()), l.units))
            .collect(),
        OrderStatus::Rejected | OrderStatus::Cancelled => BTreeMap::new(),
        _ => return Ok(()),
    };
    settle(kv, order_id, pairs, &keep, None)
}

/// Releases what `order` holds at each reserved line's location (no-op where it holds nothing).
pub(crate) fn release_holds(
    kv: &impl Kv,
    order: &str,
    lines: &[ReservedLine],
) -> Result<(), FunctionError> {
    for line in lines {
        update_stock(kv, line.sku.as_str(), line.location.as_str(), |d| {
            d.release(order)
        })?;
    }
    Ok(())
}

/// Holds up to `need` units at `loc`; how many the order holds there now.
fn hold(
    kv: &impl Kv,
    sku: &Sku,
    loc: &Location,
    order: &str,
    need: u32,
) -> Result<u32, FunctionError> {
    update_json(
        kv,
        &keys::stock(sku.as_str(), loc.id().as_str()),
        |doc: Option<StockDoc>| {
            let Some(doc) = doc else {
                return Ok(Change::Keep(0));
            };
            let (next, held) = doc
                .hold_up_to(order, need)
                .map_err(|e| FunctionError::Internal(e.to_string()))?;
            if next == doc {
                Ok::<_, FunctionError>(Change::Keep(held))
            } else {
                Ok(Change::Write(next, held))
            }
        },
    )
}

/// Whether every short SKU's policy allows backordering the shortfall; counts it against the
/// SKU's outstanding backorders (`backorders:{sku}`) when it does.
fn backorder_allowed(kv: &impl Kv, shortfalls: &[(Sku, u32)]) -> Result<bool, FunctionError> {
    for (sku, short) in shortfalls {
        let policy: BackorderPolicy = kv
            .get_json(&keys::backorder(sku.as_str()))?
            .unwrap_or_default();
        let outstanding: u32 = kv.get_json(&format!("backorders:{sku}"))?.unwrap_or(0);
        if !policy.allows(outstanding, *short) {
            return Ok(false);
        }
    }
    for (sku, short) in shortfalls {
        update_json(kv, &format!("backorders:{sku}"), |cur: Option<u32>| {
            Ok::<_, FunctionError>(Change::Write(cur.unwrap_or(0) + short, ()))
        })?;
    }
    Ok(true)
}

fn shortfall_json(shortfalls: &[(Sku, u32)]) -> serde_json::Value {
    shortfalls
        .iter()
        .map(|(s, n)| json!({"sku": s, "units": n}))
        .collect()
}

fn describe(shortfalls: &[(Sku, u32)]) -> String {
    let parts: Vec<String> = shortfalls
        .iter()
        .map(|(s, n)| format!("{s} short by {n}"))
        .collect();
    format!("insufficient stock: {}", parts.join(", "))
}

/// The order already went past this step: publish its outcome again (downstream steps and
/// webhook receivers de-duplicate by event id).
fn republish(bus: &impl Bus, record: &OrderRecord) -> Result<(), FunctionError> {
    if let Some(event) = record
        .events
        .iter()
        .rev()
        .find(|e| OUTCOMES.contains(&e.event_type()))
    {
        bus.publish_event(event).map_err(FunctionError::Internal)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::{Coordinates, LocationId, LocationKind, Order, OrderId};
    use oms_edge::{MemBus, MemKv};

    fn order(qty: u32) -> Order {
        let body = json!({
            "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
            "lines": [{"sku": "SKU-1", "quantity": qty, "unit_price": "1.00"}],
            "shipping": {"method": "standard", "amount": "0.00",
                "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
            "tax": "0.00",
            "totals": {"subtotal": format!("{qty}.00"), "discount": "0.00", "shipping": "0.00", "tax": "0.00", "grand_total": format!("{qty}.00")},
            "payment": {"reference": "pi_1", "status": "captured", "amount": format!("{qty}.00")}
        });
        Order::from_request(&body, OrderId::new(oms_edge::new_id()), oms_edge::now()).unwrap()
    }

    fn setup(stock: &[(&str, u32)]) -> MemKv {
        let kv = MemKv::new();
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
        kv.set_json(keys::LOCATIONS, &locations).unwrap();
        for (id, n) in stock {
            kv.set_json(
                &keys::stock("SKU-1", id),
                &StockDoc::default().recount(*n).unwrap(),
            )
            .unwrap();
        }
        kv
    }

    fn place(kv: &MemKv, qty: u32) -> EventEnvelope {
        let rec = OrderRecord::accept(order(qty), oms_edge::new_id(), oms_edge::now()).unwrap();
        kv.set_json(&keys::order(&rec.order.id().to_string()), &rec)
            .unwrap();
        rec.events[0].clone()
    }

    fn status(kv: &MemKv, e: &EventEnvelope) -> OrderStatus {
        kv.get_json::<OrderRecord>(&keys::order(&e.order_id().to_string()))
            .unwrap()
            .unwrap()
            .status()
    }

    fn available(kv: &MemKv, loc: &str) -> u32 {
        kv.get_json::<StockDoc>(&keys::stock("SKU-1", loc))
            .unwrap()
            .unwrap()
            .available()
    }

    #[test]
    fn holds_where_the_order_ships_from_and_a_redelivery_changes_nothing() {
        let kv = setup(&[("a", 2), ("b", 5)]);
        let bus = MemBus::default();
        let e = place(&kv, 4);
        handle(&kv, &bus, &e, oms_edge::now(), 30, oms_edge::new_id).unwrap();
        assert_eq!(status(&kv, &e), OrderStatus::Reserved);
        assert_eq!(
            (available(&kv, "a"), available(&kv, "b")),
            (2, 1),
            "one shipment from b, as route will plan it"
        );
        handle(&kv, &bus, &e, oms_edge::now(), 30, oms_edge::new_id).unwrap();
        assert_eq!(
            (available(&kv, "a"), available(&kv, "b")),
            (2, 1),
            "no double reservation"
        );
        let sent: Vec<String> = bus.sent.borrow().iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(
            sent,
            ["order.reserved", "order.reserved"],
            "the outcome is re-published, not redone"
        );
    }

    /// An earlier delivery held at b (a was sold out then) and died before storing the
    /// outcome; a has stock again when the event is redelivered. The redelivery keeps the
    /// order's hold at b instead of taking a second unit at a (freed only later, by route).
    #[test]
    fn a_redelivery_keeps_the_hold_an_earlier_delivery_took() {
        let kv = setup(&[("a", 5), ("b", 5)]);
        let bus = MemBus::default();
        let e = place(&kv, 1);
        let id = e.order_id().to_string();
        update_stock(&kv, "SKU-1", "b", |d| d.hold_up_to(&id, 1).map(|(d, _)| d)).unwrap();
        handle(&kv, &bus, &e, oms_edge::now(), 30, oms_edge::new_id).unwrap();
        assert_eq!(status(&kv, &e), OrderStatus::Reserved);
        assert_eq!(
            (available(&kv, "a"), available(&kv, "b")),
            (5, 4),
            "one unit held, where it already was"
        );
    }

    #[test]
    fn a_shortfall_without_backorders_rejects_and_releases() {
        let kv = setup(&[("a", 3)]);
        let bus = MemBus::default();
        let e = place(&kv, 5);
        handle(&kv, &bus, &e, oms_edge::now(), 30, oms_edge::new_id).unwrap();
        assert_eq!(status(&kv, &e), OrderStatus::Rejected);
        assert_eq!(available(&kv, "a"), 3);
    }

    #[test]
    fn a_shortfall_within_the_backorder_policy_backorders() {
        let kv = setup(&[("a", 3)]);
        kv.set_json(&keys::backorder("SKU-1"), &BackorderPolicy::UpTo(2))
            .unwrap();
        let bus = MemBus::default();
        let e = place(&kv, 5);
        handle(&kv, &bus, &e, oms_edge::now(), 30, oms_edge::new_id).unwrap();
        assert_eq!(status(&kv, &e), OrderStatus::Backordered);
        let e2 = place(&kv, 1);
        handle(&kv, &bus, &e2, oms_edge::now(), 30, oms_edge::new_id).unwrap();
        assert_eq!(
            status(&kv, &e2),
            OrderStatus::Rejected,
            "the backorder allowance is used up"
        );
    }
}
