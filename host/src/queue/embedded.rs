//! The embedded queue: SQLite in the state folder, for one host (the default when no
//! `--queue-url` is given).
//!
//! A publish writes one row per subscribing component in one transaction before it returns,
//! so an accepted message survives a crash. A claimed row is marked in flight; it is deleted
//! only after the handler succeeds. A failure sets the row's next delivery time by the retry
//! policy, or marks it dead. Rows a crashed process left in flight are made deliverable again
//! at the next start ([`QueueBackend::start`]).
//!
//! With batched acknowledgements ([`QueueTuning::batch_acks`], the default) an acknowledged
//! row is deleted in the next transaction the queue makes anyway — the dispatcher's next
//! claim, its idle wait, a stats read — instead of a transaction of its own: one write per
//! claim round instead of one per message. Until then the row stays in flight; if the process
//! dies first it is delivered again at the next start, which at-least-once delivery (and the
//! handlers' idempotency) already covers.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    DeadLetter, Delivery, Failure, MessageId, QueueBackend, QueueError, QueueResult, RetryPolicy,
    SubscriptionStats,
};
use crate::Error;

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

/// How the embedded queue batches its writes (throughput settings; delivery guarantees are
/// the same either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTuning {
    /// Acknowledgements are deleted with the next claim (or idle wait) rather than each in a
    /// transaction of its own (`--queue-batch-acks`).
    pub batch_acks: bool,
}

impl Default for QueueTuning {
    fn default() -> Self {
        QueueTuning { batch_acks: true }
    }
}

/// Acknowledgements held beyond this many are written at once.
const MAX_HELD_ACKS: usize = 256;

/// The durable embedded queue.
pub struct EmbeddedQueue {
    conn: Mutex<Connection>,
    tuning: QueueTuning,
    /// Rows acknowledged but not yet deleted (batched acknowledgements).
    acked: Mutex<Vec<i64>>,
    path: String,
    subscribers: HashMap<String, Vec<String>>,
    policy: RetryPolicy,
    wake: tokio::sync::Notify,
    /// The components the dispatcher last claimed for (JSON array), so that waiting for work
    /// looks only at their rows: a row for a component this host does not run (`-c`) is never
    /// due here, and must not keep the dispatcher awake.
    claiming: Mutex<Option<String>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn failed(e: rusqlite::Error) -> QueueError {
    QueueError(format!("queue database: {e}"))
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
        Self::open_tuned(path, subscribers, policy, sync, QueueTuning::default())
    }

    /// [`EmbeddedQueue::open`] with the given batching.
    ///
    /// # Errors
    /// As [`EmbeddedQueue::open`].
    pub fn open_tuned(
        path: &Path,
        subscribers: HashMap<String, Vec<String>>,
        policy: RetryPolicy,
        sync: QueueSync,
        tuning: QueueTuning,
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
            tuning,
            acked: Mutex::new(Vec::new()),
            path: path.display().to_string(),
            subscribers,
            policy,
            wake: tokio::sync::Notify::new(),
            claiming: Mutex::new(None),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The held acknowledgements, taken (called with the connection locked, so a reader of
    /// the table never sees them taken but not yet deleted).
    fn take_acks(&self) -> Vec<i64> {
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back acknowledgements whose transaction failed, to be written with the next one.
    fn keep_acks(&self, ids: Vec<i64>) {
        self.acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ids);
    }

    fn delete_rows(conn: &Connection, ids: &[i64]) -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
        for id in ids {
            stmt.execute(params![id])?;
        }
        Ok(())
    }

    /// Deletes the held acknowledgements now, in one transaction.
    fn flush_acks(&self) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let ids = self.take_acks();
        if ids.is_empty() {
            return Ok(());
        }
        let written = conn.transaction().and_then(|tx| {
            Self::delete_rows(&tx, &ids)?;
            tx.commit()
        });
        if written.is_err() {
            self.keep_acks(ids);
        }
        written
    }

    fn row_id(id: &MessageId) -> QueueResult<i64> {
        id.as_str()
            .parse()
            .map_err(|_| QueueError(format!("no message {id} in the embedded queue")))
    }

