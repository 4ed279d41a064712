//! Stock per SKU and location, and the operations that move units between on-hand, reserved
//! and allocated without ever losing one or going below zero.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{LocationId, Sku};

/// Why a stock operation was refused. A refused operation changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockError {
    /// Not enough available-to-promise units to reserve.
    #[error("cannot reserve {requested} units: only {available} available")]
    Insufficient {
        /// Units asked for.
        requested: u32,
        /// Units available to promise.
        available: u32,
    },
    /// Releasing or allocating more than is reserved.
    #[error("cannot take {requested} units from a reservation of {reserved}")]
    NotReserved {
        /// Units asked for.
        requested: u32,
        /// Units reserved.
        reserved: u32,
    },
    /// Deallocating or shipping more than is allocated.
    #[error("cannot take {requested} units from an allocation of {allocated}")]
    NotAllocated {
        /// Units asked for.
        requested: u32,
        /// Units allocated.
        allocated: u32,
    },
    /// Reserved plus allocated would exceed on-hand.
    #[error("{committed} units committed but only {on_hand} on hand")]
    Inconsistent {
        /// Units physically present.
        on_hand: u32,
        /// Units reserved plus allocated.
        committed: u64,
    },
    /// A count would exceed `u32::MAX`.
    #[error("stock count overflow")]
    Overflow,
    /// An operation on one SKU at one location failed (inventory-wide operations).
    #[error("{sku} at {location}: {source}")]
    At {
        /// The SKU.
        sku: Sku,
        /// The location.
        location: LocationId,
        /// What failed there.
        #[source]
        source: Box<StockError>,
    },
}

/// Stock of one SKU at one location.
///
/// * `on_hand` — units physically there;
/// * `reserved` — promised to orders, location not yet final;
/// * `allocated` — assigned to a shipment from this location;
/// * available-to-promise = `on_hand − reserved − allocated`.
///
/// Invariant: `reserved + allocated ≤ on_hand`. Every operation returns the new level (or an
/// error and no change), so a handler can compare-and-swap the serialized value in a
/// key-value store. Only [`StockLevel::receive`] and [`StockLevel::ship`] change `on_hand`;
/// the others move units between buckets, so units are conserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "StockLevelRepr", into = "StockLevelRepr")]
pub struct StockLevel {
    on_hand: u32,
    reserved: u32,
    allocated: u32,
}

impl StockLevel {
    /// Builds a level.
    ///
    /// # Errors
    /// [`StockError::Inconsistent`] when `reserved + allocated > on_hand`.
    pub fn new(on_hand: u32, reserved: u32, allocated: u32) -> Result<Self, StockError> {
        let committed = u64::from(reserved) + u64::from(allocated);
        if committed > u64::from(on_hand) {
            return Err(StockError::Inconsistent { on_hand, committed });
        }
        Ok(Self {
            on_hand,
            reserved,
            allocated,
        })
    }

    /// A level with `on_hand` units and nothing committed.
    pub const fn with_on_hand(on_hand: u32) -> Self {
        Self {
            on_hand,
            reserved: 0,
            allocated: 0,
        }
    }

    /// Units physically present.
    pub const fn on_hand(&self) -> u32 {
        self.on_hand
    }

    /// Units reserved.
    pub const fn reserved(&self) -> u32 {
        self.reserved
    }

    /// Units allocated to shipments.
    pub const fn allocated(&self) -> u32 {
        self.allocated
    }

    /// Available to promise: `on_hand − reserved − allocated` (never negative by invariant).
    pub const fn available(&self) -> u32 {
        self.on_hand - self.reserved - self.allocated
    }

    /// Goods arrived (inbound delivery, accepted return).
    ///
    /// # Errors
    /// [`StockError::Overflow`].
    pub fn receive(&self, units: u32) -> Result<Self, StockError> {
        let on_hand = self
            .on_hand
            .checked_add(units)
            .ok_or(StockError::Overflow)?;
        Ok(Self { on_hand, ..*self })
    }

