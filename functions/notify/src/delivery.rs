//! The delivery log: one record per (subscriber, event) saying how many attempts were made,
//! how the last one went, and whether the webhook is delivered, still pending or dead.
//!
//! The record is what makes a redelivered queue message harmless: a delivered or dead webhook
//! is never sent again, and an attempt is *claimed* (counted, with a short lease) with
//! compare-and-swap before the request goes out, so two workers handling the same message at
//! once do not both send it, and an attempt cut short by a crash or deadline still counts
//! towards the limit.
//!
//! Keys (the notify function's own data, beside `oms_edge::keys`):
//! `delivery:{subscription}:{event}` holds a [`DeliveryRecord`]; `deliveries:{subscription}`
//! lists the subscriber's most recent event ids, oldest first, for the deliveries endpoint.

use chrono::{DateTime, Duration, Utc};
use oms_domain::{EventEnvelope, EventType};
use oms_edge::{update_json, Change, Kv, KvError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a claimed attempt keeps others off: longer than one attempt can take (connect
/// and first-byte timeouts, inside the host's per-message deadline).
pub const LEASE_SECONDS: i64 = 15;
/// How many deliveries the per-subscriber index keeps; older settled ones are forgotten.
pub const INDEX_LIMIT: usize = 200;
/// How many re-drives a record remembers (the oldest are dropped).
pub const REDRIVES_KEPT: usize = 10;

/// The record of one event for one subscriber: `delivery:{subscription}:{event}`.
pub fn record_key(subscription: &str, event: Uuid) -> String {
    format!("delivery:{subscription}:{event}")
}

/// A subscriber's recent event ids: `deliveries:{subscription}`.
pub fn index_key(subscription: &str) -> String {
    format!("deliveries:{subscription}")
}

/// Where a webhook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet; another attempt will be made.
    Pending,
    /// The subscriber answered 2xx.
    Delivered,
    /// Every allowed attempt failed: dead-lettered, never sent again.
    Dead,
}

/// What is known about delivering one event to one subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The event (and `webhook-id`).
    pub event_id: Uuid,
    /// Its type.
    pub event_type: EventType,
    /// The order it concerns.
    pub order_id: String,
    /// Its place in the order's timeline.
    pub sequence: u64,
    /// Where the delivery is.
    pub state: DeliveryState,
    /// Attempts started so far.
    pub attempts: u32,
    /// HTTP status of the last answered attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the first attempt started.
    pub first_attempt_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub last_attempt_at: DateTime<Utc>,
    /// When it became delivered or dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<DateTime<Utc>>,
    /// Until when the latest attempt is presumed running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_until: Option<DateTime<Utc>>,
    /// Its re-drives by staff, oldest first (at most [`REDRIVES_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redrives: Vec<Redrive>,
}

/// A dead webhook put back to pending by staff, with a fresh attempt budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redrive {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`staff:root`, `staff:<key id>`).
    pub by: String,
    /// Attempts made before it (they start again from 0).
    pub attempts: u32,
    /// Why the last of them failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Why a re-drive was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedriveRefused {
    /// No such delivery.
    Unknown,
    /// Only a dead delivery can be re-driven; this one is in that state.
    NotDead(DeliveryState),
}

