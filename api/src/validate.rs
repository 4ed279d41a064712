//! validate (`functions/validate`): order intake from storefronts and marketplaces.
//!
//! The order document is parsed by hand (`Order::from_request` reports every violation with
//! its pointer), so its request schema is written here from `shared/src/order_intake.rs`;
//! the leaf values (SKU, quantity, currency, e-mail, country, method, payment status) are the
//! domain types' own schemas.

use std::collections::BTreeMap;

use oms_domain::openapi::amount;
use oms_domain::{
    ChannelId, Coordinates, CountryCode, Currency, Email, LocationId, PostalCode, Quantity, Sku,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The routes of the validate component.
#[derive(OpenApi)]
#[openapi(paths(place_order, marketplace_order))]
pub struct Api;

/// `POST /v1/orders`: an order document (storefront).
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct OrderRequest {
    channel: ChannelId,
    customer: CustomerRequest,
    currency: Currency,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    lines: Vec<LineRequest>,
    shipping: ShippingRequest,
    /// Order-level discounts (at most 20).
    #[schema(required = false, max_items = 20)]
    discounts: Vec<DiscountRequest>,
    #[schema(schema_with = amount)]
    tax: String,
    /// Whether the line prices already include `tax` (default false).
    #[schema(required = false)]
    taxes_included: bool,
    /// Checked exactly against the totals recomputed from the lines.
    totals: TotalsRequest,
    payment: PaymentRequest,
    /// Up to 50 string entries (keys ≤ 40, values ≤ 500 characters).
    #[schema(required = false)]
    metadata: BTreeMap<String, String>,
}

/// The customer of an order document.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CustomerRequest {
    email: Email,
    #[schema(required = false, max_length = 200)]
    name: String,
}

/// One order line.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LineRequest {
    sku: Sku,
    quantity: Quantity,
    #[schema(schema_with = amount)]
    unit_price: String,
    /// Taken off this line (default 0).
    #[schema(required = false, schema_with = amount)]
    discount: String,
}

/// How a storefront order is delivered (`ShippingMethod` without `digital`, which
/// marketplace orders only may use).
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum StorefrontShipping {
    /// Delivered, standard.
    Standard,
    /// Delivered, express.
    Express,
    /// Collected at a store (`pickup_location`).
    Pickup,
}

/// A storefront payment's state (`PaymentStatus` without the marketplace-only `pending` and
/// `partially_paid`).
#[derive(ToSchema, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum StorefrontPayment {
    /// Authorized, not captured: the reservation expires unless captured.
    Authorized,
    /// Captured.
    Captured,
}

/// Delivery: an address for `standard`/`express`, a store for `pickup`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ShippingRequest {
    method: StorefrontShipping,
    #[schema(schema_with = amount)]
    amount: String,
    #[schema(required = false)]
    address: AddressRequest,
    #[schema(required = false)]
    pickup_location: LocationId,
}

/// A delivery address; whether `postal_code` is required and its format depend on `country`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct AddressRequest {
    country: CountryCode,
    #[schema(required = false)]
    postal_code: PostalCode,
    #[schema(min_length = 1, max_length = 200)]
    line1: String,
    #[schema(required = false, max_length = 200)]
    line2: String,
    #[schema(min_length = 1, max_length = 200)]
    city: String,
    #[schema(required = false, max_length = 200)]
    region: String,
    #[schema(required = false)]
    coordinates: Coordinates,
}

/// An order-level discount.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DiscountRequest {
    #[schema(min_length = 1, max_length = 64)]
    code: String,
    #[schema(schema_with = amount)]
    amount: String,
}

/// The totals the caller computed.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TotalsRequest {
    #[schema(schema_with = amount)]
    subtotal: String,
    #[schema(schema_with = amount)]
    discount: String,
    #[schema(schema_with = amount)]
    shipping: String,
    #[schema(schema_with = amount)]
    tax: String,
    #[schema(schema_with = amount)]
    grand_total: String,
}

/// The payment backing the order.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PaymentRequest {
    #[schema(min_length = 1, max_length = 255)]
    reference: String,
    status: StorefrontPayment,
    #[schema(schema_with = amount)]
    amount: String,
}

/// The 202 of an order taken in (`functions/validate/src/receipt.rs`, `Accepted`). The same
/// bytes for every attempt at the same intent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Accepted {
    /// The order id, derived from the intent (Idempotency-Key or channel + external id).
    id: oms_domain::OrderId,
    /// Always `validated`.
    #[schema(pattern = "^validated$", example = "validated")]
    status: String,
    links: AcceptedLinks,
    /// The customer's per-order token (`oms_ot_…`): bearer credential for this order's reads,
    /// cancel and return requests; derived from the order id, so every attempt answers the
    /// same one.
    access_token: String,
}

/// Where an accepted order is.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AcceptedLinks {
    /// `/v1/orders/{id}`.
    #[schema(rename = "self")]
    order: String,
    /// `/v1/orders/{id}/events`.
    events: String,
}

