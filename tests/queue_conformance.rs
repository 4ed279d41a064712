//! One queue conformance suite, run through the `QueueBackend` trait against every backend:
//! the embedded SQLite queue and Redis Streams on a real `redis-server`. A second backend
//! instance on the same store stands for a second host (for the embedded queue, the next
//! process on the same file).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oms_host::queue::{
    self, Delivery, Failure, QueueBackend, QueueLocation, QueueSync, RetryPolicy,
};
use support::redis::RedisServer;

/// Visibility timeout of the Redis backend in these tests.
const VISIBILITY: Duration = Duration::from_millis(600);

/// Where the messages live; every [`Store::host`] is a new backend instance on it.
enum Store {
    Embedded(tempfile::TempDir),
    Redis(RedisServer),
}

impl Store {
    fn embedded() -> Store {
        Store::Embedded(tempfile::tempdir().unwrap())
    }

    fn redis() -> Store {
        Store::Redis(RedisServer::start())
    }

    fn location(&self) -> QueueLocation {
        match self {
            Store::Embedded(dir) => QueueLocation::Embedded {
                path: dir.path().join("queue.db"),
                sync: QueueSync::Normal,
            },
            Store::Redis(server) => QueueLocation::Redis {
                url: server.url(),
                visibility: VISIBILITY,
            },
        }
    }

    /// A host's backend: channel `orders` has subscribers `a` and `b`, `audit` has `a`.
    async fn host(&self, policy: RetryPolicy) -> Arc<dyn QueueBackend> {
        let subscribers = HashMap::from([
            ("orders".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("audit".to_string(), vec!["a".to_string()]),
        ]);
        let q = queue::open(&self.location(), subscribers, policy).unwrap();
        q.start().await.unwrap();
        q
    }

    /// How long before a delivery claimed by a dead host may go to another one.
    fn takeover_after(&self) -> Duration {
        match self {
            // The next process recovers it at start.
            Store::Embedded(_) => Duration::ZERO,
            Store::Redis(_) => VISIBILITY,
        }
    }
}

fn policy(max_attempts: u32, base_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(base_ms),
        max_delay: Duration::from_secs(5),
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Claims until something comes, waiting for work in between; panics after `timeout`.
async fn claim_within(
    q: &dyn QueueBackend,
    components: &BTreeSet<String>,
    timeout: Duration,
) -> Vec<Delivery> {
    let start = Instant::now();
    loop {
        let claimed = q.claim(components, 10).await.unwrap();
        if !claimed.is_empty() {
            return claimed;
        }
        assert!(
            start.elapsed() < timeout,
            "nothing delivered within {timeout:?}"
        );
        q.wait_for_work(Duration::from_millis(50)).await;
    }
}

/// Claims for `wait` and asserts nothing comes.
async fn nothing_within(q: &dyn QueueBackend, components: &BTreeSet<String>, wait: Duration) {
    let start = Instant::now();
    while start.elapsed() < wait {
        let claimed = q.claim(components, 10).await.unwrap();
        assert!(claimed.is_empty(), "unexpected delivery: {claimed:?}");
        q.wait_for_work(Duration::from_millis(50)).await;
    }
}

async fn fans_out_to_every_subscriber(store: Store) {
    let q = store.host(policy(3, 10)).await;
    assert_eq!(q.publish("orders", b"order-1").await.unwrap(), 2);
    let mut got = claim_within(q.as_ref(), &set(&["a", "b"]), Duration::from_secs(5)).await;
    if got.len() < 2 {
        got.extend(claim_within(q.as_ref(), &set(&["a", "b"]), Duration::from_secs(5)).await);
    }
    let mut who: Vec<(&str, &str, &[u8], u32)> = got
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.component.as_str(),
                d.payload.as_slice(),
                d.attempts,
            )
        })
        .collect();
    who.sort();
    assert_eq!(
        who,
        [
            ("orders", "a", b"order-1".as_slice(), 0),
            ("orders", "b", b"order-1".as_slice(), 0)
        ]
    );
    for d in &got {
        q.ack(d).await.unwrap();
    }
    nothing_within(q.as_ref(), &set(&["a", "b"]), Duration::from_millis(300)).await;
    let stats = q.stats().await.unwrap();
    assert!(
        stats
            .iter()
            .all(|s| s.pending + s.in_flight + s.scheduled + s.dead == 0),
        "{stats:?}"
    );
}

async fn a_publish_nobody_subscribes_to_is_dropped(store: Store) {
    let q = store.host(policy(3, 10)).await;
    assert_eq!(q.publish("nobody", b"lost").await.unwrap(), 0);
    nothing_within(q.as_ref(), &set(&["a", "b"]), Duration::from_millis(300)).await;
}