    fn publish_rows(&self, channel: &str, payload: &[u8]) -> rusqlite::Result<usize> {
        let Some(components) = self.subscribers.get(channel) else {
            tracing::debug!(%channel, "publish to a channel with no subscriber: dropped");
            return Ok(0);
        };
        let now = now_ms();
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
        Ok(components.len())
    }

    fn claim_rows(&self, components: &str, limit: usize) -> rusqlite::Result<Vec<Delivery>> {
        let mut conn = self.conn();
        let acks = self.take_acks();
        let claimed = Self::claim_in(&mut conn, &acks, components, limit);
        if claimed.is_err() {
            self.keep_acks(acks);
        }
        claimed
    }

    /// One transaction: deletes the acknowledged rows `acks`, then claims.
    fn claim_in(
        conn: &mut Connection,
        acks: &[i64],
        components: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<Delivery>> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        Self::delete_rows(&tx, acks)?;
        let due: Vec<(i64, Delivery)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, channel, component, payload, attempts FROM messages
                 WHERE state = 'pending' AND next_at <= ?1
                   AND component IN (SELECT value FROM json_each(?3))
                 ORDER BY next_at, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms(), limit as i64, components], |r| {
                let id: i64 = r.get(0)?;
                Ok((
                    id,
                    Delivery {
                        id: MessageId::new(id.to_string()),
                        channel: r.get(1)?,
                        component: r.get(2)?,
                        payload: r.get(3)?,
                        attempts: r.get(4)?,
                    },
                ))
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, _) in &due {
            tx.prepare_cached("UPDATE messages SET state = 'inflight' WHERE id = ?1")?
                .execute(params![id])?;
        }
        tx.commit()?;
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }

    /// When the next pending message is due (ms since the epoch), if any.
    fn next_due(&self) -> rusqlite::Result<Option<i64>> {
        let claiming = self
            .claiming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.conn()
            .prepare_cached(
                "SELECT MIN(next_at) FROM messages WHERE state = 'pending'
                   AND (?1 IS NULL OR component IN (SELECT value FROM json_each(?1)))",
            )?
            .query_row(params![claiming], |r| r.get(0))
            .optional()
            .map(Option::flatten)
    }

    fn stats_rows(&self) -> rusqlite::Result<Vec<SubscriptionStats>> {
        self.flush_acks()?;
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT channel, component,
                    SUM(state = 'pending' AND next_at <= ?1),
                    SUM(state = 'inflight'),
                    SUM(state = 'pending' AND next_at > ?1),
                    SUM(state = 'dead')
             FROM messages GROUP BY channel, component ORDER BY channel, component",
        )?;
        let rows = stmt.query_map(params![now_ms()], |r| {
            Ok(SubscriptionStats {
                channel: r.get(0)?,
                component: r.get(1)?,
                pending: r.get(2)?,
                in_flight: r.get(3)?,
                scheduled: r.get(4)?,
                dead: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    fn dead_rows(&self) -> rusqlite::Result<Vec<DeadLetter>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, channel, component, attempts, COALESCE(last_error, ''), payload
             FROM messages WHERE state = 'dead' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let id: i64 = r.get(0)?;
            let payload: Vec<u8> = r.get(5)?;
            Ok(DeadLetter {
                id: MessageId::new(id.to_string()),
                channel: r.get(1)?,
                component: r.get(2)?,
                attempts: r.get(3)?,
                last_error: r.get(4)?,
                payload: String::from_utf8_lossy(&payload).into_owned(),
            })
        })?;
        rows.collect()
    }
}

impl Drop for EmbeddedQueue {
    fn drop(&mut self) {
        // A host stopping in order writes what it acknowledged; a crash leaves those rows to
        // be delivered again.
        if let Err(e) = self.flush_acks() {
            tracing::warn!(error = %e, "queue: acknowledged messages not deleted; they will be delivered again");
        }
    }
}

#[async_trait]
impl QueueBackend for EmbeddedQueue {
    fn describe(&self) -> String {
        format!("embedded queue {}", self.path)
    }

