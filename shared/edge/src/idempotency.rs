//! `Idempotency-Key` handling: the first request with a key runs; a repeat with the same body
//! gets the stored response (status and body); the same key with a different body is a 422.
//! Concurrent repeats wait briefly for the first to finish. Keys are kept 24 hours.

use chrono::{DateTime, Duration, Utc};
use oms_domain::Fingerprint;
use serde::{Deserialize, Serialize};

use crate::kv::{update_json, Change, Kv};
use crate::problem::{FunctionError, Problem};

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

fn claim<K: Kv>(
    kv: &K,
    key: &str,
    fp: &Fingerprint,
    now: DateTime<Utc>,
) -> Result<Claim, FunctionError> {
    update_json(kv, key, |cur: Option<Entry>| {
        let fresh = Entry {
            fingerprint: fp.as_str().to_string(),
            created_at: now,
            started_at: now,
            response: None,
        };
        match cur {
            None => Ok(Change::Write(fresh, Claim::New)),
            Some(e) if e.created_at + Duration::hours(IDEMPOTENCY_TTL_HOURS) < now => {
                Ok(Change::Write(fresh, Claim::New))
            }
            Some(e) if e.fingerprint != fp.as_str() => Err(FunctionError::Problem(Problem::field(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "Idempotency-Key",
                "key_reused",
                "this key was used with a different request body",
            ))),
            Some(Entry {
                response: Some(r), ..
            }) => Ok(Change::Keep(Claim::Replay(r))),
            Some(e) if e.started_at + Duration::seconds(LEASE_SECONDS) < now => Ok(Change::Write(
                Entry {
                    started_at: now,
                    ..e
                },
                Claim::New,
            )),
            Some(_) => Ok(Change::Keep(Claim::Busy)),
        }
    })
}

/// Runs `run` at most once per (key, body); see the module docs. `now` is read again while
/// waiting for a concurrent first request.
///
/// # Errors
/// 422 for a reused key, 409 when the first request is still running after a short wait,
/// storage errors; `run`'s own error (then nothing is stored for 5xx, so a retry may run).
pub fn idempotent<K: Kv>(
    kv: &K,
    key: &str,
    fp: &Fingerprint,
    now: impl Fn() -> DateTime<Utc>,
    run: impl FnOnce() -> Result<StoredResponse, FunctionError>,
) -> Result<StoredResponse, FunctionError> {
    let mut waited = 0;
    loop {
        match claim(kv, key, fp, now())? {
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
    let response = match &outcome {
        Ok(r) => Some(r.clone()),
        Err(FunctionError::Problem(p)) if p.status < 500 && p.status != 409 => {
            Some(StoredResponse {
                status: p.status,
                content_type: "application/problem+json".into(),
                body: serde_json::to_string(p).unwrap_or_default(),
            })
        }
        Err(_) => None,
    };
    match response {
        Some(r) => {
            update_json(kv, key, |cur: Option<Entry>| {
                let mut e = cur.unwrap_or(Entry {
                    fingerprint: fp.as_str().to_string(),
                    created_at: now(),
                    started_at: now(),
                    response: None,
                });
                e.response = Some(r.clone());
                Ok::<_, FunctionError>(Change::Write(e, ()))
            })?;
        }
        None => kv.delete(key)?,
    }
    outcome
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
}
