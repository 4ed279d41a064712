//! Fulfilment of an [`OrderRecord`]: routing a reserved order into shipments, and each
//! shipment's life (allocated → shipped → delivered).
//!
//! Fulfilment is its own dimension ([`FulfilmentStatus`], derived from the shipments), apart
//! from the order's status and its payment: a refund never stops a routed order's remaining
//! shipments from shipping and being delivered; only a cancellation (before anything ships)
//! does. Every change records its event (with a typed payload) through the record, so it lands
//! on the timeline and in the outbox in the same write.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{OrderRecord, StockMove};
use crate::{
    EventEnvelope, FulfilmentPlan, LocationId, OrderId, OrderStatus, ShipmentLine, Sku,
    TimelineError,
};

/// The longest carrier name or tracking number accepted.
const MAX_LABEL_LEN: usize = 128;

/// Why a fulfilment change or value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FulfilmentError {
    /// Text that is not a shipment id (`{order id}-{n}`, n from 1).
    #[error("{0:?} is not a shipment id ({{order id}}-{{n}}, n from 1)")]
    ShipmentId(String),
    /// A carrier name or tracking number that is blank or too long.
    #[error("must be 1 to {MAX_LABEL_LEN} characters, not blank")]
    Label,
    /// The order has no shipment with this id.
    #[error("shipment {0} not found")]
    UnknownShipment(ShipmentId),
    /// The order's status does not allow the change (e.g. it was cancelled).
    #[error("the order is {status}; {action} is not possible")]
    OrderStatus {
        /// The order's status.
        status: OrderStatus,
        /// What was asked (`shipping`, `routing` …).
        action: &'static str,
    },
    /// A delivery reported for a shipment that has not shipped.
    #[error("shipment {0} has not shipped yet")]
    NotShipped(ShipmentId),
    /// A plan without shipments.
    #[error("a fulfilment plan needs at least one shipment")]
    EmptyPlan,
    /// The timeline refused the event (a corrupted history).
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

/// A shipment's id: `{order id}-{n}`, the order's hyphenated id and the shipment's 1-based
/// number in its plan. The order is part of the id, so an update names its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShipmentId {
    order: OrderId,
    number: u32,
}

impl ShipmentId {
    /// The `number`th shipment of `order` (numbers start at 1).
    ///
    /// # Errors
    /// [`FulfilmentError::ShipmentId`] for number 0.
    pub fn new(order: OrderId, number: u32) -> Result<ShipmentId, FulfilmentError> {
        if number == 0 {
            return Err(FulfilmentError::ShipmentId(format!("{order}-0")));
        }
        Ok(ShipmentId { order, number })
    }

    /// Parses the canonical text form (lowercase hyphenated order id, `-`, a number from 1
    /// without leading zeros).
    ///
    /// # Errors
    /// [`FulfilmentError::ShipmentId`] for anything else.
    pub fn parse(s: &str) -> Result<ShipmentId, FulfilmentError> {
        let bad = || FulfilmentError::ShipmentId(s.chars().take(80).collect());
        let (order, number) = (s.get(..36).ok_or_else(bad)?, s.get(36..).ok_or_else(bad)?);
        let order = OrderId::parse(order)
            .ok()
            .filter(|o| o.to_string() == order)
            .ok_or_else(bad)?;
        let digits = number.strip_prefix('-').ok_or_else(bad)?;
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let number = digits.parse().map_err(|_| bad())?;
        ShipmentId::new(order, number).map_err(|_| bad())
    }

    /// The order it belongs to.
    pub const fn order_id(&self) -> OrderId {
        self.order
    }

    /// Its number within the order (from 1).
    pub const fn number(&self) -> u32 {
        self.number
    }
}

impl fmt::Display for ShipmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.order, self.number)
    }
}

impl FromStr for ShipmentId {
    type Err = FulfilmentError;
    fn from_str(s: &str) -> Result<Self, FulfilmentError> {
        ShipmentId::parse(s)
    }
}

impl TryFrom<String> for ShipmentId {
    type Error = FulfilmentError;
    fn try_from(s: String) -> Result<Self, FulfilmentError> {
        ShipmentId::parse(&s)
    }
}

impl From<ShipmentId> for String {
    fn from(id: ShipmentId) -> String {
        id.to_string()
    }
}

/// A carrier name or tracking number as a warehouse or 3PL reports it: 1 to 128 characters,
/// not blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShipmentLabel(String);

