//! The queue behind `[[trigger.redis]]`, and the `fermyon:spin/redis@2.0.0` capability
//! components publish through.
//!
//! A component publishes to the app's trigger address (`[application.trigger.redis] address`);
//! the host routes that publish to a [`QueueBackend`], which stores one delivery per
//! subscribing component before `publish` returns. The Redis trigger claims due deliveries,
//! runs the component, and acknowledges only after the handler succeeds; a failure is retried
//! with the [`RetryPolicy`]'s exponential backoff and, after `max_attempts`, dead-lettered where
//! `oms queue` shows it. Delivery is at least once on every backend: handlers must be
//! idempotent. Like Redis pub/sub, a publish to a channel nobody subscribes to is dropped.
//!
//! Backends, side by side (callers hold the trait, never a backend's type):
//! - [`embedded`]: SQLite in the state folder, for one host (the default);
//! - [`redis_streams`]: Redis Streams with a consumer group per subscriber, shared by several
//!   hosts; a host that dies has its claimed messages taken over by another after a visibility
//!   timeout.

pub mod embedded;
pub mod redis_streams;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin2_0_0::redis;
use crate::metrics::Metrics;
use crate::outbound::AllowedHosts;
use crate::redis_client::RedisPool;
use crate::Error;

pub use embedded::{QueueSync, QueueTuning};

/// Retry policy of every queue backend.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Deliveries before a message is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub base_delay: Duration,
    /// Longest delay between retries.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Delay after the `attempts`-th failed delivery.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// What becomes of a delivery that failed after `attempts` deliveries before it.
    pub fn after_failure(&self, attempts: u32) -> Failure {
        let attempts = attempts + 1;
        if attempts >= self.max_attempts {
            Failure::Dead
        } else {
            Failure::Retry(self.delay(attempts))
        }
    }
}

/// A message's id within its backend: a row id of the embedded queue, a stream entry id on
/// Redis. Opaque to everyone else; `oms queue retry --id` hands it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// An id from a backend's own text.
    pub fn new(id: impl Into<String>) -> MessageId {
        MessageId(id.into())
    }

    /// The backend's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId(s.to_string())
    }
}

/// A message claimed for delivery to one component.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its id (what [`QueueBackend::ack`] and [`QueueBackend::fail`] refer to).
    pub id: MessageId,
    /// Channel published to.
    pub channel: String,
    /// Component to run.
    pub component: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Failed deliveries before this one.
    pub attempts: u32,
}

/// What became of a failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retried after this delay.
    Retry(Duration),
    /// Dead-lettered.
    Dead,
}

/// A dead letter, for operators.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its id (for `oms queue retry --id`).
    pub id: MessageId,
    /// Channel.
    pub channel: String,
    /// Subscriber component.
    pub component: String,
    /// Deliveries made.
    pub attempts: u32,
    /// The last handler error.
    pub last_error: String,
    /// Payload, lossily as text.
    pub payload: String,
}

/// Counts for one (channel, subscriber) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Channel.
    pub channel: String,
    /// Subscriber component.
    pub component: String,
    /// Due and not yet handed to a handler.
    pub pending: u64,
    /// Handed to a handler, not yet acknowledged.
    pub in_flight: u64,
    /// Failed, waiting for their retry.
    pub scheduled: u64,
    /// Dead-lettered.
    pub dead: u64,
}

/// A failure of the backend itself (I/O, an unreachable server): nothing was changed, or the
/// change is retried later (a delivery whose outcome could not be recorded is delivered again).
#[derive(Debug)]
pub struct QueueError(pub(crate) String);

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueueError {}

impl From<QueueError> for Error {
    fn from(e: QueueError) -> Self {
        Error::Storage(e.0)
    }
}

/// A backend call's result.
pub type QueueResult<T> = Result<T, QueueError>;

/// Where a queue's messages live, as `oms up` and `oms queue` are told.
#[derive(Debug, Clone)]
pub enum QueueLocation {
    /// The embedded SQLite queue in a file.
    Embedded {
        /// The database file (`.oms/queue.db`).
        path: PathBuf,
        /// When a write counts as stored.
        sync: QueueSync,
    },
    /// Redis Streams on a server shared by several hosts.
    Redis {
        /// `redis://host:port[/db]`.
        url: String,
        /// How long a claimed message may stay unacknowledged before another host takes it
        /// over; must exceed the queue deadline.
        visibility: Duration,
    },
}

