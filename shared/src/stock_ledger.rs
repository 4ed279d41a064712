//! The per-order stock ledger of one SKU at one location: the counts ([`StockLevel`]) plus
//! which order holds or has allocated which units, and which receipts were booked. Stored as
//! one document per (SKU, location) and changed by one compare-and-swap at a time (the glue's
//! `update_stock`); every per-order operation is idempotent — a redelivered message or a
//! retried request finds its own hold or allocation already there and changes nothing — so
//! stock is never reserved, released, shipped or restocked twice.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{StockError, StockLevel};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(on_hand: u32) -> StockDoc {
        StockDoc::default().recount(on_hand).unwrap()
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

    proptest::proptest! {
        /// Any interleaving of holds, releases and allocations by several orders over several
        /// documents keeps every level consistent and conserves units: without receipts or
        /// shipments on-hand never changes, nothing is committed beyond it, and the per-order
        /// ledger always adds up to the counts.
        #[test]
        fn holds_and_allocations_conserve_units(
            stock in proptest::collection::vec(0u32..6, 4),
            ops in proptest::collection::vec((0u8..3, 0u8..4, 0usize..4, 0u32..4), 0..60),
        ) {
            let mut docs: Vec<StockDoc> = stock
                .iter()
                .map(|n| StockDoc::default().recount(*n).unwrap())
                .collect();
            for (kind, who, cell, units) in ops {
                let order = format!("o{who}");
                let doc = &docs[cell];
                let next = match kind {
                    0 => doc.hold_up_to(&order, units).map(|(d, _)| d),
                    1 => doc.release(&order),
                    _ => doc.allocate(&order, units),
                };
                if let Ok(next) = next {
                    docs[cell] = next;
                }
                for (d, n) in docs.iter().zip(&stock) {
                    let l = &d.level;
                    proptest::prop_assert_eq!(l.on_hand(), *n);
                    proptest::prop_assert_eq!(
                        u64::from(l.available()) + u64::from(l.reserved()) + u64::from(l.allocated()),
                        u64::from(l.on_hand())
                    );
                    proptest::prop_assert_eq!(d.holds.values().sum::<u32>(), l.reserved());
                    proptest::prop_assert_eq!(d.allocations.values().sum::<u32>(), l.allocated());
                }
            }
        }
    }
}
