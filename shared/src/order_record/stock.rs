//! Stock transitions of [`OrderRecord`]: the outcome of reservation, the expiry of an unpaid
//! reservation, and what a cancelled order still has to give back.
//!
//! A cancelled order keeps listing its stock (reservation, allocated shipments) until the
//! stock documents have been released: while it does, the release is *pending* and the order
//! owes its `order.cancelled` event to the stock owner (see [`OrderRecord::owed_step`]), so a
//! crash between the cancel and the release never strands a unit.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{OrderRecord, ShipmentStatus};
use crate::{OrderStatus, PaymentStatus, Reservation, ReservedLine, Sku, TimelineError};

/// `order.reserved` data.
#[derive(Serialize)]
struct ReservedData<'a> {
    lines: &'a [ReservedLine],
    expires_at: Option<DateTime<Utc>>,
}

/// Units of a SKU the network could not supply.
#[derive(Serialize)]
struct ShortUnits<'a> {
    sku: &'a Sku,
    units: u32,
}

/// `order.backordered` data (from reserve).
#[derive(Serialize)]
struct BackorderedData<'a> {
    held: &'a [ReservedLine],
    shortfalls: Vec<ShortUnits<'a>>,
}

/// `order.rejected` data.
#[derive(Serialize)]
struct RejectedData<'a> {
    reason: &'static str,
    shortfalls: Vec<ShortUnits<'a>>,
}

/// `order.cancelled` data when a reservation expired.
#[derive(Serialize)]
struct ExpiredData {
    reason: &'static str,
    from: OrderStatus,
    released: Vec<ReservedLine>,
}

fn shorts(shortfalls: &BTreeMap<Sku, u32>) -> Vec<ShortUnits<'_>> {
    shortfalls
        .iter()
        .map(|(sku, units)| ShortUnits { sku, units: *units })
        .collect()
}

fn describe(shortfalls: &BTreeMap<Sku, u32>) -> String {
    let parts: Vec<String> = shortfalls
        .iter()
        .map(|(s, n)| format!("{s} short by {n}"))
        .collect();
    format!("insufficient stock: {}", parts.join(", "))
}

