//! The stored form of an order and the key layout of the shared store.

use chrono::{DateTime, Utc};
use oms_domain::{
    EventEnvelope, EventType, FulfilmentPlan, LocationId, Order, OrderStatus, Refund, RefundLedger,
    Reservation, ShipmentLine, Timeline, TimelineError,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Key layout of the `default` store (one place, so components agree).
pub mod keys {
    /// An order's record: `order:{id}`.
    pub fn order(id: &str) -> String {
        format!("order:{id}")
    }
    /// An idempotency entry: `idem:{scope}:{key}`.
    pub fn idempotency(scope: &str, key: &str) -> String {
        format!("idem:{scope}:{key}")
    }
    /// Catalog prices of a SKU: `catalog:{sku}`.
    pub fn catalog(sku: &str) -> String {
        format!("catalog:{sku}")
    }
    /// Stock of a SKU at a location: `stock:{sku}:{location}`, a `StockDoc` (holds and
    /// allocations per order) — always updated with `update_json`.
    pub fn stock(sku: &str, location: &str) -> String {
        format!("stock:{sku}:{location}")
    }
    /// Backorder policy of a SKU: `backorder:{sku}`.
    pub fn backorder(sku: &str) -> String {
        format!("backorder:{sku}")
    }
    /// The fulfilment locations (one document).
    pub const LOCATIONS: &str = "locations";
    /// Orders whose reservation expires (order id → expiry), for the expiry sweeper.
    pub const EXPIRING: &str = "reservations:expiring";
    /// The routing policy (split limit, cost per km).
    pub const ROUTING_POLICY: &str = "routing-policy";
    /// A marketplace order already taken in: `intake:{channel}:{external id}`.
    pub fn intake(channel: &str, external: &str) -> String {
        format!("intake:{channel}:{external}")
    }
    /// Webhook subscriptions (one document).
    pub const SUBSCRIPTIONS: &str = "subscriptions";
    /// A return authorisation: `return:{id}`.
    pub fn return_(id: &str) -> String {
        format!("return:{id}")
    }
}

/// Where a shipment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
pub struct ShipmentRecord {
    /// `{order id}-{n}`.
    pub id: String,
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

/// Everything stored about one order, updated as a whole with compare-and-swap so its status,
/// timeline and fulfilment state never disagree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The validated order.
    pub order: Order,
    /// Its timeline, oldest first.
    pub events: Vec<EventEnvelope>,
    /// Stock held for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
    /// The fulfilment plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<FulfilmentPlan>,
    /// Its shipments.
    #[serde(default)]
    pub shipments: Vec<ShipmentRecord>,
    /// Money refunded so far.
    pub ledger: RefundLedger,
    /// Refunds issued.
    #[serde(default)]
    pub refunds: Vec<Refund>,
    /// Return authorisations opened for it (ids; each stored under `keys::return_`).
    #[serde(default)]
    pub returns: Vec<oms_domain::ReturnId>,
    /// Why it was rejected or backordered, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl OrderRecord {
    /// A freshly accepted order with its `order.validated` event.
    ///
    /// # Errors
    /// Never in practice (the first event of a new timeline is always legal).
    pub fn accept(
        order: Order,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<OrderRecord, TimelineError> {
        let mut timeline = Timeline::new(order.id());
        timeline.transition(OrderStatus::Validated, event_id, now, serde_json::json!({}))?;
        let ledger = RefundLedger::for_order(&order);
        Ok(OrderRecord {
            order,
            events: timeline.events().to_vec(),
            reservation: None,
            plan: None,
            shipments: Vec::new(),
            ledger,
            refunds: Vec::new(),
            returns: Vec::new(),
            reason: None,
        })
    }

    /// The timeline, replayed (which re-checks every transition).
    ///
    /// # Errors
    /// [`TimelineError`] for a corrupted history.
    pub fn timeline(&self) -> Result<Timeline, TimelineError> {
        Timeline::from_events(self.order.id(), self.events.clone())
    }

    /// The current status.
    pub fn status(&self) -> OrderStatus {
        // Return events leave the status alone, so the latest status-changing event decides.
        self.events
            .iter()
            .rev()
            .find_map(|e| e.event_type().status())
            .unwrap_or(OrderStatus::Validated)
    }

    /// Whether an event of this type was already recorded (redelivery check).
    pub fn has_event(&self, event_type: EventType) -> bool {
        self.events.iter().any(|e| e.event_type() == event_type)
    }

    /// Records a status change and returns the new event.
    ///
    /// # Errors
    /// [`TimelineError`] for an illegal transition.
    pub fn transition(
        &mut self,
        to: OrderStatus,
        data: serde_json::Value,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, TimelineError> {
        let mut timeline = self.timeline()?;
        let event = timeline.transition(to, event_id, now, data)?.clone();
        self.events.push(event.clone());
        Ok(event)
    }

    /// Records an event that is not a status change (e.g. `return.received`).
    ///
    /// # Errors
    /// [`TimelineError`] when not allowed now.
    pub fn record(
        &mut self,
        event_type: EventType,
        data: serde_json::Value,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<EventEnvelope, TimelineError> {
        let mut timeline = self.timeline()?;
        let event = timeline.record(event_type, event_id, now, data)?.clone();
        self.events.push(event.clone());
        Ok(event)
    }
}
