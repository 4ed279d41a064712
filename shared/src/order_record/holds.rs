//! Order holds (Shopify's fulfillment-order holds, SAP's delivery blocks): a reason an order
//! must not move on to fulfilment until someone releases it.
//!
//! A hold is not a status: the order keeps its status (and its reservation — a held order
//! still gets and keeps its stock) and the hold only stops the steps it blocks. Every hold
//! blocks routing; an [`HoldReason::UnmappedItem`] hold also blocks reserving (the SKU is not
//! known, so there is nothing to reserve). [`OrderRecord::owed_step`] owes no blocked step,
//! so neither the step runner nor the reconciler re-drives a held order; releasing the last
//! blocking hold records `order.hold_released`, whose consumers (reserve, route) do their step
//! if it is now their turn.
//!
//! At most one active hold per reason. Holds are placed only before routing (validated,
//! backordered or reserved): once routed the stock is allocated to warehouses that are not
//! told about holds, and a resting order (rejected, cancelled, delivered) has nothing left to
//! hold. Releasing is allowed in any status, so a hold left on an order that was cancelled
//! meanwhile can still be cleared. Only active holds are stored; their history is the
//! timeline (`order.held`, `order.hold_released`).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::OrderRecord;
use crate::{Address, EventEnvelope, EventType, OrderStatus, ShippingMethod, TimelineError};

/// The longest hold note accepted, in characters.
pub const MAX_HOLD_NOTE_LEN: usize = 500;

/// Why a hold could not be placed or released, or a value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HoldError {
    /// Text that is not one of the hold reasons.
    #[error("{0:?} is not a hold reason (payment_pending, fraud_review, address_needed, unmapped_item, staff)")]
    UnknownReason(String),
    /// A note that is blank or longer than [`MAX_HOLD_NOTE_LEN`] characters.
    #[error("a hold note must be 1 to {MAX_HOLD_NOTE_LEN} characters, not blank")]
    Note,
    /// The order already has an active hold with this reason.
    #[error("the order is already on hold for {0}")]
    AlreadyHeld(HoldReason),
    /// The order has no active hold with this reason.
    #[error("the order is not on hold for {0}")]
    NotHeld(HoldReason),
    /// Holds are placed (and an address given) only before routing (validated, backordered,
    /// reserved).
    #[error("the order is {0}; holds can only be placed or an address given before it is routed")]
    OrderStatus(OrderStatus),
    /// An address given for an order that is not delivered to one (pickup or digital).
    #[error("the order is not delivered to an address (pickup or digital)")]
    NotDelivered,
    /// The timeline refused the event (a corrupted history).
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

/// Why an order is on hold. Written in snake_case (`payment_pending` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HoldReason {
    /// Payment not yet authorised or captured (e.g. a marketplace `financial_status` of
    /// `pending`).
    PaymentPending,
    /// Held for a fraud check.
    FraudReview,
    /// No usable shipping address yet; released with one.
    AddressNeeded,
    /// A line's SKU could not be resolved (e.g. a marketplace variant with no alias); blocks
    /// reserving as well as routing.
    UnmappedItem,
    /// Held by staff for any other reason (the note says why).
    Staff,
}

impl HoldReason {
    /// Every reason.
    pub const ALL: [HoldReason; 5] = [
        Self::PaymentPending,
        Self::FraudReview,
        Self::AddressNeeded,
        Self::UnmappedItem,
        Self::Staff,
    ];

    /// The snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentPending => "payment_pending",
            Self::FraudReview => "fraud_review",
            Self::AddressNeeded => "address_needed",
            Self::UnmappedItem => "unmapped_item",
            Self::Staff => "staff",
        }
    }

    /// Whether a hold with this reason also stops the order from being reserved (not only
    /// from being routed).
    pub fn blocks_reserve(self) -> bool {
        self == Self::UnmappedItem
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HoldReason {
    type Err = HoldError;
    fn from_str(s: &str) -> Result<Self, HoldError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| HoldError::UnknownReason(s.chars().take(80).collect()))
    }
}

/// Free text saying why a hold was placed or released: 1 to [`MAX_HOLD_NOTE_LEN`]
/// characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HoldNote(String);

impl HoldNote {
    /// Parses a note.
    ///
    /// # Errors
    /// [`HoldError::Note`] when blank or too long.
    pub fn parse(s: &str) -> Result<HoldNote, HoldError> {
        if s.trim().is_empty() || s.chars().count() > MAX_HOLD_NOTE_LEN {
            return Err(HoldError::Note);
        }
        Ok(HoldNote(s.to_owned()))
    }

    /// The note as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HoldNote {
    type Error = HoldError;
    fn try_from(s: String) -> Result<Self, HoldError> {
        HoldNote::parse(&s)
    }
}

