//! Where an order's units come from, as reserve and route both decide it: the stored routing
//! policy, the stock one order may use, and settling the order's holds and allocations to the
//! outcome that was stored.
//!
//! Moving an order's units from one location to another takes two compare-and-swaps (take at
//! the new place, give back at the old); a crash between them leaves the order holding twice
//! until its message is redelivered, and orders refused meanwhile are not asked again. So the
//! steps avoid moves: reserve holds where the planner would ship from, route allocates what
//! the order holds when that is a valid plan ([`Usable::OwnOnly`]), and what an order holds is
//! only given back once its outcome is stored ([`settle`]).

use std::collections::BTreeMap;

use oms_domain::{Inventory, Location, LocationId, RoutingPolicy, Sku, StockLevel};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::kv::Kv;
use crate::problem::FunctionError;
use crate::record::keys;
use crate::stock::{update_order_stock, views, StockDoc};

/// Which units of a (SKU, location) an order may plan with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    /// Only what the order already holds or has allocated there.
    OwnOnly,
    /// That plus what is available to anyone.
    OwnAndAvailable,
}

#[derive(Deserialize)]
struct StoredPolicy {
    split_limit: usize,
    cost_per_km: String,
}

/// The routing policy as stored by admin (`keys::ROUTING_POLICY`); split limit 3 and
/// 0.01 per km when none is stored.
///
/// # Errors
/// Storage errors, or a stored policy the domain refuses.
pub fn routing_policy(kv: &impl Kv) -> Result<RoutingPolicy, FunctionError> {
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

/// Every (SKU, location) an order with these SKUs may touch.
pub fn pairs<'a>(
    skus: impl IntoIterator<Item = &'a Sku>,
    locations: &[Location],
) -> Vec<(Sku, LocationId)> {
    let mut out = Vec::new();
    for sku in skus {
        for loc in locations {
            out.push((sku.clone(), loc.id().clone()));
        }
    }
    out
}

/// Stock as `order` may use it across `pairs` (missing documents are no stock): its own
/// commitment read from the journal or beside the document.
///
/// # Errors
/// Storage errors or an unreadable stock document.
pub fn inventory_for(
    kv: &impl Kv,
    order: &str,
    pairs: &[(Sku, LocationId)],
    usable: Usable,
) -> Result<Inventory, FunctionError> {
    let docs = views(kv, order, &names(pairs))?;
    let mut inventory = Inventory::new();
    for ((sku, loc), doc) in pairs.iter().zip(docs) {
        let Some(doc) = doc else { continue };
        let own = doc.held_by(order) + doc.allocated_to(order);
        let units = match usable {
            Usable::OwnOnly => own,
            Usable::OwnAndAvailable => own + doc.available(),
        };
        inventory.set(sku.clone(), loc.clone(), StockLevel::with_on_hand(units));
    }
    Ok(inventory)
}

/// Settles `order`'s stock at every pair to its stored outcome: given `allocated`, its
/// allocation at each pair becomes exactly that many units (none where it has no entry; an
/// allocation lowered goes back to the order's hold first, a missing unit is taken only from
/// its hold there), and it then holds at most `held` units at each (none
/// where `held` has no entry). `None` leaves allocations alone. Idempotent, so a redelivery or
/// a losing duplicate finishes what the winner owes — including an allocation a duplicate
/// run left at a planned location with other units than the stored plan.
///
/// # Errors
/// Storage errors.
pub fn settle(
    kv: &impl Kv,
    order: &str,
    pairs: &[(Sku, LocationId)],
    held: &BTreeMap<(Sku, LocationId), u32>,
    allocated: Option<&BTreeMap<(Sku, LocationId), u32>>,
) -> Result<(), FunctionError> {
    // One read for all; a write only where something is owed (most pairs owe nothing).
    let docs = views(kv, order, &names(pairs))?;
    for (pair, doc) in pairs.iter().zip(docs) {
        let Some(doc) = doc else { continue };
        let keep = held.get(pair).copied().unwrap_or(0);
        let allocation = allocated.map(|a| a.get(pair).copied().unwrap_or(0));
        let op = |d: &StockDoc| match allocation {
            Some(units) => {
                // Never more than the order already has here: units that shipped meanwhile
                // (or were never its own) are not taken from anyone.
                let (h, a) = d.commitment(order);
                d.allocate(order, units.min(h + a))?.trim_hold(order, keep)
            }
            None => d.trim_hold(order, keep),
        };
        if op(&doc).map_err(|e| FunctionError::Internal(e.to_string()))? == doc {
            continue;
        }
        update_order_stock(kv, pair.0.as_str(), pair.1.as_str(), order, op)?;
    }
    Ok(())
}

/// The pairs as (SKU, location) strings.
fn names(pairs: &[(Sku, LocationId)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(s, l)| (s.as_str().to_string(), l.as_str().to_string()))
        .collect()
}
