//! `Idempotency-Key` handling, with Stripe's semantics:
//!
//! - the first request with a key runs; a repeat with the same body gets the stored response
//!   (status and body) of its first **success**;
//! - the same key with a different body is a 422 — also after a failed (5xx) run: the key
//!   keeps the fingerprint of the body it was first used with;
//! - a refusal (any 4xx: validation, a 409 conflict) is **not** stored under the key: the request
//!   did not start executing, so a corrected request may reuse the key;
//! - a 5xx is not stored either, but the claim stays: the same body may run again at once.
//!
//! What a repeat does while the first run is still going (or died without a word, e.g.
//! stopped at its deadline) is the caller's choice ([`Repeat`]): wait for it (bounded) and
//! take it over after a lease, or — when the run's effect is itself keyed by the intent, as
//! an order whose id is derived from the key — simply run again. Keys are kept 24 hours: an
//! entry older than that is treated as new, and every entry is indexed when it is created
//! so the sweeper of [`crate::retention`] deletes it after the retention window (24 hours by
//! default) without listing the store.

use chrono::{DateTime, Duration, Utc};
use oms_domain::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::kv::{update_json, Change, Kv};
use crate::problem::{FunctionError, Problem};
use crate::retention::index_for_pruning;

/// How long a key is remembered.
pub const IDEMPOTENCY_TTL_HOURS: i64 = 24;
/// Polls (20 ms apart) for a concurrent first request to finish: under the host's default
/// 1 s request deadline, so a duplicate gets the replay or a 409, never a timeout.
const MAX_WAITS: u32 = 35;
/// After this long an unfinished first request is presumed dead and may be retried.
const LEASE_SECONDS: i64 = 30;

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// Status.
    pub status: u16,
    /// Content type.
    pub content_type: String,
    /// Body.
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    fingerprint: String,
    created_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    response: Option<StoredResponse>,
    /// The last run ended in a 5xx: nothing runs, the same body may run again at once.
    #[serde(default)]
    failed: bool,
}

/// What a repeat of a request does while an earlier run with its key has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Wait briefly for the earlier run (then replay it, or answer 409); take over only after
    /// its lease expired. For runs that must not overlap.
    Wait,
    /// Run again at once: the run is idempotent by itself because everything it writes is
    /// keyed by the intent (e.g. an order id derived from the key), so overlapping runs
    /// converge on one result. A repeat after a run stopped at its deadline then needs no
    /// lease to expire.
    Rerun,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request runs.
    New,
    /// A finished earlier request: replay it.
    Replay(StoredResponse),
    /// An earlier request with this key is still running.
    Busy,
}

fn reused() -> FunctionError {
    Problem::field(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "Idempotency-Key",
        "key_reused",
        "this key was used with a different request body",
    )
    .into()
}

/// Whether an entry is past the window in which its key replays (then it counts as new).
fn expired(e: &Entry, now: DateTime<Utc>) -> bool {
    e.created_at + Duration::hours(IDEMPOTENCY_TTL_HOURS) < now
}

/// Claims the key. An entry the claim will create is first indexed for pruning, so a crash
/// between the two never leaves an entry nobody prunes (an index entry without its record,
/// or listed twice, is harmless).
fn claim<K: Kv>(
    kv: &K,
    key: &str,
    fp: &Fingerprint,
    now: DateTime<Utc>,
    repeat: Repeat,
) -> Result<Claim, FunctionError> {
    let current: Option<Entry> = kv.get_json(key)?;
    if current.as_ref().is_none_or(|e| expired(e, now)) {
        index_for_pruning(kv, key, now)?;
    }
    let (claim, _) = update_json(kv, key, |cur: Option<Entry>| {
        let fresh = Entry {
            fingerprint: fp.as_str().to_string(),
            created_at: now,
            started_at: now,
            response: None,
            failed: false,
        };
        match cur {
            None => Ok(Change::Write(fresh, (Claim::New, true))),
            Some(e) if expired(&e, now) => Ok(Change::Write(fresh, (Claim::New, true))),
            Some(e) if e.fingerprint != fp.as_str() => Err(reused()),
            Some(Entry {
                response: Some(r), ..
            }) => Ok(Change::Keep((Claim::Replay(r), false))),
            Some(e) if e.failed || e.started_at + Duration::seconds(LEASE_SECONDS) < now => {
                Ok(Change::Write(
                    Entry {
                        started_at: now,
                        failed: false,
                        ..e
                    },
                    (Claim::New, false),
                ))
            }
            Some(_) if repeat == Repeat::Rerun => Ok(Change::Keep((Claim::New, false))),
            Some(_) => Ok(Change::Keep((Claim::Busy, false))),
        }
    })?;
    Ok(claim)
}

