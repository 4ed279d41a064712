//! Key-value capability: `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue` (store, atomics,
//! batch) over a backend per store label, chosen as Spin chooses it in `runtime-config.toml`:
//! embedded SQLite ([`sqlite`], `type = "spin"`, the default) or Redis ([`redis`],
//! `type = "redis"`). A component opens only the labels the manifest grants it
//! (`key_value_stores`); anything else is `access-denied`.
//!
//! Callers hold a [`KvBackend`], never a backend's type. Compare-and-swap uses an opaque
//! [`CasToken`] the backend hands out with a read: a swap succeeds only if nobody changed the
//! key since, so an A→B→A change or a delete and re-create still fails it. A backend failure
//! (a Redis outage, an I/O error) reaches the guest as the interface's `other` error; the host
//! keeps serving and recovers when the backend does.

pub mod redis;
pub mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin2_0_0::key_value as spin_kv;
use crate::bindings::wasi::keyvalue::{atomics, batch, store as wasi_kv};
use crate::redis_client::RedisPool;
use crate::runtime_config::{KvBackendConfig, RuntimeConfig};
use crate::Error;

/// Most keys returned by one `list-keys` page.
const LIST_PAGE: usize = 1000;
/// Most stores a single request may hold open.
const MAX_OPEN: usize = 256;
/// The host's own namespace (cron claims and the like), beside the `default` store and on the
/// same backend; not a valid Spin label, so no component can open it.
pub const INTERNAL_LABEL: &str = "__oms";

/// A failure of the backend itself (I/O, an unreachable server, a non-numeric value under
/// increment).
#[derive(Debug)]
pub struct BackendError(pub(crate) String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

/// A backend call's result.
pub type KvResult<T> = Result<T, BackendError>;

/// What a compare-and-swap expects to find: handed out by [`KvBackend::get_with_token`], only
/// meaningful to the backend that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasToken(Box<[u8]>);

impl CasToken {
    /// A token from a backend's own bytes.
    pub fn new(bytes: Vec<u8>) -> CasToken {
        CasToken(bytes.into_boxed_slice())
    }

    /// The backend's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One store label's data. Every operation the guests' interfaces need, each atomic.
#[async_trait]
pub trait KvBackend: Send + Sync {
    /// What and where it is, for logs (no secrets).
    fn describe(&self) -> String;
    /// The value of `key`.
    async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>>;
    /// The value of `key` and the token a later [`KvBackend::swap`] must present.
    async fn get_with_token(&self, key: &str) -> KvResult<Option<(Vec<u8>, CasToken)>>;
    /// Writes `value`.
    async fn set(&self, key: &str, value: &[u8]) -> KvResult<()>;
    /// Removes `key` (absent is fine).
    async fn delete(&self, key: &str) -> KvResult<()>;
    /// Whether `key` has a value.
    async fn exists(&self, key: &str) -> KvResult<bool>;
    /// Keys in ascending order after `cursor`, at most `limit`.
    async fn keys(&self, cursor: Option<&str>, limit: usize) -> KvResult<Vec<String>>;
    /// Adds `delta` to a decimal ASCII integer value (absent counts as 0); the new value.
    async fn increment(&self, key: &str, delta: i64) -> KvResult<i64>;
    /// Writes `value` only if the key is unchanged since `expected` was read (`None`: only if
    /// it is still absent); whether it was written.
    async fn swap(&self, key: &str, expected: Option<&CasToken>, value: &[u8]) -> KvResult<bool>;
    /// The values of `keys`, in order.
    async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>>;
    /// Writes every pair, all or nothing.
    async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()>;
    /// Removes every key.
    async fn delete_many(&self, keys: &[String]) -> KvResult<()>;
}

/// `current + delta` for an increment, where `current` is a stored decimal integer.
pub(crate) fn add_to_counter(key: &str, current: Option<&[u8]>, delta: i64) -> KvResult<i64> {
    let current = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| BackendError(format!("value of {key:?} is not an integer")))?,
    };
    current
        .checked_add(delta)
        .ok_or_else(|| BackendError(format!("increment of {key:?} overflows")))
}