async fn claims_only_for_the_given_components_and_at_most_the_limit(store: Store) {
    let q = store.host(policy(3, 10)).await;
    for i in 0..3 {
        q.publish("orders", format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    let first = q.claim(&set(&["b"]), 2).await.unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|d| d.component == "b"));
    let rest = claim_within(q.as_ref(), &set(&["b"]), Duration::from_secs(5)).await;
    assert_eq!(rest.len(), 1);
    let mut payloads: Vec<Vec<u8>> = first
        .iter()
        .chain(&rest)
        .map(|d| d.payload.clone())
        .collect();
    payloads.sort();
    assert_eq!(payloads, [b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]);
    // `a` still has all three waiting.
    let stats = q.stats().await.unwrap();
    let a = stats
        .iter()
        .find(|s| s.channel == "orders" && s.component == "a")
        .unwrap();
    assert_eq!((a.pending, a.in_flight), (3, 0), "{stats:?}");
    let b = stats
        .iter()
        .find(|s| s.channel == "orders" && s.component == "b")
        .unwrap();
    assert_eq!((b.pending, b.in_flight), (0, 3), "{stats:?}");
}

/// A delivery claimed by a host that dies (never acknowledged nor failed) is delivered by
/// another host after recovery / the visibility timeout, and not before.
async fn an_unacknowledged_delivery_is_taken_over_by_another_host(store: Store) {
    let dead_host = store.host(policy(3, 10)).await;
    dead_host.publish("audit", b"in flight").await.unwrap();
    // Taken before the claim: the visibility timeout runs from the claim on Redis's clock.
    let claimed_at = Instant::now();
    let held = claim_within(dead_host.as_ref(), &set(&["a"]), Duration::from_secs(5)).await;
    assert_eq!(held.len(), 1);
    assert!(
        dead_host.claim(&set(&["a"]), 10).await.unwrap().is_empty(),
        "a held delivery is not claimed twice"
    );
    drop(dead_host);
    let other = store.host(policy(3, 10)).await;
    if store.takeover_after() > Duration::ZERO {
        // Not before the visibility timeout: the holder may still be working on it.
        nothing_within(other.as_ref(), &set(&["a"]), store.takeover_after() / 2).await;
    }
    let again = claim_within(other.as_ref(), &set(&["a"]), Duration::from_secs(10)).await;
    assert!(
        claimed_at.elapsed() >= store.takeover_after(),
        "taken over after {:?}, before the visibility timeout",
        claimed_at.elapsed()
    );
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].payload.as_slice(), again[0].attempts),
        (b"in flight".as_slice(), 0)
    );
    other.ack(&again[0]).await.unwrap();
    nothing_within(
        other.as_ref(),
        &set(&["a"]),
        store.takeover_after() + Duration::from_millis(300),
    )
    .await;
}

/// A message published before a subscriber's host starts still reaches it.
async fn a_subscriber_that_starts_later_gets_earlier_messages(store: Store) {
    let publisher = store.host(policy(3, 10)).await;
    publisher.publish("orders", b"early").await.unwrap();
    let later = store.host(policy(3, 10)).await;
    let got = claim_within(later.as_ref(), &set(&["b"]), Duration::from_secs(5)).await;
    assert_eq!(got[0].payload, b"early");
}

/// Failures are retried after the policy's backoff (not before), dead-lettered after the last
/// attempt with what an operator needs, and re-driven with fresh attempts.
async fn retries_with_backoff_then_dead_letters_and_redrives(store: Store) {
    let q = store.host(policy(3, 300)).await;
    q.publish("audit", b"poison").await.unwrap();
    let a = set(&["a"]);
    let d = claim_within(q.as_ref(), &a, Duration::from_secs(5))
        .await
        .remove(0);
    let failed_at = Instant::now();
    assert_eq!(
        q.fail(&d, "boom 1").await.unwrap(),
        Failure::Retry(Duration::from_millis(300))
    );
    let d = claim_within(q.as_ref(), &a, Duration::from_secs(5))
        .await
        .remove(0);
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(3),
        "first retry after {waited:?}, expected ~300 ms"
    );
    assert_eq!(
        (d.attempts, d.payload.as_slice()),
        (1, b"poison".as_slice())
    );
    let failed_at = Instant::now();
    assert_eq!(
        q.fail(&d, "boom 2").await.unwrap(),
        Failure::Retry(Duration::from_millis(600))
    );
    let d = claim_within(q.as_ref(), &a, Duration::from_secs(5))
        .await
        .remove(0);
    let waited = failed_at.elapsed();
    assert!(
        waited >= Duration::from_millis(590) && waited < Duration::from_secs(3),
        "second retry after {waited:?}, expected ~600 ms"
    );
    assert_eq!(d.attempts, 2);
    assert_eq!(q.fail(&d, "boom 3").await.unwrap(), Failure::Dead);
    nothing_within(q.as_ref(), &a, Duration::from_millis(700)).await;

    let dead = q.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert_eq!(
        (
            letter.channel.as_str(),
            letter.component.as_str(),
            letter.attempts,
            letter.last_error.as_str(),
            letter.payload.as_str()
        ),
        ("audit", "a", 3, "boom 3", "poison")
    );
    let stats = q.stats().await.unwrap();
    let row = stats
        .iter()
        .find(|s| s.channel == "audit" && s.component == "a")
        .unwrap();
    assert_eq!(
        (row.pending, row.in_flight, row.scheduled, row.dead),
        (0, 0, 0, 1)
    );

    // A second dead letter, then re-drive only the first by id.
    q.publish("audit", b"second").await.unwrap();
    let policy_one = store.host(policy(1, 10)).await;
    let d2 = claim_within(policy_one.as_ref(), &a, Duration::from_secs(5))
        .await
        .remove(0);
    assert_eq!(policy_one.fail(&d2, "once").await.unwrap(), Failure::Dead);
    assert_eq!(q.dead_letters().await.unwrap().len(), 2);
    assert_eq!(q.retry_dead(Some(&letter.id)).await.unwrap(), 1);
    let again = claim_within(q.as_ref(), &a, Duration::from_secs(5))
        .await
        .remove(0);
    assert_eq!(
        (again.payload.as_slice(), again.attempts),
        (b"poison".as_slice(), 0)
    );
    q.ack(&again).await.unwrap();
    let left = q.dead_letters().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].payload, "second");
    // And all the rest.
    assert_eq!(q.retry_dead(None).await.unwrap(), 1);
    let again = claim_within(q.as_ref(), &a, Duration::from_secs(5))
        .await
        .remove(0);
    assert_eq!(again.payload, b"second");
    q.ack(&again).await.unwrap();
    assert!(q.dead_letters().await.unwrap().is_empty());
}