impl ShipmentLabel {
    /// Parses a label.
    ///
    /// # Errors
    /// [`FulfilmentError::Label`] when blank or longer than 128 characters.
    pub fn parse(s: &str) -> Result<ShipmentLabel, FulfilmentError> {
        if s.trim().is_empty() || s.chars().count() > MAX_LABEL_LEN {
            return Err(FulfilmentError::Label);
        }
        Ok(ShipmentLabel(s.to_owned()))
    }

    /// The label as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShipmentLabel {
    type Error = FulfilmentError;
    fn try_from(s: String) -> Result<Self, FulfilmentError> {
        ShipmentLabel::parse(&s)
    }
}

impl From<ShipmentLabel> for String {
    fn from(l: ShipmentLabel) -> String {
        l.0
    }
}

/// Where a shipment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ShipmentStatus {
    /// Stock allocated at the location, not yet shipped.
    Allocated,
    /// Handed to the carrier.
    Shipped,
    /// Delivered to the customer.
    Delivered,
}

/// One shipment of a routed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShipmentRecord {
    /// `{order id}-{n}`.
    pub id: ShipmentId,
    /// Where it ships from.
    pub location: LocationId,
    /// What it carries.
    pub lines: Vec<ShipmentLine>,
    /// Its state.
    pub status: ShipmentStatus,
    /// Carrier, once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Tracking number, once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<String>,
    /// When it shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The fulfilment dimension of an order, derived from its shipments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FulfilmentStatus {
    /// Nothing has shipped (not routed yet, routed, or cancelled).
    Unfulfilled,
    /// Some shipments have left, others not.
    PartiallyShipped,
    /// Every shipment has left; not all are delivered.
    Shipped,
    /// Every shipment is delivered.
    Delivered,
}

impl FulfilmentStatus {
    /// The snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unfulfilled => "unfulfilled",
            Self::PartiallyShipped => "partially_shipped",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
        }
    }
}

/// Payload of `order.routed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedEvent {
    /// How many shipments the plan has.
    pub shipments: usize,
    /// What the plan costs.
    pub total_cost: Decimal,
}

/// Payload of `order.backordered` when routing found no plan for the reserved stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnroutableEvent {
    /// Why no plan exists.
    pub reason: String,
}

/// Payload of `order.partially_shipped` / `order.shipped`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShippedEvent {
    /// The shipment that left.
    pub shipment: ShipmentId,
    /// Its carrier.
    pub carrier: ShipmentLabel,
    /// Its tracking number.
    pub tracking: ShipmentLabel,
}

/// Payload of `order.delivered` (the last shipment delivered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredEvent {
    /// The shipment whose delivery completed the order.
    pub shipment: ShipmentId,
}

fn payload<T: Serialize>(value: &T) -> serde_json::Value {
    // Plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_value(value).unwrap_or_default()
}

impl OrderRecord {
    /// Whether the routing step has to run now (the order is reserved and not on hold).
    pub fn needs_routing(&self) -> bool {
        self.status() == OrderStatus::Reserved && !self.is_held()
    }

