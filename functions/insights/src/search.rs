//! The order search index: posting lists per term, bucketed by the hour the order was placed
//! and split into pages of at most [`PAGE_ITEMS`] orders.
//!
//! - **Terms** an order is posted under: `all`, `ch:{channel}`, `em:{hash}` (SHA-256 of the
//!   lower-cased e-mail, first 32 hex digits: no address appears in a key name),
//!   `st:{status}` and `cs:{channel}:{status}`. A status change moves the order from the old
//!   status' two postings to the new one's.
//! - **Pages** `search:post:{term}:{hour}:{page}` (hour = placed-at milliseconds / 3 600 000):
//!   orders of that term placed in that hour as `[placed_at_ms, order id]`, newest first, at
//!   most [`PAGE_ITEMS`] per page, so every write rewrites a bounded document however many
//!   orders an hour holds (one posting per hour grew with the hour's volume: at 10,000 orders
//!   the busiest were 650 KB, rewritten by every event). The **head**
//!   `search:head:{term}:{hour}` names the page new postings go to; a writer that finds it full
//!   moves the head on by compare-and-swap. Each order's entry remembers the page it was
//!   posted to per term ([`OrderEntry::posted`]), so removing it touches one page.
//!   `search:post:{term}:{hour}` without a page is the layout before pages: still read, and
//!   removed from, never added to.
//! - **Directory** `search:dir:{term}`: the hours that have postings, ascending. Every post
//!   ensures its hour *after* adding to the page. Removing an order
//!   touches only its page; a query that walks an hour which is over and finds every page
//!   empty drops it (remove, then re-read the hour's pages and put the hour back if a writer
//!   posted meanwhile, so an hour with entries is never lost), which keeps status
//!   directories to the hours holding orders in that status. (Checking on every removal
//!   read the hour's every page whenever its open page emptied, which in a busy hour is
//!   several times per order, over a number of pages that grows with the hour's volume: ~400
//!   per term at 50,000 orders in one hour.)
//! - **Rows**: `search:order:{id}` ([`OrderEntry`]), read directly for an id search.
//!
//! A query picks one driving term (the e-mail's when given, else channel + status, status,
//! channel, or all), walks its directory newest first from the cursor, reads a few hours'
//! pages per batch, then the candidates' rows (one batch read), and keeps the rows that
//! match every filter — so a posting that lags a status change (or one left behind by a crash
//! between posting and recording its page) is never shown under the wrong status, and an
//! order posted twice is shown once. Nothing lists the store's keys.

