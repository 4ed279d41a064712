//! The routing step over any `Kv` and `Bus`.

use chrono::{DateTime, Utc};
use oms_domain::{
    plan, EventEnvelope, EventType, FulfilmentPlan, Inventory, Location, OrderStatus,
    RoutingPolicy, RoutingRequest, StockLevel,
};
use oms_edge::{
    keys, update_json, update_stock, Bus, Change, FunctionError, Kv, OrderRecord, ShipmentRecord,
    ShipmentStatus, StockDoc,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// Plans tried before giving up on a race-heavy SKU (each retry sees fresher stock).
const MAX_PLANS: usize = 5;

#[derive(Deserialize)]
struct StoredPolicy {
    split_limit: usize,
    cost_per_km: String,
}

fn policy(kv: &impl Kv) -> Result<RoutingPolicy, FunctionError> {
    let stored: Option<StoredPolicy> = kv.get_json(keys::ROUTING_POLICY)?;
    let (split, cost) = match stored {
        Some(p) => (
            p.split_limit,
            p.cost_per_km.parse().unwrap_or(Decimal::ZERO),
        ),
        None => (3, Decimal::new(1, 2)),
    };
    RoutingPolicy::new(split, cost).map_err(|e| FunctionError::Internal(e.to_string()))
}

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
    if record.status() != OrderStatus::Reserved {
        // Past this step already (or cancelled): re-publish its outcome in case the first run
        // crashed between storing and publishing.
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
    let locations: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    let policy = policy(kv)?;
    let request = RoutingRequest::for_order(&record.order);

    let mut outcome = Err(String::from("no plan attempted"));
    for _ in 0..MAX_PLANS {
        let inventory = inventory_for(kv, &record, &locations)?;
        let planned = match plan(&request, &locations, &inventory, &policy) {
            Ok(p) => p,
            Err(e) => {
                outcome = Err(e.to_string());
                break;
            }
        };
        match allocate(kv, &order_id, &planned)? {
            true => {
                outcome = Ok(planned);
                break;
            }
            false => outcome = Err("allocation lost a race; re-planning".into()),
        }
    }

    let event_id = ids();
    let (to, data, plan_opt, reason) = match outcome {
        Ok(p) => {
            release_other_holds(kv, &record, &order_id, &p, &locations)?;
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
        Some(e) => bus.publish_event(&e).map_err(FunctionError::Internal),
        None => {
            // The order moved on while we planned. If it was cancelled, the cancel released
            // only what the record listed: give back what this run allocated.
            let now_status = kv
                .get_json::<OrderRecord>(&keys::order(&order_id))?
                .map(|r| r.status());
            if now_status == Some(OrderStatus::Cancelled) {
                if let Some(p) = &plan_opt {
                    for (sku, loc) in p.units_at().keys() {
                        update_stock(kv, sku.as_str(), loc.as_str(), |d| {
                            d.deallocate(&order_id)?.release(&order_id)
                        })?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// Stock as this order may use it: what is available to anyone plus what it already holds or
/// has allocated (a redelivery plans with its own earlier allocations counted).
fn inventory_for(
    kv: &impl Kv,
    record: &OrderRecord,
    locations: &[Location],
) -> Result<Inventory, FunctionError> {
    let order_id = record.order.id().to_string();
    let mut pairs = Vec::new();
    for sku in record.order.units_by_sku().keys() {
        for loc in locations {
            pairs.push((sku.clone(), loc.id().clone()));
        }
    }
    let docs = kv.get_many(
        &pairs
            .iter()
            .map(|(s, l)| keys::stock(s.as_str(), l.as_str()))
            .collect::<Vec<_>>(),
    )?;
    let mut inventory = Inventory::new();
    for ((sku, loc), raw) in pairs.into_iter().zip(docs) {
        let Some(raw) = raw else { continue };
        let doc: StockDoc = serde_json::from_slice(&raw)?;
        let usable = doc.available() + doc.held_by(&order_id) + doc.allocated_to(&order_id);
        inventory.set(sku, loc, StockLevel::with_on_hand(usable));
    }
    Ok(inventory)
}

/// Allocates every planned line by CAS; on the first failure undoes this plan's allocations
/// and returns `false` (the caller re-plans).
fn allocate(kv: &impl Kv, order: &str, planned: &FulfilmentPlan) -> Result<bool, FunctionError> {
    let mut done: Vec<(oms_domain::Sku, oms_domain::LocationId)> = Vec::new();
    for ((sku, loc), units) in planned.units_at() {
        let key = keys::stock(sku.as_str(), loc.as_str());
        let ok = update_json(kv, &key, |doc: Option<StockDoc>| {
            match doc.unwrap_or_default().allocate(order, units) {
                Ok(next) => Ok::<_, FunctionError>(Change::Write(next, true)),
                Err(_) => Ok(Change::Keep(false)),
            }
        })?;
        if !ok {
            for (sku, loc) in done {
                update_stock(kv, sku.as_str(), loc.as_str(), |d: &StockDoc| {
                    d.deallocate(order)
                })?;
            }
            return Ok(false);
        }
        done.push((sku, loc));
    }
    Ok(true)
}

/// Holds at locations the plan does not ship from go back to available stock.
fn release_other_holds(
    kv: &impl Kv,
    record: &OrderRecord,
    order: &str,
    planned: &FulfilmentPlan,
    locations: &[Location],
) -> Result<(), FunctionError> {
    let used = planned.units_at();
    for sku in record.order.units_by_sku().keys() {
        for loc in locations {
            if used.contains_key(&(sku.clone(), loc.id().clone())) {
                continue;
            }
            update_stock(kv, sku.as_str(), loc.id().as_str(), |d| d.release(order))?;
        }
    }
    Ok(())
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