/// The 200 of a marketplace delivery that made no new order (`functions/validate`:
/// `receipt.rs` `Duplicate`, `shopify_intake.rs`).
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum MarketplaceAnswer {
    /// A redelivery: the order the delivery already made.
    Duplicate(Duplicate),
    /// Shopify `orders/cancelled`: the order, cancelled (also one taken in cancelled from
    /// the cancellation because its `orders/create` never came).
    Cancelled(MarketplaceCancelled),
    /// A Shopify topic with nothing to do: the delivery is authentic and acknowledged.
    Ignored(Ignored),
}

/// Shopify `orders/cancelled` answered.
#[derive(ToSchema, Serialize)]
#[allow(dead_code)]
pub struct MarketplaceCancelled {
    id: oms_domain::OrderId,
    /// The order's status now (`cancelled`).
    status: oms_domain::OrderStatus,
    /// Shopify's order id.
    external_id: String,
}

/// A Shopify topic other than `orders/create` and `orders/cancelled`.
#[derive(ToSchema, Serialize)]
#[allow(dead_code)]
pub struct Ignored {
    /// Always `ignored`.
    #[schema(pattern = "^ignored$", example = "ignored")]
    status: String,
    /// The `X-Shopify-Topic` received.
    topic: String,
}

/// A redelivery: the order the delivery already made.
#[derive(ToSchema, Serialize)]
#[allow(dead_code)]
pub struct Duplicate {
    id: oms_domain::OrderId,
    /// Always `duplicate`.
    #[schema(pattern = "^duplicate$", example = "duplicate")]
    status: String,
    /// The channel's id for the order.
    external_id: String,
    /// The customer's per-order token, as in `Accepted`.
    access_token: String,
}

/// Place a storefront order.
///
/// Stored and queued for reservation. The order id derives from the `Idempotency-Key`, so a
/// retry finds the same order: same key and body → the first 202 again; same key, other body
/// → 422; a refused request (4xx) is not kept, so a corrected body may reuse the key (keys
/// kept 24 h).
#[utoipa::path(
    post,
    path = "/v1/orders",
    operation_id = "placeOrder",
    tag = "orders",
    params(
        ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,255}$",
            description = "1-255 visible ASCII characters; same key and body → the first response again; same key, other body → 422; kept 24 h"),
    ),
    request_body(content = OrderRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: stored and queued for reservation", body = Accepted,
            headers(("Location" = String, description = "`/v1/orders/{id}`")),
            links(
                ("getOrder" = (operation_id = "getOrder", parameters(("id" = "$response.body#/id")))),
                ("getTimeline" = (operation_id = "getTimeline", parameters(("id" = "$response.body#/id")))),
                ("cancelOrder" = (operation_id = "cancelOrder", parameters(("id" = "$response.body#/id")))),
                ("refundOrder" = (operation_id = "refundOrder", parameters(("id" = "$response.body#/id")))),
                ("requestReturn" = (operation_id = "requestReturn", parameters(("id" = "$response.body#/id")))),
                ("placeHold" = (operation_id = "placeHold", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, response = crate::problem::BadRequest),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn place_order() {}

/// Marketplace webhook (Shopify `orders/create` or Standard Webhooks).
///
/// Each channel (Spin variable `channel_secrets`) signs one way, checked on the raw body
/// before anything is parsed. Shopify channels: `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256
/// of the raw body), the body is Shopify's order payload. Standard channels: `webhook-id`,
/// `webhook-timestamp` (±5 min) and `webhook-signature` (`v1,<base64>`, several separated by
/// spaces during secret rotation); the body is an `OrderRequest` whose `channel` is the one in
/// the path. The order id derives from (channel, external id): a redelivery answers 200 with
/// the first order. A bad or missing signature is a 401 and nothing is stored.
#[utoipa::path(
    post,
    path = "/v1/channels/{channel}/orders",
    operation_id = "marketplaceOrder",
    tag = "orders",
    params(
        ("channel" = ChannelId, Path, description = "a configured channel"),
        ("X-Shopify-Hmac-Sha256" = Option<String>, Header, nullable = false, description = "Shopify channels: base64 HMAC-SHA256 of the raw body with the app secret"),
        ("X-Shopify-Topic" = Option<String>, Header, nullable = false, description = "Shopify channels: `orders/create`, `orders/cancelled`; any other topic is answered 200 `ignored`"),
        ("X-Shopify-Event-Id" = Option<String>, Header, nullable = false, description = "Shopify channels: the event's id, the same on every delivery attempt: the first answer is replayed to later attempts (24 h)"),
        ("webhook-id" = Option<String>, Header, nullable = false, description = "Standard channels: the message id (the order's external id)"),
        ("webhook-timestamp" = Option<String>, Header, nullable = false, description = "Standard channels: Unix seconds, within 5 minutes of now"),
        ("webhook-signature" = Option<String>, Header, nullable = false, description = "Standard channels: `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`; space-separated list"),
    ),
    request_body(content = Object, content_type = "application/json",
        description = "Shopify's order payload (Shopify channels) or an `OrderRequest` (Standard channels)"),
    responses(
        (status = 202, description = "Accepted: a new order", body = Accepted,
            headers(("Location" = String, description = "`/v1/orders/{id}`")),
            links(
                ("getOrder" = (operation_id = "getOrder", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 200, description = "No new order: a redelivery (the order it already made), a Shopify cancellation (the order cancelled) or a topic with nothing to do", body = MarketplaceAnswer),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn marketplace_order() {}
