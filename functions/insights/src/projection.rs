//! The projection: what each message adds to the KPIs and how it moves the order in the search
//! index, applied once per message id.
//!
//! Per order, one document `search:order:{id}` ([`OrderEntry`]) is both the search index's
//! row and the projection's memory for that order: the ids of the messages already applied
//! (bounded by the order's own events and webhooks, so it never grows beyond the order), the
//! status it is posted under, whether it was routed and split. Handling a message is:
//!
//! 1. read the stored order (`order:{id}`: the truth the events come from);
//! 2. one compare-and-swap of the entry: if the message id is new, decide ([`project`], pure)
//!    the KPI delta and the posting moves, record them in the entry's `pending` list (its
//!    outbox) and the id as seen — else change nothing;
//! 3. [`flush`] the pending operations: postings added/removed (idempotent set operations),
//!    the delta added to its counter shard (which remembers the last delta ids it applied,
//!    see `kpi`), then the operation removed from `pending`.
//!
//! A crash anywhere leaves either nothing done (the redelivery decides again) or a pending
//! operation that the redelivery — or any later message of the order — finishes. The only
//! way to count twice is a crash between a shard write and the removal of the operation
//! followed by a redelivery after that shard applied [`crate::kpi::RECENT`] other deltas.
//!
//! The status is re-read from the stored order on every message (only moving forward, by
//! its number of events), so out-of-order deliveries converge on the order's real status.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::{
    EventEnvelope, EventType, OrderId, OrderStatus, RefundCause, RefundRecorded, ReturnInspected,
};
use oms_edge::{keys, update_json, Change, Kv, KvError, OrderRecord};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kpi::{self, Counters};
use crate::message::{Message, Settled};
use crate::search;

/// Longest refund reason kept (characters); longer ones are cut.
pub const MAX_REASON_CHARS: usize = 64;

/// What the projection keeps per order (also the search index's row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEntry {
    /// The order.
    pub order_id: OrderId,
    /// Its channel.
    pub channel: String,
    /// The customer's e-mail, when given.
    pub email: Option<String>,
    /// Grand total (decimal string).
    pub total: String,
    /// Currency code.
    pub currency: String,
    /// When it was placed (the index's time axis).
    pub created_at: DateTime<Utc>,
    /// The status it is posted under (`None` before the first message).
    pub status: Option<OrderStatus>,
    /// How many events the stored order had when that status was read.
    #[serde(default)]
    pub status_events: u64,
    /// The routing counted for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed: Option<Routed>,
    /// Ids of the messages applied.
    #[serde(default)]
    pub seen: Vec<Uuid>,
    /// Operations decided but not yet fully applied (the outbox).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Op>,
    /// The posting page the order is on, per term it is posted under (see [`search`]); a
    /// term missing here (posted before pages, or a crash between posting and recording)
    /// is removed from the hour's pre-page posting, and a copy left behind is filtered out
    /// by queries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub posted: BTreeMap<String, u32>,
}

/// The routing an order was counted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    /// The `order.routed` event's sequence.
    pub sequence: u64,
    /// Whether its plan had several shipments.
    pub split: bool,
}

/// One message's effect, applied by [`flush`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The message id (the shard de-duplicates on it).
    pub id: Uuid,
    /// KPI delta.
    #[serde(default)]
    pub delta: Counters,
    /// Search terms the order joins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<String>,
    /// Search terms the order leaves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpost: Vec<String>,
}

impl OrderEntry {
    /// A fresh entry for a stored order (no status posted yet).
    pub fn new(record: &OrderRecord) -> OrderEntry {
        let order = record.order();
        OrderEntry {
            order_id: order.id(),
            channel: order.channel().as_str().to_string(),
            email: order.customer().email().map(|e| e.as_str().to_string()),
            total: order.totals().grand_total.amount().to_string(),
            currency: order.currency().code().to_string(),
            created_at: order.placed_at(),
            status: None,
            status_events: 0,
            routed: None,
            seen: Vec::new(),
            pending: Vec::new(),
            posted: BTreeMap::new(),
        }
    }
}

/// The key of an order's entry.
pub fn entry_key(id: OrderId) -> String {
    format!("search:order:{id}")
}

