//! Key-value capability: `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue` (store, atomics,
//! batch) over one backend, embedded SQLite. A component opens only the labels the manifest
//! grants it (`key_value_stores`); anything else is `access-denied`.
//!
//! Compare-and-swap is by row version, not by value: a swap succeeds only if nobody wrote the
//! key since the `cas` handle was taken, so an A→B→A change still fails the swap. SQLite
//! serialises writers (WAL, busy timeout), so several host processes can share one file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin2_0_0::key_value as spin_kv;
use crate::bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use crate::runtime_config::{KvBackendConfig, RuntimeConfig};
use crate::Error;

/// Most keys returned by one `list-keys` page.
const LIST_PAGE: usize = 1000;
/// Most stores a single request may hold open.
const MAX_OPEN: usize = 256;

/// One SQLite file holding any number of store labels.
pub struct SqliteKv {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A failure of the backend itself (I/O, corruption, a non-numeric value under increment).
#[derive(Debug)]
pub struct BackendError(String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for BackendError {
    fn from(e: rusqlite::Error) -> Self {
        BackendError(format!("sqlite: {e}"))
    }
}

type KvResult<T> = Result<T, BackendError>;

impl SqliteKv {
    /// Opens (creating if needed) the database file.
    ///
    /// # Errors
    /// [`Error::Storage`] when the file or its folder cannot be created or opened.
    pub fn open(path: &Path) -> Result<SqliteKv, Error> {
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
        Ok(SqliteKv {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements are
        // atomic), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value and its version.
    pub fn get(&self, store: &str, key: &str) -> KvResult<Option<(Vec<u8>, i64)>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT value, version FROM kv WHERE store = ?1 AND key = ?2")?
            .query_row(params![store, key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Writes a value (bumping the version).
    pub fn set(&self, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
        set_in(&self.conn(), store, key, value)
    }

    /// Removes a key (absent is fine).
    pub fn delete(&self, store: &str, key: &str) -> KvResult<()> {
        self.conn()
            .prepare_cached("DELETE FROM kv WHERE store = ?1 AND key = ?2")?
            .execute(params![store, key])?;
        Ok(())
    }

    /// Keys in order, after `cursor`, at most `limit`.
    pub fn keys(&self, store: &str, cursor: Option<&str>, limit: usize) -> KvResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM kv WHERE store = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![store, cursor.unwrap_or(""), limit as i64], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Adds `delta` to a decimal ASCII integer value (absent counts as 0); the new value.
    pub fn increment(&self, store: &str, key: &str, delta: i64) -> KvResult<i64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM kv WHERE store = ?1 AND key = ?2",
                params![store, key],
                |r| r.get(0),
            )
            .optional()?;
        let current = match current {
            None => 0,
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| BackendError(format!("value of {key:?} is not an integer")))?,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| BackendError(format!("increment of {key:?} overflows")))?;
        set_in(&tx, store, key, next.to_string().as_bytes())?;
        tx.commit()?;
        Ok(next)
    }

    /// Writes `value` only if the key's version is still `expected` (`None`: still absent).
    pub fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<i64>,
        value: &[u8],
    ) -> KvResult<bool> {
        let conn = self.conn();
        let changed = match expected {
            Some(version) => conn
                .prepare_cached(
                    "UPDATE kv SET value = ?3, version = version + 1
                     WHERE store = ?1 AND key = ?2 AND version = ?4",
                )?
                .execute(params![store, key, value, version])?,
            None => conn
                .prepare_cached(
                    "INSERT INTO kv (store, key, value, version) VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT (store, key) DO NOTHING",
                )?
                .execute(params![store, key, value])?,
        };
        Ok(changed == 1)
    }

    /// Writes several values in one transaction.
    pub fn set_many(&self, store: &str, pairs: &[(String, Vec<u8>)]) -> KvResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (k, v) in pairs {
            set_in(&tx, store, k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes several keys in one transaction.
    pub fn delete_many(&self, store: &str, keys: &[String]) -> KvResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for k in keys {
            tx.execute(
                "DELETE FROM kv WHERE store = ?1 AND key = ?2",
                params![store, k],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn set_in(conn: &Connection, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
    conn.prepare_cached(
        "INSERT INTO kv (store, key, value, version) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value, version = version + 1",
    )?
    .execute(params![store, key, value])?;
    Ok(())
}

/// Every configured store label with its backend, shared by all requests.
pub struct KvStores {
    by_label: HashMap<String, Arc<SqliteKv>>,
}

impl KvStores {
    /// Opens the backends of a runtime config (one connection per distinct file).
    ///
    /// # Errors
    /// [`Error::Storage`] when a backend cannot be opened.
    pub fn open(config: &RuntimeConfig) -> Result<KvStores, Error> {
        let mut files: HashMap<PathBuf, Arc<SqliteKv>> = HashMap::new();
        let mut by_label = HashMap::new();
        for (label, backend) in &config.key_value_stores {
            let KvBackendConfig::Sqlite(path) = backend;
            let kv = match files.get(path) {
                Some(kv) => kv.clone(),
                None => {
                    let kv = Arc::new(SqliteKv::open(path)?);
                    tracing::info!(store = %label, path = %kv.path.display(), "key-value store (sqlite)");
                    files.insert(path.clone(), kv.clone());
                    kv
                }
            };
            by_label.insert(label.clone(), kv);
        }
        Ok(KvStores { by_label })
    }
}

/// An open store (the `store` and `bucket` resources).
pub struct OpenStore {
    label: String,
    kv: Arc<SqliteKv>,
}

/// A `cas` handle: the key, and the version it was read at.
pub struct Cas {
    label: String,
    kv: Arc<SqliteKv>,
    key: String,
    current: Option<Vec<u8>>,
    version: Option<i64>,
}

/// Per-request key-value capability of one component.
pub struct KvCtx {
    table: ResourceTable,
    stores: Arc<KvStores>,
    granted: Arc<[String]>,
    component: Arc<str>,
    open: usize,
}

/// Why a store could not be opened.
enum OpenError {
    Denied,
    NoSuchStore,
    TooMany,
}

impl KvCtx {
    /// A fresh capability for one request.
    pub fn new(stores: Arc<KvStores>, granted: Arc<[String]>, component: Arc<str>) -> KvCtx {
        KvCtx {
            table: ResourceTable::new(),
            stores,
            granted,
            component,
            open: 0,
        }
    }

    fn open_store(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, OpenError>> {
        if !self.granted.contains(&label) {
            tracing::warn!(component = %self.component, store = %label, "key-value store not granted to component (key_value_stores)");
            return Ok(Err(OpenError::Denied));
        }
        let Some(kv) = self.stores.by_label.get(&label).cloned() else {
            return Ok(Err(OpenError::NoSuchStore));
        };
        if self.open >= MAX_OPEN {
            return Ok(Err(OpenError::TooMany));
        }
        self.open += 1;
        Ok(Ok(self.table.push(OpenStore { label, kv })?))
    }

    fn store(&self, r: &Resource<OpenStore>) -> wasmtime::Result<(String, Arc<SqliteKv>)> {
        let s = self.table.get(r)?;
        Ok((s.label.clone(), s.kv.clone()))
    }

    fn new_cas(
        &mut self,
        label: String,
        kv: Arc<SqliteKv>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, BackendError>> {
        let (current, version) = match kv.get(&label, &key) {
            Ok(Some((v, ver))) => (Some(v), Some(ver)),
            Ok(None) => (None, None),
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(self.table.push(Cas {
            label,
            kv,
            key,
            current,
            version,
        })?))
    }
}

fn spin_err(e: BackendError) -> spin_kv::Error {
    spin_kv::Error::Other(e.0)
}

fn wasi_err(e: BackendError) -> wasi_kv::Error {
    wasi_kv::Error::Other(e.0)
}

impl spin_kv::Host for KvCtx {}

impl spin_kv::HostStore for KvCtx {
    fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, spin_kv::Error>> {
        Ok(self.open_store(label)?.map_err(|e| match e {
            OpenError::Denied => spin_kv::Error::AccessDenied,
            OpenError::NoSuchStore => spin_kv::Error::NoSuchStore,
            OpenError::TooMany => spin_kv::Error::StoreTableFull,
        }))
    }

    fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv
            .get(&label, &key)
            .map(|o| o.map(|(v, _)| v))
            .map_err(spin_err))
    }

    fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.set(&label, &key, &value).map_err(spin_err))
    }

    fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.delete(&label, &key).map_err(spin_err))
    }

    fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.get(&label, &key).map(|o| o.is_some()).map_err(spin_err))
    }

    fn get_keys(
        &mut self,
        s: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.keys(&label, None, usize::MAX >> 1).map_err(spin_err))
    }

    fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        self.open -= 1;
        Ok(())
    }
}

