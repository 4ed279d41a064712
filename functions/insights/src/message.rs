//! What arrives on the channels insights subscribes to: the lifecycle events (the domain's
//! [`EventEnvelope`]) and notify's webhook outcomes ([`WebhookOutcome`]).

use chrono::{DateTime, Utc};
use oms_domain::{EventEnvelope, OrderId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Channel of [`WebhookOutcome`]s whose webhook was delivered (a 2xx answer).
pub const WEBHOOK_DELIVERED: &str = "webhook.delivered";
/// Channel of [`WebhookOutcome`]s whose webhook was dead-lettered.
pub const WEBHOOK_DEAD_LETTERED: &str = "webhook.dead_lettered";

/// How a webhook delivery settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settled {
    /// `webhook.delivered`.
    #[serde(rename = "webhook.delivered")]
    Delivered,
    /// `webhook.dead_lettered`.
    #[serde(rename = "webhook.dead_lettered")]
    DeadLettered,
}

/// The message notify publishes when a webhook to one subscriber settles (its
/// `functions/notify/src/outcome.rs` writes this shape; the test below pins it):
///
/// ```json
/// {"version":1,"id":"…","type":"webhook.delivered","order_id":"…","event_id":"…",
///  "event_type":"order.routed","subscription":"…","attempts":1,"occurred_at":"…"}
/// ```
///
/// `id` is derived from (subscription, event, outcome), so a republished outcome keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookOutcome {
    /// Format version (1).
    pub version: u32,
    /// Stable id of this outcome.
    pub id: Uuid,
    /// Delivered or dead-lettered.
    #[serde(rename = "type")]
    pub outcome: Settled,
    /// The order the webhook's event is about.
    pub order_id: OrderId,
    /// The webhook's event (its `webhook-id`).
    pub event_id: Uuid,
    /// The event's type (`order.routed` …).
    pub event_type: String,
    /// The subscription.
    pub subscription: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it settled.
    pub occurred_at: DateTime<Utc>,
}

/// One message insights handles.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A lifecycle event.
    Event(EventEnvelope),
    /// A webhook delivery settled.
    Webhook(WebhookOutcome),
}

impl Message {
    /// Reads a message; `None` when it is neither an event nor a webhook outcome (it will
    /// never become one: the caller acknowledges and logs it).
    pub fn parse(bytes: &[u8]) -> Option<Message> {
        if let Ok(outcome) = serde_json::from_slice::<WebhookOutcome>(bytes) {
            return Some(Message::Webhook(outcome));
        }
        serde_json::from_slice::<EventEnvelope>(bytes)
            .ok()
            .map(Message::Event)
    }

    /// The message's id (what de-duplication keys on).
    pub fn id(&self) -> Uuid {
        match self {
            Message::Event(e) => e.id(),
            Message::Webhook(w) => w.id,
        }
    }

    /// The order it is about.
    pub fn order_id(&self) -> OrderId {
        match self {
            Message::Event(e) => e.order_id(),
            Message::Webhook(w) => w.order_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_outcomes_and_events_are_told_apart() {
        // The exact JSON functions/notify publishes (its outcome test pins the same text).
        let text = r#"{"version":1,"id":"00000000-0000-0000-0000-000000000009","type":"webhook.dead_lettered","order_id":"00000000-0000-0000-0000-000000000007","event_id":"00000000-0000-0000-0000-00000000002a","event_type":"order.routed","subscription":"s1","attempts":4,"occurred_at":"2026-01-01T00:00:00Z"}"#;
        let Some(Message::Webhook(w)) = Message::parse(text.as_bytes()) else {
            panic!("not read as a webhook outcome");
        };
        assert_eq!(w.outcome, Settled::DeadLettered);
        assert_eq!(w.attempts, 4);
        let event = r#"{"version":1,"id":"00000000-0000-0000-0000-000000000001","type":"order.validated","order_id":"00000000-0000-0000-0000-000000000002","sequence":1,"occurred_at":"2025-01-02T03:04:05Z","data":{}}"#;
        assert!(matches!(
            Message::parse(event.as_bytes()),
            Some(Message::Event(_))
        ));
        assert_eq!(Message::parse(b"{\"hello\":1}"), None);
    }
}
