//! An order's history: its events in sequence, and the status they add up to.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{EventEnvelope, EventError, EventType};
use crate::ids::OrderId;
use crate::order_state::{IllegalTransition, OrderStatus};

/// Why an event does not fit a timeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    /// The event belongs to another order.
    #[error("event for order {found} does not belong to order {expected}")]
    WrongOrder {
        /// The timeline's order.
        expected: OrderId,
        /// The event's order.
        found: OrderId,
    },
    /// Sequence numbers must run 1, 2, 3 … without gaps or repeats.
    #[error("expected event sequence {expected}, found {found}")]
    OutOfSequence {
        /// The next sequence number.
        expected: u64,
        /// The event's sequence number.
        found: u64,
    },
    /// The first event of an order must be `order.validated`.
    #[error("an order's first event must be order.validated, not {0}")]
    NotStarted(EventType),
    /// The event would move the order along a forbidden transition.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// The envelope could not be built.
    #[error(transparent)]
    Event(#[from] EventError),
}

/// The append-only, gap-free list of an order's events, with the status they imply.
///
/// Replaying a stored timeline re-checks every transition, so a corrupted history is detected
/// rather than trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    order_id: OrderId,
    events: Vec<EventEnvelope>,
    status: Option<OrderStatus>,
}

impl Timeline {
    /// The empty timeline of a not-yet-accepted order.
    pub fn new(order_id: OrderId) -> Self {
        Self {
            order_id,
            events: Vec::new(),
            status: None,
        }
    }

    /// Rebuilds a timeline from stored events in any order (they are sorted by sequence).
    ///
    /// # Errors
    /// [`TimelineError`] when an event belongs to another order, the sequence has a gap or
    /// repeat, or a transition is illegal.
    pub fn from_events(
        order_id: OrderId,
        mut events: Vec<EventEnvelope>,
    ) -> Result<Self, TimelineError> {
        events.sort_by_key(EventEnvelope::sequence);
        let mut timeline = Self::new(order_id);
        for event in events {
            timeline.push(event)?;
        }
        Ok(timeline)
    }

    /// The order.
    pub const fn order_id(&self) -> OrderId {
        self.order_id
    }

    /// The events, oldest first.
    pub fn events(&self) -> &[EventEnvelope] {
        &self.events
    }

    /// The current status; `None` before `order.validated`.
    pub const fn status(&self) -> Option<OrderStatus> {
        self.status
    }

    /// The sequence number the next event gets.
    pub fn next_sequence(&self) -> u64 {
        self.events.len() as u64 + 1
    }

    /// The status after `event_type`, if it is allowed now.
    fn after(&self, event_type: EventType) -> Result<Option<OrderStatus>, TimelineError> {
        match (self.status, event_type.status()) {
            (None, Some(OrderStatus::Validated)) => Ok(Some(OrderStatus::Validated)),
            (None, _) => Err(TimelineError::NotStarted(event_type)),
            (Some(from), Some(to)) => Ok(Some(from.transition(to)?)),
            // Return and payment (refund) events leave the order status alone.
            (Some(from), None) => Ok(Some(from)),
        }
    }

    /// Appends an already-built event (e.g. one read back from storage).
    ///
    /// # Errors
    /// As [`Timeline::from_events`].
    pub fn push(&mut self, event: EventEnvelope) -> Result<(), TimelineError> {
        if event.order_id() != self.order_id {
            return Err(TimelineError::WrongOrder {
                expected: self.order_id,
                found: event.order_id(),
            });
        }
        if event.sequence() != self.next_sequence() {
            return Err(TimelineError::OutOfSequence {
                expected: self.next_sequence(),
                found: event.sequence(),
            });
        }
        self.status = self.after(event.event_type())?;
        self.events.push(event);
        Ok(())
    }

