//! The host's HTTP response cache, as an edge POP runs one in front of its functions.
//!
//! **What is stored.** Only answers to `GET` (a `HEAD` is served from the `GET` entry), by the
//! directives of the governing field ([`directives::governing`]: `OMS-Cache-Control` >
//! `CDN-Cache-Control` > `Surrogate-Control` > `Cache-Control`, `s-maxage` over `max-age`). Not
//! stored: `no-store`, `no-cache` (this cache does not revalidate), no lifetime, `Vary: *`, a
//! `Set-Cookie`, a status that is not cacheable by default, a body over
//! [`CacheConfig::max_entry_bytes`].
//!
//! **Keys and partitions.** Key = URL + the request headers the response's `Vary` names +
//! partition. A request with `Authorization` or `Cookie` looks up and stores only in the
//! partition of those values (their SHA-256): a private cache per credential, never shared. A
//! request without them uses the shared partition, where `private` responses are never stored.
//!
//! **Freshness.** Age = time since stored (+ the response's `Age`). Fresh while under the
//! lifetime; then `stale-while-revalidate` serves it and refreshes in the background once,
//! `stale-if-error` serves it when the component fails (5xx, trap, deadline). An entry is
//! dropped once past all of these, and never lives longer than [`MAX_LIFETIME`].
//!
//! **Purges** ([`HttpCache::purge`]) evict every entry carrying one of the tags (from
//! `Surrogate-Key`, `Cache-Tag`, `Edge-Cache-Tag`) and record it in the [`purge::PurgeLog`]
//! (shared through Redis when the `default` store is Redis), which every hit and every store
//! consults: an entry made from a read that began before a purge of one of its tags is never
//! served (see [`purge`]).
//!
//! **Memory** is bounded by [`CacheConfig::max_bytes`], least recently used entries evicted
//! first. [`HttpCache::stats`] gives the counters.

pub mod directives;
pub mod purge;
mod serve;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use sha2::{Digest, Sha256};

pub use purge::{LocalPurgeLog, PurgeError, PurgeLog, RedisPurgeLog};
pub use serve::{serve, Origin};

/// No entry lives longer than this, whatever its directives say (the Redis purge marks outlive
/// it, see [`purge`]).
pub const MAX_LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);

/// Sizes and limits.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Total bytes of entries (bodies, headers, keys) kept; 0 turns the cache off (purges are
    /// still recorded, for other hosts).
    pub max_bytes: usize,
    /// Largest body stored; larger responses pass through.
    pub max_entry_bytes: usize,
    /// Longest the cache waits for a component's body it wants to store.
    pub body_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            body_timeout: Duration::from_secs(2),
        }
    }
}

/// The counters, read with [`HttpCache::stats`]. Monotonic unless noted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache without waiting for a component (fresh hits, 304s,
    /// stale served).
    pub hits: u64,
    /// Cache-path requests forwarded to the component (no usable entry, or the client asked
    /// for a fresh answer).
    pub misses: u64,
    /// Of the hits, stale entries served (`stale-while-revalidate` or `stale-if-error`).
    pub stale_served: u64,
    /// Of the hits, `304 Not Modified` answered from an entry.
    pub not_modified: u64,
    /// Responses stored.
    pub stores: u64,
    /// Purge requests handled by this host.
    pub purges: u64,
    /// Entries removed by purges (this host's and, through Redis, other hosts').
    pub purged_entries: u64,
    /// Entries removed to stay under the byte bound.
    pub evictions: u64,
    /// Bytes held now (gauge).
    pub bytes: u64,
    /// Entries held now (gauge).
    pub entries: u64,
    /// The byte bound (gauge; 0 when the cache is off).
    pub max_bytes: u64,
    /// Tags this host's purge log remembers (gauge; bounded, 0 when purges live in Redis).
    pub purge_tags: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale_served: AtomicU64,
    not_modified: AtomicU64,
    stores: AtomicU64,
    purges: AtomicU64,
    purged_entries: AtomicU64,
    evictions: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Which credential's entries a request may see: `None` is the shared partition.
type Partition = Option<[u8; 32]>;

