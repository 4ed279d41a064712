//! The KPIs in the Prometheus text exposition format (0.0.4), encoded by the `prometheus`
//! crate's `TextEncoder` from metric families built out of the summed counters (the values
//! live in the store, not in process-local collectors: a component instance lives for one
//! request).

use std::collections::BTreeMap;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use rust_decimal::prelude::ToPrimitive;

use crate::kpi::{self, Counters, BUCKETS_SECONDS};

/// The `Content-Type` of the exposition.
pub fn content_type() -> String {
    TextEncoder::new().format_type().to_string()
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.into());
    l.set_value(value.into());
    l
}

fn sample(kind: MetricType, labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(labels);
    match kind {
        MetricType::GAUGE => {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        _ => {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
    }
    m
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> Option<MetricFamily> {
    if metrics.is_empty() {
        return None;
    }
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(metrics);
    Some(f)
}

fn single(name: &str, help: &str, kind: MetricType, value: i64) -> Option<MetricFamily> {
    family(name, help, kind, vec![sample(kind, vec![], value as f64)])
}

fn labelled(
    name: &str,
    help: &str,
    kind: MetricType,
    label_name: &str,
    values: impl IntoIterator<Item = (String, f64)>,
) -> Option<MetricFamily> {
    let metrics = values
        .into_iter()
        .map(|(v, n)| sample(kind, vec![label(label_name, &v)], n))
        .collect();
    family(name, help, kind, metrics)
}

fn as_f64(m: &BTreeMap<String, i64>) -> Vec<(String, f64)> {
    m.iter().map(|(k, v)| (k.clone(), *v as f64)).collect()
}

fn histogram(c: &Counters) -> Option<MetricFamily> {
    let counts = kpi::buckets(c);
    let mut cumulative = 0u64;
    let mut buckets = Vec::new();
    for (le, n) in BUCKETS_SECONDS.iter().zip(&counts) {
        cumulative += u64::try_from(*n).unwrap_or(0);
        let mut b = Bucket::default();
        b.set_upper_bound(*le);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    let mut h = Histogram::default();
    h.set_bucket(buckets);
    h.set_sample_count(u64::try_from(counts.iter().sum::<i64>()).unwrap_or(0));
    h.set_sample_sum(c.routed_sum_ms as f64 / 1000.0);
    let mut m = Metric::default();
    m.set_histogram(h);
    family(
        "oms_kpi_accepted_to_routed_seconds",
        "Time from an order's acceptance to its first routing.",
        MetricType::HISTOGRAM,
        vec![m],
    )
}

/// The families for `c`, in a stable order.
pub fn families(c: &Counters) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let statuses: Vec<(String, f64)> = oms_domain::OrderStatus::ALL
        .iter()
        .map(|s| {
            (
                s.as_str().to_string(),
                c.status.get(s.as_str()).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    let refunded = c
        .refunded
        .iter()
        .map(|(cur, a)| (cur.clone(), a.to_f64().unwrap_or(0.0)));
    let reasons = c
        .refunds_by_reason
        .iter()
        .map(|(r, t)| (r.clone(), t.count as f64));
    let returns = [
        ("requested", c.returns_requested),
        ("received", c.returns_received),
        ("inspected", c.returns_inspected),
        ("accepted", c.returns_accepted),
        ("rejected", c.returns_rejected),
    ]
    .map(|(k, v)| (k.to_string(), v as f64));
    let webhooks = [
        ("delivered", c.webhooks_delivered),
        ("dead_lettered", c.webhooks_dead),
    ]
    .map(|(k, v)| (k.to_string(), v as f64));
    [
        labelled(
            "oms_kpi_orders_accepted_total",
            "Orders accepted, per channel.",
            COUNTER,
            "channel",
            as_f64(&c.accepted_by_channel),
        ),
        labelled(
            "oms_kpi_orders",
            "Orders currently in each status.",
            GAUGE,
            "status",
            statuses,
        ),
        single(
            "oms_kpi_order_lines_ordered_total",
            "Order lines accepted.",
            COUNTER,
            c.lines_ordered,
        ),
        single(
            "oms_kpi_order_lines_fulfilled_total",
            "Order lines shipped in full.",
            COUNTER,
            c.lines_fulfilled,
        ),
        single(
            "oms_kpi_units_ordered_total",
            "Units accepted.",
            COUNTER,
            c.units_ordered,
        ),
        single(
            "oms_kpi_units_fulfilled_total",
            "Units shipped.",
            COUNTER,
            c.units_fulfilled,
        ),
        single(
            "oms_kpi_orders_routed_total",
            "Orders routed.",
            COUNTER,
            c.routed,
        ),
        single(
            "oms_kpi_orders_split_total",
            "Routed orders whose plan has several shipments.",
            COUNTER,
            c.split,
        ),
        histogram(c),
        single(
            "oms_kpi_orders_backordered_total",
            "Orders backordered.",
            COUNTER,
            c.backordered,
        ),
        single(
            "oms_kpi_orders_rejected_total",
            "Orders rejected.",
            COUNTER,
            c.rejected,
        ),
        labelled(
            "oms_kpi_orders_cancelled_total",
            "Orders cancelled, per status cancelled from.",
            COUNTER,
            "from",
            as_f64(&c.cancelled_by_from),
        ),
        labelled(
            "oms_kpi_refunds_total",
            "Refunds booked, per reason.",
            COUNTER,
            "reason",
            reasons,
        ),
        labelled(
            "oms_kpi_refunded_amount_total",
            "Amount refunded, per currency.",
            COUNTER,
            "currency",
            refunded,
        ),
        labelled(
            "oms_kpi_returns_total",
            "Returns per step and outcome.",
            COUNTER,
            "outcome",
            returns,
        ),
        labelled(
            "oms_kpi_webhooks_total",
            "Webhook deliveries settled, per outcome.",
            COUNTER,
            "outcome",
            webhooks,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The exposition text for `c`.
///
/// # Errors
/// The encoder's message (a family it refuses: a bug).
pub fn text(c: &Counters) -> Result<String, String> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families(c), &mut out)
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}
