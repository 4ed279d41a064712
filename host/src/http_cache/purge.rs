//! The purge log: which tag was purged when, so that no host serves an entry stored before a
//! purge of one of its tags (read-your-writes across hosts).
//!
//! Every purge takes the next number of one global sequence and stamps each of its tags with
//! it. A request records the current number before its component starts reading
//! ([`PurgeLog::current`]); the entry made from its response carries that number, and it may be
//! stored and later served only while none of its tags carries a larger one
//! ([`PurgeLog::unchanged_since`]). A purge that returned before a read asked therefore always
//! wins over an entry made from data read before the write it follows.
//!
//! Two backends, as for key-value: [`LocalPurgeLog`] in memory for one host (the embedded
//! store), [`RedisPurgeLog`] on the Redis server of the `default` store, shared by every host
//! using it: one Lua script per purge (`INCR` of the sequence, a `SET` per tag, a `PUBLISH` on
//! [`CHANNEL`] so other hosts evict eagerly), one `GET` per forwarded request and one `MGET` per
//! hit or store.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use crate::redis_client::RedisPool;

/// Pub/sub channel on which purged tags are announced (space-separated).
pub const CHANNEL: &str = "oms:cache:purge";
/// The global purge sequence (hash-tagged with the tag keys: one cluster slot).
const SEQ_KEY: &str = "oms:cache:{purge}:seq";
/// Prefix of a tag's last-purge sequence.
const TAG_PREFIX: &str = "oms:cache:{purge}:tag:";
/// How long a tag's purge mark lives in Redis. Entries never outlive
/// [`super::MAX_LIFETIME`], which is shorter, so an expired mark can no longer matter.
const TAG_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
/// Tags remembered by the local log by default (`oms up --cache-purge-tags`); beyond, the
/// oldest are forgotten and their sequence becomes the floor every unknown tag is assumed to
/// have been purged at (conservative). A tag is remembered by a 64-bit hash, so the log holds
/// at most ~13 MB at this bound (a map entry and a queue mark of 16 bytes each, with the
/// tables' slack) however long the tags are.
const LOCAL_TAGS: usize = 200_000;

/// A purge log failure (Redis unreachable): the caller treats the entry as unusable.
#[derive(Debug, Clone)]
pub struct PurgeError(pub String);

impl std::fmt::Display for PurgeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PurgeError {}

impl From<redis::RedisError> for PurgeError {
    fn from(e: redis::RedisError) -> Self {
        PurgeError(format!("redis: {e}"))
    }
}

/// Where purges are recorded. Callers hold the trait, never a backend's type.
#[async_trait]
pub trait PurgeLog: Send + Sync {
    /// What and where it is, for logs.
    fn describe(&self) -> String;
    /// The current sequence number, recorded before a component reads.
    async fn current(&self) -> Result<u64, PurgeError>;
    /// Records a purge of `tags`; the purge's sequence number.
    async fn purge(&self, tags: &[String]) -> Result<u64, PurgeError>;
    /// Whether none of `tags` was purged after `seq`.
    async fn unchanged_since(&self, tags: &[String], seq: u64) -> Result<bool, PurgeError>;
    /// How many tags this process holds in memory (0 when they live elsewhere).
    fn remembered_tags(&self) -> u64 {
        0
    }
}

/// The purge log of one host, in memory.
pub struct LocalPurgeLog {
    inner: Mutex<LocalInner>,
    /// Most tags remembered.
    bound: usize,
}

impl Default for LocalPurgeLog {
    fn default() -> Self {
        LocalPurgeLog::with_bound(LOCAL_TAGS)
    }
}

/// Tags are held by their hash under this process's random key: two tags sharing a hash only
/// make an entry of one count as purged with the other (a needless miss, never a stale hit).
#[derive(Default)]
struct LocalInner {
    seq: u64,
    /// The sequence every tag no longer remembered counts as purged at.
    floor: u64,
    key: RandomState,
    /// A tag's hash → the sequence of its last purge.
    tags: HashMap<u64, u64>,
    /// Tags' hashes in the order of their last purge (with that purge's number), oldest first.
    order: VecDeque<(u64, u64)>,
}

impl LocalInner {
    fn hash(&self, tag: &str) -> u64 {
        self.key.hash_one(tag)
    }
}

impl LocalPurgeLog {
    /// An empty log.
    pub fn new() -> LocalPurgeLog {
        LocalPurgeLog::default()
    }

