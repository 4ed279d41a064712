//! The stored stock of one SKU at one location (`keys::stock`): the domain's `StockLevel` plus
//! which order holds or has allocated which units. Every change is one compare-and-swap of this
//! document, and every per-order operation is idempotent — a redelivered message or a retried
//! request finds its own hold or allocation already there and changes nothing — so stock is
//! never reserved, released or shipped twice, whatever the queue redelivers.

use std::collections::{BTreeMap, BTreeSet};

use oms_domain::{BackorderPolicy, StockError, StockLevel};
use serde::{Deserialize, Serialize};

use crate::kv::{update_json, Change, Kv};
use crate::problem::FunctionError;
use crate::record::keys;

/// Stock of one SKU at one location, with per-order holds and allocations.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StockDoc {
    /// On hand, reserved and allocated units (reserved = Σ holds, allocated = Σ allocations).
    pub level: StockLevel,
    /// Units reserved per order id.
    #[serde(default)]
    pub holds: BTreeMap<String, u32>,
    /// Units allocated per order id (to be shipped from here).
    #[serde(default)]
    pub allocations: BTreeMap<String, u32>,
    /// Restocks already applied (tokens such as `return:{id}:{line}`), so a retry adds nothing.
    #[serde(default)]
    pub receipts: BTreeSet<String>,
}

impl StockDoc {
    /// Units available to promise.
    pub fn available(&self) -> u32 {
        self.level.available()
    }

    /// Units `order` holds here.
    pub fn held_by(&self, order: &str) -> u32 {
        self.holds.get(order).copied().unwrap_or(0)
    }

    /// Units allocated to `order` here.
    pub fn allocated_to(&self, order: &str) -> u32 {
        self.allocations.get(order).copied().unwrap_or(0)
    }

    /// Holds up to `units` for `order` (as many as are available); `(doc, units held)`.
    /// Idempotent: when the order already holds units here, nothing changes.
    ///
    /// # Errors
    /// [`StockError`] if the level would become inconsistent (cannot happen for `take ≤ ATP`).
    pub fn hold_up_to(&self, order: &str, units: u32) -> Result<(StockDoc, u32), StockError> {
        if let Some(held) = self.holds.get(order) {
            return Ok((self.clone(), *held));
        }
        let take = units.min(self.available());
        if take == 0 {
            return Ok((self.clone(), 0));
        }
        let mut next = self.clone();
        next.level = self.level.reserve(take)?;
        next.holds.insert(order.to_string(), take);
        Ok((next, take))
    }

    /// Releases everything `order` holds here (no-op when it holds nothing).
    ///
    /// # Errors
    /// [`StockError`] for an inconsistent document.
    pub fn release(&self, order: &str) -> Result<StockDoc, StockError> {
        let mut next = self.clone();
        if let Some(held) = next.holds.remove(order) {
            next.level = self.level.release(held)?;
        }
        Ok(next)
    }

    /// What `order` has committed here: `(held, allocated)`.
    pub fn commitment(&self, order: &str) -> (u32, u32) {
        (self.held_by(order), self.allocated_to(order))
    }

    /// Makes `order` hold at least `units` here, taking only what it does not hold already.
    /// Idempotent, and never lowers a hold (what the order holds beyond `units` stays its own
    /// until its outcome is stored; see [`StockDoc::trim_hold`]).
    ///
    /// # Errors
    /// [`StockError::Insufficient`] when the difference is not available (nothing changes).
    pub fn hold_at_least(&self, order: &str, units: u32) -> Result<StockDoc, StockError> {
        let (held, allocated) = self.commitment(order);
        if held >= units {
            return Ok(self.clone());
        }
        self.set_commitment(order, units, allocated)
    }

    /// Lowers what `order` holds here to at most `units`; the rest becomes available (no-op
    /// when it holds no more than that).
    ///
    /// # Errors
    /// [`StockError`] for an inconsistent document.
    pub fn trim_hold(&self, order: &str, units: u32) -> Result<StockDoc, StockError> {
        let (held, allocated) = self.commitment(order);
        if held <= units {
            return Ok(self.clone());
        }
        self.set_commitment(order, units, allocated)
    }

