//! The KPI counters: what one event adds ([`Counters`], a delta), where the sums live
//! (sharded documents, each updated by compare-and-swap with a bounded memory of the deltas
//! it has applied), and the view served as JSON ([`Kpis`]).
//!
//! Keys: `kpi:shard:{0..SHARDS}`, each a [`Shard`]. A delta goes to the shard its id hashes
//! to, so concurrent events mostly touch different keys; a compare-and-swap that loses a race
//! is redone on the new value ([`oms_edge::update_json`]), so no update is lost. Reading sums
//! the shards (one batch read).

use std::collections::BTreeMap;

use oms_edge::{update_json, Change, Kv, KvError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many counter documents the sums are spread over. (8 until the soak showed each
/// event rewriting a 20 KB shard: 32 shards remembering 128 ids each keep the same 4,096
/// ids, so the same time window, in documents a quarter the size. Shards 0..8 written
/// before are still summed; a delta pending across that change may land on another shard.)
pub const SHARDS: u128 = 32;
/// How many applied delta ids each shard remembers (oldest forgotten first): a redelivery
/// of a delta already applied is recognised while it is among the shard's last `RECENT`.
pub const RECENT: usize = 128;
/// Upper bounds (seconds) of the accepted → routed histogram's buckets; one more bucket
/// (`+Inf`) follows.
pub const BUCKETS_SECONDS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
/// Most distinct refund reasons kept; later ones are counted under `other`.
pub const MAX_REASONS: usize = 32;
/// The catch-all refund reason past [`MAX_REASONS`].
pub const OTHER_REASON: &str = "other";

/// The key of shard `n`.
pub fn shard_key(n: u128) -> String {
    format!("kpi:shard:{n}")
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Refunds under one reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasonTotals {
    /// How many refunds.
    pub count: i64,
    /// Their amount per currency.
    pub amount: BTreeMap<String, Decimal>,
}

/// Counts; as a delta, what one event adds (negative for a gauge moving down).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Orders accepted, per channel.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted_by_channel: BTreeMap<String, i64>,
    /// Orders currently in each status (a gauge).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub status: BTreeMap<String, i64>,
    /// Order lines accepted.
    #[serde(skip_serializing_if = "is_zero")]
    pub lines_ordered: i64,
    /// Lines shipped in full (counted when the order's last shipment leaves).
    #[serde(skip_serializing_if = "is_zero")]
    pub lines_fulfilled: i64,
    /// Units accepted.
    #[serde(skip_serializing_if = "is_zero")]
    pub units_ordered: i64,
    /// Units shipped (counted when the order's last shipment leaves).
    #[serde(skip_serializing_if = "is_zero")]
    pub units_fulfilled: i64,
    /// Orders routed (once each, whatever re-routes follow).
    #[serde(skip_serializing_if = "is_zero")]
    pub routed: i64,
    /// Routed orders whose current plan has more than one shipment.
    #[serde(skip_serializing_if = "is_zero")]
    pub split: i64,
    /// Accepted → first routed, per bucket of [`BUCKETS_SECONDS`] plus `+Inf` (not cumulative).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routed_buckets: Vec<i64>,
    /// Sum of those durations, milliseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub routed_sum_ms: i64,
    /// Orders backordered (once each).
    #[serde(skip_serializing_if = "is_zero")]
    pub backordered: i64,
    /// Orders rejected.
    #[serde(skip_serializing_if = "is_zero")]
    pub rejected: i64,
    /// Orders cancelled, per status cancelled from.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cancelled_by_from: BTreeMap<String, i64>,
    /// Refunds booked.
    #[serde(skip_serializing_if = "is_zero")]
    pub refunds: i64,
    /// Amount refunded per currency.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub refunded: BTreeMap<String, Decimal>,
    /// Refunds per reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub refunds_by_reason: BTreeMap<String, ReasonTotals>,
    /// Returns opened.
    #[serde(skip_serializing_if = "is_zero")]
    pub returns_requested: i64,
    /// Returns received.
    #[serde(skip_serializing_if = "is_zero")]
    pub returns_received: i64,
    /// Returns inspected.
    #[serde(skip_serializing_if = "is_zero")]
    pub returns_inspected: i64,
    /// Inspected returns with at least one unit accepted.
    #[serde(skip_serializing_if = "is_zero")]
    pub returns_accepted: i64,
    /// Inspected returns with no unit accepted.
    #[serde(skip_serializing_if = "is_zero")]
    pub returns_rejected: i64,
    /// Returned units accepted at inspection.
    #[serde(skip_serializing_if = "is_zero")]
    pub units_accepted: i64,
    /// Returned units rejected at inspection.
    #[serde(skip_serializing_if = "is_zero")]
    pub units_rejected: i64,
    /// Webhooks delivered.
    #[serde(skip_serializing_if = "is_zero")]
    pub webhooks_delivered: i64,
    /// Webhooks dead-lettered.
    #[serde(skip_serializing_if = "is_zero")]
    pub webhooks_dead: i64,
}

fn add_map(into: &mut BTreeMap<String, i64>, from: &BTreeMap<String, i64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn add_money(into: &mut BTreeMap<String, Decimal>, from: &BTreeMap<String, Decimal>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(Decimal::ZERO) += v;
    }
}

impl Counters {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &Counters) {
        add_map(&mut self.accepted_by_channel, &other.accepted_by_channel);
        add_map(&mut self.status, &other.status);
        add_map(&mut self.cancelled_by_from, &other.cancelled_by_from);
        add_money(&mut self.refunded, &other.refunded);
        for (reason, totals) in &other.refunds_by_reason {
            let key = if self.refunds_by_reason.len() >= MAX_REASONS
                && !self.refunds_by_reason.contains_key(reason)
            {
                OTHER_REASON.to_string()
            } else {
                reason.clone()
            };
            let into = self.refunds_by_reason.entry(key).or_default();
            into.count += totals.count;
            add_money(&mut into.amount, &totals.amount);
        }
        if self.routed_buckets.len() < other.routed_buckets.len() {
            self.routed_buckets.resize(other.routed_buckets.len(), 0);
        }
        for (i, n) in other.routed_buckets.iter().enumerate() {
            self.routed_buckets[i] += n;
        }
        let pairs = [
            (&mut self.lines_ordered, other.lines_ordered),
            (&mut self.lines_fulfilled, other.lines_fulfilled),
            (&mut self.units_ordered, other.units_ordered),
            (&mut self.units_fulfilled, other.units_fulfilled),
            (&mut self.routed, other.routed),
            (&mut self.split, other.split),
            (&mut self.routed_sum_ms, other.routed_sum_ms),
            (&mut self.backordered, other.backordered),
            (&mut self.rejected, other.rejected),
            (&mut self.refunds, other.refunds),
            (&mut self.returns_requested, other.returns_requested),
            (&mut self.returns_received, other.returns_received),
            (&mut self.returns_inspected, other.returns_inspected),
            (&mut self.returns_accepted, other.returns_accepted),
            (&mut self.returns_rejected, other.returns_rejected),
            (&mut self.units_accepted, other.units_accepted),
            (&mut self.units_rejected, other.units_rejected),
            (&mut self.webhooks_delivered, other.webhooks_delivered),
            (&mut self.webhooks_dead, other.webhooks_dead),
        ];
        for (into, n) in pairs {
            *into += n;
        }
    }

    /// Whether adding these counts changes nothing.
    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }

    /// Records one accepted → routed duration.
    pub fn observe_routed(&mut self, millis: i64) {
        let seconds = millis.max(0) as f64 / 1000.0;
        let bucket = BUCKETS_SECONDS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(BUCKETS_SECONDS.len());
        self.routed_buckets.resize(BUCKETS_SECONDS.len() + 1, 0);
        self.routed_buckets[bucket] += 1;
        self.routed_sum_ms += millis.max(0);
    }
}

