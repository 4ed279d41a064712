//! Pruning of records only needed for a bounded time (idempotency entries — Stripe keeps keys
//! 24 hours —, and with them marketplace event de-duplication, which is an idempotency entry
//! per `X-Shopify-Event-Id`), without ever listing the store.
//!
//! A writer that creates such a record adds its key to a **time-bucketed index**: one small
//! document per 10 seconds and shard, `prune:{bucket}:{shard}` (the shard from a hash of the
//! key, so concurrent writers rarely touch the same document, and each stays under ~10 KiB
//! — about 150 keys — at 1,000 records per second). A sweeper — reserve's expiry sweeper, run
//! every minute by the cron trigger — walks the buckets from its cursor (`prune:cursor`) up
//! to `now − retention`,
//! deletes each indexed record that is old enough ([`Prunable`]), then the index documents,
//! then moves the cursor: its work per run is bounded by [`MAX_BUCKETS_PER_SWEEP`], and a
//! crash anywhere only repeats deletions (each idempotent). The first key of each index
//! document sets the cursor when there is none and lowers it when the sweeper has already
//! passed that bucket (a writer whose clock or request lagged), so every indexed bucket is
//! walked.
//!
//! The retention window is the sweeper's (`retention_seconds`, default
//! [`DEFAULT_RETENTION_SECONDS`]): writers only say when a record was created.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::kv::{update_json, Change, Kv};
use crate::problem::FunctionError;

/// How long a prunable record is kept by default: 24 hours, as Stripe keeps idempotency keys.
pub const DEFAULT_RETENTION_SECONDS: i64 = 24 * 3600;
/// Width of one index bucket.
pub const BUCKET_SECONDS: i64 = 10;
/// Index documents per bucket (spread by a hash of the record's key).
pub const SHARDS: u64 = 64;
/// Most buckets one sweep walks (bounded work per cron run — a minute of records is six; a
/// backlog is caught up over runs).
pub const MAX_BUCKETS_PER_SWEEP: i64 = 60;
/// The sweeper's position: the next bucket to sweep.
pub const CURSOR: &str = "prune:cursor";

/// A record that may be pruned once `retention` has passed since its creation; read by the
/// sweeper right before it deletes, so a record re-created meanwhile is kept.
#[derive(Deserialize)]
struct Prunable {
    created_at: Option<DateTime<Utc>>,
}

/// The bucket of an instant.
fn bucket(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(BUCKET_SECONDS)
}

/// The index document of `key` in the bucket of `created_at`.
fn index_key(bucket: i64, shard: u64) -> String {
    format!("prune:{bucket}:{shard}")
}

fn shard_of(key: &str) -> u64 {
    // FNV-1a: stable across builds and hosts (std's hasher is seeded per process).
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) % SHARDS
}

/// Indexes `key` (a record created at `created_at`, which carries a `created_at` field) for
/// pruning after the retention window. Idempotent (a key is listed once per bucket).
///
/// # Errors
/// Storage errors.
pub fn index_for_pruning<K: Kv>(
    kv: &K,
    key: &str,
    created_at: DateTime<Utc>,
) -> Result<(), FunctionError> {
    let at = bucket(created_at);
    let created = update_json(
        kv,
        &index_key(at, shard_of(key)),
        |cur: Option<Vec<String>>| {
            let fresh = cur.is_none();
            let mut keys = cur.unwrap_or_default();
            if keys.iter().any(|k| k == key) {
                return Ok::<_, FunctionError>(Change::Keep(false));
            }
            keys.push(key.to_string());
            Ok(Change::Write(keys, fresh))
        },
    )?;
    if created {
        // The first key of a bucket's shard makes sure the sweeper will walk this bucket:
        // it sets the cursor when there is none, and lowers it for a writer whose bucket the
        // sweeper already passed (a late one). Re-walking swept buckets only reads.
        update_json(kv, CURSOR, |cur: Option<i64>| {
            Ok::<_, FunctionError>(match cur {
                Some(c) if c <= at => Change::Keep(()),
                _ => Change::Write(at, ()),
            })
        })?;
    }
    Ok(())
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Buckets swept.
    pub buckets: i64,
    /// Records deleted.
    pub deleted: usize,
    /// Indexed records kept (re-created within the window).
    pub kept: usize,
}

