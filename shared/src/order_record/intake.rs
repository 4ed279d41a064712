//! Intake transitions of [`OrderRecord`]: how a validated order enters the lifecycle.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OrderRecord;
use crate::{Order, TimelineError};

impl OrderRecord {
    /// The record of an order taken in from an intent (its id derived from the
    /// Idempotency-Key or the channel's external id): `validated`, owing its
    /// `order.validated` event, whose id is derived from the order id — every attempt at the
    /// same intent builds the same record, so whichever attempt stores it, the event that
    /// goes out has one stable id.
    ///
    /// # Errors
    /// Never in practice (the first event of a new timeline is always legal).
    pub fn take_in(order: Order, now: DateTime<Utc>) -> Result<OrderRecord, TimelineError> {
        let event_id = Uuid::new_v5(&order.id().as_uuid(), b"order.validated");
        OrderRecord::accept(order, event_id, now)
    }

    /// [`OrderRecord::take_in`] with the intake recorded as done by `actor` (`storefront`,
    /// `marketplace:<channel>`): every event of the take-in carries it, and so does what is
    /// recorded after it in the same request.
    ///
    /// # Errors
    /// As [`OrderRecord::take_in`].
    pub fn take_in_by(
        order: Order,
        actor: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<OrderRecord, TimelineError> {
        let actor = actor.into();
        let mut record = Self::take_in(order, now)?;
        record.events = std::mem::take(&mut record.events)
            .into_iter()
            .map(|e| e.by(Some(actor.clone())))
            .collect();
        record.act_as(actor);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdempotencyKey, OrderStatus};
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn the_same_intent_builds_the_same_validated_record() {
        let body = json!({
            "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
            "lines": [{"sku": "A", "quantity": 1, "unit_price": "1.00"}],
            "shipping": {"method": "pickup", "amount": "0", "pickup_location": "store-1"},
            "tax": "0",
            "totals": {"subtotal": "1.00", "discount": "0", "shipping": "0", "tax": "0", "grand_total": "1.00"},
            "payment": {"reference": "p", "status": "captured", "amount": "1.00"}
        });
        let key = IdempotencyKey::parse("k").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let take = |at| {
            OrderRecord::take_in(Order::from_storefront_request(&body, &key, at).unwrap(), at)
                .unwrap()
        };
        let (first, retry) = (take(at), take(at + chrono::Duration::seconds(5)));
        assert_eq!(first.status(), OrderStatus::Validated);
        assert_eq!(first.outbox, vec![first.events[0].id()]);
        assert_eq!(
            first.events[0].id(),
            retry.events[0].id(),
            "one stable event id"
        );
        assert_eq!(first.order.id(), retry.order.id());
        let by = OrderRecord::take_in_by(first.order.clone(), "storefront", at).unwrap();
        assert_eq!(by.events[0].actor(), Some("storefront"));
        assert_eq!(
            by.events[0].id(),
            first.events[0].id(),
            "the same event, signed"
        );
        assert_eq!(first.events[0].actor(), None);
    }
}