/// How the host drives its key-value backends (throughput settings; none changes what a
/// component can observe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTuning {
    /// Read-only SQLite connections per file beside the writer (`--kv-readers`); 0: reads
    /// share the writer's connection and lock.
    pub sqlite_readers: usize,
}

impl Default for KvTuning {
    fn default() -> Self {
        KvTuning { sqlite_readers: 2 }
    }
}

/// Every configured store label with its backend, shared by all requests.
pub struct KvStores {
    by_label: HashMap<String, Arc<dyn KvBackend>>,
    internal: Arc<dyn KvBackend>,
}

impl KvStores {
    /// Opens the backends of a runtime config with the default [`KvTuning`].
    ///
    /// # Errors
    /// [`Error::Storage`] when a backend cannot be opened.
    pub fn open(config: &RuntimeConfig) -> Result<KvStores, Error> {
        Self::open_tuned(config, &KvTuning::default())
    }

    /// Opens the backends of a runtime config: one writer connection (plus the tuning's
    /// readers) per distinct SQLite file, one pool per distinct Redis URL.
    ///
    /// # Errors
    /// [`Error::Storage`] when a backend cannot be opened.
    pub fn open_tuned(config: &RuntimeConfig, tuning: &KvTuning) -> Result<KvStores, Error> {
        let mut files: HashMap<PathBuf, Arc<sqlite::SqliteDb>> = HashMap::new();
        let mut servers: HashMap<String, Arc<RedisPool>> = HashMap::new();
        let mut open =
            |label: &str, backend: &KvBackendConfig| -> Result<Arc<dyn KvBackend>, Error> {
                Ok(match backend {
                    KvBackendConfig::Sqlite(path) => {
                        let db = match files.get(path) {
                            Some(db) => db.clone(),
                            None => {
                                let db = sqlite::SqliteDb::open_with(path, tuning.sqlite_readers)?;
                                files.insert(path.clone(), db.clone());
                                db
                            }
                        };
                        Arc::new(db.store(label))
                    }
                    KvBackendConfig::Redis(url) => {
                        let pool = match servers.get(url) {
                            Some(pool) => pool.clone(),
                            None => {
                                let pool = Arc::new(RedisPool::new(url)?);
                                servers.insert(url.clone(), pool.clone());
                                pool
                            }
                        };
                        Arc::new(redis::RedisStore::new(pool, label))
                    }
                })
            };
        let mut by_label = HashMap::new();
        for (label, backend) in &config.key_value_stores {
            let kv = open(label, backend)?;
            tracing::info!(store = %label, backend = %kv.describe(), "key-value store");
            by_label.insert(label.clone(), kv);
        }
        let default = config
            .key_value_stores
            .get("default")
            .ok_or_else(|| Error::Storage("no key-value store labelled \"default\"".into()))?;
        let internal = open(INTERNAL_LABEL, default)?;
        Ok(KvStores { by_label, internal })
    }

    /// The backend of a store label.
    pub fn get(&self, label: &str) -> Option<Arc<dyn KvBackend>> {
        self.by_label.get(label).cloned()
    }

    /// The host's own namespace on the `default` store's backend: state several hosts sharing
    /// that store must agree on (e.g. which host fires a scheduled run).
    pub fn internal(&self) -> Arc<dyn KvBackend> {
        self.internal.clone()
    }
}

/// An open store (the `store` and `bucket` resources).
pub struct OpenStore {
    kv: Arc<dyn KvBackend>,
}

