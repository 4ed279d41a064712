//! Key-value on embedded SQLite (Spin's `type = "spin"`): one file holds any number of store
//! labels, each its own namespace (a column of the primary key).
//!
//! The compare-and-swap token is a random 64-bit stamp written with every change, so a swap
//! succeeds only if nobody wrote the key since the token was read: an A→B→A change, or a delete
//! and re-create, still fails the swap. SQLite serialises writers (WAL, busy timeout), so several
//! host processes can share one file.
//!
//! Writes go through one connection (SQLite allows one writer at a time anyway). Reads go
//! through a small pool of read-only connections when one is configured (`--kv-readers`): in
//! WAL mode a reader never waits for the writer, and each read statement starts after every
//! write this process has committed, so a read still sees every acknowledged write. With no
//! readers, reads share the writer's connection and its lock, as before.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{BackendError, CasToken, KvBackend, KvResult};
use crate::Error;

/// One SQLite file, shared by the stores whose labels live in it.
pub struct SqliteDb {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Read-only connections (empty: reads use `conn`).
    readers: Vec<Mutex<Connection>>,
    /// Round-robin start for picking a reader.
    next_reader: AtomicUsize,
}

impl From<rusqlite::Error> for BackendError {
    fn from(e: rusqlite::Error) -> Self {
        BackendError(format!("sqlite: {e}"))
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file.
    ///
    /// # Errors
    /// [`Error::Storage`] when the file or its folder cannot be created or opened.
    pub fn open(path: &Path) -> Result<Arc<SqliteDb>, Error> {
        Self::open_with(path, 0)
    }

    /// Opens the file with `readers` extra read-only connections for reads (0: every call
    /// goes through the one writer connection).
    ///
    /// # Errors
    /// As [`SqliteDb::open`].
    pub fn open_with(path: &Path, readers: usize) -> Result<Arc<SqliteDb>, Error> {
        let storage =
            |e: &dyn std::fmt::Display| Error::Storage(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| storage(&e))?;
        }
        let conn = Connection::open(path).map_err(|e| storage(&e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| storage(&e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS kv (
                 store TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value BLOB NOT NULL,
                 version INTEGER NOT NULL,
                 PRIMARY KEY (store, key)
             ) WITHOUT ROWID;",
        )
        .map_err(|e| storage(&e))?;
        let readers = (0..readers)
            .map(|_| {
                let r = Connection::open(path)?;
                r.busy_timeout(std::time::Duration::from_secs(5))?;
                r.execute_batch("PRAGMA query_only = 1;")?;
                Ok(Mutex::new(r))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| storage(&e))?;
        Ok(Arc::new(SqliteDb {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            readers,
            next_reader: AtomicUsize::new(0),
        }))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store `label` in this file.
    pub fn store(self: &Arc<Self>, label: &str) -> SqliteStore {
        SqliteStore {
            db: self.clone(),
            label: label.to_string(),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements are
        // atomic), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection for reading: a free reader if there is one (else the next in turn), or
    /// the writer's when there are no readers.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let n = self.readers.len();
        if n == 0 {
            return self.conn();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(guard) = self.readers[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// One store label in a [`SqliteDb`].
pub struct SqliteStore {
    db: Arc<SqliteDb>,
    label: String,
}

fn token(version: i64) -> CasToken {
    CasToken::new(version.to_le_bytes().to_vec())
}

fn version(token: &CasToken) -> KvResult<i64> {
    let bytes: [u8; 8] = token
        .as_bytes()
        .try_into()
        .map_err(|_| BackendError("compare-and-swap token from another backend".into()))?;
    Ok(i64::from_le_bytes(bytes))
}

fn set_in(conn: &Connection, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
    conn.prepare_cached(
        "INSERT INTO kv (store, key, value, version) VALUES (?1, ?2, ?3, random())
         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, version = random()",
    )?
    .execute(params![store, key, value])?;
    Ok(())
}

// SQLite calls are short and local: they run on the calling task, as before the seam, rather
// than paying a thread hand-off per call.
#[async_trait]
impl KvBackend for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite {}", self.db.path.display())
    }

    async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        Ok(self
            .db
            .reader()
            .prepare_cached("SELECT value FROM kv WHERE store = ?1 AND key = ?2")?
            .query_row(params![self.label, key], |r| r.get(0))
            .optional()?)
    }

    async fn get_with_token(&self, key: &str) -> KvResult<Option<(Vec<u8>, CasToken)>> {
        let row: Option<(Vec<u8>, i64)> = self
            .db
            .reader()
            .prepare_cached("SELECT value, version FROM kv WHERE store = ?1 AND key = ?2")?
            .query_row(params![self.label, key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.map(|(v, ver)| (v, token(ver))))
    }

    async fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        set_in(&self.db.conn(), &self.label, key, value)
    }

    async fn delete(&self, key: &str) -> KvResult<()> {
        self.db
            .conn()
            .prepare_cached("DELETE FROM kv WHERE store = ?1 AND key = ?2")?
            .execute(params![self.label, key])?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> KvResult<bool> {
        Ok(self
            .db
            .reader()
            .prepare_cached("SELECT 1 FROM kv WHERE store = ?1 AND key = ?2")?
            .query_row(params![self.label, key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    async fn keys(&self, cursor: Option<&str>, limit: usize) -> KvResult<Vec<String>> {
        let conn = self.db.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM kv WHERE store = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![self.label, cursor.unwrap_or(""), limit], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        let mut conn = self.db.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<Vec<u8>> = tx
            .prepare_cached("SELECT value FROM kv WHERE store = ?1 AND key = ?2")?
            .query_row(params![self.label, key], |r| r.get(0))
            .optional()?;
        let next = super::add_to_counter(key, current.as_deref(), delta)?;
        set_in(&tx, &self.label, key, next.to_string().as_bytes())?;
        tx.commit()?;
        Ok(next)
    }

    async fn swap(&self, key: &str, expected: Option<&CasToken>, value: &[u8]) -> KvResult<bool> {
        let conn = self.db.conn();
        let changed = match expected {
            Some(token) => conn
                .prepare_cached(
                    "UPDATE kv SET value = ?3, version = random()
                     WHERE store = ?1 AND key = ?2 AND version = ?4",
                )?
                .execute(params![self.label, key, value, version(token)?])?,
            None => conn
                .prepare_cached(
                    "INSERT INTO kv (store, key, value, version) VALUES (?1, ?2, ?3, random())
                     ON CONFLICT (store, key) DO NOTHING",
                )?
                .execute(params![self.label, key, value])?,
        };
        Ok(changed == 1)
    }

    async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        // One read transaction: every value from the same snapshot, and one lock taken.
        let mut conn = self.db.reader();
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(keys.len());
        {
            let mut stmt =
                tx.prepare_cached("SELECT value FROM kv WHERE store = ?1 AND key = ?2")?;
            for key in keys {
                out.push(
                    stmt.query_row(params![self.label, key], |r| r.get(0))
                        .optional()?,
                );
            }
        }
        tx.commit()?;
        Ok(out)
    }

    async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        for (k, v) in pairs {
            set_in(&tx, &self.label, k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> KvResult<()> {
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        for k in keys {
            tx.prepare_cached("DELETE FROM kv WHERE store = ?1 AND key = ?2")?
                .execute(params![self.label, k])?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_see_every_write_as_soon_as_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open_with(&dir.path().join("kv.db"), 3).unwrap();
        let s = db.store("a");
        for i in 0..200u32 {
            let v = i.to_string();
            s.set("k", v.as_bytes()).await.unwrap();
            assert_eq!(s.get("k").await.unwrap().as_deref(), Some(v.as_bytes()));
            let (_, token) = s.get_with_token("k").await.unwrap().unwrap();
            assert!(s.swap("k", Some(&token), b"swapped").await.unwrap());
            assert_eq!(
                s.get_many(&["k".to_string()]).await.unwrap(),
                vec![Some(b"swapped".to_vec())]
            );
            s.delete("k").await.unwrap();
            assert!(!s.exists("k").await.unwrap());
        }
    }

    #[test]
    fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open_with(&dir.path().join("kv.db"), 1).unwrap();
        let refused = db
            .reader()
            .execute("DELETE FROM kv", [])
            .expect_err("a reader connection is query-only");
        assert!(refused.to_string().contains("readonly"), "{refused}");
    }
}