/// One counter document: its sums and the ids of the deltas it applied last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// The sums.
    pub counters: Counters,
    /// Ids of the last [`RECENT`] deltas applied, oldest first.
    #[serde(default)]
    pub recent: Vec<Uuid>,
}

/// Adds delta `id` to its shard unless that shard applied it already; `true` when added.
///
/// # Errors
/// [`KvError`] from the store (contention included): nothing was added.
pub fn apply<K: Kv>(kv: &K, id: Uuid, delta: &Counters) -> Result<bool, KvError> {
    let key = shard_key(id.as_u128() % SHARDS);
    update_json(kv, &key, |current: Option<Shard>| {
        let mut shard = current.unwrap_or_default();
        if shard.recent.contains(&id) {
            return Ok::<_, KvError>(Change::Keep(false));
        }
        shard.counters.add(delta);
        shard.recent.push(id);
        if shard.recent.len() > RECENT {
            let excess = shard.recent.len() - RECENT;
            shard.recent.drain(..excess);
        }
        Ok(Change::Write(shard, true))
    })
}

/// The sums over every shard.
///
/// # Errors
/// [`KvError`] from the store, or a shard that does not read as one.
pub fn totals<K: Kv>(kv: &K) -> Result<Counters, KvError> {
    let keys: Vec<String> = (0..SHARDS).map(shard_key).collect();
    let mut sum = Counters::default();
    for shard in kv.get_many_json::<Shard>(&keys)?.into_iter().flatten() {
        sum.add(&shard.counters);
    }
    Ok(sum)
}

