//! One pass of an event over its subscribers: every matching subscriber that has not had the
//! webhook yet gets one signed attempt, and the pass says whether anything is left to retry.
//! The queue redelivers the event (with its own exponential backoff) while something is left;
//! the delivery records make every pass after the first skip what is already settled.

use chrono::{DateTime, Duration, Utc};
use oms_domain::EventEnvelope;
use oms_edge::{Kv, KvError};
use serde::{Deserialize, Serialize};

use crate::delivery::{self, Claim, DeliveryState, Outcome};
use crate::subscription::Subscription;
use crate::transport::Transport;

/// No new attempt starts after the pass has run this long: one more attempt (connect and
/// first-byte timeouts) must still end inside the host's per-message deadline (10 s). What
/// is left waits for the next delivery of the message.
const PASS_BUDGET_MS: i64 = 3_500;
/// Sent as `user-agent`.
const USER_AGENT: &str = concat!("edge-oms-notify/", env!("CARGO_PKG_VERSION"));

/// The queue channel a re-driven webhook's event goes back to notify on (notify alone
/// subscribes to it), so its attempts run through [`deliver`] with the queue's backoff like
/// any first delivery.
pub const REDRIVE_CHANNEL: &str = "webhook.redrive";

/// The message on [`REDRIVE_CHANNEL`]: an event, for one subscriber only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redriven {
    /// The subscription to deliver to.
    pub redrive: String,
    /// The event (its id stays the `webhook-id`).
    pub event: EventEnvelope,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Subscribers that answered 2xx now.
    pub delivered: usize,
    /// Subscribers whose attempt failed and will be retried.
    pub failed: usize,
    /// Subscribers dead-lettered now.
    pub dead: usize,
    /// Subscribers already settled by an earlier pass.
    pub settled_before: usize,
    /// Subscribers left for the next pass (another worker's attempt in flight, or no time).
    pub deferred: usize,
    /// Every subscriber whose webhook is settled (now or by an earlier pass), for the
    /// `webhook.delivered` / `webhook.dead_lettered` outcome messages.
    pub settled: Vec<Settlement>,
}

/// A subscriber's settled webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The subscription.
    pub subscription: String,
    /// Delivered or dead.
    pub state: DeliveryState,
    /// Attempts made (0 when an earlier pass settled it and its record is gone).
    pub attempts: u32,
}

impl Pass {
    fn settle(&mut self, sub: &Subscription, state: DeliveryState, attempts: u32) {
        self.settled.push(Settlement {
            subscription: sub.id.clone(),
            state,
            attempts,
        });
    }

    /// Whether the event must come back: some delivery is still pending.
    pub fn needs_retry(&self) -> bool {
        self.failed + self.deferred > 0
    }
}

/// Delivers `event` to every subscriber that wants it and has not had it yet.
///
/// # Errors
/// [`KvError`] when the delivery records cannot be read or written; the event should then be
/// redelivered (an attempt already sent may be sent again — receivers de-duplicate on the
/// stable `webhook-id`).
pub fn deliver<K: Kv, T: Transport>(
    kv: &K,
    transport: &T,
    subscriptions: &[Subscription],
    event: &EventEnvelope,
    max_attempts: u32,
    clock: impl Fn() -> DateTime<Utc>,
) -> Result<Pass, KvError> {
    let body = serde_json::to_vec(event).map_err(|e| KvError::Encode(format!("the event: {e}")))?;
    let webhook_id = event.id().to_string();
    let started = clock();
    let mut pass = Pass::default();
    for sub in subscriptions.iter().filter(|s| s.wants(event.event_type())) {
        let now = clock();
        if now - started > Duration::milliseconds(PASS_BUDGET_MS) {
            pass.deferred += 1;
            continue;
        }
        let attempt = match delivery::claim(kv, &sub.id, event, max_attempts, now)? {
            Claim::Send { attempt } => attempt,
            Claim::Settled(state) => {
                pass.settled_before += 1;
                let attempts = delivery::attempts(kv, &sub.id, event.id())?;
                pass.settle(sub, state, attempts);
                continue;
            }
            Claim::InFlight => {
                pass.deferred += 1;
                continue;
            }
            Claim::Exhausted => {
                dead_letter(sub, event, max_attempts, "the last attempt did not finish");
                pass.dead += 1;
                pass.settle(sub, DeliveryState::Dead, max_attempts);
                continue;
            }
        };
        let outcome = send(transport, sub, &webhook_id, now.timestamp(), &body);
        match delivery::settle(kv, &sub.id, event.id(), &outcome, max_attempts, clock())? {
            Some(DeliveryState::Delivered) => {
                pass.delivered += 1;
                pass.settle(sub, DeliveryState::Delivered, attempt);
            }
            Some(DeliveryState::Dead) => {
                if let Outcome::Failed { error, .. } = &outcome {
                    dead_letter(sub, event, max_attempts, error);
                }
                pass.dead += 1;
                pass.settle(sub, DeliveryState::Dead, attempt);
            }
            Some(DeliveryState::Pending) => {
                if let Outcome::Failed { error, .. } = &outcome {
                    eprintln!(
                        "notify: webhook {webhook_id} ({}) to subscription {} failed on attempt {attempt} of {max_attempts}: {error}; will retry",
                        event.event_type(),
                        sub.id
                    );
                }
                pass.failed += 1;
            }
            // The subscription was deleted while we were sending: nothing left to do.
            None => {}
        }
    }
    Ok(pass)
}

