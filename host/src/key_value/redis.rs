//! Key-value on Redis (Spin's `type = "redis"`, `url = "redis://..."`).
//!
//! Each store label is its own namespace: key `k` of store `default` is the string key
//! `oms:kv:default:v:k` (Spin's Redis backend puts every store in one keyspace; here two labels on
//! one server never see each other's keys). Beside each value sits a compare-and-swap token
//! (`oms:kv:<label>:t:<key>`), a fresh random stamp written with every change; `get-many` is one
//! `MGET`, and every change of a value and its token is one atomic step (a Lua script or a
//! `MULTI`/`EXEC` block), so a swap succeeds only if nobody changed the key since its token was
//! read — a concurrent write, an A→B→A change or a delete and re-create all fail it.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use redis::AsyncCommands;

use super::{BackendError, CasToken, KvBackend, KvResult};
use crate::redis_client::RedisPool;

/// Keys scanned per `SCAN` round of `get-keys`.
const SCAN_COUNT: usize = 1000;

/// One store label on a Redis server.
pub struct RedisStore {
    pool: Arc<RedisPool>,
    /// `oms:kv:<label>:` — every key of this store starts with it.
    prefix: String,
}

impl From<redis::RedisError> for BackendError {
    fn from(e: redis::RedisError) -> Self {
        BackendError(format!("redis: {e}"))
    }
}

/// Writes value and token if the token is still `ARGV[1]` (empty: if the key is absent).
static SWAP: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SWAP_LUA));
const SWAP_LUA: &str = r"
local current = redis.call('GET', KEYS[2])
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif ARGV[1] == 'untracked' then
  -- a value written without a token (another writer, or the token key evicted): it may be
  -- swapped once, while it still has no token
  if current or redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 1
";

/// Adds `ARGV[1]` to a decimal integer value (absent: 0; `INCRBY`'s 64-bit rules and errors) and
/// stamps a new token.
static INCREMENT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(INCREMENT_LUA));
const INCREMENT_LUA: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return n
";

/// The token of a value that has none (never a fresh token: those are 32 hex digits).
const UNTRACKED: &[u8] = b"untracked";

