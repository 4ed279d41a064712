//! The versioned event envelope every component emits and consumes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::OrderId;
use crate::order_state::OrderStatus;

/// The envelope format version this crate writes and reads.
pub const EVENT_VERSION: u32 = 1;

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The envelope `version` is not one this crate understands.
    #[error("unsupported event envelope version {0} (expected {EVENT_VERSION})")]
    UnsupportedVersion(u32),
    /// Sequence numbers start at 1.
    #[error("event sequence numbers start at 1")]
    ZeroSequence,
    /// The `type` is not a known event type.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
}

/// What happened. Written as dotted names (`order.validated`), which subscribers filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// `order.validated`: accepted at intake.
    OrderValidated,
    /// `order.reserved`: stock held.
    OrderReserved,
    /// `order.backordered`: waiting for stock.
    OrderBackordered,
    /// `order.rejected`: no stock and no backorder.
    OrderRejected,
    /// `order.routed`: fulfilment plan chosen (again on a re-route).
    OrderRouted,
    /// `order.partially_shipped`: one shipment of several left.
    OrderPartiallyShipped,
    /// `order.shipped`: the last shipment left.
    OrderShipped,
    /// `order.delivered`: delivered or collected.
    OrderDelivered,
    /// `order.cancelled`: cancelled before shipment.
    OrderCancelled,
    /// `order.partially_refunded`: part of the captured amount returned.
    OrderPartiallyRefunded,
    /// `order.refunded`: everything captured returned.
    OrderRefunded,
    /// `return.requested`: a return authorisation was opened.
    ReturnRequested,
    /// `return.received`: the parcel arrived at the warehouse.
    ReturnReceived,
    /// `return.inspected`: lines accepted or rejected.
    ReturnInspected,
    /// `return.refunded`: the accepted lines were refunded.
    ReturnRefunded,
    /// `order.held`: a hold was placed (not a status change).
    OrderHeld,
    /// `order.hold_released`: a hold was released (not a status change).
    OrderHoldReleased,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 17] = [
        Self::OrderValidated,
        Self::OrderReserved,
        Self::OrderBackordered,
        Self::OrderRejected,
        Self::OrderRouted,
        Self::OrderPartiallyShipped,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderCancelled,
        Self::OrderPartiallyRefunded,
        Self::OrderRefunded,
        Self::ReturnRequested,
        Self::ReturnReceived,
        Self::ReturnInspected,
        Self::ReturnRefunded,
        Self::OrderHeld,
        Self::OrderHoldReleased,
    ];

    /// The dotted name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderValidated => "order.validated",
            Self::OrderReserved => "order.reserved",
            Self::OrderBackordered => "order.backordered",
            Self::OrderRejected => "order.rejected",
            Self::OrderRouted => "order.routed",
            Self::OrderPartiallyShipped => "order.partially_shipped",
            Self::OrderShipped => "order.shipped",
            Self::OrderDelivered => "order.delivered",
            Self::OrderCancelled => "order.cancelled",
            Self::OrderPartiallyRefunded => "order.partially_refunded",
            Self::OrderRefunded => "order.refunded",
            Self::ReturnRequested => "return.requested",
            Self::ReturnReceived => "return.received",
            Self::ReturnInspected => "return.inspected",
            Self::ReturnRefunded => "return.refunded",
            Self::OrderHeld => "order.held",
            Self::OrderHoldReleased => "order.hold_released",
        }
    }

    /// The order status this event moves the order into; `None` for `return.*` events,
    /// which follow the return's own lifecycle, for the payment events
    /// (`order.partially_refunded`, `order.refunded`), which change the payment dimension
    /// only, and for the hold events (`order.held`, `order.hold_released`).
    pub fn status(self) -> Option<OrderStatus> {
        OrderStatus::ALL
            .into_iter()
            .find(|s| s.event_type() == self)
    }
}

