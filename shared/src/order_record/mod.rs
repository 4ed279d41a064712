//! The stored form of an order: the validated order with everything that happened to it, and
//! the events it still owes the outside world (its outbox).
//!
//! Every change goes through a method that records its event on the timeline **and** in the
//! outbox, in the same value the step runner writes with one compare-and-swap: an event is
//! never "published but not stored" nor "stored and forgotten". The runner publishes the
//! outbox after the write and marks the events published in a second write; a crash in
//! between leaves them in the outbox, where the next step or the reconciler finds them.

mod fulfilment;
mod holds;
mod intake;
mod mapping;
mod payment;
mod stock;
mod stock_moves;

pub use fulfilment::{
    DeliveredEvent, FulfilmentError, FulfilmentStatus, RoutedEvent, ShipmentId, ShipmentLabel,
    ShipmentRecord, ShipmentStatus, ShippedEvent, UnroutableEvent,
};
pub use holds::{
    Hold, HoldError, HoldNote, HoldReason, OrderHeld, OrderHoldReleased, MAX_HOLD_NOTE_LEN,
};
pub use mapping::MappingError;
pub use stock_moves::StockMove;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    EventEnvelope, EventType, FulfilmentPlan, Order, OrderStatus, Refund, RefundLedger,
    Reservation, Timeline, TimelineError,
};