/// Sweeps every bucket older than `now − retention` not yet swept (at most
/// [`MAX_BUCKETS_PER_SWEEP`] of them): deletes the indexed records created before the window,
/// the index documents, and advances the cursor bucket by bucket.
///
/// # Errors
/// Storage errors (the cursor stays at the bucket that failed; the next sweep repeats it).
pub fn prune<K: Kv>(
    kv: &K,
    now: DateTime<Utc>,
    retention: Duration,
) -> Result<Pruned, FunctionError> {
    let cutoff = now - retention;
    // Every bucket strictly before this one holds only records created before the cutoff.
    let end = bucket(cutoff);
    // No cursor: nothing was ever indexed.
    let Some(start) = kv.get_json::<i64>(CURSOR)? else {
        return Ok(Pruned::default());
    };
    let mut pruned = Pruned::default();
    let mut next = start;
    while next < end && next - start < MAX_BUCKETS_PER_SWEEP {
        let docs: Vec<String> = (0..SHARDS).map(|s| index_key(next, s)).collect();
        let lists = kv.get_many(&docs)?;
        for raw in lists.into_iter().flatten() {
            let keys: Vec<String> = serde_json::from_slice(&raw)?;
            let values = kv.get_many(&keys)?;
            for (key, value) in keys.iter().zip(values) {
                let Some(value) = value else { continue };
                let created = serde_json::from_slice::<Prunable>(&value)
                    .ok()
                    .and_then(|p| p.created_at);
                if created.is_some_and(|c| c >= cutoff) {
                    pruned.kept += 1;
                    continue;
                }
                kv.delete(key)?;
                pruned.deleted += 1;
            }
        }
        for doc in &docs {
            kv.delete(doc)?;
        }
        next += 1;
        pruned.buckets += 1;
        kv.set_json(CURSOR, &next)?;
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;
    use chrono::TimeZone;

    #[test]
    fn records_live_through_the_window_and_are_gone_after_it() {
        let kv = MemKv::new();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let retention = Duration::hours(24);
        assert_eq!(
            prune(&kv, t0, retention).unwrap(),
            Pruned::default(),
            "nothing indexed yet"
        );
        for n in 0..40 {
            let key = format!("idem:test:{n}");
            kv.set_json(&key, &serde_json::json!({"created_at": t0}))
                .unwrap();
            index_for_pruning(&kv, &key, t0).unwrap();
            index_for_pruning(&kv, &key, t0).unwrap();
        }
        let before = kv.keys().unwrap().len();
        let within = prune(&kv, t0 + Duration::hours(23), retention).unwrap();
        assert_eq!(within.deleted, 0);
        assert!(kv.get("idem:test:7").unwrap().is_some());
        // Re-created just now: kept by the sweep of its old bucket.
        let later = t0 + retention + Duration::minutes(2);
        kv.set_json("idem:test:3", &serde_json::json!({"created_at": later}))
            .unwrap();
        let mut total = Pruned::default();
        for _ in 0..100 {
            let p = prune(&kv, later, retention).unwrap();
            total.deleted += p.deleted;
            assert!(p.buckets <= MAX_BUCKETS_PER_SWEEP);
            total.kept += p.kept;
            if p.buckets == 0 {
                break;
            }
        }
        assert_eq!((total.deleted, total.kept), (39, 1));
        assert!(kv.get("idem:test:7").unwrap().is_none());
        assert!(kv.get("idem:test:3").unwrap().is_some());
        let after = kv.keys().unwrap();
        assert!(
            after
                .iter()
                .all(|k| !k.starts_with("prune:") || k == CURSOR),
            "index documents are gone too: {after:?}"
        );
        assert!(after.len() < before - 39, "the store shrank");
        // A late writer (its bucket already swept) lowers the cursor: its key is pruned too.
        kv.set_json("idem:late", &serde_json::json!({"created_at": t0}))
            .unwrap();
        index_for_pruning(&kv, "idem:late", t0).unwrap();
        while prune(&kv, later, retention).unwrap().buckets > 0 {}
        assert!(kv.get("idem:late").unwrap().is_none());
    }
}
