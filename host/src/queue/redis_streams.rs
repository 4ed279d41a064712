//! The queue on Redis Streams, shared by every host pointed at the same server
//! (`oms up --queue-url redis://...`): at least once, with takeover of a dead host's messages.
//!
//! Keys (channel and component names are escaped so `:` cannot make two of them collide):
//! - `oms:q:ch:<channel>` — a stream per channel; a publish is one `XADD` (field `p`, the
//!   payload). Each subscribing component is a consumer group named after the component, made
//!   for every subscriber of the manifest when a host starts (`XGROUP CREATE ... $ MKSTREAM`),
//!   and by the publish itself when the stream is missing (a server that lost its data), so a
//!   message published before a subscriber's host starts still reaches it.
//! - `oms:q:retry:<channel>:<component>` — a subscriber's retries ready for delivery (fields
//!   `p`, `a` = failed deliveries so far, `e` = last error), read by the same group name.
//! - `oms:q:due:<channel>:<component>` — a sorted set of scheduled retries, scored by the
//!   Redis server's clock (ms) when they come due; moved into the retry stream by the claim.
//! - `oms:q:dead` — dead letters (`ch`, `c`, `a`, `e`, `p`); an operator's re-drive moves one
//!   into its retry stream with a fresh set of attempts.
//! - `oms:q:wake` — a short doorbell stream (`MAXLEN ~ 100`) rung by every publish, scheduled
//!   retry and re-drive; idle hosts wait on it with a blocking `XREAD` on a dedicated
//!   connection, never on the pooled ones.
//! - `oms:q:subscriptions` — a set of `channel\ncomponent` pairs, so `oms queue stats` needs no
//!   manifest.
//!
//! Each step that changes more than one key is one Lua script, so a crash or an outage never
//! loses or doubles a message: a claim (move due retries into the retry streams, take over
//! entries idle beyond the visibility timeout with `XAUTOCLAIM`, then `XREADGROUP` new ones,
//! at most the limit in all); a failure (check this consumer still holds the entry, `XACK`,
//! then `ZADD` the retry or `XADD` the dead letter); a re-drive; a trim. A success is one
//! `XACK`, sent only after the handler returned. A consumer name is unique per host process;
//! what a dead host held is claimed by a live one once idle for the visibility timeout, which
//! must exceed the queue deadline so a live host's slow handler is never taken over.
//!
//! Growth is bounded by a periodic trim: each stream loses the entries below the oldest one
//! some group still needs (its oldest unacknowledged entry, else its last delivered one).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;

use super::{
    DeadLetter, Delivery, Failure, MessageId, QueueBackend, QueueError, QueueResult, RetryPolicy,
    SubscriptionStats,
};
use crate::redis_client::RedisPool;
use crate::Error;

const DEAD: &str = "oms:q:dead";
const WAKE: &str = "oms:q:wake";
const SUBSCRIPTIONS: &str = "oms:q:subscriptions";
/// Scheduled retries moved into a retry stream per claim, per subscription.
const PROMOTE_BATCH: usize = 100;
/// Prefix of the id of a delivery read from a retry stream.
const RETRY_ID: &str = "r:";

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        QueueError(format!("redis: {e}"))
    }
}

/// `name` with `%` and `:` escaped, for use inside a key.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace(':', "%3A")
}

/// One (channel, subscriber) pair and its keys.
#[derive(Debug, Clone)]
struct Subscription {
    channel: String,
    component: String,
    stream: String,
    retry: String,
    due: String,
}

impl Subscription {
    fn new(channel: &str, component: &str) -> Subscription {
        let (ch, c) = (escape(channel), escape(component));
        Subscription {
            channel: channel.to_string(),
            component: component.to_string(),
            stream: format!("oms:q:ch:{ch}"),
            retry: format!("oms:q:retry:{ch}:{c}"),
            due: format!("oms:q:due:{ch}:{c}"),
        }
    }

    fn registry_member(&self) -> String {
        format!("{}\n{}", self.channel, self.component)
    }
}

/// Makes each subscriber's groups (on the channel stream from its end, on its retry stream from
/// the start) and records the pairs. KEYS: per pair stream, retry; then the registry.
/// ARGV: per pair component, registry member.
static ENSURE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local n = (#KEYS - 1) / 2
for i = 0, n - 1 do
  local g = ARGV[2 * i + 1]
  local r = redis.pcall('XGROUP', 'CREATE', KEYS[2 * i + 1], g, '$', 'MKSTREAM')
  if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then return redis.error_reply(r.err) end
  r = redis.pcall('XGROUP', 'CREATE', KEYS[2 * i + 2], g, '0', 'MKSTREAM')
  if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then return redis.error_reply(r.err) end
  redis.call('SADD', KEYS[#KEYS], ARGV[2 * i + 2])
end
return n
",
    )
});