/// A `GET`/`HEAD` request as the cache sees it.
#[derive(Debug, Clone)]
pub struct CacheRequest {
    head: bool,
    url: Arc<str>,
    partition: Partition,
    headers: HeaderMap,
}

impl CacheRequest {
    /// The cache's view of a request; `None` for methods other than `GET` and `HEAD`.
    pub fn new<B>(request: &Request<B>) -> Option<CacheRequest> {
        let head = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return None,
        };
        let headers = request.headers();
        let credential: Vec<&[u8]> = [http::header::AUTHORIZATION, http::header::COOKIE]
            .iter()
            .flat_map(|name| headers.get_all(name).iter().map(|v| v.as_bytes()))
            .collect();
        let partition = if credential.is_empty() {
            None
        } else {
            let mut hash = Sha256::new();
            for part in credential {
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
            Some(hash.finalize().into())
        };
        Some(CacheRequest {
            head,
            url: Arc::from(request.uri().to_string()),
            partition,
            headers: headers.clone(),
        })
    }

    fn key(&self) -> (Partition, Arc<str>) {
        (self.partition, self.url.clone())
    }

    /// The request's value of `name`, as `Vary` compares it (lines joined).
    fn vary_value(&self, name: &HeaderName) -> String {
        header_text(&self.headers, name)
    }
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> String {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    /// Status.
    pub status: StatusCode,
    /// Headers, as the component sent them (hop-by-hop ones removed).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    stored_at: Instant,
    initial_age: Duration,
    fresh_for: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    tags: Vec<String>,
    seq: u64,
    vary: Vec<(HeaderName, String)>,
    size: usize,
    refreshing: AtomicBool,
}

impl Entry {
    /// Age at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at) + self.initial_age
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.fresh_for
    }

    fn within_swr(&self, now: Instant) -> bool {
        self.age(now) < self.fresh_for + self.stale_while_revalidate
    }

    fn within_sie(&self, now: Instant) -> bool {
        self.age(now) < self.fresh_for + self.stale_if_error
    }

    fn expired(&self, now: Instant) -> bool {
        let usable = self.fresh_for + self.stale_while_revalidate.max(self.stale_if_error);
        self.age(now) >= usable.min(MAX_LIFETIME)
    }

    /// The strong or weak validator, as sent.
    pub fn etag(&self) -> Option<&str> {
        self.headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
    }

    /// The surrogate keys it was stored under.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    fn matches(&self, request: &CacheRequest) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| request.vary_value(name) == *value)
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A fresh entry.
    Fresh(Arc<Entry>),
    /// An entry past its lifetime but still within `stale-while-revalidate` or
    /// `stale-if-error`.
    Stale(Arc<Entry>),
    /// Nothing usable.
    Miss,
}

struct Slot {
    entry: Arc<Entry>,
    key: (Partition, Arc<str>),
    tick: u64,
}

#[derive(Default)]
struct Store {
    slots: HashMap<u64, Slot>,
    by_key: HashMap<(Partition, Arc<str>), Vec<u64>>,
    by_tag: HashMap<String, HashSet<u64>>,
    lru: BTreeMap<u64, u64>,
    bytes: usize,
    next_id: u64,
    tick: u64,
}

impl Store {
    fn find(&mut self, request: &CacheRequest, now: Instant) -> Option<(u64, Arc<Entry>)> {
        let ids = self.by_key.get(&request.key())?.clone();
        let mut found = None;
        for id in ids {
            let entry = self.slots[&id].entry.clone();
            if entry.expired(now) {
                self.remove(id);
            } else if found.is_none() && entry.matches(request) {
                found = Some((id, entry));
            }
        }
        found
    }