    /// Records that something happened: checks the transition, numbers the event and appends
    /// it. `event_id` and `occurred_at` come from the caller.
    ///
    /// # Errors
    /// [`TimelineError::Illegal`] for a forbidden status change and
    /// [`TimelineError::NotStarted`] when the first event is not `order.validated`.
    pub fn record(
        &mut self,
        event_type: EventType,
        event_id: Uuid,
        occurred_at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Result<&EventEnvelope, TimelineError> {
        let event = EventEnvelope::new(
            event_id,
            event_type,
            self.order_id,
            self.next_sequence(),
            occurred_at,
            data,
        )?;
        self.push(event)?;
        Ok(&self.events[self.events.len() - 1])
    }

    /// Records a status change; the event type follows from the target status.
    ///
    /// # Errors
    /// As [`Timeline::record`].
    pub fn transition(
        &mut self,
        to: OrderStatus,
        event_id: Uuid,
        occurred_at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Result<&EventEnvelope, TimelineError> {
        self.record(to.event_type(), event_id, occurred_at, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 10, min, 0).unwrap()
    }

    fn order() -> OrderId {
        OrderId::new(Uuid::from_u128(7))
    }

    #[test]
    fn records_a_lifecycle_in_sequence() {
        let mut t = Timeline::new(order());
        assert_eq!(t.status(), None);
        let steps = [
            OrderStatus::Validated,
            OrderStatus::Reserved,
            OrderStatus::Routed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
        ];
        for (i, s) in steps.into_iter().enumerate() {
            let e = t
                .transition(s, Uuid::from_u128(100 + i as u128), at(i as u32), json!({}))
                .unwrap();
            assert_eq!(e.sequence(), i as u64 + 1);
        }
        t.record(
            EventType::ReturnRequested,
            Uuid::from_u128(200),
            at(9),
            json!({}),
        )
        .unwrap();
        assert_eq!(t.status(), Some(OrderStatus::Delivered));
        assert_eq!(t.next_sequence(), 7);

        let mut shuffled = t.events().to_vec();
        shuffled.reverse();
        assert_eq!(Timeline::from_events(order(), shuffled).unwrap(), t);
    }

    #[test]
    fn refunds_leave_the_order_status_alone_so_the_rest_still_ships() {
        let mut t = Timeline::new(order());
        for (i, s) in [
            OrderStatus::Validated,
            OrderStatus::Reserved,
            OrderStatus::Routed,
            OrderStatus::PartiallyShipped,
        ]
        .into_iter()
        .enumerate()
        {
            t.transition(s, Uuid::from_u128(i as u128 + 1), at(i as u32), json!({}))
                .unwrap();
        }
        t.record(
            EventType::OrderPartiallyRefunded,
            Uuid::from_u128(10),
            at(5),
            json!({}),
        )
        .unwrap();
        assert_eq!(t.status(), Some(OrderStatus::PartiallyShipped));
        t.transition(OrderStatus::Shipped, Uuid::from_u128(11), at(6), json!({}))
            .unwrap();
        t.transition(
            OrderStatus::Delivered,
            Uuid::from_u128(12),
            at(7),
            json!({}),
        )
        .unwrap();
        t.record(
            EventType::OrderRefunded,
            Uuid::from_u128(13),
            at(8),
            json!({}),
        )
        .unwrap();
        assert_eq!(t.status(), Some(OrderStatus::Delivered));
        assert_eq!(
            Timeline::from_events(order(), t.events().to_vec()).unwrap(),
            t
        );
    }

    #[test]
    fn refuses_illegal_and_unstarted_histories() {
        let mut t = Timeline::new(order());
        assert_eq!(
            t.transition(OrderStatus::Reserved, Uuid::from_u128(1), at(0), json!({})),
            Err(TimelineError::NotStarted(EventType::OrderReserved))
        );
        t.transition(OrderStatus::Validated, Uuid::from_u128(1), at(0), json!({}))
            .unwrap();
        assert!(matches!(
            t.transition(OrderStatus::Shipped, Uuid::from_u128(2), at(1), json!({})),
            Err(TimelineError::Illegal(_))
        ));
        // The refused event left no trace.
        assert_eq!(t.events().len(), 1);
    }

    #[test]
    fn detects_gaps_and_foreign_events() {
        let mut t = Timeline::new(order());
        t.transition(OrderStatus::Validated, Uuid::from_u128(1), at(0), json!({}))
            .unwrap();
        let gap = EventEnvelope::new(
            Uuid::from_u128(2),
            EventType::OrderReserved,
            order(),
            3,
            at(1),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            t.clone().push(gap),
            Err(TimelineError::OutOfSequence {
                expected: 2,
                found: 3
            })
        );
        let other = OrderId::new(Uuid::from_u128(8));
        let foreign = EventEnvelope::new(
            Uuid::from_u128(3),
            EventType::OrderReserved,
            other,
            2,
            at(1),
            json!({}),
        )
        .unwrap();
        assert!(matches!(
            t.push(foreign),
            Err(TimelineError::WrongOrder { .. })
        ));
    }
}