/// Runs `run` at most once per (key, body), waiting for a concurrent first run
/// ([`Repeat::Wait`]); see the module docs. `now` is read again while waiting.
///
/// # Errors
/// 422 for a reused key, 409 when the first request is still running after a short wait,
/// storage errors; `run`'s own error (never stored: a 4xx frees the key, a 5xx lets the
/// same body retry).
pub fn idempotent<K: Kv>(
    kv: &K,
    key: &str,
    fp: &Fingerprint,
    now: impl Fn() -> DateTime<Utc>,
    run: impl FnOnce() -> Result<StoredResponse, FunctionError>,
) -> Result<StoredResponse, FunctionError> {
    idempotent_with(kv, key, fp, now, Repeat::Wait, run)
}

/// [`idempotent`] with the choice of what a repeat does while an earlier run is unfinished.
///
/// # Errors
/// As [`idempotent`] (a [`Repeat::Rerun`] repeat never waits, so never gets the 409).
pub fn idempotent_with<K: Kv>(
    kv: &K,
    key: &str,
    fp: &Fingerprint,
    now: impl Fn() -> DateTime<Utc>,
    repeat: Repeat,
    run: impl FnOnce() -> Result<StoredResponse, FunctionError>,
) -> Result<StoredResponse, FunctionError> {
    let mut waited = 0;
    loop {
        match claim(kv, key, fp, now(), repeat)? {
            Claim::Replay(r) => return Ok(r),
            Claim::New => break,
            Claim::Busy if waited < MAX_WAITS => {
                waited += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Claim::Busy => {
                return Err(Problem::conflict(
                    "a request with this Idempotency-Key is still being processed; retry later",
                )
                .into())
            }
        }
    }
    let outcome = run();
    // Bookkeeping never replaces the outcome: if it fails, the claim stays unanswered and a
    // repeat runs again (at once with `Rerun`, after the lease with `Wait`).
    let kept = match &outcome {
        Ok(r) => settle(kv, key, fp, now(), |e| {
            e.response = Some(r.clone());
            e.failed = false;
        }),
        Err(FunctionError::Problem(p)) if p.status < 500 => release(kv, key, fp),
        Err(_) => settle(kv, key, fp, now(), |e| e.failed = true),
    };
    if let Err(e) = kept {
        eprintln!("idempotency: could not record the outcome under {key}: {e:?}");
    }
    outcome
}

/// Updates this body's claim (recreating it if a concurrent 4xx freed it meanwhile); a claim
/// that already holds a response keeps it (the first success is what replays).
fn settle<K: Kv>(
    kv: &K,
    key: &str,
    fp: &Fingerprint,
    now: DateTime<Utc>,
    change: impl Fn(&mut Entry),
) -> Result<(), FunctionError> {
    let recreated = update_json(kv, key, |cur: Option<Entry>| {
        let recreated = cur.is_none();
        let mut e = match cur {
            Some(e) if e.fingerprint != fp.as_str() || e.response.is_some() => {
                return Ok::<_, FunctionError>(Change::Keep(false))
            }
            Some(e) => e,
            None => Entry {
                fingerprint: fp.as_str().to_string(),
                created_at: now,
                started_at: now,
                response: None,
                failed: false,
            },
        };
        change(&mut e);
        Ok(Change::Write(e, recreated))
    })?;
    if recreated {
        // Rare (a concurrent 4xx freed the claim meanwhile); indexed after the write, so a
        // crash right between the two leaves this one entry to the expiry check on use.
        index_for_pruning(kv, key, now)?;
    }
    Ok(())
}

/// Forgets this body's claim after a 4xx: the request never started executing, so the key
/// is free for a corrected one. Only an unanswered claim of the same body is removed.
fn release<K: Kv>(kv: &K, key: &str, fp: &Fingerprint) -> Result<(), FunctionError> {
    let (cur, _) = kv.read(key)?;
    let ours = cur
        .and_then(|raw| serde_json::from_slice::<Entry>(&raw).ok())
        .is_some_and(|e| e.fingerprint == fp.as_str() && e.response.is_none());
    if ours {
        kv.delete(key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;

    fn resp(body: &str) -> StoredResponse {
        StoredResponse {
            status: 201,
            content_type: "application/json".into(),
            body: body.into(),
        }
    }

    #[test]
    fn replays_the_first_response_and_refuses_a_different_body() {
        let kv = MemKv::new();
        let fp = Fingerprint::of_json(&serde_json::json!({"a": 1}));
        let now = || DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let mut runs = 0;
        let first = idempotent(&kv, "k", &fp, now, || {
            runs += 1;
            Ok(resp("one"))
        })
        .unwrap();
        let again = idempotent(&kv, "k", &fp, now, || {
            runs += 1;
            Ok(resp("two"))
        })
        .unwrap();
        assert_eq!((first, again.body.as_str(), runs), (resp("one"), "one", 1));
        let other = Fingerprint::of_json(&serde_json::json!({"a": 2}));
        match idempotent(&kv, "k", &other, now, || Ok(resp("x"))) {
            Err(FunctionError::Problem(p)) => assert_eq!(p.status, 422),
            other => panic!("{other:?}"),
        }
        // After 24 hours the key is forgotten.
        let later = || DateTime::<Utc>::from_timestamp(1_700_000_000 + 25 * 3600, 0).unwrap();
        let fresh = idempotent(&kv, "k", &other, later, || Ok(resp("three"))).unwrap();
        assert_eq!(fresh.body, "three");
    }

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn problem(status: u16) -> FunctionError {
        Problem::new(status, "x", "X", "x").into()
    }

    fn status(r: &Result<StoredResponse, FunctionError>) -> u16 {
        match r {
            Ok(r) => r.status,
            Err(FunctionError::Problem(p)) => p.status,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_validation_failure_is_not_stored_so_a_corrected_request_may_use_the_key() {
        let kv = MemKv::new();
        let bad = Fingerprint::of_json(&serde_json::json!({"qty": 0}));
        let fixed = Fingerprint::of_json(&serde_json::json!({"qty": 1}));
        let r = idempotent(&kv, "k", &bad, now, || Err(problem(422)));
        assert_eq!(status(&r), 422);
        assert!(kv.get("k").unwrap().is_none(), "nothing kept under the key");
        // The same bad body runs again (no stored 422 replayed) …
        let mut runs = 0;
        let _ = idempotent(&kv, "k", &bad, now, || {
            runs += 1;
            Err(problem(422))
        });
        assert_eq!(runs, 1);
        // … and the corrected body runs under the same key, then replays.
        let ok = idempotent(&kv, "k", &fixed, now, || Ok(resp("done"))).unwrap();
        assert_eq!(ok, resp("done"));
        let again = idempotent(&kv, "k", &fixed, now, || Ok(resp("twice"))).unwrap();
        assert_eq!(again, resp("done"));
    }

    #[test]
    fn after_a_5xx_the_same_body_retries_at_once_and_another_body_is_refused() {
        let kv = MemKv::new();
        let fp = Fingerprint::of_json(&serde_json::json!({"a": 1}));
        let other = Fingerprint::of_json(&serde_json::json!({"a": 2}));
        let r = idempotent(&kv, "k", &fp, now, || {
            Err(FunctionError::Internal("down".into()))
        });
        assert!(matches!(r, Err(FunctionError::Internal(_))));
        let r = idempotent(&kv, "k", &other, now, || Ok(resp("other")));
        assert_eq!(status(&r), 422, "the key keeps its first body after a 5xx");
        let started = std::time::Instant::now();
        let retry = idempotent(&kv, "k", &fp, now, || Ok(resp("retried"))).unwrap();
        assert_eq!(retry, resp("retried"));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(300),
            "no wait for a lease after a failed run"
        );
        let r = idempotent(&kv, "k", &other, now, || Ok(resp("other")));
        assert_eq!(status(&r), 422);
    }

    #[test]
    fn an_unfinished_run_makes_waiters_wait_but_reruns_run_at_once() {
        let kv = MemKv::new();
        let fp = Fingerprint::of_json(&serde_json::json!({"a": 1}));
        // A first run that never finished (stopped at its deadline): its claim stays.
        assert_eq!(
            claim(&kv, "k", &fp, now(), Repeat::Wait).unwrap(),
            Claim::New
        );
        let r = idempotent(&kv, "k", &fp, now, || Ok(resp("x")));
        assert_eq!(status(&r), 409, "Wait: the first run may still be going");
        let r = idempotent_with(&kv, "k", &fp, now, Repeat::Rerun, || Ok(resp("y")));
        assert_eq!(r.unwrap(), resp("y"), "Rerun: runs at once");
        let r = idempotent(&kv, "k", &fp, now, || Ok(resp("z")));
        assert_eq!(r.unwrap(), resp("y"), "then the first success replays");
        let later = || now() + Duration::seconds(LEASE_SECONDS + 1);
        let kv = MemKv::new();
        claim(&kv, "k", &fp, now(), Repeat::Wait).unwrap();
        let r = idempotent(&kv, "k", &fp, later, || Ok(resp("after the lease")));
        assert_eq!(r.unwrap(), resp("after the lease"));
    }
}
