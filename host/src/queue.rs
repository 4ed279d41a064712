//! The embedded queue behind `[[trigger.redis]]` when no Redis server is configured, and the
//! `fermyon:spin/redis@2.0.0` capability components publish through.
//!
//! A publish to the app's own trigger address is written to SQLite — one row per subscribing
//! component — before `publish` returns, so an accepted message survives a crash. The
//! dispatcher claims due rows, runs the component, and deletes the row only after the handler
//! succeeds; a failure is retried with exponential backoff and, after `max_attempts`,
//! dead-lettered where `oms queue` shows it. Rows a crashed process left in flight are
//! re-delivered at start (at-least-once: handlers must be idempotent).
//!
//! Like Redis pub/sub, a publish to a channel nobody subscribes to is dropped.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin2_0_0::redis;
use crate::outbound::AllowedHosts;
use crate::Error;

/// Retry policy of the embedded queue.
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
}

/// A message claimed for delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// Channel published to.
    pub channel: String,
    /// Component to run.
    pub component: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Deliveries before this one.
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
    /// Row id (for `oms queue retry`).
    pub id: i64,
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

/// When a queue write counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QueueSync {
    /// Once it is in SQLite's write-ahead log in the OS (`synchronous = NORMAL`, as the
    /// key-value store): survives the process being killed at any point, not a power loss of
    /// the machine (the last commits before it may roll back).
    #[default]
    Normal,
    /// Once the log is fsynced (`synchronous = FULL`): survives a power loss too, at the cost
    /// of a disk flush per publish, claim and acknowledgement.
    Full,
}

impl QueueSync {
    fn pragma(self) -> &'static str {
        match self {
            QueueSync::Normal => "NORMAL",
            QueueSync::Full => "FULL",
        }
    }
}