/// Appends a message to its channel stream (first making the subscribers' groups if the
/// stream is missing) and rings the doorbell. KEYS: stream, wake, registry. ARGV: payload,
/// channel, then each subscriber.
static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  for i = 3, #ARGV do
    redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[i], '$', 'MKSTREAM')
    redis.call('SADD', KEYS[3], ARGV[2] .. '\n' .. ARGV[i])
  end
end
local id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100', '*', 'c', ARGV[2])
return id
",
    )
});

/// Claims up to a limit for one consumer. KEYS: per subscription stream, retry, due.
/// ARGV: consumer, limit, min idle ms for takeover (0: none this time), rotation offset, then
/// per subscription the group (component). Returns {server now ms, next due ms or -1,
/// 1 if a group was missing, {{subscription index, 0 channel | 1 retry, id, fields}...}}.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local consumer, remaining, min_idle, offset = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 3
local out, missing = {}, 0
local function take(i, kind, entries)
  for _, e in ipairs(entries) do
    if e and e[1] then
      out[#out + 1] = {i, kind, e[1], e[2]}
      remaining = remaining - 1
    end
  end
end
for i = 0, n - 1 do
  local retry, due = KEYS[3 * i + 2], KEYS[3 * i + 3]
  local ready = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[5 + n]))
  for _, m in ipairs(ready) do
    local r = cmsgpack.unpack(m)
    redis.call('XADD', retry, '*', 'p', r[1], 'a', r[2], 'e', r[3])
    redis.call('ZREM', due, m)
  end
end
if min_idle > 0 then
  for i = 0, n - 1 do
    for kind = 0, 1 do
      if remaining > 0 then
        local r = redis.pcall('XAUTOCLAIM', KEYS[3 * i + 1 + kind], ARGV[5 + i], consumer, min_idle, '0-0', 'COUNT', remaining)
        if r.err then missing = 1 else take(i, kind, r[2]) end
      end
    end
  end
end
for j = 0, n - 1 do
  local i = (j + offset) % n
  for kind = 1, 0, -1 do
    if remaining > 0 then
      local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[5 + i], consumer, 'COUNT', remaining, 'STREAMS', KEYS[3 * i + 1 + kind], '>')
      if type(r) == 'table' and r.err then missing = 1
      elseif r then take(i, kind, r[1][2]) end
    end
  end
end
local next_due = -1
for i = 0, n - 1 do
  local f = redis.call('ZRANGE', KEYS[3 * i + 3], 0, 0, 'WITHSCORES')
  if #f > 0 then
    local s = tonumber(f[2])
    if next_due < 0 or s < next_due then next_due = s end
  end
end
return {now, next_due, missing, out}
",
    )
});

/// Records a failed delivery if this consumer still holds it: acknowledges it and schedules
/// the retry or writes the dead letter, in one step. KEYS: the stream it came from, due, dead,
/// wake. ARGV: group, id, consumer, attempts after this one, delay ms (-1: dead), channel,
/// component, error, payload, origin (keeps scheduled retries distinct). Returns 1, or 0 when
/// the entry is no longer this consumer's (taken over, or already acknowledged).
static FAIL: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local delay = tonumber(ARGV[5])
if delay < 0 then
  redis.call('XADD', KEYS[3], '*', 'ch', ARGV[6], 'c', ARGV[7], 'a', ARGV[4], 'e', ARGV[8], 'p', ARGV[9])
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + delay, cmsgpack.pack({ARGV[9], tonumber(ARGV[4]), ARGV[8], ARGV[10]}))
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100', '*', 'c', ARGV[6])
end
return 1
",
    )
});

/// Moves one dead letter into its retry stream with no attempts made. KEYS: dead, retry,
/// wake. ARGV: the dead letter's id. Returns 1, or 0 if it is gone.
static REDRIVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local f, fl = {}, e[1][2]
for j = 1, #fl, 2 do f[fl[j]] = fl[j + 1] end
redis.call('XADD', KEYS[2], '*', 'p', f['p'] or '', 'a', '0', 'e', f['e'] or '')
redis.call('XDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100', '*', 'c', 'redrive')
return 1
",
    )
});