    async fn start(&self) -> QueueResult<usize> {
        self.conn()
            .execute(
                "UPDATE messages SET state = 'pending', next_at = ?1 WHERE state = 'inflight'",
                params![now_ms()],
            )
            .map_err(failed)
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> QueueResult<usize> {
        let n = self.publish_rows(channel, payload).map_err(failed)?;
        if n > 0 {
            self.wake.notify_one();
        }
        Ok(n)
    }

    async fn claim(
        &self,
        components: &BTreeSet<String>,
        limit: usize,
    ) -> QueueResult<Vec<Delivery>> {
        let components = serde_json::to_string(components)
            .map_err(|e| QueueError(format!("component list: {e}")))?;
        *self.claiming.lock().unwrap_or_else(|p| p.into_inner()) = Some(components.clone());
        self.claim_rows(&components, limit).map_err(failed)
    }

    async fn ack(&self, d: &Delivery) -> QueueResult<()> {
        let id = Self::row_id(&d.id)?;
        if self.tuning.batch_acks {
            let held = {
                let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
                acked.push(id);
                acked.len()
            };
            if held >= MAX_HELD_ACKS {
                self.flush_acks().map_err(failed)?;
            }
            return Ok(());
        }
        Self::delete_rows(&self.conn(), &[id]).map_err(failed)
    }

    async fn fail(&self, d: &Delivery, error: &str) -> QueueResult<Failure> {
        let outcome = self.policy.after_failure(d.attempts);
        let (state, next_at) = match outcome {
            Failure::Dead => ("dead", now_ms()),
            Failure::Retry(delay) => ("pending", now_ms() + delay.as_millis() as i64),
        };
        self.conn()
            .execute(
                "UPDATE messages SET state = ?2, attempts = ?3, next_at = ?4, last_error = ?5
                 WHERE id = ?1",
                params![Self::row_id(&d.id)?, state, d.attempts + 1, next_at, error],
            )
            .map_err(failed)?;
        if let Failure::Retry(_) = outcome {
            // The dispatcher may be waiting with no message due: the retry is one now.
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    async fn wait_for_work(&self, max: Duration) {
        if let Err(e) = self.flush_acks() {
            tracing::warn!(error = %e, "queue: cannot delete acknowledged messages yet; will retry");
        }
        let wait = match self.next_due() {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(1, i64::MAX) as u64),
            _ => max,
        };
        let _ = tokio::time::timeout(wait.min(max), self.wake.notified()).await;
    }

    async fn trim(&self) -> QueueResult<u64> {
        // Rows are deleted when acknowledged: nothing accumulates.
        Ok(0)
    }

    async fn stats(&self) -> QueueResult<Vec<SubscriptionStats>> {
        self.stats_rows().map_err(failed)
    }

    async fn dead_letters(&self) -> QueueResult<Vec<DeadLetter>> {
        self.dead_rows().map_err(failed)
    }

    async fn retry_dead(&self, id: Option<&MessageId>) -> QueueResult<usize> {
        let id = id.map(Self::row_id).transpose()?;
        let n = self
            .conn()
            .execute(
                "UPDATE messages SET state = 'pending', attempts = 0, next_at = ?1
                 WHERE state = 'dead' AND (?2 IS NULL OR id = ?2)",
                params![now_ms(), id],
            )
            .map_err(failed)?;
        if n > 0 {
            self.wake.notify_one();
        }
        Ok(n)
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

    fn both() -> BTreeSet<String> {
        ["a".to_string(), "b".to_string()].into()
    }

    #[tokio::test]
    async fn fans_out_retries_dead_letters_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 2);
        assert_eq!(q.publish("orders", b"m1").await.unwrap(), 2);
        assert_eq!(q.publish("nobody", b"x").await.unwrap(), 0);
        let claimed = q.claim(&both(), 10).await.unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(
            q.claim(&both(), 10).await.unwrap().is_empty(),
            "in-flight rows are not claimed twice"
        );
        q.ack(&claimed[0]).await.unwrap();
        assert_eq!(
            q.fail(&claimed[1], "boom").await.unwrap(),
            Failure::Retry(Duration::ZERO)
        );
        let again = q.claim(&both(), 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            q.fail(&again[0], "boom twice").await.unwrap(),
            Failure::Dead
        );
        let dead = q.dead_letters().await.unwrap();
        assert_eq!((dead.len(), dead[0].last_error.as_str()), (1, "boom twice"));
        assert_eq!(q.retry_dead(None).await.unwrap(), 1);
        // A crash while in flight: the next process delivers it again.
        assert_eq!(q.claim(&both(), 10).await.unwrap().len(), 1);
        drop(q);
        let q = queue(dir.path(), 2);
        assert_eq!(q.start().await.unwrap(), 1);
        assert_eq!(q.claim(&both(), 10).await.unwrap()[0].payload, b"m1");
    }

    #[tokio::test]
    async fn claims_only_for_the_components_asked() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 2);
        q.publish("orders", b"m").await.unwrap();
        let only_b: BTreeSet<String> = ["b".to_string()].into();
        let claimed = q.claim(&only_b, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].component, "b");
        let stats = q.stats().await.unwrap();
        assert_eq!(
            (
                stats[0].component.as_str(),
                stats[0].pending,
                stats[0].in_flight
            ),
            ("a", 1, 0)
        );
        assert_eq!((stats[1].pending, stats[1].in_flight), (0, 1));
    }

    /// Rows in the file as another process (`oms queue stats`) sees them.
    fn rows_on_disk(dir: &Path) -> i64 {
        Connection::open(dir.join("q.db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn batched_acks_are_written_with_the_next_claim_before_stats_and_at_drop() {
        let dir = tempfile::tempdir().unwrap();
        let q = queue(dir.path(), 2);
        q.publish("orders", b"m1").await.unwrap();
        let claimed = q.claim(&both(), 10).await.unwrap();
        q.ack(&claimed[0]).await.unwrap();
        assert_eq!(rows_on_disk(dir.path()), 2, "held, not yet written");
        // The next claim deletes it in its own transaction.
        assert!(q.claim(&both(), 10).await.unwrap().is_empty());
        assert_eq!(rows_on_disk(dir.path()), 1);
        // Stats never count an acknowledged message.
        q.ack(&claimed[1]).await.unwrap();
        assert!(q.stats().await.unwrap().is_empty());
        assert_eq!(rows_on_disk(dir.path()), 0);
        // A host stopping in order writes what it holds.
        q.publish("orders", b"m2").await.unwrap();
        for d in q.claim(&both(), 10).await.unwrap() {
            q.ack(&d).await.unwrap();
        }
        drop(q);
        assert_eq!(rows_on_disk(dir.path()), 0);
        // One that dies first delivers them again (at least once).
        let q = queue(dir.path(), 2);
        q.publish("orders", b"m3").await.unwrap();
        for d in q.claim(&both(), 10).await.unwrap() {
            q.ack(&d).await.unwrap();
        }
        std::mem::forget(q);
        let q = queue(dir.path(), 2);
        assert_eq!(q.start().await.unwrap(), 2);
        assert_eq!(q.claim(&both(), 10).await.unwrap()[0].payload, b"m3");
    }

    #[tokio::test]
    async fn unbatched_acks_are_written_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = EmbeddedQueue::open_tuned(
            &dir.path().join("q.db"),
            HashMap::from([("orders".to_string(), vec!["a".to_string()])]),
            RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
            },
            QueueSync::Normal,
            QueueTuning { batch_acks: false },
        )
        .unwrap();
        q.publish("orders", b"m").await.unwrap();
        let d = q.claim(&both(), 10).await.unwrap().remove(0);
        q.ack(&d).await.unwrap();
        assert_eq!(rows_on_disk(dir.path()), 0);
    }

    #[test]
    fn the_sync_mode_is_set_on_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        for (sync, expected) in [(QueueSync::Normal, 1), (QueueSync::Full, 2)] {
            let q = EmbeddedQueue::open(
                &dir.path().join("s.db"),
                HashMap::new(),
                RetryPolicy {
                    max_attempts: 1,
                    base_delay: Duration::ZERO,
                    max_delay: Duration::ZERO,
                },
                sync,
            )
            .unwrap();
            let level: i64 = q
                .conn()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(level, expected);
        }
    }
}
