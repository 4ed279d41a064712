//! route (`functions/route`): shipment updates from warehouses and 3PLs, and order holds.
//!
//! A shipment update answers the shipment as the order now records it (`ShipmentRecord`,
//! a domain type). The hold endpoints (issue 12) are declared here as agreed in the session's
//! design (`POST /v1/orders/{id}/holds` `{reason, note}`, `POST …/holds/{reason}/release`
//! `{note, address}`); holds and their reasons are the domain's types.

use oms_domain::{Hold, HoldReason, OrderId, ShipmentId, ShipmentLabel, ShipmentRecord};

use crate::validate::AddressRequest;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The routes of the route component.
#[derive(OpenApi)]
#[openapi(paths(shipment_shipped, shipment_delivered, place_hold, release_hold))]
pub struct Api;

/// `POST /v1/shipments/{id}/shipped`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ShippedRequest {
    carrier: ShipmentLabel,
    tracking: ShipmentLabel,
}

/// `POST /v1/orders/{id}/holds`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HoldRequest {
    reason: HoldReason,
    /// Why (1-500 characters, not blank).
    #[schema(required = false, min_length = 1, max_length = 500, pattern = r"\S")]
    note: String,
}

/// `POST /v1/orders/{id}/holds/{reason}/release`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ReleaseRequest {
    /// Why (1-500 characters, not blank).
    #[schema(required = false, min_length = 1, max_length = 500, pattern = r"\S")]
    note: String,
    /// The delivery address obtained: only when releasing `address_needed` of an order
    /// delivered to an address, which gets it as its shipping address.
    #[schema(required = false)]
    address: AddressRequest,
}

/// An order's active holds after a hold or release (`functions/route/src/holds.rs`,
/// `HoldsView`), oldest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Holds {
    order_id: OrderId,
    holds: Vec<Hold>,
}

/// Mark a shipment shipped (idempotent).
///
/// A fulfilment key of the shipment's location, or staff.
#[utoipa::path(
    post,
    path = "/v1/shipments/{id}/shipped",
    operation_id = "shipmentShipped",
    tag = "fulfilment",
    security(("fulfilment" = []), ("staff" = [])),
    params(("id" = ShipmentId, Path, description = "the shipment id (`shipments[].id` of the order)")),
    request_body(content = ShippedRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The shipment as the order now records it (a repeat answers the same)", body = ShipmentRecord),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn shipment_shipped() {}

/// Mark a shipment delivered or collected (idempotent; after `shipped`).
///
/// A fulfilment key of the shipment's location, or staff.
#[utoipa::path(
    post,
    path = "/v1/shipments/{id}/delivered",
    operation_id = "shipmentDelivered",
    tag = "fulfilment",
    security(("fulfilment" = []), ("staff" = [])),
    params(("id" = ShipmentId, Path, description = "the shipment id")),
    responses(
        (status = 200, description = "The shipment as the order now records it (a repeat answers the same)", body = ShipmentRecord),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn shipment_delivered() {}

/// Hold an order (staff).
///
/// A held order keeps (or gets) its reservation but is not routed until every hold is
/// released. Records `order.held` with the caller. Not idempotent by key: a hold already
/// active for the reason is a 409 (the order is as asked); a routed order is a 409.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/holds",
    operation_id = "placeHold",
    tag = "holds",
    security(("staff" = [])),
    params(("id" = OrderId, Path, description = "the order id")),
    request_body(content = HoldRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The order's active holds", body = Holds,
            links(
                ("releaseHold" = (operation_id = "releaseHold", parameters(("id" = "$response.body#/order_id"), ("reason" = "$response.body#/holds/0/reason")))),
            )),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn place_hold() {}

/// Release an order's hold of one reason (staff).
///
/// Records `order.hold_released`; reserve and route then do their step if it is their turn.
/// Releasing `unmapped_item` first maps the unmapped lines through the channel's SKU
/// aliases: while a line has none it is a 409 naming the line. A hold not active is a 409.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/holds/{reason}/release",
    operation_id = "releaseHold",
    tag = "holds",
    security(("staff" = [])),
    params(
        ("id" = OrderId, Path, description = "the order id"),
        ("reason" = HoldReason, Path, description = "the hold's reason"),
    ),
    request_body(content = ReleaseRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The order's active holds", body = Holds),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn release_hold() {}