impl wasi_kv::Host for KvCtx {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, wasi_kv::Error>> {
        Ok(self.open_store(identifier)?.map_err(|e| match e {
            OpenError::Denied => wasi_kv::Error::AccessDenied,
            OpenError::NoSuchStore => wasi_kv::Error::NoSuchStore,
            OpenError::TooMany => wasi_kv::Error::Other("too many open stores".into()),
        }))
    }
}

impl wasi_kv::HostBucket for KvCtx {
    fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv
            .get(&label, &key)
            .map(|o| o.map(|(v, _)| v))
            .map_err(wasi_err))
    }

    fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.set(&label, &key, &value).map_err(wasi_err))
    }

    fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.delete(&label, &key).map_err(wasi_err))
    }

    fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.get(&label, &key).map(|o| o.is_some()).map_err(wasi_err))
    }

    fn list_keys(
        &mut self,
        s: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv
            .keys(&label, cursor.as_deref(), LIST_PAGE)
            .map(|keys| {
                let cursor = (keys.len() == LIST_PAGE).then(|| keys[keys.len() - 1].clone());
                wasi_kv::KeyResponse { keys, cursor }
            })
            .map_err(wasi_err))
    }

    fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        self.open -= 1;
        Ok(())
    }
}

impl atomics::Host for KvCtx {
    fn increment(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.increment(&label, &key, delta).map_err(wasi_err))
    }

    fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let c = self.table.delete(cas)?;
        match c.kv.swap(&c.label, &c.key, c.version, &value) {
            Ok(true) => Ok(Ok(())),
            Ok(false) => match self.new_cas(c.label, c.kv, c.key)? {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
            },
            Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
        }
    }
}

