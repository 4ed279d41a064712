//! query (`functions/query`): the cacheable reads. Each 200 carries a strong `ETag` and
//! `Cache-Control: no-cache`; `If-None-Match` with a current ETag is a 304 without a body.
//!
//! The bodies are the `Serialize` structs of `functions/query/src` (`OrderView`,
//! `Timeline`, `Availability`), mirrored here over the domain types they are made of.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::{
    ChannelId, Currency, Customer, Discount, EventEnvelope, FulfilmentPlan, FulfilmentStatus, Hold,
    LocationId, LocationKind, Money, OrderId, OrderLine, OrderStatus, Payment, PaymentState,
    Refund, Reservation, ReturnId, ShipmentRecord, Shipping, Sku, Totals,
};
use utoipa::{OpenApi, ToSchema};

/// The routes of the query component.
#[derive(OpenApi)]
#[openapi(paths(
    get_order,
    head_order,
    get_timeline,
    head_timeline,
    get_availability,
    head_availability,
    get_openapi,
    head_openapi
))]
pub struct Api;

/// `GET /v1/orders/{id}` (`functions/query/src/order_view.rs`): the order as accepted and
/// everything that happened to it, its three status dimensions side by side, without the
/// step runner's bookkeeping.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderView {
    id: OrderId,
    /// The lifecycle dimension.
    status: OrderStatus,
    /// From the shipments (a refund never moves it).
    fulfillment_status: FulfilmentStatus,
    /// From the refund ledger (shipping never moves it).
    payment_status: PaymentState,
    placed_at: DateTime<Utc>,
    channel: ChannelId,
    customer: Customer,
    currency: Currency,
    lines: Vec<OrderLine>,
    shipping: Shipping,
    discounts: Vec<Discount>,
    totals: Totals,
    payment: Payment,
    metadata: BTreeMap<String, String>,
    /// The stock held for it, once reserved (null before, and after release).
    reservation: Option<Reservation>,
    /// The fulfilment plan, once routed.
    plan: Option<FulfilmentPlan>,
    shipments: Vec<ShipmentRecord>,
    refunds: Vec<Refund>,
    refunded_total: Money,
    refundable: Money,
    /// Its return authorisations (`GET /v1/returns/{id}`).
    returns: Vec<ReturnId>,
    /// Why it was rejected or backordered.
    reason: Option<String>,
    /// Its active holds (at most one per reason): while any is, it is not routed.
    holds: Vec<Hold>,
    links: OrderLinks,
}

/// Where an order's other resources are.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderLinks {
    /// `/v1/orders/{id}/events`.
    events: String,
}

/// `GET /v1/orders/{id}/events`: the order's timeline, oldest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Timeline {
    order_id: OrderId,
    events: Vec<EventEnvelope>,
}

/// `GET /v1/availability/{sku}` (`functions/query/src/availability.rs`): the SKU's stock in
/// total and at every location that has a stock document for it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Availability {
    sku: Sku,
    on_hand: u64,
    reserved: u64,
    allocated: u64,
    /// On hand minus reserved and allocated: what can be promised.
    available: u64,
    locations: Vec<AtLocation>,
}

/// A SKU's stock at one location.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AtLocation {
    location: LocationId,
    kind: LocationKind,
    on_hand: u64,
    reserved: u64,
    allocated: u64,
    available: u64,
    /// Whether customers may collect there.
    pickup: bool,
}