use chrono::{DateTime, Utc};
use oms_domain::{OrderId, OrderStatus};
use oms_edge::{update_json, Change, Kv, KvError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::projection::{entry_key, OrderEntry};

/// One hour, in milliseconds: the posting bucket.
pub const HOUR_MS: i64 = 3_600_000;
/// Hours of postings read per batch.
const HOURS_PER_READ: usize = 6;
/// Candidate rows read per batch.
const ROWS_PER_READ: usize = 64;
/// Most orders one posting page holds.
pub const PAGE_ITEMS: usize = 128;

/// A posting: `(placed_at_ms, order id)`, newest first.
type Posting = Vec<(i64, Uuid)>;

/// The term of every order.
pub fn term_all() -> String {
    "all".into()
}

/// The term of a channel.
pub fn term_channel(channel: &str) -> String {
    format!("ch:{channel}")
}

/// The term of an e-mail address (case-insensitive).
pub fn term_email(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("em:{}", &hex::encode(digest)[..32])
}

/// The term of a status.
pub fn term_status(status: OrderStatus) -> String {
    format!("st:{}", status.as_str())
}

/// The term of a channel and status.
pub fn term_channel_status(channel: &str, status: OrderStatus) -> String {
    format!("cs:{channel}:{}", status.as_str())
}

/// The posting of `term` and `hour` as stored before pages (read and shrunk, never grown).
fn legacy_key(term: &str, hour: i64) -> String {
    format!("search:post:{term}:{hour}")
}

fn page_key(term: &str, hour: i64, page: u32) -> String {
    format!("search:post:{term}:{hour}:{page}")
}

fn head_key(term: &str, hour: i64) -> String {
    format!("search:head:{term}:{hour}")
}

fn dir_key(term: &str) -> String {
    format!("search:dir:{term}")
}

fn slot(at: DateTime<Utc>) -> (i64, i64) {
    let ms = at.timestamp_millis();
    (ms, ms.div_euclid(HOUR_MS))
}

/// The heads of `hours` (0 where none was written).
fn heads<K: Kv>(kv: &K, term: &str, hours: &[i64]) -> Result<Vec<(i64, u32)>, KvError> {
    let keys: Vec<String> = hours.iter().map(|h| head_key(term, *h)).collect();
    let heads = kv.get_many_json::<u32>(&keys)?;
    Ok(hours
        .iter()
        .zip(heads)
        .map(|(hour, head)| (*hour, head.unwrap_or(0)))
        .collect())
}

/// Every order posted under `term` in `hour` (whose head is `head`): its pre-page posting's
/// and every page's, read in batches.
fn hour_postings<K: Kv>(kv: &K, term: &str, hour: i64, head: u32) -> Result<Posting, KvError> {
    // The pre-page posting, then pages `0..=head`.
    let keys: Vec<String> = std::iter::once(legacy_key(term, hour))
        .chain((0..=head).map(|p| page_key(term, hour, p)))
        .collect();
    let mut items = Posting::new();
    for chunk in keys.chunks(ROWS_PER_READ) {
        for posting in kv.get_many_json::<Posting>(chunk)?.into_iter().flatten() {
            items.extend(posting);
        }
    }
    Ok(items)
}

/// Posts order `id` placed `at` under `term` (idempotent per page) and returns the page it
/// is on: the head page, or the next one when the head is full.
///
/// # Errors
/// [`KvError`] from the store.
pub fn post<K: Kv>(kv: &K, term: &str, at: DateTime<Utc>, id: OrderId) -> Result<u32, KvError> {
    let (ms, hour) = slot(at);
    let item = (ms, id.as_uuid());
    let head = head_key(term, hour);
    let mut page: u32 = kv.get_json(&head)?.unwrap_or(0);
    loop {
        let placed = update_json(
            kv,
            &page_key(term, hour, page),
            |current: Option<Posting>| {
                let mut p = current.unwrap_or_default();
                if p.contains(&item) {
                    return Ok::<_, KvError>(Change::Keep(true));
                }
                if p.len() >= PAGE_ITEMS {
                    return Ok(Change::Keep(false));
                }
                let at = p.iter().position(|x| *x < item).unwrap_or(p.len());
                p.insert(at, item);
                Ok(Change::Write(p, true))
            },
        )?;
        if placed {
            // Every post ensures the hour (one read when it is listed), after its page write:
            // a writer that crashed between the two is covered by the next post to the hour,
            // not only by its own redelivery.
            ensure_hour(kv, term, hour)?;
            return Ok(page);
        }
        let full = page;
        update_json(kv, &head, |current: Option<u32>| {
            Ok::<_, KvError>(if current.unwrap_or(0) <= full {
                Change::Write(full + 1, ())
            } else {
                Change::Keep(())
            })
        })?;
        page = full + 1;
    }
}

/// Removes order `id` placed `at` from `term` (idempotent): from `page` when known, else
/// from the hour's posting as stored before pages.
///
/// # Errors
/// [`KvError`] from the store.
pub fn unpost<K: Kv>(
    kv: &K,
    term: &str,
    at: DateTime<Utc>,
    id: OrderId,
    page: Option<u32>,
) -> Result<(), KvError> {
    let (ms, hour) = slot(at);
    let item = (ms, id.as_uuid());
    let key = match page {
        Some(p) => page_key(term, hour, p),
        None => legacy_key(term, hour),
    };
    update_json(kv, &key, |current: Option<Posting>| {
        Ok::<_, KvError>(match current {
            Some(mut p) if p.contains(&item) => {
                p.retain(|x| *x != item);
                Change::Write(p, ())
            }
            _ => Change::Keep(()),
        })
    })
}

/// Drops `hour` from `term`'s directory when none of its pages holds an order: the hour is
/// removed, then its pages are read again and the hour put back if a writer posted to one
/// meanwhile (every writer ensures the hour after adding to its page), so an hour with
/// postings is never lost.
fn drop_hour_if_empty<K: Kv>(kv: &K, term: &str, hour: i64) -> Result<(), KvError> {
    update_json(kv, &dir_key(term), |current: Option<Vec<i64>>| {
        Ok::<_, KvError>(match current {
            Some(mut hours) if hours.contains(&hour) => {
                hours.retain(|h| *h != hour);
                Change::Write(hours, ())
            }
            _ => Change::Keep(()),
        })
    })?;
    if !hour_is_empty(kv, term, hour)? {
        ensure_hour(kv, term, hour)?;
    }
    Ok(())
}

/// Whether no page of `term`'s `hour` (nor its legacy posting) holds an order.
fn hour_is_empty<K: Kv>(kv: &K, term: &str, hour: i64) -> Result<bool, KvError> {
    let head = heads(kv, term, &[hour])?
        .first()
        .map_or(0, |(_, head)| *head);
    Ok(hour_postings(kv, term, hour, head)?.is_empty())
}

/// The hour of the wall clock (a query only tidies hours before it).
fn current_hour() -> i64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    ms.div_euclid(HOUR_MS)
}