/// The durable embedded queue.
pub struct EmbeddedQueue {
    conn: Mutex<Connection>,
    subscribers: HashMap<String, Vec<String>>,
    policy: RetryPolicy,
    wake: tokio::sync::Notify,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl EmbeddedQueue {
    /// Opens the queue file; `subscribers` maps channel → components; `sync` says when a write
    /// is stored.
    ///
    /// # Errors
    /// [`Error::Storage`] when the file cannot be opened or created.
    pub fn open(
        path: &Path,
        subscribers: HashMap<String, Vec<String>>,
        policy: RetryPolicy,
        sync: QueueSync,
    ) -> Result<EmbeddedQueue, Error> {
        let storage =
            |e: &dyn std::fmt::Display| Error::Storage(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| storage(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| storage(&e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| storage(&e))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {};
             CREATE TABLE IF NOT EXISTS messages (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 channel TEXT NOT NULL,
                 component TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 state TEXT NOT NULL DEFAULT 'pending',
                 attempts INTEGER NOT NULL DEFAULT 0,
                 next_at INTEGER NOT NULL,
                 last_error TEXT,
                 created_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS messages_due ON messages (state, next_at);",
            sync.pragma()
        ))
        .map_err(|e| storage(&e))?;
        Ok(EmbeddedQueue {
            conn: Mutex::new(conn),
            subscribers,
            policy,
            wake: tokio::sync::Notify::new(),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes messages a previous process left in flight deliverable again; how many.
    ///
    /// # Errors
    /// A SQLite error.
    pub fn recover_in_flight(&self) -> rusqlite::Result<usize> {
        self.conn().execute(
            "UPDATE messages SET state = 'pending', next_at = ?1 WHERE state = 'inflight'",
            params![now_ms()],
        )
    }

    /// Stores one message per subscriber of `channel`, durably; how many.
    ///
    /// # Errors
    /// A SQLite error: nothing was stored.
    pub fn publish(&self, channel: &str, payload: &[u8]) -> rusqlite::Result<usize> {
        let Some(components) = self.subscribers.get(channel) else {
            tracing::debug!(%channel, "publish to a channel with no subscriber: dropped");
            return Ok(0);
        };
        let now = now_ms();
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            for component in components {
                tx.prepare_cached(
                    "INSERT INTO messages (channel, component, payload, next_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                )?
                .execute(params![channel, component, payload, now])?;
            }
            tx.commit()?;
        }
        self.wake.notify_one();
        Ok(components.len())
    }

    /// Claims up to `limit` due messages for delivery.
    ///
    /// # Errors
    /// A SQLite error.
    pub fn claim_due(&self, limit: usize) -> rusqlite::Result<Vec<Delivery>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let due: Vec<Delivery> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, channel, component, payload, attempts FROM messages
                 WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms(), limit as i64], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    component: r.get(2)?,
                    payload: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for d in &due {
            tx.prepare_cached("UPDATE messages SET state = 'inflight' WHERE id = ?1")?
                .execute(params![d.id])?;
        }
        tx.commit()?;
        Ok(due)
    }

    /// The handler succeeded: the message is done.
    ///
    /// # Errors
    /// A SQLite error (the message will be delivered again after a restart).
    pub fn ack(&self, id: i64) -> rusqlite::Result<()> {
        self.conn()
            .execute("DELETE FROM messages WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// The handler failed: schedule a retry or dead-letter it.
    ///
    /// # Errors
    /// A SQLite error.
    pub fn fail(&self, d: &Delivery, error: &str) -> rusqlite::Result<Failure> {
        let attempts = d.attempts + 1;
        let outcome = if attempts >= self.policy.max_attempts {
            Failure::Dead
        } else {
            Failure::Retry(self.policy.delay(attempts))
        };
        let (state, next_at) = match outcome {
            Failure::Dead => ("dead", now_ms()),
            Failure::Retry(delay) => ("pending", now_ms() + delay.as_millis() as i64),
        };
        self.conn().execute(
            "UPDATE messages SET state = ?2, attempts = ?3, next_at = ?4, last_error = ?5 WHERE id = ?1",
            params![d.id, state, attempts, next_at, error],
        )?;
        Ok(outcome)
    }

    /// When the next pending message is due (ms since the epoch), if any.
    ///
    /// # Errors
    /// A SQLite error.
    pub fn next_due(&self) -> rusqlite::Result<Option<i64>> {
        self.conn()
            .query_row(
                "SELECT MIN(next_at) FROM messages WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
    }

    /// Waits until woken by a publish or until `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }

    /// Wakes the dispatcher (e.g. after a delivery finished).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Counts by (channel, component, state).
    ///
    /// # Errors
    /// A SQLite error.
    pub fn stats(&self) -> rusqlite::Result<Vec<(String, String, String, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT channel, component, state, COUNT(*) FROM messages
             GROUP BY channel, component, state ORDER BY channel, component, state",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect()
    }

    /// Every dead letter, oldest first.
    ///
    /// # Errors
    /// A SQLite error.
    pub fn dead_letters(&self) -> rusqlite::Result<Vec<DeadLetter>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, channel, component, attempts, COALESCE(last_error, ''), payload
             FROM messages WHERE state = 'dead' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let payload: Vec<u8> = r.get(5)?;
            Ok(DeadLetter {
                id: r.get(0)?,
                channel: r.get(1)?,
                component: r.get(2)?,
                attempts: r.get(3)?,
                last_error: r.get(4)?,
                payload: String::from_utf8_lossy(&payload).into_owned(),
            })
        })?;
        rows.collect()
    }

    /// Re-drives dead letters (one by id, or all): they get a fresh set of attempts.
    ///
    /// # Errors
    /// A SQLite error.
    pub fn retry_dead(&self, id: Option<i64>) -> rusqlite::Result<usize> {
        self.conn().execute(
            "UPDATE messages SET state = 'pending', attempts = 0, next_at = ?1
             WHERE state = 'dead' AND (?2 IS NULL OR id = ?2)",
            params![now_ms(), id],
        )
    }
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

/// An open connection resource: publishes go to the embedded queue.
pub struct RedisConnection {
    address: String,
}

/// Per-request Redis capability of one component.
pub struct RedisCtx {
    table: ResourceTable,
    queue: Option<Arc<EmbeddedQueue>>,
    embedded_addresses: Arc<BTreeSet<String>>,
    allowed: Arc<AllowedHosts>,
    component: Arc<str>,
}

impl RedisCtx {
    /// A fresh capability for one request.
    pub fn new(
        queue: Option<Arc<EmbeddedQueue>>,
        embedded_addresses: Arc<BTreeSet<String>>,
        allowed: Arc<AllowedHosts>,
        component: Arc<str>,
    ) -> RedisCtx {
        RedisCtx {
            table: ResourceTable::new(),
            queue,
            embedded_addresses,
            allowed,
            component,
        }
    }

    fn unsupported<T>(&self, op: &str) -> wasmtime::Result<Result<T, redis::Error>> {
        Ok(Err(redis::Error::Other(format!(
            "redis {op} is not available on the embedded queue (publish only); use key-value"
        ))))
    }
}

impl redis::Host for RedisCtx {}

impl redis::HostConnection for RedisCtx {
    fn open(
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
        if !self.embedded_addresses.contains(&address) || self.queue.is_none() {
            tracing::warn!(component = %self.component, %address,
                "redis address is not the app's trigger address; only the embedded queue is available");
            return Ok(Err(redis::Error::Other(format!(
                "{address} is not served: the embedded queue serves only the app's redis trigger \
                 address(es) ({})",
                self.embedded_addresses
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))));
        }
        Ok(Ok(self.table.push(RedisConnection { address })?))
    }

    fn publish(
        &mut self,
        c: Resource<RedisConnection>,
        channel: String,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<(), redis::Error>> {
        let address = self.table.get(&c)?.address.clone();
        let Some(queue) = &self.queue else {
            return Ok(Err(redis::Error::Other("no queue".into())));
        };
        match queue.publish(&channel, &payload) {
            Ok(n) => {
                tracing::debug!(component = %self.component, %address, %channel, subscribers = n, "published");
                Ok(Ok(()))
            }
            Err(e) => {
                tracing::error!(component = %self.component, %channel, error = %e, "publish failed: not stored");
                Ok(Err(redis::Error::Other(format!("publish failed: {e}"))))
            }
        }
    }

    fn get(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, redis::Error>> {
        self.unsupported("GET")
    }

    fn set(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
        _value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), redis::Error>> {
        self.unsupported("SET")
    }

    fn incr(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
    ) -> wasmtime::Result<Result<i64, redis::Error>> {
        self.unsupported("INCR")
    }

    fn del(
        &mut self,
        _c: Resource<RedisConnection>,
        _keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, redis::Error>> {
        self.unsupported("DEL")
    }

    fn sadd(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
        _values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, redis::Error>> {
        self.unsupported("SADD")
    }

    fn smembers(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
    ) -> wasmtime::Result<Result<Vec<String>, redis::Error>> {
        self.unsupported("SMEMBERS")
    }

    fn srem(
        &mut self,
        _c: Resource<RedisConnection>,
        _key: String,
        _values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, redis::Error>> {
        self.unsupported("SREM")
    }

    fn execute(
        &mut self,
        _c: Resource<RedisConnection>,
        command: String,
        _args: Vec<redis::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<redis::RedisResult>, redis::Error>> {
        self.unsupported(&command)
    }

    fn drop(&mut self, c: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(dir: &Path, max_attempts: u32) -> EmbeddedQueue {
        EmbeddedQueue::open(
            &dir.join("q.db"),
            HashMap::from([("orders".to_string(), vec!["a".to_string(), "b".to_string()])]),
            RetryPolicy {
                max_attempts,
                base_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
            },
            QueueSync::Normal,
        )
        .unwrap()
    }

    #[test]
    fn fans_out_retries_dead_letters_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 2);
        assert_eq!(q.publish("orders", b"m1").unwrap(), 2);
        assert_eq!(q.publish("nobody", b"x").unwrap(), 0);
        let claimed = q.claim_due(10).unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(
            q.claim_due(10).unwrap().is_empty(),
            "in-flight rows are not claimed twice"
        );
        q.ack(claimed[0].id).unwrap();
        assert_eq!(
            q.fail(&claimed[1], "boom").unwrap(),
            Failure::Retry(Duration::ZERO)
        );
        let again = q.claim_due(10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(q.fail(&again[0], "boom twice").unwrap(), Failure::Dead);
        let dead = q.dead_letters().unwrap();
        assert_eq!((dead.len(), dead[0].last_error.as_str()), (1, "boom twice"));
        assert_eq!(q.retry_dead(None).unwrap(), 1);
        // A crash while in flight: the next process delivers it again.
        assert_eq!(q.claim_due(10).unwrap().len(), 1);
        drop(q);
        let q = queue(dir.path(), 2);
        assert_eq!(q.recover_in_flight().unwrap(), 1);
        assert_eq!(q.claim_due(10).unwrap()[0].payload, b"m1");
    }

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