    /// Promise available units to an order.
    ///
    /// # Errors
    /// [`StockError::Insufficient`] when fewer than `units` are available.
    pub fn reserve(&self, units: u32) -> Result<Self, StockError> {
        if units > self.available() {
            return Err(StockError::Insufficient {
                requested: units,
                available: self.available(),
            });
        }
        Ok(Self {
            reserved: self.reserved + units,
            ..*self
        })
    }

    /// Give reserved units back (cancellation, expiry, re-routing elsewhere).
    ///
    /// # Errors
    /// [`StockError::NotReserved`] when fewer than `units` are reserved.
    pub fn release(&self, units: u32) -> Result<Self, StockError> {
        let reserved = self.take_reserved(units)?;
        Ok(Self { reserved, ..*self })
    }

    /// Turn reserved units into an allocation for a shipment from this location.
    ///
    /// # Errors
    /// [`StockError::NotReserved`] when fewer than `units` are reserved.
    pub fn allocate(&self, units: u32) -> Result<Self, StockError> {
        let reserved = self.take_reserved(units)?;
        Ok(Self {
            reserved,
            allocated: self.allocated + units,
            ..*self
        })
    }

    /// Undo an allocation: the units go back to reserved (still promised to the order).
    ///
    /// # Errors
    /// [`StockError::NotAllocated`] when fewer than `units` are allocated.
    pub fn deallocate(&self, units: u32) -> Result<Self, StockError> {
        let allocated = self.take_allocated(units)?;
        Ok(Self {
            allocated,
            reserved: self.reserved + units,
            ..*self
        })
    }

    /// Allocated units left the building.
    ///
    /// # Errors
    /// [`StockError::NotAllocated`] when fewer than `units` are allocated.
    pub fn ship(&self, units: u32) -> Result<Self, StockError> {
        let allocated = self.take_allocated(units)?;
        Ok(Self {
            allocated,
            on_hand: self.on_hand - units,
            ..*self
        })
    }

    /// Sets on-hand after a physical count.
    ///
    /// # Errors
    /// [`StockError::Inconsistent`] when the count is below what is already committed; those
    /// orders must be re-routed first.
    pub fn recount(&self, on_hand: u32) -> Result<Self, StockError> {
        Self::new(on_hand, self.reserved, self.allocated)
    }

    fn take_reserved(&self, units: u32) -> Result<u32, StockError> {
        self.reserved
            .checked_sub(units)
            .ok_or(StockError::NotReserved {
                requested: units,
                reserved: self.reserved,
            })
    }

    fn take_allocated(&self, units: u32) -> Result<u32, StockError> {
        self.allocated
            .checked_sub(units)
            .ok_or(StockError::NotAllocated {
                requested: units,
                allocated: self.allocated,
            })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StockLevelRepr {
    on_hand: u32,
    reserved: u32,
    allocated: u32,
}

impl TryFrom<StockLevelRepr> for StockLevel {
    type Error = StockError;
    fn try_from(r: StockLevelRepr) -> Result<Self, StockError> {
        StockLevel::new(r.on_hand, r.reserved, r.allocated)
    }
}

impl From<StockLevel> for StockLevelRepr {
    fn from(l: StockLevel) -> Self {
        StockLevelRepr {
            on_hand: l.on_hand,
            reserved: l.reserved,
            allocated: l.allocated,
        }
    }
}

/// Whether a SKU may be sold beyond available stock, and how far.
///
/// JSON: `"never"`, `"unlimited"` or `{"up_to": 50}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BackorderPolicy {
    /// Orders beyond stock are rejected.
    #[default]
    Never,
    /// At most this many units may be outstanding on backorder across all orders.
    UpTo(u32),
    /// Any shortfall may be backordered.
    Unlimited,
}

impl BackorderPolicy {
    /// Whether `shortfall` more units may go on backorder when `outstanding` already are.
    pub fn allows(self, outstanding: u32, shortfall: u32) -> bool {
        match self {
            Self::Never => shortfall == 0,
            Self::Unlimited => true,
            Self::UpTo(limit) => u64::from(outstanding) + u64::from(shortfall) <= u64::from(limit),
        }
    }
}

/// A SKU the network cannot supply in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortfall {
    /// The SKU.
    pub sku: Sku,
    /// Units the order needs.
    pub requested: u32,
    /// Units available to promise (across the locations considered).
    pub available: u32,
}