/// Durable at-least-once delivery of published messages to subscribing components.
///
/// Every method may be called concurrently; several instances on one store (several hosts)
/// share its messages, each delivery going to one of them.
#[async_trait]
pub trait QueueBackend: Send + Sync {
    /// What and where it is, for logs (no secrets).
    fn describe(&self) -> String;

    /// Prepares the store before the host serves: on Redis, creates every subscriber's consumer
    /// group; on the embedded queue, makes messages a previous process left in flight
    /// deliverable again. How many were recovered.
    async fn start(&self) -> QueueResult<usize>;

    /// Stores one delivery per subscriber of `channel`; how many (0: nobody subscribes, the
    /// message is dropped). Once this returns `Ok`, the message survives a crash of this host.
    async fn publish(&self, channel: &str, payload: &[u8]) -> QueueResult<usize>;

    /// Claims up to `limit` due deliveries for the given components. A claimed delivery is
    /// not claimed again until it fails, or — if it is neither acknowledged nor failed, e.g.
    /// its host died — until it is recovered (at start, or after the visibility timeout).
    async fn claim(
        &self,
        components: &BTreeSet<String>,
        limit: usize,
    ) -> QueueResult<Vec<Delivery>>;

    /// The handler succeeded: the delivery is done.
    async fn ack(&self, delivery: &Delivery) -> QueueResult<()>;

    /// The handler failed with `error`: schedules a retry after the policy's delay, or
    /// dead-letters it after the last attempt.
    async fn fail(&self, delivery: &Delivery, error: &str) -> QueueResult<Failure>;

    /// Waits until there may be work (a publish, a retry coming due, a takeover to try), at
    /// most `max`.
    async fn wait_for_work(&self, max: Duration);

    /// Removes what every subscriber has acknowledged (bounded growth); how many entries.
    async fn trim(&self) -> QueueResult<u64>;

    /// Counts per (channel, subscriber).
    async fn stats(&self) -> QueueResult<Vec<SubscriptionStats>>;

    /// Every dead letter, oldest first.
    async fn dead_letters(&self) -> QueueResult<Vec<DeadLetter>>;

    /// Re-drives dead letters (one by id, or all) with a fresh set of attempts; how many.
    async fn retry_dead(&self, id: Option<&MessageId>) -> QueueResult<usize>;
}

/// Opens the queue at `location`. `subscribers` maps channel → subscribing components (every
/// subscriber of the manifest, not only those this host runs: a publish stores a delivery for
/// each).
///
/// # Errors
/// [`Error::Storage`] when the embedded file cannot be opened or the Redis URL is malformed
/// (an unreachable server is not an error here: it surfaces on use).
pub fn open(
    location: &QueueLocation,
    subscribers: HashMap<String, Vec<String>>,
    policy: RetryPolicy,
) -> Result<Arc<dyn QueueBackend>, Error> {
    open_tuned(location, subscribers, policy, QueueTuning::default())
}

/// [`open`] with the given batching of the embedded queue (Redis Streams ignore it).
///
/// # Errors
/// As [`open`].
pub fn open_tuned(
    location: &QueueLocation,
    subscribers: HashMap<String, Vec<String>>,
    policy: RetryPolicy,
    tuning: QueueTuning,
) -> Result<Arc<dyn QueueBackend>, Error> {
    Ok(match location {
        QueueLocation::Embedded { path, sync } => Arc::new(embedded::EmbeddedQueue::open_tuned(
            path,
            subscribers,
            policy,
            *sync,
            tuning,
        )?),
        QueueLocation::Redis { url, visibility } => {
            let pool = Arc::new(RedisPool::new(url)?);
            Arc::new(redis_streams::RedisStreamsQueue::new(
                pool,
                subscribers,
                policy,
                *visibility,
            )?)
        }
    })
}

/// A parsed `redis://host[:port][/db]` address.
fn parse_redis_address(address: &str) -> Option<(String, u16)> {
    let rest = address
        .strip_prefix("redis://")
        .or_else(|| address.strip_prefix("rediss://"))?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((hostport.to_string(), 6379)),
    }
}

/// An open connection resource: publishes go to the queue backend.
pub struct RedisConnection {
    address: String,
}

/// Per-request Redis capability of one component.
pub struct RedisCtx {
    table: ResourceTable,
    queue: Option<Arc<dyn QueueBackend>>,
    trigger_addresses: Arc<BTreeSet<String>>,
    allowed: Arc<AllowedHosts>,
    component: Arc<str>,
    metrics: Option<Arc<Metrics>>,
}