/// Everything stored about one order, updated as a whole with compare-and-swap so its status,
/// timeline and fulfilment state never disagree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The validated order.
    pub(crate) order: Order,
    /// Its timeline, oldest first.
    pub(crate) events: Vec<EventEnvelope>,
    /// Stock held for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reservation: Option<Reservation>,
    /// The fulfilment plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) plan: Option<FulfilmentPlan>,
    /// Its shipments.
    #[serde(default)]
    pub(crate) shipments: Vec<ShipmentRecord>,
    /// Money refunded so far.
    pub(crate) ledger: RefundLedger,
    /// Refunds issued.
    #[serde(default)]
    pub(crate) refunds: Vec<Refund>,
    /// Return authorisations opened for it (ids; each stored under `keys::return_`).
    #[serde(default)]
    pub(crate) returns: Vec<crate::ReturnId>,
    /// Why it was rejected or backordered, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// Its active holds, oldest first (see [`Hold`]); stored orders from before holds have
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) holds: Vec<Hold>,
    /// Ids of timeline events not yet published (oldest first): the outbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) outbox: Vec<Uuid>,
    /// Stock moves owed after the last change (see [`StockMove`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) pending_moves: Vec<StockMove>,
    /// Bumped by every write of the step runner.
    #[serde(default)]
    pub(crate) version: u64,
    /// The owed-work index entry that covers this order while it owes work (see the step
    /// runner); `None` when it rests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) marker: Option<String>,
    /// Who acts in the current request (see [`OrderRecord::act_as`]); not stored.
    #[serde(skip)]
    pub(crate) acting: Option<String>,
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
            holds: Vec::new(),
            outbox: vec![event_id],
            pending_moves: Vec::new(),
            version: 0,
            marker: None,
            acting: None,
        })
    }

    /// Records every event from now on (in this value, not stored) as done by `actor`, the
    /// audit string of the authenticated caller (`staff:root`, `fulfilment:<key>`,
    /// `customer`, `marketplace:<channel>`, …). Events of the system's own steps carry none.
    pub fn act_as(&mut self, actor: impl Into<String>) {
        self.acting = Some(actor.into());
    }

    /// The same as [`OrderRecord::accept`], with the acceptance recorded as done by `actor`.
    ///
    /// # Errors
    /// As [`OrderRecord::accept`].
    pub fn accept_by(
        order: Order,
        actor: impl Into<String>,
        event_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<OrderRecord, TimelineError> {
        let actor = actor.into();
        let mut record = Self::accept(order, event_id, now)?;
        if let Some(first) = record.events.pop() {
            record.events.push(first.by(Some(actor.clone())));
        }
        record.acting = Some(actor);
        Ok(record)
    }

    /// The timeline, replayed (which re-checks every transition).
    ///
    /// # Errors
    /// [`TimelineError`] for a corrupted history.
    pub fn timeline(&self) -> Result<Timeline, TimelineError> {
        Timeline::from_events(self.order.id(), self.events.clone())
    }

    /// The order dimension of the order's state (see [`OrderStatus`]); the fulfilment and
    /// payment dimensions are [`OrderRecord::fulfilment_status`] and
    /// [`OrderRecord::payment_status`].
    pub fn status(&self) -> OrderStatus {
        // Return and refund (payment) events leave the status alone, so the latest
        // status-changing event decides.
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
        let event = timeline
            .transition(to, event_id, now, data)?
            .clone()
            .by(self.acting.clone());
        self.events.push(event.clone());
        self.outbox.push(event.id());
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
        let event = timeline
            .record(event_type, event_id, now, data)?
            .clone()
            .by(self.acting.clone());
        self.events.push(event.clone());
        self.outbox.push(event.id());
        Ok(event)
    }

    /// The validated order.
    pub fn order(&self) -> &Order {
        &self.order
    }

    /// Its timeline, oldest first.
    pub fn events(&self) -> &[EventEnvelope] {
        &self.events
    }

    /// The stock held for it, while it is held.
    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// The fulfilment plan, once routed.
    pub fn plan(&self) -> Option<&FulfilmentPlan> {
        self.plan.as_ref()
    }

    /// Its shipments.
    pub fn shipments(&self) -> &[ShipmentRecord] {
        &self.shipments
    }

    /// Money captured and refunded.
    pub fn ledger(&self) -> &RefundLedger {
        &self.ledger
    }

    /// Refunds issued.
    pub fn refunds(&self) -> &[Refund] {
        &self.refunds
    }

    /// Ids of the returns opened for it.
    pub fn returns(&self) -> &[crate::ReturnId] {
        &self.returns
    }

    /// Why it was rejected or backordered, when it was.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Ids of the events not yet published.
    pub fn outbox(&self) -> &[Uuid] {
        &self.outbox
    }

    /// How many times the step runner has written it.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The owed-work index entry covering it while it owes work.
    pub fn marker(&self) -> Option<&str> {
        self.marker.as_deref()
    }

    /// For the step runner: this value is the next write after `current` (its version follows
    /// `current`'s), covered by index entry `marker` (`None` once it rests).
    pub fn written_after(&mut self, current: &OrderRecord, marker: Option<String>) {
        self.version = current.version + 1;
        self.marker = marker;
    }

    /// For the step runner: the value as first stored (version 0, no index entry yet).
    pub fn unwritten(mut self) -> OrderRecord {
        self.version = 0;
        self.marker = None;
        self
    }

    /// The events still to publish, oldest first.
    pub fn owed_events(&self) -> Vec<&EventEnvelope> {
        self.outbox
            .iter()
            .filter_map(|id| self.events.iter().find(|e| e.id() == *id))
            .collect()
    }

    /// Marks events as published (they leave the outbox).
    pub fn mark_published(&mut self, ids: &[Uuid]) {
        self.outbox.retain(|id| !ids.contains(id));
    }

    /// The event whose consumer still has work to do on this order — the step the lifecycle
    /// owes next — or `None` when the order rests (waiting on a person or a partner, or
    /// finished). Re-publishing it (same id) re-drives a step whose trigger was lost. A
    /// held order owes no routing, nor reserving while a hold blocks it (see [`Hold`]).
    pub fn owed_step(&self) -> Option<&EventEnvelope> {
        let owed = match self.status() {
            // Cancelled (then perhaps refunded) with its stock still listed: the release is
            // owed (reserve consumes `order.cancelled`: `oms_edge::release_cancelled`).
            _ if self.release_pending() => EventType::OrderCancelled,
            OrderStatus::Validated if !self.reserve_blocked() => EventType::OrderValidated,
            OrderStatus::Reserved if !self.is_held() => EventType::OrderReserved,
            _ => return None,
        };
        self.events.iter().rev().find(|e| e.event_type() == owed)
    }

    /// Whether the order owes anything: events to publish, stock moves to apply or a step to
    /// run.
    pub fn owes_work(&self) -> bool {
        !self.outbox.is_empty() || !self.pending_moves.is_empty() || self.owed_step().is_some()
    }
}