fn data(value: impl Serialize) -> serde_json::Value {
    // Plain structs of strings and numbers: serializing them cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

/// Why the outcome of reservation could not be recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReserveError {
    /// The order is no longer waiting for its reservation (the step already ran, or it was
    /// cancelled).
    #[error("an order that is {0} is not waiting for a reservation")]
    NotAwaiting(OrderStatus),
    /// The timeline refused the event (a corrupted history).
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    /// Nothing held and nothing short: an order without units.
    #[error(transparent)]
    Reservation(#[from] crate::ReservationError),
}

impl OrderRecord {
    /// Whether the order still waits for stock to be reserved.
    pub fn awaits_reservation(&self) -> bool {
        self.status() == OrderStatus::Validated
    }

    /// Records the outcome of reservation — the one rule deciding it: everything `held` →
    /// `reserved`; a shortfall the SKUs' backorder limits promised (`backorder_promised`,
    /// obtained by the caller before this call) → `backordered`, listing the promise on the
    /// reservation; otherwise `rejected` (nothing kept). A reservation of an order paid only
    /// by authorization expires after `ttl`. Returns the status it moved to.
    ///
    /// # Errors
    /// [`ReserveError::NotAwaiting`] when the order is not `validated`;
    /// [`ReserveError::Reservation`] when it neither holds nor lacks a unit.
    pub fn record_reservation(
        &mut self,
        held: Vec<ReservedLine>,
        shortfalls: &BTreeMap<Sku, u32>,
        backorder_promised: bool,
        ttl: Duration,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<OrderStatus, ReserveError> {
        if !self.awaits_reservation() {
            return Err(ReserveError::NotAwaiting(self.status()));
        }
        let expires_at =
            (self.order.payment().status() == PaymentStatus::Authorized).then(|| now + ttl);
        let id = self.order.id();
        let (to, payload, reservation, reason) =
            if shortfalls.is_empty() && held.is_empty() && self.order.units_by_sku().is_empty() {
                // Nothing to ship (digital goods only): reserved, with nothing held.
                let payload = data(ReservedData {
                    lines: &[],
                    expires_at: None,
                });
                (OrderStatus::Reserved, payload, None, None)
            } else if shortfalls.is_empty() {
                let r = Reservation::new(id, held, expires_at)?;
                let payload = data(ReservedData {
                    lines: r.lines(),
                    expires_at,
                });
                (OrderStatus::Reserved, payload, Some(r), None)
            } else if backorder_promised {
                let r = Reservation::with_backorders(id, held, shortfalls.clone(), expires_at)?;
                let payload = data(BackorderedData {
                    held: r.lines(),
                    shortfalls: shorts(shortfalls),
                });
                let reason = Some(describe(shortfalls));
                (OrderStatus::Backordered, payload, Some(r), reason)
            } else {
                let payload = data(RejectedData {
                    reason: "insufficient_stock",
                    shortfalls: shorts(shortfalls),
                });
                let reason = Some(describe(shortfalls));
                (OrderStatus::Rejected, payload, None, reason)
            };
        self.transition(to, payload, event_id, now)?;
        self.reservation = reservation;
        self.reason = reason;
        Ok(to)
    }

    /// Whether the order's unpaid reservation has lapsed at `now`: it is still `reserved` or
    /// `backordered`, paid only by authorization, and its reservation's expiry has passed.
    pub fn reservation_expired(&self, now: DateTime<Utc>) -> bool {
        matches!(
            self.status(),
            OrderStatus::Reserved | OrderStatus::Backordered
        ) && self.order.payment().status() == PaymentStatus::Authorized
            && self.reservation.as_ref().is_some_and(|r| r.is_expired(now))
    }

    /// Cancels an order whose unpaid reservation lapsed (`order.cancelled`, reason
    /// `reservation_expired`), keeping its stock listed (release pending); `false` when it has
    /// not lapsed (paid meanwhile, routed, already cancelled).
    ///
    /// # Errors
    /// [`TimelineError`] for a corrupted timeline.
    pub fn expire_reservation(
        &mut self,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, TimelineError> {
        if !self.reservation_expired(now) {
            return Ok(false);
        }
        let payload = data(ExpiredData {
            reason: "reservation_expired",
            from: self.status(),
            released: self.stock_to_release(),
        });
        self.transition(OrderStatus::Cancelled, payload, event_id, now)?;
        self.reason = Some("reservation expired: payment not captured in time".into());
        Ok(true)
    }

    /// Whether the record lists stock the order holds (a reservation, possibly with
    /// backorder promises) or has allocated (shipments not yet shipped).
    pub fn lists_stock(&self) -> bool {
        self.reservation.is_some()
            || self
                .shipments
                .iter()
                .any(|s| s.status == ShipmentStatus::Allocated)
    }

    /// A cancelled order whose stock has not been released yet (its status may have moved
    /// on to `refunded` in the same write, by the automatic refund of a cancellation).
    pub fn release_pending(&self) -> bool {
        self.lists_stock() && self.has_event(crate::EventType::OrderCancelled)
    }

    /// Units the record lists per (SKU, location), held or allocated, sorted: what a
    /// cancellation gives back.
    pub fn stock_to_release(&self) -> Vec<ReservedLine> {
        let mut units: BTreeMap<(Sku, crate::LocationId), u32> = BTreeMap::new();
        let held = self.reservation.iter().flat_map(|r| r.lines()).cloned();
        let allocated = self
            .shipments
            .iter()
            .filter(|s| s.status == ShipmentStatus::Allocated)
            .flat_map(|s| {
                s.lines.iter().map(|l| ReservedLine {
                    sku: l.sku.clone(),
                    location: s.location.clone(),
                    units: l.units,
                })
            });
        for l in held.chain(allocated) {
            *units.entry((l.sku, l.location)).or_insert(0) += l.units;
        }
        units
            .into_iter()
            .map(|((sku, location), units)| ReservedLine {
                sku,
                location,
                units,
            })
            .collect()
    }

    /// SKUs whose backorder limit counts units promised to this order.
    pub fn backorder_promises(&self) -> Vec<Sku> {
        self.reservation
            .iter()
            .flat_map(|r| r.backordered().keys().cloned())
            .collect()
    }

    /// Clears the stock a cancelled order listed, once it has been released from the stock
    /// documents; `false` (nothing changes) unless the release was pending.
    pub fn stock_released(&mut self) -> bool {
        if !self.release_pending() {
            return false;
        }
        self.reservation = None;
        self.shipments
            .retain(|s| s.status != ShipmentStatus::Allocated);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::sku1_order;
    use crate::{LocationId, OrderId};

    fn record(payment: &str) -> OrderRecord {
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let o = sku1_order(OrderId::new(Uuid::from_u128(1)), 3, "1.00", payment, now);
        OrderRecord::accept(o, Uuid::from_u128(2), now).unwrap()
    }

    fn line(units: u32) -> ReservedLine {
        ReservedLine {
            sku: Sku::parse("SKU-1").unwrap(),
            location: LocationId::parse("a").unwrap(),
            units,
        }
    }

    fn short(units: u32) -> BTreeMap<Sku, u32> {
        BTreeMap::from([(Sku::parse("SKU-1").unwrap(), units)])
    }

    #[test]
    fn the_outcome_follows_the_shortfall_and_the_promise() {
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let ttl = Duration::minutes(30);
        let mut r = record("captured");
        let to = r
            .record_reservation(
                vec![line(3)],
                &BTreeMap::new(),
                false,
                ttl,
                Uuid::from_u128(3),
                now,
            )
            .unwrap();
        assert_eq!(to, OrderStatus::Reserved);
        assert_eq!(r.events.last().unwrap().data()["lines"][0]["units"], 3);
        assert_eq!(
            r.reservation.as_ref().unwrap().expires_at(),
            None,
            "paid: no expiry"
        );
        assert!(
            r.record_reservation(
                vec![line(3)],
                &BTreeMap::new(),
                false,
                ttl,
                Uuid::from_u128(4),
                now
            )
            .is_err(),
            "only once"
        );

        let mut b = record("authorized");
        let to = b
            .record_reservation(vec![line(1)], &short(2), true, ttl, Uuid::from_u128(3), now)
            .unwrap();
        assert_eq!(to, OrderStatus::Backordered);
        assert_eq!(b.backorder_promises(), [Sku::parse("SKU-1").unwrap()]);
        assert_eq!(
            b.reservation.as_ref().unwrap().expires_at(),
            Some(now + ttl)
        );

        let mut x = record("captured");
        let to = x
            .record_reservation(
                vec![line(1)],
                &short(2),
                false,
                ttl,
                Uuid::from_u128(3),
                now,
            )
            .unwrap();
        assert_eq!(to, OrderStatus::Rejected);
        assert!(x.reservation.is_none() && !x.lists_stock());
        assert_eq!(
            x.events.last().unwrap().data()["reason"],
            "insufficient_stock"
        );
    }

    #[test]
    fn an_expired_reservation_cancels_with_its_stock_pending_release() {
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let mut r = record("authorized");
        r.record_reservation(
            vec![line(3)],
            &BTreeMap::new(),
            false,
            Duration::minutes(30),
            Uuid::from_u128(3),
            now,
        )
        .unwrap();
        assert!(
            !r.expire_reservation(Uuid::from_u128(4), now).unwrap(),
            "not yet"
        );
        let later = now + Duration::minutes(30);
        assert!(r.expire_reservation(Uuid::from_u128(4), later).unwrap());
        assert_eq!(r.status(), OrderStatus::Cancelled);
        assert!(r.release_pending());
        assert_eq!(r.stock_to_release(), [line(3)]);
        assert_eq!(r.owed_step().map(|e| e.id()), Some(Uuid::from_u128(4)));
        assert!(
            !r.expire_reservation(Uuid::from_u128(5), later).unwrap(),
            "once"
        );
        assert!(r.stock_released());
        assert!(!r.release_pending() && !r.lists_stock());
        assert!(r.owed_step().is_none(), "nothing owed once released");
        assert!(!r.stock_released(), "once");
    }
}