    fn touch(&mut self, id: u64) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(&id) {
            self.lru.remove(&slot.tick);
            slot.tick = tick;
            self.lru.insert(tick, id);
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        self.lru.remove(&slot.tick);
        self.bytes -= slot.entry.size;
        if let Some(ids) = self.by_key.get_mut(&slot.key) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                self.by_key.remove(&slot.key);
            }
        }
        for tag in &slot.entry.tags {
            if let Some(ids) = self.by_tag.get_mut(tag) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
        true
    }

    /// Inserts, replacing the entry of the same variant; the number of entries evicted to stay
    /// under `max_bytes`.
    fn insert(&mut self, request: &CacheRequest, entry: Entry, max_bytes: usize) -> u64 {
        let key = request.key();
        let same_variant: Vec<u64> = self
            .by_key
            .get(&key)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| self.slots[id].entry.matches(request))
                    .collect()
            })
            .unwrap_or_default();
        for id in same_variant {
            self.remove(id);
        }
        let mut evicted = 0;
        while self.bytes + entry.size > max_bytes {
            let Some((_, &oldest)) = self.lru.iter().next() else {
                break;
            };
            self.remove(oldest);
            evicted += 1;
        }
        self.next_id += 1;
        self.tick += 1;
        let (id, tick) = (self.next_id, self.tick);
        for tag in &entry.tags {
            self.by_tag.entry(tag.clone()).or_default().insert(id);
        }
        self.by_key.entry(key.clone()).or_default().push(id);
        self.lru.insert(tick, id);
        self.bytes += entry.size;
        self.slots.insert(
            id,
            Slot {
                entry: Arc::new(entry),
                key,
                tick,
            },
        );
        evicted
    }
}

/// The response cache of one host. Shared (`Arc`) by the HTTP trigger, which serves through it
/// ([`serve`]), and the outbound HTTP handler, which takes purge requests.
pub struct HttpCache {
    config: CacheConfig,
    log: Arc<dyn PurgeLog>,
    store: Mutex<Store>,
    counters: Counters,
}

/// Statuses a response with an explicit lifetime may be stored with (RFC 9110 §15.1's
/// heuristically cacheable ones).
fn cacheable_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Headers that describe one connection, never stored.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "age",
    "cache-status",
];

/// How long and under which tags a response may be kept.
struct Policy {
    fresh_for: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    vary: Vec<HeaderName>,
}

impl HttpCache {
    /// A cache recording purges in `log`.
    pub fn new(config: CacheConfig, log: Arc<dyn PurgeLog>) -> HttpCache {
        HttpCache {
            config,
            log,
            store: Mutex::new(Store::default()),
            counters: Counters::default(),
        }
    }

    /// A cache that stores nothing and records purges only locally (a runtime not built by
    /// `oms up`, e.g. in benchmarks).
    pub fn disabled() -> HttpCache {
        HttpCache::new(
            CacheConfig {
                max_bytes: 0,
                ..CacheConfig::default()
            },
            Arc::new(LocalPurgeLog::new()),
        )
    }

    /// Whether responses are stored and served (`--no-cache` turns it off).
    pub fn enabled(&self) -> bool {
        self.config.max_bytes > 0
    }

    /// The limits in force.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Where purges are recorded, for logs.
    pub fn describe(&self) -> String {
        format!(
            "{} MiB, purge log {}",
            self.config.max_bytes >> 20,
            self.log.describe()
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters now.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (bytes, entries) = {
            let s = self.lock();
            (s.bytes as u64, s.slots.len() as u64)
        };
        CacheStats {
            hits: get(&c.hits),
            misses: get(&c.misses),
            stale_served: get(&c.stale_served),
            not_modified: get(&c.not_modified),
            stores: get(&c.stores),
            purges: get(&c.purges),
            purged_entries: get(&c.purged_entries),
            evictions: get(&c.evictions),
            bytes,
            entries,
            max_bytes: self.config.max_bytes as u64,
            purge_tags: self.log.remembered_tags(),
        }
    }

    /// The purge sequence to record before a component starts reading; `None` when the log
    /// cannot be reached (then nothing from this request is stored).
    pub async fn begin(&self) -> Option<u64> {
        match self.log.current().await {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::warn!(error = %e, "cache: purge log unreachable; not storing");
                None
            }
        }
    }