fn ensure_hour<K: Kv>(kv: &K, term: &str, hour: i64) -> Result<(), KvError> {
    update_json(kv, &dir_key(term), |current: Option<Vec<i64>>| {
        let mut hours = current.unwrap_or_default();
        match hours.binary_search(&hour) {
            Ok(_) => Ok::<_, KvError>(Change::Keep(())),
            Err(at) => {
                hours.insert(at, hour);
                Ok(Change::Write(hours, ()))
            }
        }
    })
}

/// What a search asks for (every given filter must match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// One order.
    pub id: Option<OrderId>,
    /// The customer's e-mail (case-insensitive).
    pub email: Option<String>,
    /// The order status.
    pub status: Option<OrderStatus>,
    /// The channel.
    pub channel: Option<String>,
}

impl Filter {
    fn matches(&self, e: &OrderEntry) -> bool {
        self.id.is_none_or(|id| id == e.order_id)
            && self.email.as_deref().is_none_or(|want| {
                e.email
                    .as_deref()
                    .is_some_and(|have| have.trim().eq_ignore_ascii_case(want.trim()))
            })
            && self.status.is_none_or(|s| e.status == Some(s))
            && self.channel.as_deref().is_none_or(|c| c == e.channel)
    }

    fn driving_term(&self) -> String {
        match (&self.email, &self.channel, self.status) {
            (Some(email), _, _) => term_email(email),
            (None, Some(c), Some(s)) => term_channel_status(c, s),
            (None, None, Some(s)) => term_status(s),
            (None, Some(c), None) => term_channel(c),
            (None, None, None) => term_all(),
        }
    }
}

/// Where a page starts: strictly older than this order (the previous page's last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Its placed-at milliseconds.
    pub ms: i64,
    /// Its id.
    pub id: Uuid,
}

impl Cursor {
    /// Reads `"{ms}.{uuid}"`.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (ms, id) = text.split_once('.')?;
        if id.len() != 36 || ms.starts_with('+') {
            return None;
        }
        Some(Cursor {
            ms: ms.parse().ok()?,
            id: Uuid::parse_str(id).ok()?,
        })
    }

    fn of(e: &OrderEntry) -> Cursor {
        Cursor {
            ms: e.created_at.timestamp_millis(),
            id: e.order_id.as_uuid(),
        }
    }

    fn after(self, item: (i64, Uuid)) -> bool {
        item < (self.ms, self.id)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.ms, self.id)
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRow {
    /// The order.
    pub order_id: OrderId,
    /// Its status (as last projected).
    pub status: Option<OrderStatus>,
    /// Its channel.
    pub channel: String,
    /// The customer's e-mail.
    pub email: Option<String>,
    /// Grand total.
    pub total: String,
    /// Currency code.
    pub currency: String,
    /// When it was placed.
    pub created_at: DateTime<Utc>,
}