fn fresh_token() -> KvResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| BackendError(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Escapes `*?[]\` so a prefix matches only itself in `SCAN MATCH`.
fn glob_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether a command failed because its connection was gone (not because Redis refused it).
fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl RedisStore {
    /// Runs `op` on a pooled connection and, if that connection turned out to be dead (e.g.
    /// the first use of each pooled connection after Redis came back), once more on a freshly
    /// reconnected one. Only for reads and writes that are safe to repeat; a compare-and-swap
    /// or an increment is never sent twice.
    async fn repeatable<T, F, Fut>(&self, op: F) -> KvResult<T>
    where
        F: Fn(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        // The manager notices the dead connection on the failed call and reconnects on the
        // next one.
        let conn = self.pool.conn();
        match op(conn.clone()).await {
            Err(e) if connection_lost(&e) => Ok(op(conn).await?),
            other => Ok(other?),
        }
    }

    /// The store `label` on the server behind `pool`.
    pub fn new(pool: Arc<RedisPool>, label: &str) -> RedisStore {
        RedisStore {
            pool,
            prefix: format!("oms:kv:{label}:"),
        }
    }

    fn value_key(&self, key: &str) -> String {
        format!("{}v:{key}", self.prefix)
    }

    fn token_key(&self, key: &str) -> String {
        format!("{}t:{key}", self.prefix)
    }
}

#[async_trait]
impl KvBackend for RedisStore {
    fn describe(&self) -> String {
        format!("redis {}", self.pool.describe())
    }

    async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        let name = self.value_key(key);
        self.repeatable(|mut c| {
            let name = name.clone();
            async move { c.get(name).await }
        })
        .await
    }

    async fn get_with_token(&self, key: &str) -> KvResult<Option<(Vec<u8>, CasToken)>> {
        let mut mget = redis::cmd("MGET");
        mget.arg(self.value_key(key)).arg(self.token_key(key));
        let (value, token): (Option<Vec<u8>>, Option<Vec<u8>>) = self
            .repeatable(|mut c| {
                let mget = mget.clone();
                async move { mget.query_async(&mut c).await }
            })
            .await?;
        Ok(match (value, token) {
            (Some(v), Some(t)) => Some((v, CasToken::new(t))),
            // Written by something other than this backend (or its token evicted): a swap
            // succeeds only while the value still has no token.
            (Some(v), None) => Some((v, CasToken::new(UNTRACKED.to_vec()))),
            (None, _) => None,
        })
    }

    async fn set(&self, key: &str, value: &[u8]) -> KvResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.value_key(key), value)
            .ignore()
            .set(self.token_key(key), fresh_token()?)
            .ignore();
        self.repeatable(|mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async::<()>(&mut c).await }
        })
        .await
    }

    async fn delete(&self, key: &str) -> KvResult<()> {
        let names = [self.value_key(key), self.token_key(key)];
        self.repeatable(|mut c| {
            let names = names.clone();
            async move { c.del::<_, ()>(&names).await }
        })
        .await
    }

    async fn exists(&self, key: &str) -> KvResult<bool> {
        let name = self.value_key(key);
        self.repeatable(|mut c| {
            let name = name.clone();
            async move { c.exists(name).await }
        })
        .await
    }

    async fn keys(&self, cursor: Option<&str>, limit: usize) -> KvResult<Vec<String>> {
        // SCAN yields keys unordered and may repeat them: collect, sort, then page like SQLite.
        let value_prefix = format!("{}v:", self.prefix);
        let pattern = format!("{}*", glob_literal(&value_prefix));
        let mut conn = self.pool.conn();
        let mut keys = Vec::new();
        let mut scan_cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(scan_cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await?;
            for raw in batch {
                if let Ok(k) = String::from_utf8(raw) {
                    if let Some(k) = k.strip_prefix(&value_prefix) {
                        if cursor.is_none_or(|c| k > c) {
                            keys.push(k.to_string());
                        }
                    }
                }
            }
            if next == 0 {
                break;
            }
            scan_cursor = next;
        }
        keys.sort_unstable();
        keys.dedup();
        keys.truncate(limit);
        Ok(keys)
    }

    async fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        INCREMENT
            .key(self.value_key(key))
            .key(self.token_key(key))
            .arg(delta)
            .arg(fresh_token()?)
            .invoke_async(&mut self.pool.conn())
            .await
            .map_err(|e| BackendError(format!("increment of {key:?}: {e}")))
    }

    async fn swap(&self, key: &str, expected: Option<&CasToken>, value: &[u8]) -> KvResult<bool> {
        let expected = expected.map(CasToken::as_bytes).unwrap_or_default();
        let swapped: i64 = SWAP
            .key(self.value_key(key))
            .key(self.token_key(key))
            .arg(expected)
            .arg(value)
            .arg(fresh_token()?)
            .invoke_async(&mut self.pool.conn())
            .await?;
        Ok(swapped == 1)
    }

    async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        mget.arg(keys.iter().map(|k| self.value_key(k)).collect::<Vec<_>>());
        self.repeatable(|mut c| {
            let mget = mget.clone();
            async move { mget.query_async(&mut c).await }
        })
        .await
    }

    async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> KvResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (k, v) in pairs {
            pipe.set(self.value_key(k), v.as_slice())
                .ignore()
                .set(self.token_key(k), fresh_token()?)
                .ignore();
        }
        self.repeatable(|mut c| {
            let pipe = pipe.clone();
            async move { pipe.query_async::<()>(&mut c).await }
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> KvResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = keys
            .iter()
            .flat_map(|k| [self.value_key(k), self.token_key(k)])
            .collect();
        self.repeatable(|mut c| {
            let names = names.clone();
            async move { c.del::<_, ()>(names).await }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_patterns_match_only_the_prefix() {
        assert_eq!(glob_literal("oms:kv:a*b:v:"), "oms:kv:a\\*b:v:");
        assert_eq!(glob_literal("[x]?"), "\\[x\\]\\?");
    }
}