/// Decides what `message` does to `entry`, given the stored order: `false` (nothing changed)
/// when the message was applied before; else the entry records the message as seen and, when
/// it changes anything, a pending [`Op`].
pub fn project(entry: &mut OrderEntry, message: &Message, record: &OrderRecord) -> bool {
    let id = message.id();
    if entry.seen.contains(&id) {
        return false;
    }
    let mut op = Op {
        id,
        ..Op::default()
    };
    sync_status(entry, record, &mut op);
    match message {
        Message::Event(e) => count_event(entry, e, record, &mut op.delta),
        Message::Webhook(w) => match w.outcome {
            Settled::Delivered => op.delta.webhooks_delivered += 1,
            Settled::DeadLettered => op.delta.webhooks_dead += 1,
        },
    }
    entry.seen.push(id);
    if !(op.delta.is_zero() && op.post.is_empty() && op.unpost.is_empty()) {
        entry.pending.push(op);
    }
    true
}

/// Moves the entry to the stored order's status when the order has moved on since.
fn sync_status(entry: &mut OrderEntry, record: &OrderRecord, op: &mut Op) {
    let events = record.events().len() as u64;
    if events <= entry.status_events {
        return;
    }
    entry.status_events = events;
    let now = record.status();
    if entry.status == Some(now) {
        return;
    }
    match entry.status {
        None => {
            op.post.push(search::term_all());
            op.post.push(search::term_channel(&entry.channel));
            if let Some(email) = &entry.email {
                op.post.push(search::term_email(email));
            }
        }
        Some(old) => {
            *op.delta.status.entry(old.as_str().into()).or_insert(0) -= 1;
            op.unpost.push(search::term_status(old));
            op.unpost
                .push(search::term_channel_status(&entry.channel, old));
        }
    }
    *op.delta.status.entry(now.as_str().into()).or_insert(0) += 1;
    op.post.push(search::term_status(now));
    op.post
        .push(search::term_channel_status(&entry.channel, now));
    entry.status = Some(now);
}

fn count_event(entry: &mut OrderEntry, e: &EventEnvelope, record: &OrderRecord, d: &mut Counters) {
    let order = record.order();
    match e.event_type() {
        EventType::OrderValidated => {
            *d.accepted_by_channel
                .entry(entry.channel.clone())
                .or_insert(0) += 1;
            d.lines_ordered += order.lines().len() as i64;
            d.units_ordered += order
                .lines()
                .iter()
                .map(|l| i64::from(l.quantity().get()))
                .sum::<i64>();
        }
        EventType::OrderBackordered => d.backordered += 1,
        EventType::OrderRejected => d.rejected += 1,
        EventType::OrderRouted => routed(entry, e, record, d),
        EventType::OrderShipped => {
            for (line, shipped) in order.lines().iter().zip(record.units_shipped()) {
                let ordered = line.quantity().get();
                d.units_fulfilled += i64::from(shipped.min(ordered));
                d.lines_fulfilled += i64::from(shipped >= ordered);
            }
        }
        EventType::OrderCancelled => {
            let from = e.data()["from"].as_str().unwrap_or("unknown").to_string();
            *d.cancelled_by_from.entry(from).or_insert(0) += 1;
        }
        EventType::OrderRefunded | EventType::OrderPartiallyRefunded => {
            if let Ok(r) = serde_json::from_value::<RefundRecorded>(e.data().clone()) {
                refunded(&r, d);
            }
        }
        EventType::ReturnRequested => d.returns_requested += 1,
        EventType::ReturnReceived => d.returns_received += 1,
        EventType::ReturnInspected => {
            if let Ok(r) = serde_json::from_value::<ReturnInspected>(e.data().clone()) {
                let returned: i64 = r.lines.iter().map(|l| i64::from(l.quantity.get())).sum();
                let accepted: i64 = r
                    .lines
                    .iter()
                    .map(|l| i64::from(l.accepted.unwrap_or(0)))
                    .sum();
                d.returns_inspected += 1;
                d.units_accepted += accepted;
                d.units_rejected += returned - accepted;
                if accepted > 0 {
                    d.returns_accepted += 1;
                } else {
                    d.returns_rejected += 1;
                }
            }
        }
        _ => {}
    }
}