/// A host that failed a delivery after another took it over does not schedule a second retry.
async fn a_late_outcome_from_a_host_that_lost_the_message_changes_nothing(store: Store) {
    if store.takeover_after().is_zero() {
        return; // One host at a time on the embedded queue.
    }
    let slow = store.host(policy(5, 10)).await;
    let fast = store.host(policy(5, 10)).await;
    slow.publish("audit", b"x").await.unwrap();
    let mine = claim_within(slow.as_ref(), &set(&["a"]), Duration::from_secs(5))
        .await
        .remove(0);
    let theirs = claim_within(fast.as_ref(), &set(&["a"]), Duration::from_secs(10))
        .await
        .remove(0);
    assert_eq!(theirs.payload, b"x");
    assert!(slow.fail(&mine, "too late").await.is_err());
    fast.ack(&theirs).await.unwrap();
    nothing_within(fast.as_ref(), &set(&["a"]), Duration::from_millis(400)).await;
    assert!(fast.dead_letters().await.unwrap().is_empty());
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Store::embedded()).await;
                }
            )*
        }
        mod redis_streams {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Store::redis()).await;
                }
            )*
        }
    };
}

conformance!(
    fans_out_to_every_subscriber,
    a_publish_nobody_subscribes_to_is_dropped,
    claims_only_for_the_given_components_and_at_most_the_limit,
    an_unacknowledged_delivery_is_taken_over_by_another_host,
    a_subscriber_that_starts_later_gets_earlier_messages,
    retries_with_backoff_then_dead_letters_and_redrives,
    a_late_outcome_from_a_host_that_lost_the_message_changes_nothing,
);

/// Redis only: streams are trimmed below what every subscriber has acknowledged, and no
/// further.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_are_trimmed_to_what_some_subscriber_still_needs() {
    let store = Store::redis();
    let Store::Redis(server) = &store else {
        unreachable!()
    };
    let xlen = || -> u64 {
        let reply = server.command("XLEN oms:q:ch:orders").unwrap();
        reply.trim_start_matches(':').parse().unwrap()
    };
    let q = store.host(policy(3, 10)).await;
    for i in 0..20 {
        q.publish("orders", format!("m{i}").as_bytes())
            .await
            .unwrap();
    }
    // `a` handles everything; `b` only the first five.
    let mut a_done = 0;
    while a_done < 20 {
        for d in claim_within(q.as_ref(), &set(&["a"]), Duration::from_secs(5)).await {
            q.ack(&d).await.unwrap();
            a_done += 1;
        }
    }
    let b = q.claim(&set(&["b"]), 5).await.unwrap();
    assert_eq!(b.len(), 5);
    for d in &b[..4] {
        q.ack(d).await.unwrap();
    }
    q.trim().await.unwrap();
    // b's fifth is unacknowledged: it and everything after it stay.
    assert_eq!(
        xlen(),
        16,
        "b's unacknowledged m4 and the 15 it has not read"
    );
    q.ack(&b[4]).await.unwrap();
    q.trim().await.unwrap();
    assert_eq!(xlen(), 16, "m4 is b's last delivered entry: kept");
    for d in q.claim(&set(&["b"]), 20).await.unwrap() {
        q.ack(&d).await.unwrap();
    }
    q.trim().await.unwrap();
    assert!(xlen() <= 1, "everything acknowledged: {} left", xlen());
    // Nothing was lost on the way.
    let stats = q.stats().await.unwrap();
    assert!(
        stats.iter().all(|s| s.pending + s.in_flight == 0),
        "{stats:?}"
    );
}
