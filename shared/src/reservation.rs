//! Stock held for one order, possibly with an expiry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{LocationId, OrderId, Sku};
use crate::routing::FulfilmentPlan;

/// Why a reservation could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    /// A reservation holds at least one unit.
    #[error("a reservation must hold at least one unit")]
    Empty,
}

/// Units of one SKU held at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservedLine {
    /// The SKU.
    pub sku: Sku,
    /// Where the units are held.
    pub location: LocationId,
    /// How many.
    pub units: u32,
}

impl ReservedLine {
    /// One line per (SKU, location) of `units`, in key order.
    pub fn all_from(units: BTreeMap<(Sku, LocationId), u32>) -> Vec<ReservedLine> {
        units
            .into_iter()
            .map(|((sku, location), units)| ReservedLine {
                sku,
                location,
                units,
            })
            .collect()
    }
}

/// The stock one order holds. Lines are merged per (SKU, location) and sorted, and zero-unit
/// lines dropped, so equal holdings compare equal.
///
/// A backordered order also lists the units promised to it beyond stock per SKU
/// (`backordered`): they count against the SKU's backorder limit until the reservation is
/// cleared, so whoever releases the reservation knows which promises to give back.
///
/// `expires_at` (passed in: reservation time plus the policy's time-to-live) lets a sweeper
/// release holds of orders that were never paid; `None` holds until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReservationRepr", into = "ReservationRepr")]
pub struct Reservation {
    order_id: OrderId,
    lines: Vec<ReservedLine>,
    backordered: BTreeMap<Sku, u32>,
    expires_at: Option<DateTime<Utc>>,
}

impl Reservation {
    /// Builds a reservation.
    ///
    /// # Errors
    /// [`ReservationError::Empty`] when no line holds a unit.
    pub fn new(
        order_id: OrderId,
        lines: Vec<ReservedLine>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Self, ReservationError> {
        Self::with_backorders(order_id, lines, BTreeMap::new(), expires_at)
    }

    /// Builds a reservation that also lists units promised on backorder per SKU (zero-unit
    /// entries dropped); it may hold no stock when everything is backordered.
    ///
    /// # Errors
    /// [`ReservationError::Empty`] when it neither holds nor backorders a unit.
    pub fn with_backorders(
        order_id: OrderId,
        lines: Vec<ReservedLine>,
        backordered: BTreeMap<Sku, u32>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Self, ReservationError> {
        let backordered: BTreeMap<Sku, u32> =
            backordered.into_iter().filter(|(_, n)| *n > 0).collect();
        let mut merged: BTreeMap<(Sku, LocationId), u32> = BTreeMap::new();
        for l in lines {
            if l.units > 0 {
                let slot = merged.entry((l.sku, l.location)).or_insert(0);
                *slot = slot.saturating_add(l.units);
            }
        }
        if merged.is_empty() && backordered.is_empty() {
            return Err(ReservationError::Empty);
        }
        let lines = ReservedLine::all_from(merged);
        Ok(Self {
            order_id,
            lines,
            backordered,
            expires_at,
        })
    }

    /// Holds exactly the units a fulfilment plan takes.
    ///
    /// # Errors
    /// [`ReservationError::Empty`] for an empty plan.
    pub fn from_plan(
        order_id: OrderId,
        plan: &FulfilmentPlan,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Self, ReservationError> {
        let lines = plan
            .units_at()
            .into_iter()
            .map(|((sku, location), units)| ReservedLine {
                sku,
                location,
                units,
            })
            .collect();
        Self::new(order_id, lines, expires_at)
    }

    /// The order holding the stock.
    pub const fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// What is held where, sorted by SKU then location.
    pub fn lines(&self) -> &[ReservedLine] {
        &self.lines
    }

    /// Units promised beyond stock per SKU (backorders), counted against each SKU's limit.
    pub fn backordered(&self) -> &BTreeMap<Sku, u32> {
        &self.backordered
    }

    /// When the hold lapses, if ever.
    pub const fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// Whether the hold has lapsed at `now` (expiry instant included).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct ReservationRepr {
    order_id: OrderId,
    lines: Vec<ReservedLine>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    backordered: BTreeMap<Sku, u32>,
    expires_at: Option<DateTime<Utc>>,
}

#[cfg(feature = "openapi")]
crate::openapi::schema_via!(Reservation, "Reservation", ReservationRepr);

impl TryFrom<ReservationRepr> for Reservation {
    type Error = ReservationError;
    fn try_from(r: ReservationRepr) -> Result<Self, ReservationError> {
        Reservation::with_backorders(r.order_id, r.lines, r.backordered, r.expires_at)
    }
}

impl From<Reservation> for ReservationRepr {
    fn from(r: Reservation) -> Self {
        ReservationRepr {
            order_id: r.order_id,
            lines: r.lines,
            backordered: r.backordered,
            expires_at: r.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    use uuid::Uuid;

    fn line(sku: &str, loc: &str, units: u32) -> ReservedLine {
        ReservedLine {
            sku: Sku::parse(sku).unwrap(),
            location: LocationId::parse(loc).unwrap(),
            units,
        }
    }

    fn order(n: u128) -> OrderId {
        OrderId::new(Uuid::from_u128(n))
    }

    #[test]
    fn merges_lines_and_expires() {
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let r = Reservation::new(
            order(1),
            vec![
                line("B", "x", 1),
                line("A", "x", 2),
                line("B", "x", 3),
                line("C", "x", 0),
            ],
            Some(at + Duration::minutes(15)),
        )
        .unwrap();
        assert_eq!(r.lines(), [line("A", "x", 2), line("B", "x", 4)]);
        assert!(!r.is_expired(at + Duration::minutes(14)));
        assert!(r.is_expired(at + Duration::minutes(15)));
        assert_eq!(
            Reservation::new(order(1), vec![line("A", "x", 0)], None),
            Err(ReservationError::Empty)
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Reservation>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Reservation>(
            &json
                .replace("\"units\":2", "\"units\":0")
                .replace("\"units\":4", "\"units\":0")
        )
        .is_err());
    }
}
