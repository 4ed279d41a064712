//! insights (`functions/insights`): KPIs (JSON and Prometheus text) and order search, for
//! staff. The bodies mirror `functions/insights/src/kpi.rs` (`Kpis`) and
//! `functions/insights/src/search.rs` (`Page`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::OrderStatus;
use utoipa::{OpenApi, ToSchema};

/// The routes of the insights component.
#[derive(OpenApi)]
#[openapi(paths(kpis, kpi_metrics, search_orders))]
pub struct Api;

/// Orders.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct KpiOrders {
    /// Accepted in total.
    accepted: i64,
    /// Orders currently in each status (every status listed).
    by_status: BTreeMap<String, i64>,
    /// Orders accepted per channel.
    by_channel: BTreeMap<String, i64>,
}

/// Lines and units shipped against ordered.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FillRate {
    lines_ordered: i64,
    /// Lines shipped in full (counted when an order's last shipment leaves).
    lines_fulfilled: i64,
    units_ordered: i64,
    units_fulfilled: i64,
    /// `lines_fulfilled / lines_ordered`; null before any order.
    lines: Option<f64>,
    /// `units_fulfilled / units_ordered`; null before any order.
    units: Option<f64>,
}

/// Routed orders split over several shipments.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SplitShipments {
    routed_orders: i64,
    split_orders: i64,
    /// `split_orders / routed_orders`; null before any routing.
    rate: Option<f64>,
}

/// One histogram bucket (not cumulative).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HistogramBucket {
    /// Upper bound in seconds, `"+Inf"` for the last.
    #[schema(example = "0.5")]
    le: String,
    /// Observations above the previous bound, up to `le`.
    count: i64,
}

/// Time from acceptance to the first routing.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RoutingTime {
    count: i64,
    sum_seconds: f64,
    /// Estimated from the buckets (linear within a bucket); null without observations.
    p50_seconds: Option<f64>,
    p95_seconds: Option<f64>,
    buckets: Vec<HistogramBucket>,
}

/// Cancellations.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Cancellations {
    total: i64,
    /// Per status the order was cancelled from.
    by_from: BTreeMap<String, i64>,
}

/// Refunds under one reason.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefundReason {
    count: i64,
    /// Decimal amount per currency code.
    amount: BTreeMap<String, String>,
}

/// Refunds.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefundKpis {
    count: i64,
    /// Decimal amount per currency code.
    amount: BTreeMap<String, String>,
    /// Per reason: the caller's (lower-cased, at most 64 characters) or the cause
    /// (`cancellation`, `return`, `unspecified`); past 32 reasons, `other`.
    by_reason: BTreeMap<String, RefundReason>,
}

/// Returns.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReturnKpis {
    requested: i64,
    received: i64,
    inspected: i64,
    /// Inspected with at least one unit accepted.
    accepted: i64,
    /// Inspected with no unit accepted.
    rejected: i64,
    units_accepted: i64,
    units_rejected: i64,
}

/// Webhook deliveries settled.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookKpis {
    delivered: i64,
    dead_lettered: i64,
    /// `delivered / (delivered + dead_lettered)`; null before any.
    success_rate: Option<f64>,
}

/// `GET /v1/kpis`: projections of the lifecycle events, each event counted once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Kpis {
    orders: KpiOrders,
    fill_rate: FillRate,
    split_shipments: SplitShipments,
    accepted_to_routed: RoutingTime,
    /// Orders backordered.
    backorders: i64,
    /// Orders rejected.
    rejections: i64,
    cancellations: Cancellations,
    refunds: RefundKpis,
    returns: ReturnKpis,
    webhooks: WebhookKpis,
}

/// One order found.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderHit {
    #[schema(format = Uuid)]
    order_id: String,
    /// As last projected from its events.
    status: OrderStatus,
    channel: String,
    /// Null when the order has none (some marketplace orders).
    email: Option<String>,
    /// Grand total, a decimal string in `currency`.
    #[schema(example = "48.18")]
    total: String,
    #[schema(example = "USD")]
    currency: String,
    created_at: DateTime<Utc>,
}

/// `GET /v1/search/orders`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderSearch {
    /// Newest first.
    orders: Vec<OrderHit>,
    /// Pass as `cursor` for the next page; null on the last.
    next_cursor: Option<String>,
}

/// The KPIs as JSON (staff).
#[utoipa::path(
    get,
    path = "/v1/kpis",
    operation_id = "getKpis",
    tag = "insights",
    security(("staff" = [])),
    responses(
        (status = 200, description = "The KPIs", body = Kpis,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn kpis() {}

/// The KPIs in the Prometheus text exposition format 0.0.4, metrics `oms_kpi_*` (staff).
#[utoipa::path(
    get,
    path = "/v1/kpis/metrics",
    operation_id = "getKpiMetrics",
    tag = "insights",
    security(("staff" = [])),
    responses(
        (status = 200, description = "Prometheus text (`text/plain; version=0.0.4`)",
            body = String, content_type = "text/plain",
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn kpi_metrics() {}

/// Search orders, newest first (staff). Every given parameter must match; an empty one is a
/// 422 (leave it out instead).
#[utoipa::path(
    get,
    path = "/v1/search/orders",
    operation_id = "searchOrders",
    tag = "insights",
    security(("staff" = [])),
    params(
        ("q" = Option<String>, Query, nullable = false,
            pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[^@]*@.*)$",
            description = "an order id (that order only) or an e-mail address (as `email`)"),
        ("email" = Option<String>, Query, nullable = false, min_length = 1,
            description = "the customer's e-mail address, case-insensitive"),
        ("status" = Option<OrderStatus>, Query, nullable = false, description = "the order status"),
        ("channel" = Option<String>, Query, nullable = false, pattern = r"^[A-Za-z0-9._-]{1,64}$",
            description = "the sales channel"),
        ("limit" = Option<u32>, Query, nullable = false, minimum = 1, maximum = 100,
            description = "results per page (default 20)"),
        ("cursor" = Option<String>, Query, nullable = false,
            pattern = r"^-?[0-9]{1,18}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            description = "the previous page's `next_cursor`"),
    ),
    responses(
        (status = 200, description = "A page of orders", body = OrderSearch,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn search_orders() {}
