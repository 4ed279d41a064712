//! Connections to a Redis server, shared by the Redis backends (key-value, queue, cron claims).
//!
//! A [`RedisPool`] is a few multiplexed connections ([`ConnectionManager`]s) used round-robin:
//! each pipelines any number of concurrent commands, and reconnects by itself after the server
//! goes away, so an outage surfaces as errors on the calls made during it (bounded by the
//! connect and response timeouts) and the host recovers when Redis returns. Connections are
//! made lazily: a host starts while Redis is still down.
//!
//! Blocking reads (`XREADGROUP ... BLOCK`) must not use the pool — they would hold a multiplexed
//! connection for everyone — but a dedicated connection from [`RedisPool::dedicated`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::Error;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a pooled command may wait for its reply.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Multiplexed connections per pool.
const POOL_SIZE: usize = 4;

/// A small pool of auto-reconnecting multiplexed connections to one server.
pub struct RedisPool {
    url: String,
    client: redis::Client,
    conns: Vec<ConnectionManager>,
    next: AtomicUsize,
}

impl RedisPool {
    /// A pool for `url` (`redis://[user:pass@]host[:port][/db]`); connects on first use.
    ///
    /// # Errors
    /// [`Error::Storage`] when the URL is malformed.
    pub fn new(url: &str) -> Result<RedisPool, Error> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::Storage(format!("redis url {}: {e}", redacted(url))))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conns = (0..POOL_SIZE)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Storage(format!("redis {}: {e}", redacted(url))))?;
        Ok(RedisPool {
            url: url.to_string(),
            client,
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// A pooled connection (cheap to clone; commands on it are pipelined with others').
    pub fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }

    /// A connection of its own, for blocking commands; no response timeout beyond `timeout`.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn dedicated(
        &self,
        timeout: Duration,
    ) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(timeout));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// The URL without its password, for logs.
    pub fn describe(&self) -> String {
        redacted(&self.url)
    }
}

/// `url` with any password replaced by `***`.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redacted("redis://app:s3cret@cache:6379/0"),
            "redis://app:***@cache:6379/0"
        );
        assert_eq!(redacted("redis://cache:6379"), "redis://cache:6379");
    }
}
