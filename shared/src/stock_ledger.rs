//! The per-order stock ledger of one SKU at one location: the counts ([`StockLevel`]) plus
//! which order holds or has allocated which units, and which receipts were booked. Changed by
//! one compare-and-swap at a time (the glue's `update_commitment`); every per-order operation
//! is idempotent — a redelivered message or a retried request finds its own hold or
//! allocation already there and changes nothing — so stock is never reserved, released,
//! shipped or restocked twice.
//!
//! # A small document: the journal and the per-order commitments beside it
//!
//! The stored document (`stock:{sku}:{location}`) does not list every order that holds or has
//! allocated units there: it keeps the counts plus a **journal** of the orders whose
//! commitment changed most recently (at most a few, [`StockDoc::absorb`]'s `keep`), each
//! stamped with the document's version (`seq`) at that change. Every other order's
//! commitment lives in its own small record beside the document ([`Commitment`],
//! `stock-commit:{sku}:{location}:{order}`), so the document stays bounded and small whatever
//! the number of open orders, and hot-SKU writers rewrite a few hundred bytes, not a list of
//! every open order.
//!
//! Why this keeps every guarantee:
//! * **The truth of an order's commitment** is its journal entry while it has one, otherwise
//!   its record beside the document (none: nothing). A change of one order is still ONE
//!   compare-and-swap of the document: the counts and the order's journal entry change
//!   together ([`StockDoc::view`] → the domain operation → [`StockDoc::absorb`]), so the
//!   counts always equal the sum of the commitments and nothing is oversold or taken twice.
//! * **Eviction writes before it forgets.** A write that pushes an entry out of the journal
//!   first stores it beside the document (only over an older `seq`: a slow writer can never
//!   put back an older commitment), then swaps the document without it. A crash between the
//!   two leaves the entry in the journal (still the truth) and a harmless copy beside it.
//! * **Reads in order.** A writer reads the document first and the record beside it second:
//!   if the document no longer journals the order, its record was written before that
//!   eviction, so it is at least as new as the document read; a later change of the order
//!   must journal it again, which changes the document and fails this writer's swap.
//! * A zero commitment is stored as a tombstone (not deleted) when evicted, so a slow evictor
//!   holding an older version cannot bring back units the order gave up; tombstones are
//!   pruned after the retention window (far beyond any guest's deadline).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{StockError, StockLevel};

/// Stock of one SKU at one location, with the per-order holds and allocations of the orders
/// it journals (see the module documentation; as a view of one order, [`StockDoc::view`],
/// exactly that order's).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StockDoc {
    /// On hand, reserved and allocated units (reserved = Σ holds, allocated = Σ allocations,
    /// over the journal and the commitments stored beside the document).
    pub level: StockLevel,
    /// Units reserved per journaled order id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holds: BTreeMap<String, u32>,
    /// Units allocated per journaled order id (to be shipped from here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocations: BTreeMap<String, u32>,
    /// Restocks already applied (tokens such as `return:{id}:{line}`), so a retry adds nothing.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub receipts: BTreeSet<String>,
    /// The document's version: raised by every per-order change ([`StockDoc::absorb`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
    /// The journal: the version at which each journaled order's commitment last changed (its
    /// entries in `holds` / `allocations`, absent = none, are its truth while listed here; an
    /// order in `holds` / `allocations` but not here counts as journaled at version 0).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub journal: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One order's commitment at one (SKU, location) once it has left the document's journal:
/// stored beside the document, with the document version it was journaled at (so an older
/// one never overwrites a newer one). A zero commitment is a tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Commitment {
    /// Units held (reserved) for the order.
    pub held: u32,
    /// Units allocated to the order.
    pub allocated: u32,
    /// The document version of this commitment.
    pub seq: u64,
}

impl Commitment {
    /// Whether the order has nothing here (a tombstone).
    pub fn is_empty(&self) -> bool {
        self.held == 0 && self.allocated == 0
    }
}

impl StockDoc {
    /// Whether the document journals `order` (then its entry here is the order's truth).
    pub fn journaled(&self, order: &str) -> bool {
        self.journal.contains_key(order)
            || self.holds.contains_key(order)
            || self.allocations.contains_key(order)
    }