    /// Allocates exactly `units` to `order`: its hold here is converted first and any remainder
    /// is taken from available stock. Nothing the order holds is given up here: a hold beyond
    /// the allocation, or an allocation lowered, stays held for the order until its plan is
    /// stored (then [`StockDoc::release`] / [`StockDoc::trim_hold`] free it). Idempotent when
    /// the allocation is already in place.
    ///
    /// # Errors
    /// [`StockError::Insufficient`] when the remainder is not available (nothing changes).
    pub fn allocate(&self, order: &str, units: u32) -> Result<StockDoc, StockError> {
        let (held, allocated) = self.commitment(order);
        if allocated == units {
            return Ok(self.clone());
        }
        let held = if units > allocated {
            held.saturating_sub(units - allocated)
        } else {
            held + (allocated - units)
        };
        self.set_commitment(order, held, units)
    }

    /// Puts `order`'s commitment here back to `before` if it is still `after` (what this run
    /// wrote); otherwise someone else (a duplicate delivery of the same step) has changed it
    /// since, and it is left for that run's outcome to settle. Used to undo an allocation
    /// after a lost race without giving away what the order held.
    ///
    /// # Errors
    /// [`StockError`] when `before` no longer fits the stock.
    pub fn restore(
        &self,
        order: &str,
        after: (u32, u32),
        before: (u32, u32),
    ) -> Result<StockDoc, StockError> {
        if self.commitment(order) != after {
            return Ok(self.clone());
        }
        self.set_commitment(order, before.0, before.1)
    }

    /// Sets what `order` holds and has allocated here, in one step of this document.
    fn set_commitment(
        &self,
        order: &str,
        held: u32,
        allocated: u32,
    ) -> Result<StockDoc, StockError> {
        let (was_held, was_allocated) = self.commitment(order);
        let mut next = self.clone();
        next.level = self
            .level
            .deallocate(was_allocated)?
            .release(was_held.saturating_add(was_allocated))?
            .reserve(held.checked_add(allocated).ok_or(StockError::Overflow)?)?
            .allocate(allocated)?;
        for (map, units) in [(&mut next.holds, held), (&mut next.allocations, allocated)] {
            if units == 0 {
                map.remove(order);
            } else {
                map.insert(order.to_string(), units);
            }
        }
        Ok(next)
    }

    /// Returns `order`'s allocation here to available stock (no-op when none).
    ///
    /// # Errors
    /// [`StockError`] for an inconsistent document.
    pub fn deallocate(&self, order: &str) -> Result<StockDoc, StockError> {
        let mut next = self.clone();
        if let Some(units) = next.allocations.remove(order) {
            next.level = self.level.deallocate(units)?.release(units)?;
        }
        Ok(next)
    }

    /// Ships `order`'s allocation: the units leave on-hand stock (no-op when none).
    ///
    /// # Errors
    /// [`StockError`] for an inconsistent document.
    pub fn ship(&self, order: &str) -> Result<StockDoc, StockError> {
        let mut next = self.clone();
        if let Some(units) = next.allocations.remove(order) {
            next.level = self.level.ship(units)?;
        }
        Ok(next)
    }

    /// Adds `units` to on-hand stock once per `token` (a retry with the same token is a no-op).
    ///
    /// # Errors
    /// [`StockError`] on overflow.
    pub fn receive_once(&self, token: &str, units: u32) -> Result<StockDoc, StockError> {
        if self.receipts.contains(token) {
            return Ok(self.clone());
        }
        let mut next = self.clone();
        next.level = self.level.receive(units)?;
        next.receipts.insert(token.to_string());
        Ok(next)
    }

    /// Sets on-hand stock (a count); refused below what is reserved and allocated.
    ///
    /// # Errors
    /// [`StockError`] when `on_hand` is below reserved + allocated.
    pub fn recount(&self, on_hand: u32) -> Result<StockDoc, StockError> {
        let mut next = self.clone();
        next.level = self.level.recount(on_hand)?;
        Ok(next)
    }
}