    /// The usable entry for `request` at `now`, if any. An entry one of whose tags was purged
    /// after it was read is dropped; when the purge log cannot be reached, nothing is usable.
    pub async fn lookup(&self, request: &CacheRequest, now: Instant) -> Lookup {
        if !self.enabled() {
            return Lookup::Miss;
        }
        let Some((id, entry)) = self.lock().find(request, now) else {
            return Lookup::Miss;
        };
        match self.log.unchanged_since(&entry.tags, entry.seq).await {
            Ok(true) => {}
            Ok(false) => {
                let mut store = self.lock();
                if store
                    .slots
                    .get(&id)
                    .is_some_and(|s| Arc::ptr_eq(&s.entry, &entry))
                {
                    store.remove(id);
                }
                return Lookup::Miss;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache: purge log unreachable; not serving from cache");
                return Lookup::Miss;
            }
        }
        self.lock().touch(id);
        if entry.is_fresh(now) {
            Lookup::Fresh(entry)
        } else {
            Lookup::Stale(entry)
        }
    }

    /// Whether a response to `request` may be stored, and how.
    fn policy(
        &self,
        request: &CacheRequest,
        status: StatusCode,
        headers: &HeaderMap,
    ) -> Option<Policy> {
        if !self.enabled() || request.head || !cacheable_status(status) {
            return None;
        }
        if headers.contains_key(http::header::SET_COOKIE) {
            return None;
        }
        let (_, d) = directives::governing(headers)?;
        if d.no_store || d.no_cache || (d.private && request.partition.is_none()) {
            return None;
        }
        let fresh_for = d.freshness()?;
        let swr = Duration::from_secs(d.stale_while_revalidate.unwrap_or(0));
        let sie = Duration::from_secs(d.stale_if_error.unwrap_or(0));
        if fresh_for.is_zero() && swr.is_zero() && sie.is_zero() {
            return None;
        }
        let mut vary = Vec::new();
        for item in directives::split_list(&header_text(headers, &http::header::VARY)) {
            if item == "*" {
                return None;
            }
            vary.push(HeaderName::from_bytes(item.to_ascii_lowercase().as_bytes()).ok()?);
        }
        Some(Policy {
            fresh_for,
            stale_while_revalidate: swr,
            stale_if_error: sie,
            vary,
        })
    }

    /// Whether a response with these head fields is worth reading whole to store.
    pub fn wants(&self, request: &CacheRequest, status: StatusCode, headers: &HeaderMap) -> bool {
        let small = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_none_or(|n| n <= self.config.max_entry_bytes as u64);
        small && self.policy(request, status, headers).is_some()
    }

    /// Stores a response read under purge sequence `seq` (from [`HttpCache::begin`] before the
    /// component ran); whether it was stored. Not stored when the directives forbid it, or one
    /// of its tags was purged after `seq` (the component may have read the older state).
    pub async fn store(
        &self,
        request: &CacheRequest,
        seq: u64,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        now: Instant,
    ) -> bool {
        let Some(policy) = self.policy(request, status, headers) else {
            return false;
        };
        if body.len() > self.config.max_entry_bytes {
            return false;
        }
        let tags = tags_of(headers);
        match self.log.unchanged_since(&tags, seq).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "cache: purge log unreachable; not storing");
                return false;
            }
        }
        let mut kept = headers.clone();
        for name in HOP_BY_HOP {
            kept.remove(name);
        }
        kept.insert(http::header::CONTENT_LENGTH, body.len().into());
        let initial_age = headers
            .get(http::header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or_default();
        let vary: Vec<(HeaderName, String)> = policy
            .vary
            .into_iter()
            .map(|name| {
                let value = request.vary_value(&name);
                (name, value)
            })
            .collect();
        let size = 256
            + request.url.len()
            + body.len()
            + kept
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 16)
                .sum::<usize>()
            + tags.iter().map(|t| t.len() + 16).sum::<usize>();
        if size > self.config.max_bytes {
            return false;
        }
        let entry = Entry {
            status,
            headers: kept,
            body,
            stored_at: now,
            initial_age,
            fresh_for: policy.fresh_for,
            stale_while_revalidate: policy.stale_while_revalidate,
            stale_if_error: policy.stale_if_error,
            tags,
            seq,
            vary,
            size,
            refreshing: AtomicBool::new(false),
        };
        let evicted = self.lock().insert(request, entry, self.config.max_bytes);
        bump(&self.counters.stores, 1);
        bump(&self.counters.evictions, evicted);
        true
    }

    /// Purges `tags` everywhere the log reaches (every host sharing its Redis) and evicts them
    /// here; the number of entries this host dropped.
    ///
    /// # Errors
    /// When the purge log cannot be reached: local entries are still dropped, but other hosts
    /// may serve theirs.
    pub async fn purge(&self, tags: &[String]) -> Result<usize, PurgeError> {
        bump(&self.counters.purges, 1);
        let recorded = self.log.purge(tags).await;
        let n = self.evict_tags(tags);
        recorded.map(|_| n)
    }

    /// Drops every local entry carrying one of `tags`; how many.
    pub fn evict_tags(&self, tags: &[String]) -> usize {
        let mut store = self.lock();
        let ids: HashSet<u64> = tags
            .iter()
            .filter_map(|t| store.by_tag.get(t))
            .flatten()
            .copied()
            .collect();
        let n = ids.into_iter().filter(|&id| store.remove(id)).count();
        drop(store);
        bump(&self.counters.purged_entries, n as u64);
        n
    }

    fn count_hit(&self, stale: bool) {
        bump(&self.counters.hits, 1);
        if stale {
            bump(&self.counters.stale_served, 1);
        }
    }

    fn count_miss(&self) {
        bump(&self.counters.misses, 1);
    }

    fn count_not_modified(&self) {
        bump(&self.counters.not_modified, 1);
    }
}