/// `GET /v1/kpis`: the KPIs as served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    /// Orders.
    pub orders: Orders,
    /// Lines and units fulfilled against ordered.
    pub fill_rate: FillRate,
    /// Routed orders split over several shipments.
    pub split_shipments: Split,
    /// Accepted → routed.
    pub accepted_to_routed: Histogram,
    /// Orders backordered.
    pub backorders: i64,
    /// Orders rejected.
    pub rejections: i64,
    /// Cancellations.
    pub cancellations: Cancellations,
    /// Refunds.
    pub refunds: Refunds,
    /// Returns.
    pub returns: Returns,
    /// Webhook deliveries.
    pub webhooks: Webhooks,
}

/// Order counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orders {
    /// Accepted in total.
    pub accepted: i64,
    /// Currently in each status (every status listed).
    pub by_status: BTreeMap<String, i64>,
    /// Accepted per channel.
    pub by_channel: BTreeMap<String, i64>,
}

/// Fill rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillRate {
    /// Lines accepted.
    pub lines_ordered: i64,
    /// Lines shipped in full.
    pub lines_fulfilled: i64,
    /// Units accepted.
    pub units_ordered: i64,
    /// Units shipped.
    pub units_fulfilled: i64,
    /// `lines_fulfilled / lines_ordered`.
    pub lines: Option<f64>,
    /// `units_fulfilled / units_ordered`.
    pub units: Option<f64>,
}

/// Split shipments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    /// Orders routed.
    pub routed_orders: i64,
    /// Of which split.
    pub split_orders: i64,
    /// `split_orders / routed_orders`.
    pub rate: Option<f64>,
}

/// A histogram with its estimated quantiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// Observations.
    pub count: i64,
    /// Their sum.
    pub sum_seconds: f64,
    /// Estimated median (linear within the bucket, as Prometheus' `histogram_quantile`).
    pub p50_seconds: Option<f64>,
    /// Estimated 95th percentile.
    pub p95_seconds: Option<f64>,
    /// Per bucket (not cumulative).
    pub buckets: Vec<Bucket>,
}

/// One histogram bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound in seconds (`"+Inf"` for the last).
    pub le: String,
    /// Observations in (previous bound, `le`].
    pub count: i64,
}

/// Cancellations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cancellations {
    /// In total.
    pub total: i64,
    /// Per status cancelled from.
    pub by_from: BTreeMap<String, i64>,
}

/// Refunds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refunds {
    /// How many.
    pub count: i64,
    /// Amount per currency (decimal strings).
    pub amount: BTreeMap<String, String>,
    /// Per reason.
    pub by_reason: BTreeMap<String, ReasonView>,
}

/// Refunds under one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonView {
    /// How many.
    pub count: i64,
    /// Amount per currency (decimal strings).
    pub amount: BTreeMap<String, String>,
}

/// Returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Returns {
    /// Opened.
    pub requested: i64,
    /// Received.
    pub received: i64,
    /// Inspected.
    pub inspected: i64,
    /// Inspected with some unit accepted.
    pub accepted: i64,
    /// Inspected with none accepted.
    pub rejected: i64,
    /// Units accepted.
    pub units_accepted: i64,
    /// Units rejected.
    pub units_rejected: i64,
}