/// A `cas` handle: the key, what it held when the handle was made, and its token.
pub struct Cas {
    kv: Arc<dyn KvBackend>,
    key: String,
    current: Option<Vec<u8>>,
    token: Option<CasToken>,
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
        let Some(kv) = self.stores.get(&label) else {
            return Ok(Err(OpenError::NoSuchStore));
        };
        if self.open >= MAX_OPEN {
            return Ok(Err(OpenError::TooMany));
        }
        self.open += 1;
        Ok(Ok(self.table.push(OpenStore { kv })?))
    }

    fn store(&self, r: &Resource<OpenStore>) -> wasmtime::Result<Arc<dyn KvBackend>> {
        Ok(self.table.get(r)?.kv.clone())
    }

    fn close(&mut self, r: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open -= 1;
        Ok(())
    }

    async fn new_cas(
        &mut self,
        kv: Arc<dyn KvBackend>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, BackendError>> {
        let (current, token) = match kv.get_with_token(&key).await {
            Ok(Some((v, t))) => (Some(v), Some(t)),
            Ok(None) => (None, None),
            Err(e) => return Ok(Err(self.failed(e))),
        };
        Ok(Ok(self.table.push(Cas {
            kv,
            key,
            current,
            token,
        })?))
    }

    /// Logs a backend failure once, where the component is known; the guest gets the error.
    fn failed(&self, e: BackendError) -> BackendError {
        tracing::warn!(component = %self.component, error = %e, "key-value backend failed");
        e
    }

    fn spin<T>(&self, r: KvResult<T>) -> Result<T, spin_kv::Error> {
        r.map_err(|e| spin_kv::Error::Other(self.failed(e).0))
    }

    fn wasi<T>(&self, r: KvResult<T>) -> Result<T, wasi_kv::Error> {
        r.map_err(|e| wasi_kv::Error::Other(self.failed(e).0))
    }
}

impl spin_kv::Host for KvCtx {}

impl spin_kv::HostStore for KvCtx {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, spin_kv::Error>> {
        Ok(self.open_store(label)?.map_err(|e| match e {
            OpenError::Denied => spin_kv::Error::AccessDenied,
            OpenError::NoSuchStore => spin_kv::Error::NoSuchStore,
            OpenError::TooMany => spin_kv::Error::StoreTableFull,
        }))
    }

    async fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.get(&key).await;
        Ok(self.spin(r))
    }

    async fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.set(&key, &value).await;
        Ok(self.spin(r))
    }

    async fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.delete(&key).await;
        Ok(self.spin(r))
    }

    async fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.exists(&key).await;
        Ok(self.spin(r))
    }

    async fn get_keys(
        &mut self,
        s: Resource<OpenStore>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.keys(None, usize::MAX).await;
        Ok(self.spin(r))
    }

    async fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(s)
    }
}

impl wasi_kv::Host for KvCtx {
    async fn open(
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
    async fn get(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.get(&key).await;
        Ok(self.wasi(r))
    }

    async fn set(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.set(&key, &value).await;
        Ok(self.wasi(r))
    }

    async fn delete(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.delete(&key).await;
        Ok(self.wasi(r))
    }

    async fn exists(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.exists(&key).await;
        Ok(self.wasi(r))
    }

    async fn list_keys(
        &mut self,
        s: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let keys = kv.keys(cursor.as_deref(), LIST_PAGE).await;
        Ok(self.wasi(keys).map(|keys| {
            let cursor = (keys.len() == LIST_PAGE).then(|| keys[keys.len() - 1].clone());
            wasi_kv::KeyResponse { keys, cursor }
        }))
    }

    async fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.close(s)
    }
}

impl atomics::Host for KvCtx {
    async fn increment(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.increment(&key, delta).await;
        Ok(self.wasi(r))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let c = self.table.delete(cas)?;
        let store_error =
            |e: BackendError| atomics::CasError::StoreError(wasi_kv::Error::Other(e.0));
        match c.kv.swap(&c.key, c.token.as_ref(), &value).await {
            Ok(true) => Ok(Ok(())),
            Ok(false) => match self.new_cas(c.kv, c.key).await? {
                Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
                Err(e) => Ok(Err(store_error(e))),
            },
            Err(e) => Ok(Err(store_error(self.failed(e)))),
        }
    }
}

impl atomics::HostCas for KvCtx {
    async fn new(
        &mut self,
        s: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, wasi_kv::Error>> {
        let kv = self.store(&s)?;
        Ok(self
            .new_cas(kv, key)
            .await?
            .map_err(|e| wasi_kv::Error::Other(e.0)))
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvCtx {
    async fn get_many(
        &mut self,
        s: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let values = kv.get_many(&keys).await;
        Ok(self
            .wasi(values)
            .map(|values| keys.into_iter().zip(values).collect()))
    }

    async fn set_many(
        &mut self,
        s: Resource<OpenStore>,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.set_many(&pairs).await;
        Ok(self.wasi(r))
    }

    async fn delete_many(
        &mut self,
        s: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        let kv = self.store(&s)?;
        let r = kv.delete_many(&keys).await;
        Ok(self.wasi(r))
    }
}