/// The cache `oms up` runs: `max_bytes` of entries (0: off), its purge log on the `default`
/// key-value store's Redis server when that store is Redis (subscribed to other hosts'
/// purges), else local. Logs its size. Call within the Tokio runtime.
///
/// # Errors
/// [`crate::Error::Storage`] when the Redis URL is malformed.
pub fn open(
    config: &crate::runtime_config::RuntimeConfig,
    max_bytes: usize,
    purge_tags: usize,
    limits: &crate::runtime::Limits,
) -> Result<Arc<HttpCache>, crate::Error> {
    let cache_config = CacheConfig {
        max_bytes,
        body_timeout: limits.http_deadline,
        ..CacheConfig::default()
    };
    let redis = match config.key_value_stores.get("default") {
        Some(crate::runtime_config::KvBackendConfig::Redis(url)) => {
            Some(Arc::new(RedisPurgeLog::new(url)?))
        }
        _ => None,
    };
    let log: Arc<dyn PurgeLog> = match &redis {
        Some(r) => r.clone(),
        None => Arc::new(LocalPurgeLog::with_bound(purge_tags)),
    };
    let cache = Arc::new(HttpCache::new(cache_config, log));
    if let Some(r) = &redis {
        r.subscribe(Arc::downgrade(&cache));
    }
    if cache.enabled() {
        tracing::info!(
            size_mib = max_bytes >> 20,
            purge_log = %cache.log.describe(),
            "HTTP response cache: {} MiB (--cache-mib; --no-cache turns it off)",
            max_bytes >> 20
        );
    } else {
        tracing::info!(purge_log = %cache.log.describe(), "HTTP response cache: off (--no-cache); purges still recorded");
    }
    Ok(cache)
}

/// The surrogate keys of a response: `Surrogate-Key` (space-separated), `Cache-Tag` and
/// `Edge-Cache-Tag` (comma-separated), without duplicates.
pub fn tags_of(headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut add = |t: &str| {
        let t = t.trim();
        if !t.is_empty() && !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    };
    for v in headers.get_all("surrogate-key") {
        v.to_str()
            .unwrap_or_default()
            .split_whitespace()
            .for_each(&mut add);
    }
    for name in ["cache-tag", "edge-cache-tag"] {
        for v in headers.get_all(name) {
            v.to_str().unwrap_or_default().split(',').for_each(&mut add);
        }
    }
    tags
}

/// Whether `If-None-Match` (a list of entity tags, or `*`) matches `etag`, by the weak
/// comparison RFC 9110 §13.1.2 prescribes for it.
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let etag = opaque(etag);
    directives::split_list(if_none_match)
        .into_iter()
        .any(|t| t == "*" || opaque(t) == etag)
}

#[cfg(test)]
mod tests;