    /// The document as `order` sees it: the counts and only that order's commitment — its
    /// journal entry if it has one, else `stored` (its record beside the document). The
    /// per-order operations below run on this view; [`StockDoc::absorb`] stores the result.
    pub fn view(&self, order: &str, stored: Option<Commitment>) -> StockDoc {
        let (held, allocated) = if self.journaled(order) {
            self.commitment(order)
        } else {
            stored.map_or((0, 0), |c| (c.held, c.allocated))
        };
        let one = |units: u32| {
            if units == 0 {
                BTreeMap::new()
            } else {
                BTreeMap::from([(order.to_string(), units)])
            }
        };
        StockDoc {
            level: self.level,
            holds: one(held),
            allocations: one(allocated),
            ..StockDoc::default()
        }
    }

    /// This document after `order`'s change, `view` (a [`StockDoc::view`] the operation ran
    /// on): the view's counts, the order journaled at the next version, and the journal cut
    /// to its `keep` newest entries. The entries cut are returned: the caller stores them
    /// beside the document ([`Commitment`]) before it swaps the document in.
    pub fn absorb(
        &self,
        order: &str,
        view: &StockDoc,
        keep: usize,
    ) -> (StockDoc, Vec<(String, Commitment)>) {
        let mut next = self.clone();
        next.level = view.level;
        next.seq = self.seq + 1;
        let (held, allocated) = view.commitment(order);
        next.set_entry(order, held, allocated);
        next.journal.insert(order.to_string(), next.seq);
        let mut others: Vec<(u64, String)> = next
            .journal
            .keys()
            .chain(next.holds.keys())
            .chain(next.allocations.keys())
            .filter(|o| o.as_str() != order)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|o| (next.journal.get(o).copied().unwrap_or(0), o.clone()))
            .collect();
        others.sort();
        let excess = (others.len() + 1).saturating_sub(keep.max(1));
        let mut evicted = Vec::new();
        for (seq, o) in others.into_iter().take(excess) {
            let (held, allocated) = next.commitment(&o);
            next.set_entry(&o, 0, 0);
            next.journal.remove(&o);
            evicted.push((
                o,
                Commitment {
                    held,
                    allocated,
                    seq,
                },
            ));
        }
        (next, evicted)
    }

    /// Sets `order`'s entries in `holds` / `allocations` (none for zero units).
    fn set_entry(&mut self, order: &str, held: u32, allocated: u32) {
        for (map, units) in [(&mut self.holds, held), (&mut self.allocations, allocated)] {
            if units == 0 {
                map.remove(order);
            } else {
                map.insert(order.to_string(), units);
            }
        }
    }

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
        next.set_entry(order, held, allocated);
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

    #[test]
    fn the_journal_keeps_the_newest_entries_and_hands_out_the_rest() {
        let mut d = doc(10);
        let mut beside: BTreeMap<String, Commitment> = BTreeMap::new();
        for o in ["o1", "o2", "o3", "o4"] {
            let view = d.view(o, beside.get(o).copied());
            let (v, _) = view.hold_up_to(o, 2).unwrap();
            let (next, evicted) = d.absorb(o, &v, 2);
            for (who, c) in evicted {
                beside.insert(who, c);
            }
            d = next;
        }
        assert_eq!(
            d.journal.len(),
            2,
            "only the two newest stay in the document"
        );
        assert!(d.journaled("o4") && d.journaled("o3") && !d.journaled("o1"));
        assert_eq!(
            beside["o1"],
            Commitment {
                held: 2,
                allocated: 0,
                seq: 1
            }
        );
        assert_eq!(d.level.reserved(), 8);
        // o1's commitment comes from beside the document; allocating it journals it again.
        let view = d.view("o1", beside.get("o1").copied());
        assert_eq!(view.commitment("o1"), (2, 0));
        let v = view.allocate("o1", 2).unwrap();
        let (d2, evicted) = d.absorb("o1", &v, 2);
        assert_eq!(d2.commitment("o1"), (0, 2));
        assert_eq!(evicted[0].0, "o3");
        assert_eq!((d2.level.reserved(), d2.level.allocated()), (6, 2));
        // Released to nothing and evicted: a tombstone with the version of the release.
        let v = d2.view("o1", None).deallocate("o1").unwrap();
        let (d3, _) = d2.absorb("o1", &v, 2);
        assert!(d3.journaled("o1"), "a zero commitment stays journaled");
        let (_, evicted) = d3.absorb("o9", &d3.view("o9", None), 1);
        assert_eq!(
            evicted.iter().find(|(o, _)| o == "o1").unwrap().1,
            Commitment {
                held: 0,
                allocated: 0,
                seq: 6
            }
        );
        let json = serde_json::to_string(&doc(3)).unwrap();
        assert_eq!(
            json,
            r#"{"level":{"on_hand":3,"reserved":0,"allocated":0}}"#
        );
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