/// Applies a stock operation to one (SKU, location) document by compare-and-swap, writing only
/// when it changes something; the document after. A missing document is empty stock.
///
/// # Errors
/// Storage errors; a [`StockError`] (an operation that does not fit the stock) as an internal
/// error — callers use this for operations that are valid by construction (releases,
/// deallocations, shipping an existing allocation).
pub fn update_stock<K: Kv>(
    kv: &K,
    sku: &str,
    location: &str,
    op: impl Fn(&StockDoc) -> Result<StockDoc, StockError>,
) -> Result<StockDoc, FunctionError> {
    update_json(kv, &keys::stock(sku, location), |cur: Option<StockDoc>| {
        let doc = cur.unwrap_or_default();
        let next = op(&doc)
            .map_err(|e| FunctionError::Internal(format!("stock {sku}@{location}: {e}")))?;
        if next == doc {
            Ok(Change::Keep(next))
        } else {
            Ok(Change::Write(next.clone(), next))
        }
    })
}

/// The units of one SKU promised beyond stock (backorders), per order
/// (`backorder-promises:{sku}`): the SKU's backorder limit ([`BackorderPolicy::UpTo`]) is
/// checked against and counted in this one document, so a promise is one compare-and-swap —
/// concurrent orders cannot exceed the limit, and a redelivery finds its own promise instead
/// of counting twice. A promise is given back when the order ends up reserved in full,
/// rejected or cancelled ([`BackorderDoc::release`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackorderDoc {
    /// Units promised per order id.
    #[serde(default)]
    pub promised: BTreeMap<String, u32>,
}

impl BackorderDoc {
    /// The key of a SKU's promises.
    pub fn key(sku: &str) -> String {
        format!("backorder-promises:{sku}")
    }

    /// Units promised to all orders.
    pub fn outstanding(&self) -> u32 {
        self.promised
            .values()
            .fold(0u32, |sum, n| sum.saturating_add(*n))
    }

    /// Units promised to `order`.
    pub fn promised_to(&self, order: &str) -> u32 {
        self.promised.get(order).copied().unwrap_or(0)
    }

    /// Promises `order` exactly `units` under `policy`: the document after, or `None` when
    /// the limit does not allow it (counting every other order's promise). Idempotent: an
    /// order already promised `units` gets the document unchanged.
    pub fn promise(
        &self,
        order: &str,
        units: u32,
        policy: BackorderPolicy,
    ) -> Option<BackorderDoc> {
        if self.promised_to(order) == units {
            return Some(self.clone());
        }
        let others = self.outstanding() - self.promised_to(order);
        if !policy.allows(others, units) {
            return None;
        }
        let mut next = self.clone();
        if units == 0 {
            next.promised.remove(order);
        } else {
            next.promised.insert(order.to_string(), units);
        }
        Some(next)
    }

    /// Gives back what was promised to `order` (no-op when nothing was).
    pub fn release(&self, order: &str) -> BackorderDoc {
        let mut next = self.clone();
        next.promised.remove(order);
        next
    }
}