/// Webhook deliveries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhooks {
    /// Delivered.
    pub delivered: i64,
    /// Dead-lettered.
    pub dead_lettered: i64,
    /// `delivered / (delivered + dead_lettered)`.
    pub success_rate: Option<f64>,
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn money(m: &BTreeMap<String, Decimal>) -> BTreeMap<String, String> {
    m.iter().map(|(c, a)| (c.clone(), a.to_string())).collect()
}

/// The bucket upper bounds as Prometheus writes them (`"+Inf"` last).
pub fn bucket_labels() -> Vec<String> {
    BUCKETS_SECONDS
        .iter()
        .map(f64::to_string)
        .chain(["+Inf".to_string()])
        .collect()
}

/// Counts per bucket, padded to every bucket.
pub fn buckets(c: &Counters) -> Vec<i64> {
    let mut b = c.routed_buckets.clone();
    b.resize(BUCKETS_SECONDS.len() + 1, 0);
    b
}

/// The `q` quantile of a histogram (non-cumulative `counts` over [`BUCKETS_SECONDS`] and
/// `+Inf`), interpolating linearly within the bucket; `None` without observations. A rank in
/// the `+Inf` bucket answers the highest finite bound.
pub fn quantile(counts: &[i64], q: f64) -> Option<f64> {
    let total: i64 = counts.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0i64;
    for (i, n) in counts.iter().enumerate() {
        if *n > 0 && (below + n) as f64 >= rank {
            let Some(upper) = BUCKETS_SECONDS.get(i) else {
                return BUCKETS_SECONDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { BUCKETS_SECONDS[i - 1] };
            let within = ((rank - below as f64) / *n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * within);
        }
        below += n;
    }
    BUCKETS_SECONDS.last().copied()
}

impl Kpis {
    /// The view of `c`.
    pub fn of(c: &Counters) -> Kpis {
        let by_status = oms_domain::OrderStatus::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str().to_string(),
                    c.status.get(s.as_str()).copied().unwrap_or(0),
                )
            })
            .collect();
        let counts = buckets(c);
        let webhooks_settled = c.webhooks_delivered + c.webhooks_dead;
        Kpis {
            orders: Orders {
                accepted: c.accepted_by_channel.values().sum(),
                by_status,
                by_channel: c.accepted_by_channel.clone(),
            },
            fill_rate: FillRate {
                lines_ordered: c.lines_ordered,
                lines_fulfilled: c.lines_fulfilled,
                units_ordered: c.units_ordered,
                units_fulfilled: c.units_fulfilled,
                lines: ratio(c.lines_fulfilled, c.lines_ordered),
                units: ratio(c.units_fulfilled, c.units_ordered),
            },
            split_shipments: Split {
                routed_orders: c.routed,
                split_orders: c.split,
                rate: ratio(c.split, c.routed),
            },
            accepted_to_routed: Histogram {
                count: counts.iter().sum(),
                sum_seconds: c.routed_sum_ms as f64 / 1000.0,
                p50_seconds: quantile(&counts, 0.5),
                p95_seconds: quantile(&counts, 0.95),
                buckets: bucket_labels()
                    .into_iter()
                    .zip(&counts)
                    .map(|(le, count)| Bucket { le, count: *count })
                    .collect(),
            },
            backorders: c.backordered,
            rejections: c.rejected,
            cancellations: Cancellations {
                total: c.cancelled_by_from.values().sum(),
                by_from: c.cancelled_by_from.clone(),
            },
            refunds: Refunds {
                count: c.refunds,
                amount: money(&c.refunded),
                by_reason: c
                    .refunds_by_reason
                    .iter()
                    .map(|(r, t)| {
                        let view = ReasonView {
                            count: t.count,
                            amount: money(&t.amount),
                        };
                        (r.clone(), view)
                    })
                    .collect(),
            },
            returns: Returns {
                requested: c.returns_requested,
                received: c.returns_received,
                inspected: c.returns_inspected,
                accepted: c.returns_accepted,
                rejected: c.returns_rejected,
                units_accepted: c.units_accepted,
                units_rejected: c.units_rejected,
            },
            webhooks: Webhooks {
                delivered: c.webhooks_delivered,
                dead_lettered: c.webhooks_dead,
                success_rate: ratio(c.webhooks_delivered, webhooks_settled),
            },
        }
    }
}