impl RedisCtx {
    /// A fresh capability for one request: publishes to one of `trigger_addresses` go to
    /// `queue`.
    pub fn new(
        queue: Option<Arc<dyn QueueBackend>>,
        trigger_addresses: Arc<BTreeSet<String>>,
        allowed: Arc<AllowedHosts>,
        component: Arc<str>,
    ) -> RedisCtx {
        RedisCtx {
            table: ResourceTable::new(),
            queue,
            trigger_addresses,
            allowed,
            component,
            metrics: None,
        }
    }

    /// Publishes are counted in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> RedisCtx {
        self.metrics = Some(metrics);
        self
    }

    fn unsupported<T>(&self, op: &str) -> wasmtime::Result<Result<T, redis::Error>> {
        Ok(Err(redis::Error::Other(format!(
            "redis {op} is not available: the host's queue takes publishes only; use key-value"
        ))))
    }
}

impl redis::Host for RedisCtx {}

impl redis::HostConnection for RedisCtx {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<RedisConnection>, redis::Error>> {
        let Some((host, port)) = parse_redis_address(&address) else {
            return Ok(Err(redis::Error::InvalidAddress));
        };
        if !self.allowed.allows("redis", &host, port) {
            tracing::warn!(component = %self.component, %address,
                allowed_outbound_hosts = %self.allowed.describe(),
                "redis connection denied: address not in allowed_outbound_hosts");
            return Ok(Err(redis::Error::Other(format!(
                "access to {address} denied: add \"redis://{host}:{port}\" to allowed_outbound_hosts"
            ))));
        }
        if !self.trigger_addresses.contains(&address) || self.queue.is_none() {
            tracing::warn!(component = %self.component, %address,
                "redis address is not the app's trigger address; only the host's queue is available");
            return Ok(Err(redis::Error::Other(format!(
                "{address} is not served: the host's queue serves only the app's redis trigger \
                 address(es) ({})",
                self.trigger_addresses
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
        Ok(Ok(self.table.push(RedisConnection { address })?))
    }

    async fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), redis::Error>> {
        let address = self.table.get(&c)?.address.clone();
        let Some(queue) = &self.queue else {
            return Ok(Err(redis::Error::Other("no queue".into())));
        };
        match queue.publish(&channel, &payload).await {
            Ok(n) => {
                if let Some(m) = &self.metrics {
                    m.published(&channel, n);
                }
                tracing::debug!(component = %self.component, %address, %channel, subscribers = n, "published");
                Ok(Ok(()))
            }
            Err(e) => {
                tracing::error!(component = %self.component, %channel, error = %e, "publish failed: not stored");
                Ok(Err(redis::Error::Other(format!("publish failed: {e}"))))
            }
        }
    }

    async fn get(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, redis::Error>> {
        self.unsupported("GET")
    }

    async fn set(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
        _value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), redis::Error>> {
        self.unsupported("SET")
    }

    async fn incr(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
    ) -> wasmtime::Result<Result<i64, redis::Error>> {
        self.unsupported("INCR")
    }

    async fn del(
        &mut self,
        _c: Resource<RedisConnection>,
        _keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, redis::Error>> {
        self.unsupported("DEL")
    }

    async fn sadd(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
        _values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, redis::Error>> {
        self.unsupported("SADD")
    }

    async fn smembers(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
    ) -> wasmtime::Result<Result<Vec<String>, redis::Error>> {
        self.unsupported("SMEMBERS")
    }

    async fn srem(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
        _values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, redis::Error>> {
        self.unsupported("SREM")
    }

    async fn execute(
        &mut self,
        _c: Resource<RedisConnection>,
        command: String,
        _args: Vec<redis::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<redis::RedisResult>, redis::Error>> {
        self.unsupported(&command)
    }

    async fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(3), Duration::from_millis(400));
        assert_eq!(p.delay(9), Duration::from_secs(1));
        assert_eq!(
            p.after_failure(0),
            Failure::Retry(Duration::from_millis(100))
        );
        assert_eq!(p.after_failure(9), Failure::Dead);
    }

    #[test]
    fn parses_redis_addresses() {
        assert_eq!(
            parse_redis_address("redis://127.0.0.1:6380/0"),
            Some(("127.0.0.1".into(), 6380))
        );
        assert_eq!(
            parse_redis_address("redis://localhost"),
            Some(("localhost".into(), 6379))
        );
        assert_eq!(parse_redis_address("http://x"), None);
    }
}