/// Trims a stream below what every group still needs, and forgets consumers idle for longer
/// than ARGV[1] ms that hold nothing (hosts long gone). KEYS: the stream. Returns entries
/// removed.
static TRIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '(%d+)-(%d+)')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local min = nil
for _, g in ipairs(groups) do
  local f = {}
  for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
  local bound = f['last-delivered-id']
  if f['pending'] > 0 then
    bound = redis.call('XPENDING', KEYS[1], f['name'])[2]
  end
  if min == nil or less(bound, min) then min = bound end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], f['name'])) do
    local cf = {}
    for j = 1, #c, 2 do cf[c[j]] = c[j + 1] end
    if cf['pending'] == 0 and cf['idle'] > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], f['name'], cf['name'])
    end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', min)
",
    )
});

/// Counts for one subscription: {not yet delivered, delivered and unacknowledged, scheduled}.
/// KEYS: stream, retry, due. ARGV: group.
static STATS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local function counts(key, group)
  if redis.call('EXISTS', key) == 0 then return 0, 0 end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local f = {}
    for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
    if f['name'] == group then
      local lag = f['lag']
      if not lag then lag = #redis.call('XRANGE', key, '(' .. f['last-delivered-id'], '+') end
      return lag, f['pending']
    end
  end
  return 0, 0
end
local a, b = counts(KEYS[1], ARGV[1])
local c, d = counts(KEYS[2], ARGV[1])
return {a + c, b + d, redis.call('ZCARD', KEYS[3])}
",
    )
});

/// The Redis Streams queue.
pub struct RedisStreamsQueue {
    pool: Arc<RedisPool>,
    subscribers: HashMap<String, Vec<String>>,
    subscriptions: Vec<Subscription>,
    policy: RetryPolicy,
    visibility: Duration,
    consumer: String,
    /// The doorbell connection: blocking reads only.
    waiter: Mutex<Option<MultiplexedConnection>>,
    /// The last doorbell entry seen.
    wake_seen: Mutex<String>,
    /// When the next scheduled retry of this host's subscriptions is due, as of the last claim.
    next_due: Mutex<Option<Instant>>,
    /// When idle entries were last taken over.
    last_takeover: Mutex<Option<Instant>>,
    rotation: AtomicUsize,
}

/// Attempts of a command that met a stale pooled connection (one per pooled connection).
const STALE_RETRIES: usize = 4;

/// A pooled connection broken by an earlier outage, or still holding the failure of a
/// reconnect made while the server was down (it reconnects after reporting it): the command
/// can go again, on another connection, after a short pause. The server may have run it before
/// the connection broke, so a publish may be stored twice (at least once).
fn stale(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_connection_refusal()
}

/// Pause before attempt `n` (from 2) of a command that met a stale connection.
fn stale_pause(n: usize) -> Duration {
    Duration::from_millis(25 * n as u64)
}

/// A fields array `[k, v, k, v, ...]` as a map.
fn fields(flat: Vec<Vec<u8>>) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.insert(String::from_utf8_lossy(&k).into_owned(), v);
    }
    out
}

fn text(f: &HashMap<String, Vec<u8>>, k: &str) -> String {
    f.get(k)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn number(f: &HashMap<String, Vec<u8>>, k: &str) -> u32 {
    text(f, k).parse().unwrap_or(0)
}

/// `host-pid-random`: unique per host process, readable in `XINFO CONSUMERS`.
fn consumer_name() -> QueueResult<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "oms".into());
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| QueueError(format!("no randomness: {e}")))?;
    Ok(format!(
        "{host}-{}-{}",
        std::process::id(),
        hex::encode(bytes)
    ))
}