/// Read an order.
///
/// The customer's own order (its access token) or any order (staff).
#[utoipa::path(
    get,
    path = "/v1/orders/{id}",
    operation_id = "getOrder",
    tag = "reads",
    security(("customer" = []), ("staff" = [])),
    params(
        ("id" = OrderId, Path, description = "the order id (the `id` of its 202)"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "The order", body = OrderView,
            headers(
                ("ETag" = String, description = "strong ETag of the body"),
                ("Cache-Control" = String, description = "`no-cache`"),
            ),
            links(
                ("getTimeline" = (operation_id = "getTimeline", parameters(("id" = "$response.body#/id")))),
                ("shipmentShipped" = (operation_id = "shipmentShipped", parameters(("id" = "$response.body#/shipments/0/id")))),
                ("shipmentDelivered" = (operation_id = "shipmentDelivered", parameters(("id" = "$response.body#/shipments/0/id")))),
                ("getReturn" = (operation_id = "getReturn", parameters(("id" = "$response.body#/returns/0")))),
                ("cancelOrder" = (operation_id = "cancelOrder", parameters(("id" = "$response.body#/id")))),
                ("refundOrder" = (operation_id = "refundOrder", parameters(("id" = "$response.body#/id")))),
                ("requestReturn" = (operation_id = "requestReturn", parameters(("id" = "$response.body#/id")))),
                ("placeHold" = (operation_id = "placeHold", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 304, response = crate::problem::NotModified),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn get_order() {}

/// Read an order's timeline (its events, oldest first).
///
/// The customer's own order (its access token) or any order (staff).
#[utoipa::path(
    get,
    path = "/v1/orders/{id}/events",
    operation_id = "getTimeline",
    tag = "reads",
    security(("customer" = []), ("staff" = [])),
    params(
        ("id" = OrderId, Path, description = "the order id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "The order's timeline, oldest first", body = Timeline,
            headers(
                ("ETag" = String, description = "strong ETag of the body"),
                ("Cache-Control" = String, description = "`no-cache`"),
            )),
        (status = 304, response = crate::problem::NotModified),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn get_timeline() {}

/// Stock per location and available-to-promise of a SKU (public).
///
/// An unknown SKU has no stock: zeros and no locations.
#[utoipa::path(
    get,
    path = "/v1/availability/{sku}",
    operation_id = "getAvailability",
    tag = "reads",
    params(
        ("sku" = Sku, Path, description = "the SKU"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "Stock per location and available-to-promise", body = Availability,
            headers(
                ("ETag" = String, description = "strong ETag of the body"),
                ("Cache-Control" = String, description = "`no-cache`"),
            )),
        (status = 304, response = crate::problem::NotModified),
        (status = 400, response = crate::problem::BadRequest),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn get_availability() {}

/// This document (OpenAPI 3.1), generated from the code (`api/`).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "reads",
    params(
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "This document", body = Object,
            headers(
                ("ETag" = String, description = "strong ETag of the body"),
                ("Cache-Control" = String, description = "`no-cache`"),
            )),
        (status = 304, response = crate::problem::NotModified),
    ),
)]
#[allow(dead_code)]
fn get_openapi() {}

/// `HEAD` of a read: the `GET`'s status and headers, no body.
macro_rules! head {
    ($name:ident, $path:literal, $id:literal, $summary:literal, [$($security:tt)*], ($($param:tt)*), ($($status:literal = $what:literal),*)) => {
        #[doc = $summary]
        #[utoipa::path(
            head,
            path = $path,
            operation_id = $id,
            tag = "reads",
            security($($security)*),
            params($($param)*),
            responses(
                (status = 200, description = "As `GET`, without the body",
                    headers(
                        ("ETag" = String, description = "strong ETag of the body `GET` answers"),
                        ("Cache-Control" = String, description = "`no-cache`"),
                    )),
                (status = 304, description = "Not modified: the ETag in `If-None-Match` is current"),
                $((status = $status, description = $what),)*
            ),
        )]
        #[allow(dead_code)]
        fn $name() {}
    };
}

head!(
    head_order,
    "/v1/orders/{id}",
    "headOrder",
    "`GET /v1/orders/{id}` without the body (staff or the order's customer).",
    [("customer" = []), ("staff" = [])],
    (
        ("id" = OrderId, Path, description = "the order id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer"),
    ),
    (400 = "Malformed order id", 401 = "No or a bad credential", 403 = "Not this caller's order",
     404 = "No such order", 503 = "Busy or the store did not answer; retry")
);
head!(
    head_timeline,
    "/v1/orders/{id}/events",
    "headTimeline",
    "`GET /v1/orders/{id}/events` without the body (staff or the order's customer).",
    [("customer" = []), ("staff" = [])],
    (
        ("id" = OrderId, Path, description = "the order id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer"),
    ),
    (400 = "Malformed order id", 401 = "No or a bad credential", 403 = "Not this caller's order",
     404 = "No such order", 503 = "Busy or the store did not answer; retry")
);
head!(
    head_availability,
    "/v1/availability/{sku}",
    "headAvailability",
    "`GET /v1/availability/{sku}` without the body.",
    [],
    (
        ("sku" = Sku, Path, description = "the SKU"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer"),
    ),
    (400 = "Malformed SKU", 503 = "Busy or the store did not answer; retry")
);
head!(
    head_openapi,
    "/v1/openapi.json",
    "headOpenApi",
    "`GET /v1/openapi.json` without the body.",
    [],
    (("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer"),),
    ()
);