impl atomics::HostCas for KvCtx {
    fn new(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(self.new_cas(label, kv, key)?.map_err(wasi_err))
    }

    fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvCtx {
    fn get_many(
        &mut self,
        s: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match kv.get(&label, &key) {
                Ok(v) => out.push((key, v.map(|(v, _)| v))),
                Err(e) => return Ok(Err(wasi_err(e))),
            }
        }
        Ok(Ok(out))
    }

    fn set_many(
        &mut self,
        s: Resource<OpenStore>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.set_many(&label, &pairs).map_err(wasi_err))
    }

    fn delete_many(
        &mut self,
        s: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let (label, kv) = self.store(&s)?;
        Ok(kv.delete_many(&label, &keys).map_err(wasi_err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_fails_after_any_intervening_write() {
        let dir = tempfile::tempdir().unwrap();
        let kv = SqliteKv::open(&dir.path().join("kv.db")).unwrap();
        assert!(kv.swap("s", "k", None, b"a").unwrap());
        assert!(
            !kv.swap("s", "k", None, b"b").unwrap(),
            "absent-expectation must fail once set"
        );
        let (_, v1) = kv.get("s", "k").unwrap().unwrap();
        kv.set("s", "k", b"b").unwrap();
        kv.set("s", "k", b"a").unwrap();
        assert!(
            !kv.swap("s", "k", Some(v1), b"c").unwrap(),
            "A->B->A must still fail"
        );
        let (_, v3) = kv.get("s", "k").unwrap().unwrap();
        assert!(kv.swap("s", "k", Some(v3), b"c").unwrap());
        assert_eq!(kv.get("s", "k").unwrap().unwrap().0, b"c");
    }

    #[test]
    fn stores_are_separate_and_increment_is_numeric() {
        let dir = tempfile::tempdir().unwrap();
        let kv = SqliteKv::open(&dir.path().join("kv.db")).unwrap();
        assert_eq!(kv.increment("a", "n", 5).unwrap(), 5);
        assert_eq!(kv.increment("a", "n", -2).unwrap(), 3);
        assert_eq!(kv.get("b", "n").unwrap(), None);
        kv.set("a", "text", b"x").unwrap();
        assert!(kv.increment("a", "text", 1).is_err());
        assert_eq!(kv.keys("a", None, 10).unwrap(), ["n", "text"]);
        assert_eq!(kv.keys("a", Some("n"), 10).unwrap(), ["text"]);
    }
}