/// The first routing counts the order as routed (and split, with more than one shipment) and
/// observes accepted → routed from the stored timeline; a later re-route only moves the split
/// count when its plan's split differs.
fn routed(entry: &mut OrderEntry, e: &EventEnvelope, record: &OrderRecord, d: &mut Counters) {
    let split = e.data()["shipments"].as_u64().unwrap_or(1) > 1;
    let now = Routed {
        sequence: e.sequence(),
        split,
    };
    match entry.routed {
        None => {
            d.routed += 1;
            d.split += i64::from(split);
            let accepted = record.events().first().map(EventEnvelope::occurred_at);
            let first_routed = record
                .events()
                .iter()
                .find(|x| x.event_type() == EventType::OrderRouted)
                .map(EventEnvelope::occurred_at)
                .unwrap_or(e.occurred_at());
            if let Some(accepted) = accepted {
                d.observe_routed((first_routed - accepted).num_milliseconds());
            }
            entry.routed = Some(now);
        }
        Some(prev) if now.sequence > prev.sequence => {
            if prev.split != split {
                d.split += if split { 1 } else { -1 };
            }
            entry.routed = Some(now);
        }
        Some(_) => {}
    }
}

fn refunded(r: &RefundRecorded, d: &mut Counters) {
    let amount: Decimal = r.refund.amount.amount();
    let currency = r.currency.clone();
    d.refunds += 1;
    *d.refunded.entry(currency.clone()).or_insert(Decimal::ZERO) += amount;
    let reason = reason_key(r.reason.as_deref(), &r.cause);
    let totals = d.refunds_by_reason.entry(reason).or_default();
    totals.count += 1;
    *totals.amount.entry(currency).or_insert(Decimal::ZERO) += amount;
}

/// The reason a refund is counted under: the caller's text (trimmed, lower-cased, spaces
/// collapsed, at most [`MAX_REASON_CHARS`]) or else its cause.
pub fn reason_key(reason: Option<&str>, cause: &RefundCause) -> String {
    let text = reason
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if !text.is_empty() {
        return text.chars().take(MAX_REASON_CHARS).collect();
    }
    match cause {
        RefundCause::Cancellation => "cancellation",
        RefundCause::Return { .. } => "return",
        RefundCause::Request { .. } => "unspecified",
    }
    .to_string()
}

/// What handling a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Applied now.
    Applied,
    /// Applied before (a redelivery); only what was left pending was finished.
    Duplicate,
    /// Its order is not in the store: nothing to project.
    NoOrder,
}

/// Applies `message` (see the module docs).
///
/// # Errors
/// [`KvError`] from the store: the message should be redelivered (what was done is finished,
/// never repeated, by the next delivery).
pub fn handle<K: Kv>(kv: &K, message: &Message) -> Result<Handled, KvError> {
    let id = message.order_id();
    let Some(record) = kv.get_json::<OrderRecord>(&keys::order(&id.to_string()))? else {
        return Ok(Handled::NoOrder);
    };
    let (applied, entry) = update_json(kv, &entry_key(id), |current: Option<OrderEntry>| {
        let mut entry = current.unwrap_or_else(|| OrderEntry::new(&record));
        Ok::<_, KvError>(if project(&mut entry, message, &record) {
            Change::Write(entry.clone(), (true, entry))
        } else {
            Change::Keep((false, entry))
        })
    })?;
    flush(kv, id, &entry)?;
    Ok(if applied {
        Handled::Applied
    } else {
        Handled::Duplicate
    })
}

/// Finishes the pending operations of `entry` (order `id`'s entry as just read or written),
/// oldest first.
///
/// # Errors
/// [`KvError`] from the store; what is left stays pending.
pub fn flush<K: Kv>(kv: &K, id: OrderId, entry: &OrderEntry) -> Result<(), KvError> {
    let key = entry_key(id);
    // The pages as they stand after each operation (a later operation may remove what an
    // earlier one posted).
    let mut posted = entry.posted.clone();
    for op in &entry.pending {
        for term in &op.unpost {
            let page = posted.remove(term);
            search::unpost(kv, term, entry.created_at, id, page)?;
        }
        for term in &op.post {
            let page = search::post(kv, term, entry.created_at, id)?;
            posted.insert(term.clone(), page);
        }
        if !op.delta.is_zero() {
            kpi::apply(kv, op.id, &op.delta)?;
        }
        update_json(kv, &key, |current: Option<OrderEntry>| {
            Ok::<_, KvError>(match current {
                Some(mut e) if e.pending.iter().any(|p| p.id == op.id) => {
                    e.pending.retain(|p| p.id != op.id);
                    for term in &op.unpost {
                        e.posted.remove(term);
                    }
                    for term in &op.post {
                        if let Some(page) = posted.get(term) {
                            e.posted.insert(term.clone(), *page);
                        }
                    }
                    Change::Write(e, ())
                }
                _ => Change::Keep(()),
            })
        })?;
    }
    Ok(())
}