/// Applies `op` to a SKU's [`BackorderDoc`] by compare-and-swap, writing only when it changes
/// something; `op`'s verdict (`None`: refused, nothing written).
///
/// # Errors
/// Storage errors.
pub fn update_backorders<K: Kv>(
    kv: &K,
    sku: &str,
    op: impl Fn(&BackorderDoc) -> Option<BackorderDoc>,
) -> Result<Option<BackorderDoc>, FunctionError> {
    update_json(kv, &BackorderDoc::key(sku), |cur: Option<BackorderDoc>| {
        let doc = cur.unwrap_or_default();
        match op(&doc) {
            Some(next) if next != doc => {
                Ok::<_, FunctionError>(Change::Write(next.clone(), Some(next)))
            }
            verdict => Ok(Change::Keep(verdict)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(on_hand: u32) -> StockDoc {
        StockDoc::default().recount(on_hand).unwrap()
    }

    #[test]
    fn backorder_promises_count_once_per_order_within_the_limit() {
        let limit = BackorderPolicy::UpTo(3);
        let d = BackorderDoc::default().promise("o1", 2, limit).unwrap();
        assert_eq!(
            d.promise("o1", 2, limit).unwrap(),
            d,
            "a redelivery counts once"
        );
        assert!(d.promise("o2", 2, limit).is_none(), "only one unit is left");
        let d = d.promise("o2", 1, limit).unwrap();
        assert_eq!(d.outstanding(), 3);
        let d = d.release("o1");
        assert_eq!((d.outstanding(), d.release("o1")), (1, d.clone()));
        assert!(d.promise("o3", 1, BackorderPolicy::Never).is_none());
        assert!(d.promise("o3", 9, BackorderPolicy::Unlimited).is_some());
    }

    #[test]
    fn holds_allocations_and_shipping_are_idempotent_per_order() {
        let d = doc(10);
        let (d, got) = d.hold_up_to("o1", 4).unwrap();
        assert_eq!((got, d.available()), (4, 6));
        let (d, again) = d.hold_up_to("o1", 4).unwrap();
        assert_eq!(
            (again, d.available()),
            (4, 6),
            "a redelivery holds nothing more"
        );
        let (d, partial) = d.hold_up_to("o2", 9).unwrap();
        assert_eq!((partial, d.available()), (6, 0));
        let d = d.allocate("o1", 4).unwrap();
        assert_eq!(
            d.allocate("o1", 4).unwrap(),
            d,
            "allocating again is a no-op"
        );
        assert_eq!((d.level.reserved(), d.level.allocated()), (6, 4));
        let d = d.ship("o1").unwrap().ship("o1").unwrap();
        assert_eq!((d.level.on_hand(), d.level.allocated()), (6, 0));
        let d = d.release("o2").unwrap().release("o2").unwrap();
        assert_eq!(d.available(), 6);
        let d = d
            .receive_once("return:r1:0", 2)
            .unwrap()
            .receive_once("return:r1:0", 2)
            .unwrap();
        assert_eq!(d.level.on_hand(), 8);
    }

    #[test]
    fn allocation_elsewhere_than_the_hold_takes_available_stock() {
        let d = doc(3);
        let d = d.allocate("o1", 2).unwrap();
        assert_eq!((d.available(), d.allocated_to("o1")), (1, 2));
        assert!(d.allocate("o2", 2).is_err(), "only one unit is left");
        let d = d.deallocate("o1").unwrap();
        assert_eq!(d.available(), 3);
    }

    #[test]
    fn allocating_never_gives_away_what_the_order_holds() {
        let d = doc(5).hold_at_least("o1", 2).unwrap();
        assert_eq!(
            d.hold_at_least("o1", 1).unwrap(),
            d,
            "a hold is never lowered"
        );
        assert!(
            d.hold_at_least("o2", 4).is_err(),
            "only three are available"
        );
        // Allocating one converts one held unit; the other stays held for the order.
        let one = d.allocate("o1", 1).unwrap();
        assert_eq!((one.commitment("o1"), one.available()), ((1, 1), 3));
        // Undoing that allocation gives the unit back to the order, not to everyone.
        let undone = one.restore("o1", (1, 1), (2, 0)).unwrap();
        assert_eq!(undone, d);
        // An undo finds someone else's change (a duplicate delivery) and leaves it.
        let other = one.allocate("o1", 2).unwrap();
        assert_eq!(other.restore("o1", (1, 1), (2, 0)).unwrap(), other);
        // Once the outcome is stored, what is held beyond it goes back.
        let settled = other.trim_hold("o1", 0).unwrap();
        assert_eq!((settled.commitment("o1"), settled.available()), ((0, 2), 3));
        // Allocating more than held takes the rest from available stock.
        let more = d.allocate("o1", 4).unwrap();
        assert_eq!((more.commitment("o1"), more.available()), ((0, 4), 1));
    }
}