/// Stock levels for many SKUs and locations: what routing reads and what multi-line
/// operations update all-or-nothing. Missing entries are zero stock.
///
/// JSON: a list of `{"sku", "location", "on_hand", "reserved", "allocated"}` entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<InventoryEntry>", into = "Vec<InventoryEntry>")]
pub struct Inventory {
    levels: BTreeMap<(Sku, LocationId), StockLevel>,
}

impl Inventory {
    /// No stock anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the level of a SKU at a location.
    pub fn set(&mut self, sku: Sku, location: LocationId, level: StockLevel) {
        self.levels.insert((sku, location), level);
    }

    /// The level of a SKU at a location (zero if unknown).
    pub fn level(&self, sku: &Sku, location: &LocationId) -> StockLevel {
        self.levels
            .get(&(sku.clone(), location.clone()))
            .copied()
            .unwrap_or_default()
    }

    /// Available-to-promise of a SKU at a location.
    pub fn available(&self, sku: &Sku, location: &LocationId) -> u32 {
        self.level(sku, location).available()
    }

    /// Available-to-promise of a SKU across every location.
    pub fn total_available(&self, sku: &Sku) -> u64 {
        self.levels
            .iter()
            .filter(|((s, _), _)| s == sku)
            .map(|(_, l)| u64::from(l.available()))
            .sum()
    }

    /// Every (SKU, location, level), ordered by SKU then location.
    pub fn iter(&self) -> impl Iterator<Item = (&Sku, &LocationId, &StockLevel)> {
        self.levels.iter().map(|((s, l), level)| (s, l, level))
    }