impl FromStr for EventType {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, EventError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| EventError::UnknownType(s.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One event about one order, as stored and as delivered to subscribers:
///
/// ```json
/// {"version":1,"id":"…uuid…","type":"order.validated","order_id":"…uuid…",
///  "sequence":1,"occurred_at":"2025-01-01T12:00:00Z","data":{…}}
/// ```
///
/// Field names are stable. `id` is unique per event (webhook receivers de-duplicate on it);
/// `sequence` numbers an order's events 1, 2, 3 … without gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EnvelopeRepr", into = "EnvelopeRepr")]
pub struct EventEnvelope {
    id: Uuid,
    event_type: EventType,
    order_id: OrderId,
    sequence: u64,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
    actor: Option<String>,
}

impl EventEnvelope {
    /// Builds an envelope; `id` and `occurred_at` come from the caller.
    ///
    /// # Errors
    /// [`EventError::ZeroSequence`] when `sequence` is 0.
    pub fn new(
        id: Uuid,
        event_type: EventType,
        order_id: OrderId,
        sequence: u64,
        occurred_at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Result<Self, EventError> {
        if sequence == 0 {
            return Err(EventError::ZeroSequence);
        }
        Ok(Self {
            id,
            event_type,
            order_id,
            sequence,
            occurred_at,
            data,
            actor: None,
        })
    }

    /// The same event, recorded as done by `actor` (an audit string such as `staff:root`,
    /// `fulfilment:<key id>`, `customer`, `marketplace:<channel>`).
    #[must_use]
    pub fn by(mut self, actor: Option<String>) -> Self {
        self.actor = actor;
        self
    }

    /// Who did it, when a caller was authenticated (the audit trail); `None` for the system's
    /// own steps.
    pub fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    /// Unique id of this event.
    pub const fn id(&self) -> Uuid {
        self.id
    }

    /// What happened.
    pub const fn event_type(&self) -> EventType {
        self.event_type
    }

    /// The order it happened to.
    pub const fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// Position in the order's timeline, from 1.
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When it happened.
    pub const fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }

    /// Event-specific payload.
    pub const fn data(&self) -> &serde_json::Value {
        &self.data
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct EnvelopeRepr {
    version: u32,
    id: Uuid,
    #[serde(rename = "type")]
    event_type: EventType,
    order_id: OrderId,
    sequence: u64,
    occurred_at: DateTime<Utc>,
    data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
}

#[cfg(feature = "openapi")]
crate::openapi::schema_via!(EventEnvelope, "EventEnvelope", EnvelopeRepr);

impl TryFrom<EnvelopeRepr> for EventEnvelope {
    type Error = EventError;
    fn try_from(r: EnvelopeRepr) -> Result<Self, EventError> {
        if r.version != EVENT_VERSION {
            return Err(EventError::UnsupportedVersion(r.version));
        }
        EventEnvelope::new(
            r.id,
            r.event_type,
            r.order_id,
            r.sequence,
            r.occurred_at,
            r.data,
        )
        .map(|e| e.by(r.actor))
    }
}

impl From<EventEnvelope> for EnvelopeRepr {
    fn from(e: EventEnvelope) -> Self {
        EnvelopeRepr {
            version: EVENT_VERSION,
            id: e.id,
            event_type: e.event_type,
            order_id: e.order_id,
            sequence: e.sequence,
            occurred_at: e.occurred_at,
            data: e.data,
            actor: e.actor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn sample() -> EventEnvelope {
        EventEnvelope::new(
            Uuid::from_u128(1),
            EventType::OrderValidated,
            OrderId::new(Uuid::from_u128(2)),
            1,
            Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
            json!({"grand_total": "10.00"}),
        )
        .unwrap()
    }

    #[test]
    fn envelope_json_is_stable() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            json,
            r#"{"version":1,"id":"00000000-0000-0000-0000-000000000001","type":"order.validated","order_id":"00000000-0000-0000-0000-000000000002","sequence":1,"occurred_at":"2025-01-02T03:04:05Z","data":{"grand_total":"10.00"}}"#
        );
        assert_eq!(
            serde_json::from_str::<EventEnvelope>(&json).unwrap(),
            sample()
        );
    }

    #[test]
    fn unknown_versions_types_and_zero_sequences_are_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["version"] = json!(2);
        assert!(serde_json::from_value::<EventEnvelope>(v.clone()).is_err());
        v["version"] = json!(1);
        v["type"] = json!("order.teleported");
        assert!(serde_json::from_value::<EventEnvelope>(v.clone()).is_err());
        v["type"] = json!("order.shipped");
        v["sequence"] = json!(0);
        assert!(serde_json::from_value::<EventEnvelope>(v).is_err());
    }

    #[test]
    fn type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        assert_eq!(EventType::ReturnReceived.status(), None);
        assert_eq!(EventType::OrderRefunded.status(), None);
        assert_eq!(EventType::OrderPartiallyRefunded.status(), None);
        assert_eq!(EventType::OrderHeld.status(), None);
        assert_eq!(EventType::OrderHoldReleased.status(), None);
        assert_eq!(EventType::OrderRouted.status(), Some(OrderStatus::Routed));
    }
}