impl From<&OrderEntry> for OrderRow {
    fn from(e: &OrderEntry) -> OrderRow {
        OrderRow {
            order_id: e.order_id,
            status: e.status,
            channel: e.channel.clone(),
            email: e.email.clone(),
            total: e.total.clone(),
            currency: e.currency.clone(),
            created_at: e.created_at,
        }
    }
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Newest first.
    pub orders: Vec<OrderRow>,
    /// Where the next page starts; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Up to `limit` orders matching `filter`, newest first, older than `cursor`.
///
/// # Errors
/// [`KvError`] from the store.
pub fn search<K: Kv>(
    kv: &K,
    filter: &Filter,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<Page, KvError> {
    let mut found: Vec<OrderEntry> = Vec::new();
    if let Some(id) = filter.id {
        let entry: Option<OrderEntry> = kv.get_json(&entry_key(id))?;
        found.extend(entry.filter(|e| {
            filter.matches(e)
                && cursor.is_none_or(|c| c.after((Cursor::of(e).ms, Cursor::of(e).id)))
        }));
        return Ok(page(found, limit));
    }
    let term = filter.driving_term();
    let hours: Vec<i64> = kv.get_json(&dir_key(&term))?.unwrap_or_default();
    let start = cursor.map(|c| c.ms.div_euclid(HOUR_MS));
    let hours: Vec<i64> = hours
        .into_iter()
        .rev()
        .filter(|h| start.is_none_or(|s| *h <= s))
        .collect();
    'hours: for batch in hours.chunks(HOURS_PER_READ) {
        let mut items: Vec<(i64, Uuid)> = Vec::new();
        let now = current_hour();
        for (hour, head) in heads(kv, &term, batch)? {
            let posted = hour_postings(kv, &term, hour, head)?;
            let empty = posted.is_empty();
            items.extend(
                posted
                    .into_iter()
                    .filter(|i| cursor.is_none_or(|c| c.after(*i))),
            );
            // Postings leave pages as orders change status, but an hour leaves the directory
            // here, not on every removal (that would read the hour's every page each time its
            // open page empties, several times per order in a busy hour): an hour that is
            // over and whose pages are all empty is dropped once, by the query that walks it.
            if empty && hour < now {
                drop_hour_if_empty(kv, &term, hour)?;
            }
        }
        items.sort_unstable_by(|a, b| b.cmp(a));
        items.dedup();
        for chunk in items.chunks(ROWS_PER_READ) {
            let keys: Vec<String> = chunk
                .iter()
                .map(|(_, id)| entry_key(OrderId::new(*id)))
                .collect();
            for ((ms, _), value) in chunk.iter().zip(kv.get_many(&keys)?) {
                let Some(entry) = value.and_then(|b| serde_json::from_slice::<OrderEntry>(&b).ok())
                else {
                    continue;
                };
                if entry.created_at.timestamp_millis() == *ms && filter.matches(&entry) {
                    found.push(entry);
                    if found.len() > limit {
                        break 'hours;
                    }
                }
            }
        }
    }
    Ok(page(found, limit))
}

fn page(mut found: Vec<OrderEntry>, limit: usize) -> Page {
    let more = found.len() > limit;
    found.truncate(limit);
    let next_cursor = if more {
        found.last().map(|e| Cursor::of(e).to_string())
    } else {
        None
    };
    Page {
        orders: found.iter().map(OrderRow::from).collect(),
        next_cursor,
    }
}