    /// An empty log remembering at most `bound` tags (at least one).
    pub fn with_bound(bound: usize) -> LocalPurgeLog {
        LocalPurgeLog {
            inner: Mutex::default(),
            bound: bound.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl PurgeLog for LocalPurgeLog {
    fn describe(&self) -> String {
        "local (this host)".into()
    }

    fn remembered_tags(&self) -> u64 {
        self.lock().tags.len() as u64
    }

    async fn current(&self) -> Result<u64, PurgeError> {
        Ok(self.lock().seq)
    }

    async fn purge(&self, tags: &[String]) -> Result<u64, PurgeError> {
        let mut g = self.lock();
        g.seq += 1;
        let seq = g.seq;
        for tag in tags {
            let h = g.hash(tag);
            g.tags.insert(h, seq);
            g.order.push_back((seq, h));
        }
        while g.tags.len() > self.bound {
            let Some((at, tag)) = g.order.pop_front() else {
                break;
            };
            // Only the tag's latest mark removes it; older marks of a re-purged tag are stale.
            if g.tags.get(&tag) == Some(&at) {
                g.tags.remove(&tag);
                g.floor = g.floor.max(at);
            }
        }
        // Stale marks of re-purged tags would otherwise pile up in `order`.
        if g.order.len() > 2 * self.bound.max(g.tags.len()) {
            let LocalInner { tags, order, .. } = &mut *g;
            order.retain(|(at, tag)| tags.get(tag) == Some(at));
        }
        Ok(seq)
    }

    async fn unchanged_since(&self, tags: &[String], seq: u64) -> Result<bool, PurgeError> {
        let g = self.lock();
        if g.floor > seq {
            return Ok(false);
        }
        Ok(tags
            .iter()
            .all(|t| g.tags.get(&g.hash(t)).is_none_or(|&at| at <= seq)))
    }
}

/// Records a purge: the next sequence number on every tag, announced on the channel.
static PURGE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PURGE_LUA));
const PURGE_LUA: &str = r"
local seq = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], seq, 'EX', ARGV[1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return seq
";

/// The purge log shared by every host on one Redis server.
pub struct RedisPurgeLog {
    pool: Arc<RedisPool>,
    url: String,
}

impl RedisPurgeLog {
    /// A log on the server at `url` (the `default` key-value store's).
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn new(url: &str) -> Result<RedisPurgeLog, crate::Error> {
        Ok(RedisPurgeLog {
            pool: Arc::new(RedisPool::new(url)?),
            url: url.to_string(),
        })
    }

    /// Listens on [`CHANNEL`] for as long as `cache` lives and evicts the announced tags from
    /// it (purges by other hosts, and this host's own again, harmlessly). Reconnects after a
    /// failure; a missed announcement costs only memory, since a hit checks the log anyway.
    pub fn subscribe(&self, cache: Weak<super::HttpCache>) {
        let url = self.url.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            loop {
                if cache.strong_count() == 0 {
                    return;
                }
                let pubsub = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(CHANNEL).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match pubsub.await {
                    Ok(pubsub) => {
                        let mut messages = pubsub.into_on_message();
                        while let Some(msg) = messages.next().await {
                            let Some(cache) = cache.upgrade() else { return };
                            if let Ok(text) = msg.get_payload::<String>() {
                                let tags: Vec<String> =
                                    text.split_whitespace().map(str::to_string).collect();
                                cache.evict_tags(&tags);
                            }
                        }
                        tracing::debug!("cache purge subscription ended; reconnecting");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cache purge subscription failed; retrying")
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
}

#[async_trait]
impl PurgeLog for RedisPurgeLog {
    fn describe(&self) -> String {
        format!("redis {}", self.pool.describe())
    }

    async fn current(&self) -> Result<u64, PurgeError> {
        let seq: Option<u64> = self.pool.conn().get(SEQ_KEY).await?;
        Ok(seq.unwrap_or(0))
    }

    async fn purge(&self, tags: &[String]) -> Result<u64, PurgeError> {
        let mut invocation = PURGE.key(SEQ_KEY);
        for tag in tags {
            invocation.key(format!("{TAG_PREFIX}{tag}"));
        }
        invocation
            .arg(TAG_TTL.as_secs())
            .arg(CHANNEL)
            .arg(tags.join(" "));
        let seq: u64 = invocation.invoke_async(&mut self.pool.conn()).await?;
        Ok(seq)
    }

    async fn unchanged_since(&self, tags: &[String], seq: u64) -> Result<bool, PurgeError> {
        if tags.is_empty() {
            return Ok(true);
        }
        let keys: Vec<String> = tags.iter().map(|t| format!("{TAG_PREFIX}{t}")).collect();
        let marks: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut self.pool.conn())
            .await?;
        Ok(marks.into_iter().all(|m| m.is_none_or(|at| at <= seq)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_purge_after_the_recorded_sequence_refuses_the_entry() {
        let log = LocalPurgeLog::new();
        let before = log.current().await.unwrap();
        assert!(log
            .unchanged_since(&tags(&["a", "b"]), before)
            .await
            .unwrap());
        let p = log.purge(&tags(&["b"])).await.unwrap();
        assert!(p > before);
        assert!(!log
            .unchanged_since(&tags(&["a", "b"]), before)
            .await
            .unwrap());
        assert!(log.unchanged_since(&tags(&["a"]), before).await.unwrap());
        // Read after the purge: fine.
        let after = log.current().await.unwrap();
        assert!(log
            .unchanged_since(&tags(&["a", "b"]), after)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn forgotten_tags_count_as_purged_at_the_floor() {
        const BOUND: usize = 1_000;
        let log = LocalPurgeLog::with_bound(BOUND);
        let start = log.current().await.unwrap();
        for i in 0..BOUND + 10 {
            log.purge(&[format!("t{i}")]).await.unwrap();
        }
        assert_eq!(log.remembered_tags(), BOUND as u64, "bounded");
        // "t0" is forgotten; an entry from before it must still be refused.
        assert!(!log.unchanged_since(&tags(&["t0"]), start).await.unwrap());
        let now = log.current().await.unwrap();
        assert!(log.unchanged_since(&tags(&["t0"]), now).await.unwrap());
        assert!(log.lock().tags.len() <= BOUND);
        // Re-purging remembered tags keeps the queue of marks bounded too.
        for _ in 0..5 {
            for i in 0..BOUND {
                log.purge(&[format!("r{i}")]).await.unwrap();
            }
        }
        assert_eq!(log.remembered_tags(), BOUND as u64);
        assert!(log.lock().order.len() <= 2 * BOUND + 1);
    }
}