impl From<HoldNote> for String {
    fn from(n: HoldNote) -> String {
        n.0
    }
}

/// One active hold on an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hold {
    /// Why.
    pub reason: HoldReason,
    /// The note given when it was placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, required = false, min_length = 1, max_length = 500)
    )]
    pub note: Option<HoldNote>,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
}

/// Payload of `order.held`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderHeld {
    /// Why the order is held.
    pub reason: HoldReason,
    /// The note given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<HoldNote>,
}

/// Payload of `order.hold_released`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderHoldReleased {
    /// The reason of the hold released.
    pub reason: HoldReason,
    /// The note given at release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<HoldNote>,
}

fn payload<T: Serialize>(value: &T) -> serde_json::Value {
    // Plain structs of strings: serializing cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

impl OrderRecord {
    /// The active holds, oldest first.
    pub fn holds(&self) -> &[Hold] {
        &self.holds
    }

    /// Whether any hold is active (the order is not routed while it is).
    pub fn is_held(&self) -> bool {
        !self.holds.is_empty()
    }

    /// Whether a hold with this reason is active.
    pub fn has_hold(&self, reason: HoldReason) -> bool {
        self.holds.iter().any(|h| h.reason == reason)
    }

    /// Whether an active hold stops the order from being reserved
    /// ([`HoldReason::blocks_reserve`]).
    pub fn reserve_blocked(&self) -> bool {
        self.holds.iter().any(|h| h.reason.blocks_reserve())
    }

    /// Places a hold with `reason`; records `order.held` ([`OrderHeld`]). Not a status
    /// change: the order keeps its status and reservation.
    ///
    /// # Errors
    /// [`HoldError::AlreadyHeld`] when a hold with this reason is active;
    /// [`HoldError::OrderStatus`] unless the order is validated, backordered or reserved; a
    /// timeline error.
    pub fn place_hold(
        &mut self,
        reason: HoldReason,
        note: Option<HoldNote>,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, HoldError> {
        if self.has_hold(reason) {
            return Err(HoldError::AlreadyHeld(reason));
        }
        self.expect_before_routing()?;
        let data = payload(&OrderHeld {
            reason,
            note: note.clone(),
        });
        let event = self.record(EventType::OrderHeld, data, event_id, now)?;
        self.holds.push(Hold {
            reason,
            note,
            placed_at: now,
        });
        Ok(event)
    }

    /// Releases the active hold with `reason`; records `order.hold_released`
    /// ([`OrderHoldReleased`]), which re-triggers the step the hold blocked when no other
    /// hold still blocks it. Allowed in any status.
    ///
    /// # Errors
    /// [`HoldError::NotHeld`] when no hold with this reason is active; a timeline error.
    pub fn release_hold(
        &mut self,
        reason: HoldReason,
        note: Option<HoldNote>,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, HoldError> {
        if !self.has_hold(reason) {
            return Err(HoldError::NotHeld(reason));
        }
        let data = payload(&OrderHoldReleased { reason, note });
        let event = self.record(EventType::OrderHoldReleased, data, event_id, now)?;
        self.holds.retain(|h| h.reason != reason);
        Ok(event)
    }

    /// Releases the [`HoldReason::AddressNeeded`] hold with the delivery address staff
    /// obtained: the order ships to `address` from now on; records `order.hold_released` as
    /// [`OrderRecord::release_hold`] does (the address itself stays out of the event, which
    /// goes to webhook subscribers).
    ///
    /// # Errors
    /// [`HoldError::NotHeld`] without an active `address_needed` hold;
    /// [`HoldError::OrderStatus`] unless the order is validated, backordered or reserved;
    /// [`HoldError::NotDelivered`] for a pickup or digital order; a timeline error.
    pub fn release_address_hold(
        &mut self,
        address: Address,
        note: Option<HoldNote>,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, HoldError> {
        let reason = HoldReason::AddressNeeded;
        if !self.has_hold(reason) {
            return Err(HoldError::NotHeld(reason));
        }
        self.expect_before_routing()?;
        if !matches!(
            self.order.shipping.method,
            ShippingMethod::Standard | ShippingMethod::Express
        ) {
            return Err(HoldError::NotDelivered);
        }
        let event = self.release_hold(reason, note, event_id, now)?;
        self.order.shipping.address = Some(address);
        Ok(event)
    }

    fn expect_before_routing(&self) -> Result<(), HoldError> {
        match self.status() {
            OrderStatus::Validated | OrderStatus::Backordered | OrderStatus::Reserved => Ok(()),
            status => Err(HoldError::OrderStatus(status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::sku1_order;
    use crate::OrderId;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 10, min, 0).unwrap()
    }

    fn validated() -> OrderRecord {
        let id = OrderId::new(Uuid::from_u128(7));
        OrderRecord::accept(
            sku1_order(id, 1, "5.00", "captured", at(0)),
            Uuid::from_u128(1),
            at(0),
        )
        .unwrap()
    }

    fn reserved() -> OrderRecord {
        let mut r = validated();
        r.transition(OrderStatus::Reserved, json!({}), Uuid::from_u128(2), at(1))
            .unwrap();
        r.outbox.clear();
        r
    }

    fn note(s: &str) -> Option<HoldNote> {
        Some(HoldNote::parse(s).unwrap())
    }

    #[test]
    fn reasons_and_notes_parse_strictly() {
        for r in HoldReason::ALL {
            assert_eq!(r.as_str().parse::<HoldReason>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!(matches!(
            "on_ice".parse::<HoldReason>(),
            Err(HoldError::UnknownReason(_))
        ));
        assert!("Staff".parse::<HoldReason>().is_err());
        assert_eq!(HoldNote::parse("  "), Err(HoldError::Note));
        assert!(HoldNote::parse(&"x".repeat(MAX_HOLD_NOTE_LEN)).is_ok());
        assert_eq!(
            HoldNote::parse(&"x".repeat(MAX_HOLD_NOTE_LEN + 1)),
            Err(HoldError::Note)
        );
        assert!(serde_json::from_value::<HoldNote>(json!("")).is_err());
    }

    #[test]
    fn a_held_reserved_order_owes_no_routing_until_released() {
        let mut r = reserved();
        assert_eq!(
            r.owed_step().map(EventEnvelope::event_type),
            Some(EventType::OrderReserved)
        );
        let held = r
            .place_hold(HoldReason::Staff, note("check"), Uuid::from_u128(3), at(2))
            .unwrap();
        assert_eq!(held.event_type(), EventType::OrderHeld);
        assert_eq!(held.data(), &json!({"reason": "staff", "note": "check"}));
        assert_eq!(r.status(), OrderStatus::Reserved, "not a status change");
        assert!(r.is_held() && r.has_hold(HoldReason::Staff) && !r.needs_routing());
        assert_eq!(r.owed_step(), None);
        assert_eq!(r.outbox(), [held.id()], "the event is owed to the world");
        r.outbox.clear();
        assert!(!r.owes_work(), "the reconciler leaves it alone");

        let released = r
            .release_hold(HoldReason::Staff, None, Uuid::from_u128(4), at(3))
            .unwrap();
        assert_eq!(released.event_type(), EventType::OrderHoldReleased);
        assert_eq!(released.data(), &json!({"reason": "staff"}));
        assert!(!r.is_held() && r.needs_routing());
        assert_eq!(
            r.owed_step().map(EventEnvelope::event_type),
            Some(EventType::OrderReserved)
        );
    }

    #[test]
    fn one_hold_per_reason_and_only_active_ones_release() {
        let mut r = reserved();
        r.place_hold(HoldReason::FraudReview, None, Uuid::from_u128(3), at(2))
            .unwrap();
        assert_eq!(
            r.place_hold(HoldReason::FraudReview, None, Uuid::from_u128(4), at(3)),
            Err(HoldError::AlreadyHeld(HoldReason::FraudReview))
        );
        r.place_hold(HoldReason::Staff, None, Uuid::from_u128(5), at(3))
            .unwrap();
        assert_eq!(
            r.release_hold(HoldReason::PaymentPending, None, Uuid::from_u128(6), at(4)),
            Err(HoldError::NotHeld(HoldReason::PaymentPending))
        );
        assert_eq!(r.events().len(), 4, "refusals record nothing");
        r.release_hold(HoldReason::FraudReview, None, Uuid::from_u128(6), at(4))
            .unwrap();
        assert!(r.is_held(), "the staff hold still blocks routing");
        assert_eq!(r.owed_step(), None);
        assert_eq!(r.holds()[0].reason, HoldReason::Staff);
        assert_eq!(r.holds()[0].placed_at, at(3));
    }

    #[test]
    fn unmapped_items_block_reserving_other_holds_do_not() {
        let mut v = validated();
        v.place_hold(HoldReason::PaymentPending, None, Uuid::from_u128(3), at(1))
            .unwrap();
        assert!(!v.reserve_blocked());
        assert_eq!(
            v.owed_step().map(EventEnvelope::event_type),
            Some(EventType::OrderValidated),
            "a held order still gets its reservation"
        );
        v.place_hold(HoldReason::UnmappedItem, None, Uuid::from_u128(4), at(2))
            .unwrap();
        assert!(v.reserve_blocked());
        assert_eq!(v.owed_step(), None);
        v.release_hold(HoldReason::UnmappedItem, None, Uuid::from_u128(5), at(3))
            .unwrap();
        assert_eq!(
            v.owed_step().map(EventEnvelope::event_type),
            Some(EventType::OrderValidated)
        );
    }

    #[test]
    fn holds_are_placed_only_before_routing_and_released_any_time() {
        let mut r = reserved();
        r.place_hold(HoldReason::Staff, None, Uuid::from_u128(3), at(2))
            .unwrap();
        let cancelled = json!({"from": "reserved"});
        r.transition(OrderStatus::Cancelled, cancelled, Uuid::from_u128(4), at(3))
            .unwrap();
        assert_eq!(
            r.place_hold(HoldReason::FraudReview, None, Uuid::from_u128(5), at(4)),
            Err(HoldError::OrderStatus(OrderStatus::Cancelled))
        );
        r.release_hold(HoldReason::Staff, None, Uuid::from_u128(5), at(4))
            .unwrap();
        assert!(!r.is_held());

        let mut routed = reserved();
        routed
            .transition(OrderStatus::Routed, json!({}), Uuid::from_u128(3), at(2))
            .unwrap();
        assert_eq!(
            routed.place_hold(HoldReason::Staff, None, Uuid::from_u128(4), at(3)),
            Err(HoldError::OrderStatus(OrderStatus::Routed))
        );
    }

    #[test]
    fn stored_orders_without_holds_still_load_and_holds_round_trip() {
        let mut r = reserved();
        let mut old = serde_json::to_value(&r).unwrap();
        assert!(old.get("holds").is_none(), "no holds, nothing written");
        old.as_object_mut().unwrap().remove("holds");
        let loaded: OrderRecord = serde_json::from_value(old).unwrap();
        assert!(!loaded.is_held());

        r.place_hold(
            HoldReason::AddressNeeded,
            note("no street"),
            Uuid::from_u128(3),
            at(2),
        )
        .unwrap();
        let back: OrderRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.holds(), r.holds());
        assert!(back.timeline().is_ok(), "hold events replay");
    }

    #[test]
    fn an_address_releases_the_address_hold_and_becomes_the_shipping_address() {
        let mut r = reserved();
        let address: Address = serde_json::from_value(
            json!({"country": "US", "postal_code": "10001", "line1": "5 Park Ave", "city": "New York"}),
        )
        .unwrap();
        assert_eq!(
            r.release_address_hold(address.clone(), None, Uuid::from_u128(3), at(2)),
            Err(HoldError::NotHeld(HoldReason::AddressNeeded))
        );
        r.place_hold(HoldReason::AddressNeeded, None, Uuid::from_u128(3), at(2))
            .unwrap();
        let released = r
            .release_address_hold(
                address.clone(),
                note("customer called"),
                Uuid::from_u128(4),
                at(3),
            )
            .unwrap();
        assert_eq!(
            released.data(),
            &json!({"reason": "address_needed", "note": "customer called"}),
            "no address in the event"
        );
        assert_eq!(r.order().shipping().address(), Some(&address));
        assert!(!r.is_held());
        let back: OrderRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(
            back.order().shipping().address(),
            Some(&address),
            "still a valid order"
        );
    }

    proptest! {
        /// Any sequence of place/release calls on a validated or reserved order keeps at most
        /// one hold per reason, the active holds equal to what the timeline says, the status
        /// untouched, and the step owed exactly when no hold blocks it: reserving while no
        /// `unmapped_item` hold is active, routing while nothing is held.
        #[test]
        fn holds_follow_their_events(
            is_reserved in any::<bool>(),
            ops in proptest::collection::vec((any::<bool>(), 0usize..5), 0..24),
        ) {
            let mut r = if is_reserved { reserved() } else { validated() };
            let status = r.status();
            let mut expected: Vec<HoldReason> = Vec::new();
            for (n, (place, i)) in (10u128..).zip(ops) {
                let reason = HoldReason::ALL[i];
                let id = Uuid::from_u128(n);
                let before = r.events().len();
                let result = if place {
                    r.place_hold(reason, None, id, at(5))
                } else {
                    r.release_hold(reason, None, id, at(5))
                };
                let was = expected.contains(&reason);
                match (place, was) {
                    (true, false) => expected.push(reason),
                    (false, true) => expected.retain(|x| *x != reason),
                    _ => {}
                }
                prop_assert_eq!(result.is_ok(), place != was);
                prop_assert_eq!(r.events().len(), before + usize::from(place != was));
                let active: Vec<HoldReason> = r.holds().iter().map(|h| h.reason).collect();
                prop_assert_eq!(&active, &expected);
                prop_assert_eq!(r.status(), status);
                let owed = if is_reserved {
                    expected.is_empty()
                } else {
                    !expected.contains(&HoldReason::UnmappedItem)
                };
                prop_assert_eq!(r.owed_step().is_some(), owed);
                prop_assert_eq!(r.needs_routing(), is_reserved && expected.is_empty());
                prop_assert!(r.timeline().is_ok());
            }
        }
    }
}