/// One signed attempt at `sub`: the Standard Webhooks headers over `body` at `timestamp`,
/// POSTed; a 2xx answer delivers it, anything else (or no answer) fails it.
fn send<T: Transport>(
    transport: &T,
    sub: &Subscription,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Outcome {
    let headers = [
        ("content-type", "application/json".to_string()),
        ("user-agent", USER_AGENT.to_string()),
        ("webhook-id", webhook_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            sub.secret.sign(webhook_id, timestamp, body),
        ),
    ];
    match transport.post(&sub.url, &headers, body) {
        Ok(status) if (200..300).contains(&status) => Outcome::Delivered { status },
        Ok(status) => Outcome::Failed {
            status: Some(status),
            error: format!("HTTP {status}"),
        },
        Err(error) => Outcome::Failed {
            status: None,
            error,
        },
    }
}

/// The operator's trace of a dead letter (the record itself is kept for the deliveries API).
fn dead_letter(sub: &Subscription, event: &EventEnvelope, max_attempts: u32, error: &str) {
    eprintln!(
        "notify: webhook {} ({}) to subscription {} ({}) dead-lettered after {max_attempts} attempts: {error}",
        event.id(),
        event.event_type(),
        sub.id,
        sub.url.as_str()
    );
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use oms_domain::{EventType, OrderId};
    use oms_edge::MemKv;
    use uuid::Uuid;

    use super::*;
    use crate::delivery::recent;
    use crate::subscription::{EventFilter, WebhookUrl};
    use oms_edge::standard_webhooks::{WebhookHeaders, WebhookSecret};

    /// One recorded request: URL, headers, body.
    type Sent = (String, Vec<(String, String)>, Vec<u8>);

    /// Answers with the given statuses in turn (the last one repeats) and records requests.
    struct Script {
        statuses: Vec<Result<u16, String>>,
        sent: RefCell<Vec<Sent>>,
    }

    impl Script {
        fn new(statuses: Vec<Result<u16, String>>) -> Script {
            Script {
                statuses,
                sent: RefCell::new(Vec::new()),
            }
        }
    }

    impl Transport for Script {
        fn post(
            &self,
            url: &WebhookUrl,
            headers: &[(&str, String)],
            body: &[u8],
        ) -> Result<u16, String> {
            let mut sent = self.sent.borrow_mut();
            let n = sent.len().min(self.statuses.len() - 1);
            sent.push((
                url.as_str().to_string(),
                headers
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), v.clone()))
                    .collect(),
                body.to_vec(),
            ));
            self.statuses[n].clone()
        }
    }

    fn sub(id: &str, filter: &str) -> Subscription {
        Subscription {
            id: id.into(),
            url: WebhookUrl::parse(&format!("https://{id}.example.com/hook")).unwrap(),
            events: vec![EventFilter::parse(filter).unwrap()],
            secret: WebhookSecret::from_key([5; 24]),
            created_at: at(0),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn event(t: EventType) -> EventEnvelope {
        EventEnvelope::new(
            Uuid::from_u128(42),
            t,
            OrderId::new(Uuid::from_u128(7)),
            3,
            at(0),
            serde_json::json!({"x": 1}),
        )
        .unwrap()
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        &headers.iter().find(|(k, _)| k == name).unwrap().1
    }

    #[test]
    fn only_matching_subscribers_get_a_signed_webhook_once() {
        let kv = MemKv::new();
        let ok = Script::new(vec![Ok(204)]);
        let subs = [
            sub("a", "order.*"),
            sub("b", "return.*"),
            sub("c", "order.routed"),
        ];
        let e = event(EventType::OrderRouted);
        let pass = deliver(&kv, &ok, &subs, &e, 4, || at(5)).unwrap();
        assert_eq!((pass.delivered, pass.needs_retry()), (2, false));
        let sent = ok.sent.borrow();
        let urls: Vec<&str> = sent.iter().map(|(u, _, _)| u.as_str()).collect();
        assert_eq!(
            urls,
            ["https://a.example.com/hook", "https://c.example.com/hook"]
        );
        let (_, headers, body) = &sent[0];
        assert_eq!(
            body,
            &serde_json::to_vec(&e).unwrap(),
            "the body is the event envelope"
        );
        assert_eq!(header(headers, "webhook-id"), e.id().to_string());
        assert_eq!(
            header(headers, "webhook-timestamp"),
            at(5).timestamp().to_string()
        );
        assert_eq!(header(headers, "content-type"), "application/json");
        let expected = subs[0]
            .secret
            .sign(&e.id().to_string(), at(5).timestamp(), body);
        assert_eq!(header(headers, "webhook-signature"), expected);
        let received = WebhookHeaders {
            id: Some(header(headers, "webhook-id")),
            timestamp: Some(header(headers, "webhook-timestamp")),
            signature: Some(header(headers, "webhook-signature")),
        };
        assert_eq!(
            subs[0].secret.verify(&received, body, at(6)),
            Ok(e.id().to_string().as_str()),
            "a receiver verifying with the same Standard Webhooks module accepts it"
        );
        drop(sent);
        // The queue redelivers the same message: nobody is notified twice.
        let again = deliver(&kv, &ok, &subs, &e, 4, || at(6)).unwrap();
        assert_eq!((again.delivered, again.settled_before), (0, 2));
        // Both passes report the settled webhooks (the outcomes are published again, same ids).
        for p in [&pass, &again] {
            let settled: Vec<(&str, DeliveryState, u32)> = p
                .settled
                .iter()
                .map(|s| (s.subscription.as_str(), s.state, s.attempts))
                .collect();
            assert_eq!(
                settled,
                [
                    ("a", DeliveryState::Delivered, 1),
                    ("c", DeliveryState::Delivered, 1)
                ]
            );
        }
        assert_eq!(ok.sent.borrow().len(), 2);
    }

    #[test]
    fn failures_are_retried_with_the_same_webhook_id_until_delivered() {
        let kv = MemKv::new();
        let flaky = Script::new(vec![Ok(500), Err("connection refused".into()), Ok(200)]);
        let subs = [sub("a", "*")];
        let e = event(EventType::OrderShipped);
        let t = Cell::new(0);
        let clock = || at(t.get());
        for expected_retry in [true, true, false] {
            t.set(t.get() + 20);
            let pass = deliver(&kv, &flaky, &subs, &e, 4, clock).unwrap();
            assert_eq!(pass.needs_retry(), expected_retry);
        }
        let ids: Vec<String> = flaky
            .sent
            .borrow()
            .iter()
            .map(|(_, h, _)| header(h, "webhook-id").to_string())
            .collect();
        assert_eq!(ids, vec![e.id().to_string(); 3]);
        let r = &recent(&kv, "a").unwrap()[0];
        assert_eq!(
            (r.state, r.attempts, r.last_status, r.last_error.clone()),
            (DeliveryState::Delivered, 3, Some(200), None)
        );
    }

    #[test]
    fn an_always_failing_subscriber_is_dead_lettered_and_others_are_unaffected() {
        let kv = MemKv::new();
        let down = Script::new(vec![Ok(503)]);
        let subs = [sub("a", "*")];
        let e = event(EventType::OrderValidated);
        let passes: Vec<Pass> = (1..=3)
            .map(|i| deliver(&kv, &down, &subs, &e, 3, || at(i * 20)).unwrap())
            .collect();
        assert_eq!(
            passes.iter().map(Pass::needs_retry).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(passes[2].dead, 1);
        assert_eq!(passes[2].settled[0].state, DeliveryState::Dead);
        assert!(passes[0].settled.is_empty() && passes[1].settled.is_empty());
        let r = &recent(&kv, "a").unwrap()[0];
        assert_eq!(
            (r.state, r.attempts, r.last_error.as_deref()),
            (DeliveryState::Dead, 3, Some("HTTP 503"))
        );
        // A fourth delivery of the message sends nothing more.
        let after = deliver(&kv, &down, &subs, &e, 3, || at(100)).unwrap();
        assert_eq!((after.settled_before, down.sent.borrow().len()), (1, 3));
    }

    #[test]
    fn a_pass_that_runs_out_of_time_defers_the_rest() {
        let kv = MemKv::new();
        let ok = Script::new(vec![Ok(200)]);
        let subs = [sub("a", "*"), sub("b", "*")];
        let e = event(EventType::OrderValidated);
        let ticks = Cell::new(0);
        // Each clock reading is 2 s after the previous one: the budget runs out after "a".
        let clock = || {
            ticks.set(ticks.get() + 2);
            at(ticks.get())
        };
        let pass = deliver(&kv, &ok, &subs, &e, 4, clock).unwrap();
        assert_eq!(
            (pass.delivered, pass.deferred, pass.needs_retry()),
            (1, 1, true)
        );
        let next = deliver(&kv, &ok, &subs, &e, 4, || at(100)).unwrap();
        assert_eq!(
            (next.delivered, next.settled_before, next.needs_retry()),
            (1, 1, false)
        );
    }
}