/// What [`claim`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Send now: this is attempt number `attempt` (from 1).
    Send {
        /// The attempt's number.
        attempt: u32,
    },
    /// Already settled (delivered or dead earlier): send nothing.
    Settled(DeliveryState),
    /// The last attempt was cut short and was the last one allowed: now dead.
    Exhausted,
    /// Another worker's attempt is in flight: try again later.
    InFlight,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered {
        /// The status.
        status: u16,
    },
    /// A non-2xx answer, or no answer.
    Failed {
        /// The status, when the subscriber answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// Claims the next attempt of `event` for `subscription` (see the module docs).
///
/// # Errors
/// [`KvError`] from the store.
pub fn claim<K: Kv>(
    kv: &K,
    subscription: &str,
    event: &EventEnvelope,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Result<Claim, KvError> {
    let key = record_key(subscription, event.id());
    let lease = Some(now + Duration::seconds(LEASE_SECONDS));
    let (claim, first) = update_json(kv, &key, |current: Option<DeliveryRecord>| {
        Ok::<_, KvError>(match current {
            None => {
                let record = DeliveryRecord {
                    event_id: event.id(),
                    event_type: event.event_type(),
                    order_id: event.order_id().to_string(),
                    sequence: event.sequence(),
                    state: DeliveryState::Pending,
                    attempts: 1,
                    last_status: None,
                    last_error: None,
                    first_attempt_at: now,
                    last_attempt_at: now,
                    settled_at: None,
                    in_flight_until: lease,
                    redrives: Vec::new(),
                };
                Change::Write(record, (Claim::Send { attempt: 1 }, true))
            }
            Some(r) if r.state != DeliveryState::Pending => {
                Change::Keep((Claim::Settled(r.state), false))
            }
            Some(r) if r.in_flight_until.is_some_and(|t| t > now) => {
                Change::Keep((Claim::InFlight, false))
            }
            Some(r) if r.attempts >= max_attempts => {
                let error = r
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "the last attempt did not finish".into());
                let dead = DeliveryRecord {
                    state: DeliveryState::Dead,
                    last_error: Some(error),
                    settled_at: Some(now),
                    in_flight_until: None,
                    ..r
                };
                Change::Write(dead, (Claim::Exhausted, false))
            }
            Some(r) => {
                let attempt = r.attempts + 1;
                let next = DeliveryRecord {
                    attempts: attempt,
                    last_attempt_at: now,
                    in_flight_until: lease,
                    ..r
                };
                Change::Write(next, (Claim::Send { attempt }, false))
            }
        })
    })?;
    if first {
        remember(kv, subscription, event.id())?;
    }
    Ok(claim)
}

/// Records how the claimed attempt went; returns the new state (dead once a failure is the
/// `max_attempts`-th attempt), or `None` when the record vanished meanwhile (the
/// subscription was deleted) and nothing was written.
///
/// # Errors
/// [`KvError`] from the store.
pub fn settle<K: Kv>(
    kv: &K,
    subscription: &str,
    event: Uuid,
    outcome: &Outcome,
    max_attempts: u32,
    now: DateTime<Utc>,
) -> Result<Option<DeliveryState>, KvError> {
    update_json(
        kv,
        &record_key(subscription, event),
        |current: Option<DeliveryRecord>| {
            let Some(mut r) = current else {
                return Ok::<_, KvError>(Change::Keep(None));
            };
            if r.state != DeliveryState::Pending {
                // A concurrent worker settled it first (after our lease ran out); keep its word.
                return Ok(Change::Keep(Some(r.state)));
            }
            r.in_flight_until = None;
            match outcome {
                Outcome::Delivered { status } => {
                    r.state = DeliveryState::Delivered;
                    r.last_status = Some(*status);
                    r.last_error = None;
                    r.settled_at = Some(now);
                }
                Outcome::Failed { status, error } => {
                    r.last_status = *status;
                    r.last_error = Some(error.clone());
                    if r.attempts >= max_attempts {
                        r.state = DeliveryState::Dead;
                        r.settled_at = Some(now);
                    }
                }
            }
            let state = r.state;
            Ok(Change::Write(r, Some(state)))
        },
    )
}

/// Puts a dead delivery back to pending with no attempts made (a fresh budget of
/// `webhook_max_attempts`), noting the re-drive in [`DeliveryRecord::redrives`]; returns the
/// dead record as it was and the pending one. The caller then hands the event to the same
/// queue-driven passes as a first delivery ([`crate::dispatch::deliver`]), which claim the
/// attempts as usual.
///
/// # Errors
/// [`KvError`] from the store.
pub fn redrive<K: Kv>(
    kv: &K,
    subscription: &str,
    event: Uuid,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Result<(DeliveryRecord, DeliveryRecord), RedriveRefused>, KvError> {
    update_json(
        kv,
        &record_key(subscription, event),
        |current: Option<DeliveryRecord>| {
            Ok::<_, KvError>(match current {
                None => Change::Keep(Err(RedriveRefused::Unknown)),
                Some(r) if r.state != DeliveryState::Dead => {
                    Change::Keep(Err(RedriveRefused::NotDead(r.state)))
                }
                Some(dead) => {
                    let mut r = dead.clone();
                    r.redrives.push(Redrive {
                        at: now,
                        by: by.to_string(),
                        attempts: r.attempts,
                        last_error: r.last_error.clone(),
                    });
                    let excess = r.redrives.len().saturating_sub(REDRIVES_KEPT);
                    r.redrives.drain(..excess);
                    r.state = DeliveryState::Pending;
                    r.attempts = 0;
                    r.settled_at = None;
                    r.in_flight_until = None;
                    Change::Write(r.clone(), Ok((dead, r)))
                }
            })
        },
    )
}

/// Takes back a [`redrive`] whose event could not be handed on: the record returns to
/// `dead` as it was, unless an attempt has started meanwhile.
///
/// # Errors
/// [`KvError`] from the store.
pub fn undo_redrive<K: Kv>(
    kv: &K,
    subscription: &str,
    dead: &DeliveryRecord,
) -> Result<(), KvError> {
    update_json(
        kv,
        &record_key(subscription, dead.event_id),
        |current: Option<DeliveryRecord>| {
            Ok::<_, KvError>(match current {
                Some(r) if r.state == DeliveryState::Pending && r.attempts == 0 => {
                    Change::Write(dead.clone(), ())
                }
                _ => Change::Keep(()),
            })
        },
    )
}

/// The record of `event` to `subscription`, if any.
///
/// # Errors
/// [`KvError`] from the store.
pub fn get<K: Kv>(
    kv: &K,
    subscription: &str,
    event: Uuid,
) -> Result<Option<DeliveryRecord>, KvError> {
    kv.get_json(&record_key(subscription, event))
}

/// Attempts recorded for `event` to `subscription` (0 without a record).
///
/// # Errors
/// [`KvError`] from the store.
pub fn attempts<K: Kv>(kv: &K, subscription: &str, event: Uuid) -> Result<u32, KvError> {
    let record: Option<DeliveryRecord> = kv.get_json(&record_key(subscription, event))?;
    Ok(record.map_or(0, |r| r.attempts))
}

/// The subscriber's recent deliveries, newest first.
///
/// # Errors
/// [`KvError`] from the store.
pub fn recent<K: Kv>(kv: &K, subscription: &str) -> Result<Vec<DeliveryRecord>, KvError> {
    let ids: Vec<Uuid> = kv.get_json(&index_key(subscription))?.unwrap_or_default();
    let keys: Vec<String> = ids
        .iter()
        .rev()
        .map(|id| record_key(subscription, *id))
        .collect();
    Ok(kv.get_many_json(&keys)?.into_iter().flatten().collect())
}

/// Deletes every delivery record of a subscriber and its index.
///
/// # Errors
/// [`KvError`] from the store.
pub fn forget<K: Kv>(kv: &K, subscription: &str) -> Result<(), KvError> {
    let ids: Vec<Uuid> = kv.get_json(&index_key(subscription))?.unwrap_or_default();
    for id in ids {
        kv.delete(&record_key(subscription, id))?;
    }
    kv.delete(&index_key(subscription))
}

/// Adds an event to the subscriber's index; past [`INDEX_LIMIT`], the oldest *settled*
/// deliveries are dropped from it and their records deleted. Pending ones stay until they
/// settle, so a record is never deleted while the queue may still redeliver its message
/// for this subscriber.
fn remember<K: Kv>(kv: &K, subscription: &str, event: Uuid) -> Result<(), KvError> {
    let key = index_key(subscription);
    let ids: Vec<Uuid> = update_json(kv, &key, |current: Option<Vec<Uuid>>| {
        let mut ids = current.unwrap_or_default();
        if ids.contains(&event) {
            return Ok::<_, KvError>(Change::Keep(ids));
        }
        ids.push(event);
        Ok(Change::Write(ids.clone(), ids))
    })?;
    if ids.len() <= INDEX_LIMIT {
        return Ok(());
    }
    let candidates = &ids[..ids.len() - INDEX_LIMIT];
    let keys: Vec<String> = candidates
        .iter()
        .map(|id| record_key(subscription, *id))
        .collect();
    let settled: Vec<Uuid> = candidates
        .iter()
        .zip(kv.get_many(&keys)?)
        .filter(|(_, value)| {
            value
                .as_deref()
                .and_then(|b| serde_json::from_slice::<DeliveryRecord>(b).ok())
                .is_none_or(|r| r.state != DeliveryState::Pending)
        })
        .map(|(id, _)| *id)
        .collect();
    if settled.is_empty() {
        return Ok(());
    }
    update_json(kv, &key, |current: Option<Vec<Uuid>>| {
        let mut ids = current.unwrap_or_default();
        ids.retain(|id| !settled.contains(id));
        Ok::<_, KvError>(Change::Write(ids, ()))
    })?;
    for id in &settled {
        kv.delete(&record_key(subscription, *id))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_domain::OrderId;
    use oms_edge::MemKv;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn event(n: u128) -> EventEnvelope {
        EventEnvelope::new(
            Uuid::from_u128(n),
            EventType::OrderValidated,
            OrderId::new(Uuid::from_u128(9)),
            1,
            at(0),
            serde_json::json!({}),
        )
        .unwrap()
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            status: Some(500),
            error: "HTTP 500".into(),
        }
    }

    #[test]
    fn a_delivered_webhook_is_never_claimed_again() {
        let kv = MemKv::new();
        let e = event(1);
        assert_eq!(
            claim(&kv, "s", &e, 4, at(0)).unwrap(),
            Claim::Send { attempt: 1 }
        );
        assert_eq!(
            claim(&kv, "s", &e, 4, at(1)).unwrap(),
            Claim::InFlight,
            "a concurrent worker keeps off"
        );
        let state = settle(
            &kv,
            "s",
            e.id(),
            &Outcome::Delivered { status: 204 },
            4,
            at(1),
        )
        .unwrap();
        assert_eq!(state, Some(DeliveryState::Delivered));
        assert_eq!(
            claim(&kv, "s", &e, 4, at(100)).unwrap(),
            Claim::Settled(DeliveryState::Delivered)
        );
        let records = recent(&kv, "s").unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (
                records[0].attempts,
                records[0].last_status,
                records[0].in_flight_until
            ),
            (1, Some(204), None)
        );
    }

    #[test]
    fn failures_count_until_the_limit_and_then_the_webhook_is_dead() {
        let kv = MemKv::new();
        let e = event(1);
        for attempt in 1..=3 {
            assert_eq!(
                claim(&kv, "s", &e, 3, at(attempt.into())).unwrap(),
                Claim::Send { attempt }
            );
            let state = settle(&kv, "s", e.id(), &failed(), 3, at(attempt.into())).unwrap();
            let expected = if attempt < 3 {
                DeliveryState::Pending
            } else {
                DeliveryState::Dead
            };
            assert_eq!(state, Some(expected));
        }
        assert_eq!(
            claim(&kv, "s", &e, 3, at(10)).unwrap(),
            Claim::Settled(DeliveryState::Dead)
        );
        let r = &recent(&kv, "s").unwrap()[0];
        assert_eq!(
            (r.state, r.attempts, r.last_status, r.last_error.as_deref()),
            (DeliveryState::Dead, 3, Some(500), Some("HTTP 500"))
        );
        assert_eq!(r.settled_at, Some(at(3)));
    }

    #[test]
    fn an_attempt_cut_short_counts_once_its_lease_runs_out() {
        let kv = MemKv::new();
        let e = event(1);
        assert_eq!(
            claim(&kv, "s", &e, 2, at(0)).unwrap(),
            Claim::Send { attempt: 1 }
        );
        // No settle: the worker died. Others wait for the lease, then go on counting.
        assert_eq!(
            claim(&kv, "s", &e, 2, at(LEASE_SECONDS - 1)).unwrap(),
            Claim::InFlight
        );
        assert_eq!(
            claim(&kv, "s", &e, 2, at(LEASE_SECONDS + 1)).unwrap(),
            Claim::Send { attempt: 2 }
        );
        assert_eq!(
            claim(&kv, "s", &e, 2, at(3 * LEASE_SECONDS)).unwrap(),
            Claim::Exhausted
        );
        assert_eq!(recent(&kv, "s").unwrap()[0].state, DeliveryState::Dead);
    }

    #[test]
    fn the_index_is_bounded_but_keeps_pending_deliveries() {
        let kv = MemKv::new();
        let pending = event(1);
        claim(&kv, "s", &pending, 4, at(0)).unwrap();
        settle(&kv, "s", pending.id(), &failed(), 4, at(0)).unwrap();
        for n in 2..=(INDEX_LIMIT as u128 + 5) {
            let e = event(n);
            claim(&kv, "s", &e, 4, at(0)).unwrap();
            settle(
                &kv,
                "s",
                e.id(),
                &Outcome::Delivered { status: 200 },
                4,
                at(0),
            )
            .unwrap();
        }
        let records = recent(&kv, "s").unwrap();
        assert_eq!(
            records.len(),
            INDEX_LIMIT + 1,
            "the limit, plus the pending one kept"
        );
        assert_eq!(
            records[0].event_id,
            Uuid::from_u128(INDEX_LIMIT as u128 + 5),
            "newest first"
        );
        assert!(records.iter().any(|r| r.event_id == pending.id()));
        assert!(
            kv.get(&record_key("s", Uuid::from_u128(2)))
                .unwrap()
                .is_none(),
            "old settled records are deleted"
        );
        forget(&kv, "s").unwrap();
        assert!(recent(&kv, "s").unwrap().is_empty());
        assert!(kv.get(&record_key("s", pending.id())).unwrap().is_none());
    }
}