    /// Routes a reserved order along `plan`: one allocated shipment per planned location
    /// (ids `{order}-1`, `{order}-2` … in plan order), the plan stored, the reservation
    /// replaced by it; records `order.routed` ([`RoutedEvent`]).
    ///
    /// # Errors
    /// [`FulfilmentError::OrderStatus`] unless the order is reserved;
    /// [`FulfilmentError::EmptyPlan`]; a timeline error.
    pub fn route(
        &mut self,
        plan: FulfilmentPlan,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, FulfilmentError> {
        self.expect_reserved("routing")?;
        // An order with nothing to ship (digital goods only) is routed with no shipment.
        if plan.shipments.is_empty() && !self.order.units_by_sku().is_empty() {
            return Err(FulfilmentError::EmptyPlan);
        }
        let order = self.order.id();
        let mut shipments = Vec::with_capacity(plan.shipments.len());
        for (n, s) in (1..).zip(&plan.shipments) {
            shipments.push(ShipmentRecord {
                id: ShipmentId::new(order, n)?,
                location: s.location.clone(),
                lines: s.lines.clone(),
                status: ShipmentStatus::Allocated,
                carrier: None,
                tracking: None,
                shipped_at: None,
                delivered_at: None,
            });
        }
        let data = payload(&RoutedEvent {
            shipments: plan.shipments.len(),
            total_cost: plan.total_cost,
        });
        let event = self.transition(OrderStatus::Routed, data, event_id, now)?;
        self.shipments = shipments;
        self.plan = Some(plan);
        self.reservation = None;
        self.reason = None;
        Ok(event)
    }

    /// Backorders a reserved order that no plan can ship (its holds stay, as reserve left
    /// them); records `order.backordered` with the reason ([`UnroutableEvent`]).
    ///
    /// # Errors
    /// [`FulfilmentError::OrderStatus`] unless the order is reserved; a timeline error.
    pub fn backorder_unroutable(
        &mut self,
        reason: String,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, FulfilmentError> {
        self.expect_reserved("routing")?;
        let data = payload(&UnroutableEvent {
            reason: reason.clone(),
        });
        let event = self.transition(OrderStatus::Backordered, data, event_id, now)?;
        self.reason = Some(reason);
        Ok(event)
    }

    /// The shipment with this id, if the order has it.
    pub fn shipment(&self, id: &ShipmentId) -> Option<&ShipmentRecord> {
        self.shipments.iter().find(|s| s.id == *id)
    }

    /// Records that a shipment left with `carrier` and `tracking`: `order.partially_shipped`,
    /// or `order.shipped` for the last one ([`ShippedEvent`]). Allowed while the order is
    /// routed or partially shipped, whatever its payment did. Idempotent: a shipment that
    /// already left is not changed (`Ok(false)`).
    ///
    /// # Errors
    /// [`FulfilmentError::UnknownShipment`]; [`FulfilmentError::OrderStatus`] when the order
    /// may not ship (cancelled — also when the cancellation removed the shipment — or not
    /// routed); a timeline error.
    pub fn ship(
        &mut self,
        id: &ShipmentId,
        carrier: ShipmentLabel,
        tracking: ShipmentLabel,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, FulfilmentError> {
        let i = self.shipment_index(id, "shipping")?;
        if self.shipments[i].status != ShipmentStatus::Allocated {
            return Ok(false);
        }
        let status = self.status();
        if !matches!(status, OrderStatus::Routed | OrderStatus::PartiallyShipped) {
            return Err(FulfilmentError::OrderStatus {
                status,
                action: "shipping",
            });
        }
        let last = self
            .shipments
            .iter()
            .enumerate()
            .all(|(j, s)| j == i || s.status != ShipmentStatus::Allocated);
        let to = if last {
            OrderStatus::Shipped
        } else {
            OrderStatus::PartiallyShipped
        };
        let data = payload(&ShippedEvent {
            shipment: *id,
            carrier: carrier.clone(),
            tracking: tracking.clone(),
        });
        self.transition(to, data, event_id, now)?;
        let s = &mut self.shipments[i];
        s.status = ShipmentStatus::Shipped;
        s.carrier = Some(carrier.into());
        s.tracking = Some(tracking.into());
        s.shipped_at = Some(now);
        let moves: Vec<StockMove> = s
            .lines
            .iter()
            .map(|l| StockMove::Ship {
                sku: l.sku.clone(),
                location: s.location.clone(),
            })
            .collect();
        for owed in moves {
            self.owe_move(owed);
        }
        Ok(true)
    }

    /// Records that a shipped shipment was delivered; when it is the last one of a shipped
    /// order, records `order.delivered` ([`DeliveredEvent`]). Idempotent: a delivered
    /// shipment is not changed (`Ok(false)`).
    ///
    /// # Errors
    /// [`FulfilmentError::UnknownShipment`]; [`FulfilmentError::NotShipped`] before it
    /// shipped; [`FulfilmentError::OrderStatus`] for a cancelled order; a timeline error.
    pub fn deliver(
        &mut self,
        id: &ShipmentId,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, FulfilmentError> {
        let i = self.shipment_index(id, "delivery")?;
        match self.shipments[i].status {
            ShipmentStatus::Delivered => return Ok(false),
            ShipmentStatus::Allocated => return Err(FulfilmentError::NotShipped(*id)),
            ShipmentStatus::Shipped => {}
        }
        let last = self
            .shipments
            .iter()
            .enumerate()
            .all(|(j, s)| j == i || s.status == ShipmentStatus::Delivered);
        if last && self.status() == OrderStatus::Shipped {
            let data = payload(&DeliveredEvent { shipment: *id });
            self.transition(OrderStatus::Delivered, data, event_id, now)?;
        }
        let s = &mut self.shipments[i];
        s.status = ShipmentStatus::Delivered;
        s.delivered_at = Some(now);
        Ok(true)
    }

    /// The fulfilment dimension, from the shipments alone (see [`FulfilmentStatus`]).
    pub fn fulfilment_status(&self) -> FulfilmentStatus {
        let count = |st: ShipmentStatus| self.shipments.iter().filter(|s| s.status == st).count();
        let (allocated, delivered) = (
            count(ShipmentStatus::Allocated),
            count(ShipmentStatus::Delivered),
        );
        let total = self.shipments.len();
        if total == 0 || allocated == total {
            FulfilmentStatus::Unfulfilled
        } else if delivered == total {
            FulfilmentStatus::Delivered
        } else if allocated == 0 {
            FulfilmentStatus::Shipped
        } else {
            FulfilmentStatus::PartiallyShipped
        }
    }

    /// Units per (SKU, location) the order's shipments still to leave should have allocated
    /// (shipped ones have left the stock).
    pub fn allocated_units(&self) -> BTreeMap<(Sku, LocationId), u32> {
        let mut out = BTreeMap::new();
        for s in self
            .shipments
            .iter()
            .filter(|s| s.status == ShipmentStatus::Allocated)
        {
            for l in &s.lines {
                *out.entry((l.sku.clone(), s.location.clone())).or_insert(0) += l.units;
            }
        }
        out
    }

    fn expect_reserved(&self, action: &'static str) -> Result<(), FulfilmentError> {
        match self.status() {
            OrderStatus::Reserved => Ok(()),
            status => Err(FulfilmentError::OrderStatus { status, action }),
        }
    }

    /// Where the shipment is; a shipment missing from a cancelled order (the cancellation
    /// dropped its allocation) is a conflict with the cancellation, not an unknown id.
    fn shipment_index(
        &self,
        id: &ShipmentId,
        action: &'static str,
    ) -> Result<usize, FulfilmentError> {
        match self.shipments.iter().position(|s| s.id == *id) {
            Some(i) if id.order_id() == self.order.id() => Ok(i),
            _ if self.status() == OrderStatus::Cancelled && id.order_id() == self.order.id() => {
                Err(FulfilmentError::OrderStatus {
                    status: OrderStatus::Cancelled,
                    action,
                })
            }
            _ => Err(FulfilmentError::UnknownShipment(*id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::sku1_order;
    use crate::{LocationKind, Shipment};
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// A reserved order for 2 units of SKU-1.
    fn reserved() -> OrderRecord {
        let order = sku1_order(OrderId::new(id(7)), 2, "1.00", "captured", at());
        let mut r = OrderRecord::accept(order, id(1), at()).unwrap();
        r.transition(OrderStatus::Reserved, json!({}), id(2), at())
            .unwrap();
        r
    }

    fn split_plan() -> FulfilmentPlan {
        let shipment = |loc: &str| Shipment {
            location: LocationId::parse(loc).unwrap(),
            kind: LocationKind::Warehouse,
            lines: vec![ShipmentLine {
                sku: Sku::parse("SKU-1").unwrap(),
                units: 1,
            }],
            distance_km: None,
            cost: Decimal::ONE,
        };
        FulfilmentPlan {
            shipments: vec![shipment("wh-east"), shipment("wh-west")],
            total_cost: Decimal::TWO,
        }
    }

    fn label(s: &str) -> ShipmentLabel {
        ShipmentLabel::parse(s).unwrap()
    }

    fn sid(r: &OrderRecord, n: u32) -> ShipmentId {
        ShipmentId::new(r.order.id(), n).unwrap()
    }

    #[test]
    fn shipment_ids_parse_only_their_canonical_form() {
        let order = OrderId::new(id(0xabcd_ef01_2345_6789_abcd_ef01_2345_6789));
        let s = ShipmentId::new(order, 2).unwrap();
        assert_eq!(ShipmentId::parse(&s.to_string()).unwrap(), s);
        assert_eq!(s.order_id(), order);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ShipmentId>(&json).unwrap(), s);
        for bad in [
            String::new(),
            order.to_string(),
            format!("{order}-"),
            format!("{order}-0"),
            format!("{order}-01"),
            format!("{order}-+1"),
            format!("{order}-1x"),
            format!("{order}-99999999999"),
            format!("{}-1", order.to_string().to_uppercase()),
            format!("{}-1", order.as_uuid().simple()),
            "ünïcode-and-more-than-thirty-six-chars-1".to_string(),
        ] {
            assert!(ShipmentId::parse(&bad).is_err(), "{bad:?}");
            assert!(serde_json::from_value::<ShipmentId>(json!(bad)).is_err());
        }
        assert!(ShipmentId::new(order, 0).is_err());
        assert!(ShipmentLabel::parse("  ").is_err());
        assert!(ShipmentLabel::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn routing_makes_one_allocated_shipment_per_location_with_a_typed_event() {
        let mut r = reserved();
        let e = r.route(split_plan(), id(3), at()).unwrap();
        assert_eq!(e.data(), &json!({"shipments": 2, "total_cost": "2"}));
        assert_eq!(r.shipments.len(), 2);
        assert_eq!(r.shipments[1].id, sid(&r, 2));
        assert!(r.reservation.is_none() && r.plan.is_some());
        assert_eq!(r.outbox.last(), Some(&e.id()), "the event is owed");
        assert_eq!(r.fulfilment_status(), FulfilmentStatus::Unfulfilled);
        assert_eq!(r.allocated_units().values().sum::<u32>(), 2);
        assert!(
            matches!(
                r.route(split_plan(), id(4), at()),
                Err(FulfilmentError::OrderStatus { .. })
            ),
            "an order is routed once"
        );
    }

    #[test]
    fn shipments_ship_and_deliver_once_each_and_fulfilment_follows() {
        let mut r = reserved();
        r.route(split_plan(), id(3), at()).unwrap();
        let (one, two) = (sid(&r, 1), sid(&r, 2));
        assert_eq!(
            r.deliver(&one, id(4), at()),
            Err(FulfilmentError::NotShipped(one))
        );
        assert!(r
            .ship(&one, label("ups"), label("1Z"), id(4), at())
            .unwrap());
        assert!(!r
            .ship(&one, label("ups"), label("1Z"), id(5), at())
            .unwrap());
        assert_eq!(r.status(), OrderStatus::PartiallyShipped);
        assert_eq!(r.fulfilment_status(), FulfilmentStatus::PartiallyShipped);
        assert!(r.deliver(&one, id(5), at()).unwrap());
        assert_eq!(r.fulfilment_status(), FulfilmentStatus::PartiallyShipped);
        assert!(r.ship(&two, label("dhl"), label("9"), id(6), at()).unwrap());
        assert_eq!(r.status(), OrderStatus::Shipped);
        assert_eq!(r.fulfilment_status(), FulfilmentStatus::Shipped);
        assert!(r.deliver(&two, id(7), at()).unwrap());
        assert!(!r.deliver(&two, id(8), at()).unwrap());
        assert_eq!(r.status(), OrderStatus::Delivered);
        assert_eq!(r.fulfilment_status(), FulfilmentStatus::Delivered);
        let types: Vec<&str> = r.events.iter().map(|e| e.event_type().as_str()).collect();
        assert_eq!(
            types[3..],
            [
                "order.partially_shipped",
                "order.shipped",
                "order.delivered"
            ]
        );
        assert_eq!(
            r.events[3].data(),
            &json!({"shipment": one.to_string(), "carrier": "ups", "tracking": "1Z"})
        );
        assert!(r.allocated_units().is_empty());
    }

    #[test]
    fn a_cancelled_order_refuses_shipping_even_when_its_shipment_is_gone() {
        let mut r = reserved();
        r.route(split_plan(), id(3), at()).unwrap();
        let one = sid(&r, 1);
        r.transition(OrderStatus::Cancelled, json!({}), id(4), at())
            .unwrap();
        let refused = r.clone().ship(&one, label("ups"), label("1Z"), id(5), at());
        assert!(matches!(
            refused,
            Err(FulfilmentError::OrderStatus {
                status: OrderStatus::Cancelled,
                ..
            })
        ));
        // The cancellation dropped the allocated shipments (a race: the update was checked
        // against the order before the cancel). Still a conflict, never a panic or a 404.
        r.shipments.clear();
        let refused = r.ship(&one, label("ups"), label("1Z"), id(5), at());
        assert!(
            matches!(refused, Err(FulfilmentError::OrderStatus { .. })),
            "{refused:?}"
        );
        let other = ShipmentId::new(OrderId::new(id(99)), 1).unwrap();
        assert_eq!(
            r.deliver(&other, id(6), at()),
            Err(FulfilmentError::UnknownShipment(other))
        );
    }

    #[test]
    fn backordering_an_unroutable_order_keeps_the_reason() {
        let mut r = reserved();
        let e = r
            .backorder_unroutable("no plan".into(), id(3), at())
            .unwrap();
        assert_eq!(e.data(), &json!({"reason": "no plan"}));
        assert_eq!(r.status(), OrderStatus::Backordered);
        assert_eq!(r.reason.as_deref(), Some("no plan"));
    }
}
