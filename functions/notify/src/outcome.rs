//! The webhook outcome messages notify publishes for the KPIs (the insights component
//! subscribes to them; notify does not): `webhook.delivered` and `webhook.dead_lettered`,
//! one per (subscriber, event) whose webhook is settled, on the channel of the same name.
//!
//! ```json
//! {"version":1,"id":"…","type":"webhook.delivered","order_id":"…","event_id":"…",
//!  "event_type":"order.routed","subscription":"…","attempts":1,"occurred_at":"…"}
//! ```
//!
//! At least once: an outcome is published again each time its event comes back (a retry for
//! another subscriber, a re-drive), always with the same `id` (a UUIDv5 of subscription,
//! event and outcome), which is what receivers de-duplicate on. A failed publish fails the
//! handler, so the queue redelivers the event and the outcome goes out then. The shape is
//! read by `functions/insights/src/message.rs` (`WebhookOutcome`); a test on each side pins it.

use chrono::{DateTime, Utc};
use oms_domain::EventEnvelope;
use oms_edge::Bus;
use serde::Serialize;
use uuid::Uuid;

use crate::delivery::DeliveryState;
use crate::dispatch::Settlement;

/// Channel of delivered webhooks.
pub const DELIVERED: &str = "webhook.delivered";
/// Channel of dead-lettered webhooks.
pub const DEAD_LETTERED: &str = "webhook.dead_lettered";

/// One outcome message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookOutcome<'a> {
    /// Format version (1).
    pub version: u32,
    /// Stable id.
    pub id: Uuid,
    /// `webhook.delivered` or `webhook.dead_lettered` (also the channel).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The event's order.
    pub order_id: String,
    /// The event (the webhook's `webhook-id`).
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: &'a str,
    /// The subscription.
    pub subscription: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// When it was published.
    pub occurred_at: DateTime<Utc>,
}

/// The message for `settled`, or `None` for a webhook that is not settled.
pub fn message<'a>(
    event: &'a EventEnvelope,
    settled: &'a Settlement,
    now: DateTime<Utc>,
) -> Option<WebhookOutcome<'a>> {
    let kind = match settled.state {
        DeliveryState::Delivered => DELIVERED,
        DeliveryState::Dead => DEAD_LETTERED,
        DeliveryState::Pending => return None,
    };
    let name = format!("{}:{}:{kind}", settled.subscription, event.id());
    Some(WebhookOutcome {
        version: 1,
        id: Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes()),
        kind,
        order_id: event.order_id().to_string(),
        event_id: event.id(),
        event_type: event.event_type().as_str(),
        subscription: &settled.subscription,
        attempts: settled.attempts,
        occurred_at: now,
    })
}

/// Publishes an outcome per settled webhook.
///
/// # Errors
/// The first refused publish (the event should come back: see the module docs).
pub fn publish<B: Bus>(
    bus: &B,
    event: &EventEnvelope,
    settled: &[Settlement],
    now: DateTime<Utc>,
) -> Result<(), String> {
    for s in settled {
        if let Some(m) = message(event, s, now) {
            let payload = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
            bus.publish(m.kind, &payload)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oms_domain::{EventType, OrderId};
    use oms_edge::MemBus;

    use super::*;

    #[test]
    fn outcomes_have_a_stable_id_and_the_shape_insights_reads() {
        let at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
        let event = EventEnvelope::new(
            Uuid::from_u128(42),
            EventType::OrderRouted,
            OrderId::new(Uuid::from_u128(7)),
            3,
            at,
            serde_json::json!({}),
        )
        .unwrap();
        let settled = [
            Settlement {
                subscription: "s1".into(),
                state: DeliveryState::Dead,
                attempts: 4,
            },
            Settlement {
                subscription: "s2".into(),
                state: DeliveryState::Delivered,
                attempts: 1,
            },
        ];
        let bus = MemBus::default();
        publish(&bus, &event, &settled, at).unwrap();
        publish(&bus, &event, &settled, at).unwrap();
        let sent = bus.sent.borrow();
        let channels: Vec<&str> = sent.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            channels,
            [DEAD_LETTERED, DELIVERED, DEAD_LETTERED, DELIVERED]
        );
        assert_eq!(sent[0].1, sent[2].1, "republished with the same id");
        let text = String::from_utf8(sent[0].1.clone()).unwrap();
        let id = Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("s1:{}:{DEAD_LETTERED}", event.id()).as_bytes(),
        );
        // The exact text functions/insights/src/message.rs parses in its test (ids aside).
        assert_eq!(
            text,
            format!(
                r#"{{"version":1,"id":"{id}","type":"webhook.dead_lettered","order_id":"00000000-0000-0000-0000-000000000007","event_id":"00000000-0000-0000-0000-00000000002a","event_type":"order.routed","subscription":"s1","attempts":4,"occurred_at":"2026-01-01T00:00:00Z"}}"#
            )
        );
    }
}