impl RedisStreamsQueue {
    /// The queue on the server behind `pool`; `subscribers` maps channel → every subscribing
    /// component of the manifest; a claimed message unacknowledged for `visibility` is taken
    /// over by another consumer.
    ///
    /// # Errors
    /// [`Error::Storage`] when no consumer name can be made (no randomness).
    pub fn new(
        pool: Arc<RedisPool>,
        subscribers: HashMap<String, Vec<String>>,
        policy: RetryPolicy,
        visibility: Duration,
    ) -> Result<RedisStreamsQueue, Error> {
        let mut subscriptions: Vec<Subscription> = subscribers
            .iter()
            .flat_map(|(ch, cs)| cs.iter().map(move |c| Subscription::new(ch, c)))
            .collect();
        subscriptions.sort_by(|a, b| (&a.channel, &a.component).cmp(&(&b.channel, &b.component)));
        subscriptions.dedup_by(|a, b| a.channel == b.channel && a.component == b.component);
        Ok(RedisStreamsQueue {
            pool,
            subscribers,
            subscriptions,
            policy,
            visibility,
            consumer: consumer_name()?,
            waiter: Mutex::new(None),
            wake_seen: Mutex::new("0-0".into()),
            next_due: Mutex::new(None),
            last_takeover: Mutex::new(None),
            rotation: AtomicUsize::new(0),
        })
    }

    /// This process's consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Runs a script on the pool, again on another connection if one was stale.
    async fn script<T: redis::FromRedisValue>(
        &self,
        inv: &redis::ScriptInvocation<'_>,
    ) -> QueueResult<T> {
        let mut attempt = 1;
        loop {
            match inv.invoke_async(&mut self.pool.conn()).await {
                Err(e) if stale(&e) && attempt < STALE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(stale_pause(attempt)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    /// Runs a command on the pool, again on another connection if one was stale.
    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> QueueResult<T> {
        let mut attempt = 1;
        loop {
            match cmd.query_async(&mut self.pool.conn()).await {
                Err(e) if stale(&e) && attempt < STALE_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(stale_pause(attempt)).await;
                }
                r => return Ok(r?),
            }
        }
    }

    fn takeover_every(&self) -> Duration {
        (self.visibility / 4).clamp(Duration::from_millis(20), Duration::from_secs(5))
    }

    /// Makes every subscriber's groups (idempotent).
    async fn ensure_groups(&self) -> QueueResult<()> {
        if self.subscriptions.is_empty() {
            return Ok(());
        }
        let mut inv = ENSURE.prepare_invoke();
        for s in &self.subscriptions {
            inv.key(&s.stream).key(&s.retry);
            inv.arg(&s.component).arg(s.registry_member());
        }
        inv.key(SUBSCRIPTIONS);
        let _: i64 = self.script(&inv).await?;
        Ok(())
    }

    fn subscription(&self, d: &Delivery) -> QueueResult<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.channel == d.channel && s.component == d.component)
            .ok_or_else(|| {
                QueueError(format!(
                    "{} does not subscribe to {} here",
                    d.component, d.channel
                ))
            })
    }

    /// The stream a delivery was read from, and its entry id.
    fn source<'a>(&self, s: &'a Subscription, d: &'a Delivery) -> (&'a str, &'a str) {
        match d.id.as_str().strip_prefix(RETRY_ID) {
            Some(id) => (&s.retry, id),
            None => (&s.stream, d.id.as_str()),
        }
    }

    /// Every subscription known here or recorded on the server.
    async fn known_subscriptions(&self) -> QueueResult<Vec<Subscription>> {
        let members: Vec<String> = self
            .command(redis::cmd("SMEMBERS").arg(SUBSCRIPTIONS))
            .await?;
        let mut all: BTreeSet<(String, String)> = self
            .subscriptions
            .iter()
            .map(|s| (s.channel.clone(), s.component.clone()))
            .collect();
        for m in members {
            if let Some((ch, c)) = m.split_once('\n') {
                all.insert((ch.to_string(), c.to_string()));
            }
        }
        Ok(all
            .into_iter()
            .map(|(ch, c)| Subscription::new(&ch, &c))
            .collect())
    }

    async fn wait_on_doorbell(&self, timeout: Duration) -> QueueResult<()> {
        let block_ms = timeout.as_millis().max(1) as u64;
        let conn = self.waiter.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut conn = match conn {
            Some(c) => c,
            None => {
                self.pool
                    .dedicated(timeout + Duration::from_secs(2))
                    .await?
            }
        };
        let seen = self
            .wake_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let reply: Option<Vec<(String, Vec<Entry>)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(WAKE)
            .arg(&seen)
            .query_async(&mut conn)
            .await?;
        if let Some(last) = reply
            .and_then(|streams| streams.into_iter().next())
            .and_then(|(_, entries)| entries.into_iter().last())
        {
            *self.wake_seen.lock().unwrap_or_else(|p| p.into_inner()) = last.0;
        }
        *self.waiter.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
        Ok(())
    }
}

