//! The routing step (`order.reserved`) on the step runner.
//!
//! The order's own holds are allocated where they are whenever they make a valid plan (reserve
//! placed them where the planner ships from), so routing normally moves no unit between
//! locations; only when they do not is the order re-planned on all stock. Allocations are
//! written inside the runner's decision, idempotent per order (a stock document's allocation
//! for an order is set, never added to), so a decision re-run after a lost compare-and-swap
//! or a redelivery allocates nothing twice. Whatever the order holds stays its own until the
//! outcome is stored; then its stock is settled to the stored plan — by this run, by a
//! redelivery, or by a duplicate that lost the race to store.
//!
//! A redelivery of a step that already ran changes nothing: the runner publishes whatever the
//! order still owes (not only `order.routed`), and the stock is settled again.

use std::collections::BTreeMap;

use oms_domain::{
    plan, FulfilmentError, FulfilmentPlan, Location, LocationId, OrderRecord, OrderStatus,
    RoutingPolicy, RoutingRequest, Sku,
};
use oms_edge::{
    inventory_for, keys, pairs, routing_policy, run, settle, update_commitment, update_order_stock,
    Change, Decision, Env, FunctionError, Kv, Usable,
};

/// Plans tried before giving up on a race-heavy SKU (each retry sees fresher stock).
const MAX_PLANS: usize = 5;

/// Routes one order (on its `order.reserved` event): plan, allocate, store the outcome with
/// its event (`order.routed`, or `order.backordered` when no plan exists), publish, settle
/// the order's stock to what was stored.
///
/// # Errors
/// Storage errors (the queue redelivers, the reconciler re-drives; the step is idempotent).
/// An unknown order is logged and ignored.
pub fn handle<E: Env>(env: &E, order_id: &str) -> Result<(), FunctionError> {
    let locations: Vec<Location> = env.kv().get_json(keys::LOCATIONS)?.unwrap_or_default();
    let policy = routing_policy(env.kv())?;
    let stored = run(env, order_id, |record| {
        if !record.needs_routing() {
            return Ok(Decision::Unchanged(record.clone()));
        }
        let outcome = plan_and_allocate(env.kv(), record, &locations, &policy)?;
        let (event_id, now) = (env.new_id(), env.now());
        match outcome {
            Ok(p) => record.route(p, event_id, now),
            Err(why) => record.backorder_unroutable(why, event_id, now),
        }
        .map_err(internal)?;
        Ok(Decision::Changed(record.clone()))
    });
    let record = match stored {
        Err(FunctionError::Problem(p)) if p.status == 404 => {
            eprintln!("route: order {order_id} not found; ignoring");
            return Ok(());
        }
        other => other?,
    };
    let pairs = pairs(record.order().units_by_sku().keys(), &locations);
    settle_to_stored(env.kv(), order_id, &pairs, &record)
}

fn internal(e: FulfilmentError) -> FunctionError {
    FunctionError::Internal(e.to_string())
}

/// Plans on the order's own units, else on all stock, and allocates the plan; re-plans on a
/// lost allocation race. `Err(reason)` when no plan can be allocated.
fn plan_and_allocate(
    kv: &impl Kv,
    record: &OrderRecord,
    locations: &[Location],
    policy: &RoutingPolicy,
) -> Result<Result<FulfilmentPlan, String>, FunctionError> {
    let order_id = record.order().id().to_string();
    if record.order().units_by_sku().is_empty() {
        // Digital goods only: nothing to allocate, routed with no shipment.
        return Ok(Ok(FulfilmentPlan {
            shipments: Vec::new(),
            total_cost: Default::default(),
        }));
    }
    let pairs = pairs(record.order().units_by_sku().keys(), locations);
    let request = RoutingRequest::for_order(record.order());
    for _ in 0..MAX_PLANS {
        let own = inventory_for(kv, &order_id, &pairs, Usable::OwnOnly)?;
        let planned = match plan(&request, locations, &own, policy) {
            Ok(p) => p,
            Err(_) => {
                let all = inventory_for(kv, &order_id, &pairs, Usable::OwnAndAvailable)?;
                match plan(&request, locations, &all, policy) {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e.to_string())),
                }
            }
        };
        if allocate(kv, &order_id, &planned)? {
            return Ok(Ok(planned));
        }
    }
    Ok(Err("allocation lost a race; re-planning".into()))
}

/// Settles the order's stock to its stored outcome where this step owns it: a routed order
/// keeps exactly its plan's allocations and no holds, a cancelled or rejected one nothing.
fn settle_to_stored(
    kv: &impl Kv,
    order: &str,
    pairs: &[(Sku, LocationId)],
    record: &OrderRecord,
) -> Result<(), FunctionError> {
    match record.status() {
        OrderStatus::Routed => settle(
            kv,
            order,
            pairs,
            &BTreeMap::new(),
            Some(&record.allocated_units()),
        ),
        OrderStatus::Cancelled | OrderStatus::Rejected => {
            settle(kv, order, pairs, &BTreeMap::new(), Some(&BTreeMap::new()))
        }
        _ => Ok(()),
    }
}

/// Allocates every planned line by CAS; on the first failure puts back what this attempt
/// changed — units converted from the order's holds become its holds again, never free
/// stock — and returns `false` (the caller re-plans).
pub(crate) fn allocate(
    kv: &impl Kv,
    order: &str,
    planned: &FulfilmentPlan,
) -> Result<bool, FunctionError> {
    type Commitment = (u32, u32);
    let mut done: Vec<(Sku, LocationId, Commitment, Commitment)> = Vec::new();
    for ((sku, loc), units) in planned.units_at() {
        let moved = update_commitment(kv, sku.as_str(), loc.as_str(), order, |doc| {
            match doc.allocate(order, units) {
                Ok(next) if next == *doc => Ok(Change::Keep(Some(None))),
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
                    update_order_stock(kv, sku.as_str(), loc.as_str(), order, |d| {
                        d.restore(order, *after, *before)
                    })?;
                }
                return Ok(false);
            }
        }
    }
    Ok(true)
}