    /// The SKUs whose network-wide availability is below what `units` asks for.
    pub fn shortfalls(&self, units: &BTreeMap<Sku, u32>) -> Vec<Shortfall> {
        units
            .iter()
            .filter_map(|(sku, &requested)| {
                let available = self.total_available(sku);
                (available < u64::from(requested)).then(|| Shortfall {
                    sku: sku.clone(),
                    requested,
                    available: u32::try_from(available).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// Applies `op` to one level, returning the new inventory.
    ///
    /// # Errors
    /// [`StockError::At`] wrapping the operation's error.
    pub fn update(
        &self,
        sku: &Sku,
        location: &LocationId,
        op: impl FnOnce(&StockLevel) -> Result<StockLevel, StockError>,
    ) -> Result<Inventory, StockError> {
        let next = op(&self.level(sku, location)).map_err(|e| StockError::At {
            sku: sku.clone(),
            location: location.clone(),
            source: Box::new(e),
        })?;
        let mut out = self.clone();
        out.set(sku.clone(), location.clone(), next);
        Ok(out)
    }
}

/// The wire form of one inventory entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryEntry {
    sku: Sku,
    location: LocationId,
    on_hand: u32,
    reserved: u32,
    allocated: u32,
}

impl TryFrom<Vec<InventoryEntry>> for Inventory {
    type Error = String;
    fn try_from(entries: Vec<InventoryEntry>) -> Result<Self, String> {
        let mut inv = Inventory::new();
        for e in entries {
            let at = format!("{} at {}", e.sku, e.location);
            if inv
                .levels
                .contains_key(&(e.sku.clone(), e.location.clone()))
            {
                return Err(format!("duplicate stock entry for {at}"));
            }
            let level = StockLevel::new(e.on_hand, e.reserved, e.allocated)
                .map_err(|err| format!("{at}: {err}"))?;
            inv.set(e.sku, e.location, level);
        }
        Ok(inv)
    }
}

impl From<Inventory> for Vec<InventoryEntry> {
    fn from(inv: Inventory) -> Self {
        inv.levels
            .into_iter()
            .map(|((sku, location), level)| InventoryEntry {
                sku,
                location,
                on_hand: level.on_hand,
                reserved: level.reserved,
                allocated: level.allocated,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lifecycle_of_units() {
        let l = StockLevel::with_on_hand(10);
        let l = l.reserve(4).unwrap();
        assert_eq!((l.available(), l.reserved()), (6, 4));
        let l = l.allocate(3).unwrap();
        assert_eq!((l.reserved(), l.allocated(), l.available()), (1, 3, 6));
        let l = l.ship(2).unwrap();
        assert_eq!((l.on_hand(), l.allocated(), l.available()), (8, 1, 6));
        let l = l.deallocate(1).unwrap().release(2).unwrap();
        assert_eq!(l, StockLevel::with_on_hand(8));
    }

    #[test]
    fn refuses_to_go_negative() {
        let l = StockLevel::new(5, 2, 1).unwrap();
        assert_eq!(
            l.reserve(3),
            Err(StockError::Insufficient {
                requested: 3,
                available: 2
            })
        );
        assert!(l.release(3).is_err());
        assert!(l.allocate(3).is_err());
        assert!(l.deallocate(2).is_err());
        assert!(l.ship(2).is_err());
        assert!(l.recount(2).is_err());
        assert_eq!(l.recount(3).unwrap().available(), 0);
        assert!(StockLevel::new(1, 1, 1).is_err());
        assert_eq!(
            StockLevel::with_on_hand(u32::MAX).receive(1),
            Err(StockError::Overflow)
        );
        // Extremes of u32 are handled without overflow.
        assert!(StockLevel::new(u32::MAX, u32::MAX, 0).is_ok());
        assert!(StockLevel::new(u32::MAX, u32::MAX, 1).is_err());
    }

    #[test]
    fn serialized_levels_are_validated() {
        let json = serde_json::to_string(&StockLevel::new(5, 1, 2).unwrap()).unwrap();
        assert_eq!(json, r#"{"on_hand":5,"reserved":1,"allocated":2}"#);
        assert!(
            serde_json::from_str::<StockLevel>(r#"{"on_hand":1,"reserved":1,"allocated":1}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<StockLevel>(r#"{"on_hand":-1,"reserved":0,"allocated":0}"#)
                .is_err()
        );
    }

    #[test]
    fn backorder_policies() {
        assert!(BackorderPolicy::Never.allows(0, 0));
        assert!(!BackorderPolicy::Never.allows(0, 1));
        assert!(BackorderPolicy::UpTo(5).allows(3, 2));
        assert!(!BackorderPolicy::UpTo(5).allows(3, 3));
        assert!(BackorderPolicy::Unlimited.allows(u32::MAX, u32::MAX));
        assert_eq!(
            serde_json::to_string(&BackorderPolicy::UpTo(5)).unwrap(),
            r#"{"up_to":5}"#
        );
        assert_eq!(
            serde_json::from_str::<BackorderPolicy>("\"never\"").unwrap(),
            BackorderPolicy::Never
        );
    }

    #[test]
    fn inventory_totals_shortfalls_and_json() {
        let (a, b) = (Sku::parse("A").unwrap(), Sku::parse("B").unwrap());
        let (x, y) = (
            LocationId::parse("x").unwrap(),
            LocationId::parse("y").unwrap(),
        );
        let mut inv = Inventory::new();
        inv.set(a.clone(), x.clone(), StockLevel::new(5, 1, 1).unwrap());
        inv.set(a.clone(), y.clone(), StockLevel::with_on_hand(2));
        assert_eq!(inv.total_available(&a), 5);
        assert_eq!(inv.available(&b, &x), 0);
        let want = BTreeMap::from([(a.clone(), 6), (b.clone(), 1)]);
        let short = inv.shortfalls(&want);
        assert_eq!(short.len(), 2);
        assert_eq!((short[0].requested, short[0].available), (6, 5));
        let failed = inv.update(&a, &y, |l| l.reserve(3));
        assert!(matches!(failed, Err(StockError::At { .. })));
        let json = serde_json::to_string(&inv).unwrap();
        assert!(json
            .starts_with(r#"[{"sku":"A","location":"x","on_hand":5,"reserved":1,"allocated":1}"#));
        assert_eq!(serde_json::from_str::<Inventory>(&json).unwrap(), inv);
        let dup = r#"[{"sku":"A","location":"x","on_hand":1,"reserved":0,"allocated":0},{"sku":"A","location":"x","on_hand":1,"reserved":0,"allocated":0}]"#;
        assert!(serde_json::from_str::<Inventory>(dup).is_err());
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Receive(u32),
        Reserve(u32),
        Release(u32),
        Allocate(u32),
        Deallocate(u32),
        Ship(u32),
        Recount(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..50).prop_map(Op::Receive),
            (0u32..50).prop_map(Op::Reserve),
            (0u32..50).prop_map(Op::Release),
            (0u32..50).prop_map(Op::Allocate),
            (0u32..50).prop_map(Op::Deallocate),
            (0u32..50).prop_map(Op::Ship),
            (0u32..100).prop_map(Op::Recount),
        ]
    }

    proptest! {
        /// Whatever sequence of operations is attempted, the level stays consistent and every
        /// unit is accounted for: on-hand moves only by what was received, shipped or recounted.
        #[test]
        fn never_negative_and_conserving(start in 0u32..100, ops in proptest::collection::vec(op(), 0..60)) {
            let mut level = StockLevel::with_on_hand(start);
            let mut expected_on_hand = i64::from(start);
            let mut shipped = 0i64;
            for op in ops {
                let before = level;
                let result = match op {
                    Op::Receive(n) => level.receive(n),
                    Op::Reserve(n) => level.reserve(n),
                    Op::Release(n) => level.release(n),
                    Op::Allocate(n) => level.allocate(n),
                    Op::Deallocate(n) => level.deallocate(n),
                    Op::Ship(n) => level.ship(n),
                    Op::Recount(n) => level.recount(n),
                };
                match result {
                    Ok(next) => {
                        match op {
                            Op::Receive(n) => expected_on_hand += i64::from(n),
                            Op::Ship(n) => { expected_on_hand -= i64::from(n); shipped += i64::from(n); }
                            Op::Recount(n) => expected_on_hand = i64::from(n),
                            _ => {}
                        }
                        // Moves between buckets keep reserved + allocated + shipped constant
                        // except where units enter or leave a commitment explicitly.
                        match op {
                            Op::Allocate(_) | Op::Deallocate(_) => prop_assert_eq!(
                                next.reserved() + next.allocated(), before.reserved() + before.allocated()),
                            Op::Ship(n) => prop_assert_eq!(next.allocated() + n, before.allocated()),
                            _ => {}
                        }
                        level = next;
                    }
                    Err(_) => prop_assert_eq!(level, before),
                }
                prop_assert!(u64::from(level.reserved()) + u64::from(level.allocated()) <= u64::from(level.on_hand()));
                prop_assert_eq!(u64::from(level.available()) + u64::from(level.reserved()) + u64::from(level.allocated()), u64::from(level.on_hand()));
                prop_assert_eq!(i64::from(level.on_hand()), expected_on_hand);
                prop_assert!(shipped >= 0);
                let round: StockLevel = serde_json::from_str(&serde_json::to_string(&level).unwrap()).unwrap();
                prop_assert_eq!(round, level);
            }
        }
    }
}