/// A stream entry: id and flat fields.
type Entry = (String, Vec<Vec<u8>>);
/// {server now, next due, groups missing, {subscription, kind, id, fields}}.
type ClaimReply = (i64, i64, i64, Vec<(i64, i64, String, Vec<Vec<u8>>)>);

#[async_trait]
impl QueueBackend for RedisStreamsQueue {
    fn describe(&self) -> String {
        format!(
            "redis streams queue {} (consumer {}, visibility {} ms)",
            self.pool.describe(),
            self.consumer,
            self.visibility.as_millis()
        )
    }

    async fn start(&self) -> QueueResult<usize> {
        self.ensure_groups().await?;
        let last: Vec<Entry> = self
            .command(
                redis::cmd("XREVRANGE")
                    .arg(WAKE)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await?;
        if let Some((id, _)) = last.into_iter().next() {
            *self.wake_seen.lock().unwrap_or_else(|p| p.into_inner()) = id;
        }
        // What a previous process held is taken over after the visibility timeout, by
        // whichever host claims first: nothing to recover here.
        Ok(0)
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> QueueResult<usize> {
        let Some(components) = self.subscribers.get(channel) else {
            tracing::debug!(%channel, "publish to a channel with no subscriber: dropped");
            return Ok(0);
        };
        let s = Subscription::new(channel, "");
        let mut inv = PUBLISH.prepare_invoke();
        inv.key(&s.stream)
            .key(WAKE)
            .key(SUBSCRIPTIONS)
            .arg(payload)
            .arg(channel);
        for c in components {
            inv.arg(c);
        }
        let _: String = self.script(&inv).await?;
        Ok(components.len())
    }

    async fn claim(
        &self,
        components: &BTreeSet<String>,
        limit: usize,
    ) -> QueueResult<Vec<Delivery>> {
        let subs: Vec<&Subscription> = self
            .subscriptions
            .iter()
            .filter(|s| components.contains(&s.component))
            .collect();
        if subs.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let takeover = {
            let mut last = self.last_takeover.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= self.takeover_every());
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        let mut inv = CLAIM.prepare_invoke();
        for s in &subs {
            inv.key(&s.stream).key(&s.retry).key(&s.due);
        }
        inv.arg(&self.consumer)
            .arg(limit)
            .arg(if takeover {
                self.visibility.as_millis() as u64
            } else {
                0
            })
            .arg(self.rotation.fetch_add(1, Ordering::Relaxed) % subs.len());
        for s in &subs {
            inv.arg(&s.component);
        }
        inv.arg(PROMOTE_BATCH);
        let (now, next_due, missing, entries): ClaimReply = self.script(&inv).await?;
        *self.next_due.lock().unwrap_or_else(|p| p.into_inner()) = (next_due >= 0)
            .then(|| Instant::now() + Duration::from_millis((next_due - now).max(0) as u64));
        if missing != 0 {
            tracing::warn!("queue consumer groups missing (a Redis server that lost its data?): making them again");
            // What was claimed above is pending on this consumer already: hand it out even if
            // re-making the groups fails (the next claim tries again).
            if let Err(e) = self.ensure_groups().await {
                tracing::error!(error = %e, "cannot make the queue consumer groups again");
            }
        }
        let mut out = Vec::with_capacity(entries.len());
        for (i, kind, id, flat) in entries {
            let Some(s) = subs.get(i as usize) else {
                continue;
            };
            let f = fields(flat);
            let (id, attempts) = if kind == 1 {
                (format!("{RETRY_ID}{id}"), number(&f, "a"))
            } else {
                (id, 0)
            };
            out.push(Delivery {
                id: MessageId::new(id),
                channel: s.channel.clone(),
                component: s.component.clone(),
                payload: f.get("p").cloned().unwrap_or_default(),
                attempts,
            });
        }
        Ok(out)
    }

    async fn ack(&self, d: &Delivery) -> QueueResult<()> {
        let s = self.subscription(d)?;
        let (stream, id) = self.source(s, d);
        let _: i64 = self
            .command(redis::cmd("XACK").arg(stream).arg(&s.component).arg(id))
            .await?;
        Ok(())
    }

    async fn fail(&self, d: &Delivery, error: &str) -> QueueResult<Failure> {
        let s = self.subscription(d)?;
        let (stream, id) = self.source(s, d);
        let outcome = self.policy.after_failure(d.attempts);
        let delay: i64 = match outcome {
            Failure::Dead => -1,
            Failure::Retry(delay) => delay.as_millis() as i64,
        };
        let held: i64 = self
            .script(
                FAIL.key(stream)
                    .key(&s.due)
                    .key(DEAD)
                    .key(WAKE)
                    .arg(&s.component)
                    .arg(id)
                    .arg(&self.consumer)
                    .arg(d.attempts + 1)
                    .arg(delay)
                    .arg(&s.channel)
                    .arg(&s.component)
                    .arg(error)
                    .arg(&d.payload)
                    .arg(d.id.as_str()),
            )
            .await?;
        if held == 0 {
            return Err(QueueError(format!(
                "message {} is no longer held by this host (taken over after the visibility \
                 timeout, or acknowledged): its new holder records the outcome",
                d.id
            )));
        }
        Ok(outcome)
    }

    async fn wait_for_work(&self, max: Duration) {
        let mut timeout = max.min(self.takeover_every());
        if let Some(at) = *self.next_due.lock().unwrap_or_else(|p| p.into_inner()) {
            timeout = timeout.min(at.saturating_duration_since(Instant::now()));
        }
        if timeout.is_zero() {
            return;
        }
        if let Err(e) = self.wait_on_doorbell(timeout).await {
            tracing::debug!(error = %e, "queue doorbell read failed");
            // The connection is dropped; the next claim reports the outage.
            tokio::time::sleep(timeout.min(Duration::from_millis(200))).await;
        }
    }

    async fn trim(&self) -> QueueResult<u64> {
        let forget_after = (self.visibility * 10).max(Duration::from_secs(3600));
        let streams: BTreeSet<&str> = self
            .subscriptions
            .iter()
            .flat_map(|s| [s.stream.as_str(), s.retry.as_str()])
            .collect();
        let mut removed = 0;
        for stream in streams {
            let n: u64 = self
                .script(TRIM.key(stream).arg(forget_after.as_millis() as u64))
                .await?;
            removed += n;
        }
        Ok(removed)
    }

    async fn stats(&self) -> QueueResult<Vec<SubscriptionStats>> {
        let mut dead: HashMap<(String, String), u64> = HashMap::new();
        for d in self.dead_letters().await? {
            *dead.entry((d.channel, d.component)).or_default() += 1;
        }
        let mut out = Vec::new();
        for s in self.known_subscriptions().await? {
            let (pending, in_flight, scheduled): (u64, u64, u64) = self
                .script(
                    STATS
                        .key(&s.stream)
                        .key(&s.retry)
                        .key(&s.due)
                        .arg(&s.component),
                )
                .await?;
            out.push(SubscriptionStats {
                dead: dead
                    .remove(&(s.channel.clone(), s.component.clone()))
                    .unwrap_or(0),
                channel: s.channel,
                component: s.component,
                pending,
                in_flight,
                scheduled,
            });
        }
        for ((channel, component), n) in dead {
            out.push(SubscriptionStats {
                channel,
                component,
                dead: n,
                ..Default::default()
            });
        }
        Ok(out)
    }

    async fn dead_letters(&self) -> QueueResult<Vec<DeadLetter>> {
        let entries: Vec<Entry> = self
            .command(redis::cmd("XRANGE").arg(DEAD).arg("-").arg("+"))
            .await?;
        Ok(entries
            .into_iter()
            .map(|(id, flat)| {
                let f = fields(flat);
                DeadLetter {
                    id: MessageId::new(id),
                    channel: text(&f, "ch"),
                    component: text(&f, "c"),
                    attempts: number(&f, "a"),
                    last_error: text(&f, "e"),
                    payload: text(&f, "p"),
                }
            })
            .collect())
    }

    async fn retry_dead(&self, id: Option<&MessageId>) -> QueueResult<usize> {
        let letters = self.dead_letters().await?;
        let mut n = 0;
        for d in letters.iter().filter(|d| id.is_none_or(|id| *id == d.id)) {
            let s = Subscription::new(&d.channel, &d.component);
            let moved: i64 = self
                .script(REDRIVE.key(DEAD).key(&s.retry).key(WAKE).arg(d.id.as_str()))
                .await?;
            n += moved as usize;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_collide_in_keys() {
        let a = Subscription::new("a:b", "c");
        let b = Subscription::new("a", "b:c");
        assert_ne!(a.retry, b.retry);
        assert_eq!(a.stream, "oms:q:ch:a%3Ab");
        assert_eq!(Subscription::new("50%", "x").stream, "oms:q:ch:50%25");
    }
}
