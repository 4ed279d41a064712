//! refund (`functions/refund`): cancellations, refunds, returns and their inspection.
//!
//! The request bodies are parsed by hand (`functions/refund/src/requests.rs`, every problem
//! named by pointer) and the answers are built with `json!` (`refund_view`, the cancel and
//! inspection views), so both are mirrored here; the return itself, refunds, items and
//! restock lines are domain types.

use oms_domain::openapi::amount;
use oms_domain::{
    Currency, LineRestock, OrderId, OrderStatus, PaymentState, Quantity, Refund,
    ReturnAuthorization, ReturnId, ReturnedItem,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The routes of the refund component.
#[derive(OpenApi)]
#[openapi(paths(
    cancel_order,
    refund_order,
    request_return,
    get_return,
    return_received,
    inspect_return
))]
pub struct Api;

/// `POST /v1/orders/{id}/cancel`: an optional body.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CancelRequest {
    /// Recorded with `order.cancelled`.
    #[schema(required = false, max_length = 500)]
    reason: String,
}

/// `POST /v1/orders/{id}/refunds`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct RefundRequest {
    /// What to refund, valued item by item; never above captured minus refunded.
    #[schema(min_items = 1, max_items = 500)]
    items: Vec<RefundItemRequest>,
    #[schema(required = false, max_length = 500)]
    reason: String,
}

/// One item of a refund request.
#[derive(ToSchema, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
pub enum RefundItemRequest {
    /// Units of an order line (index into the order's `lines`).
    Line {
        /// The line index.
        line: usize,
        /// Units, at most those not yet refunded.
        quantity: Quantity,
    },
    /// The shipping charge (once).
    Shipping,
    /// An amount in the order's currency.
    Amount {
        /// A decimal string (`"5.00"`).
        #[schema(schema_with = amount)]
        amount: String,
    },
}

/// `POST /v1/orders/{id}/returns`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ReturnRequest {
    /// Lines and units, at most those shipped and not yet returned.
    #[schema(min_items = 1, max_items = 500)]
    items: Vec<ReturnedItem>,
    #[schema(required = false, max_length = 500)]
    reason: String,
}

/// `POST /v1/returns/{id}/inspection`: a verdict per returned line.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct InspectionRequest {
    /// Exactly the returned lines.
    #[schema(min_items = 1, max_items = 500)]
    lines: Vec<VerdictRequest>,
}

/// The verdict on one returned line.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct VerdictRequest {
    /// The order line.
    line: usize,
    accepted: Accepted,
}

/// `true` (every returned unit), `false` (none) or the number of units accepted.
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Accepted {
    /// All or none.
    Whole(bool),
    /// Units, at most those returned.
    Units(u32),
}

/// A refund as its event recorded it, with the order's status (`refund_view`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefundView {
    order_id: OrderId,
    refund: Refund,
    /// Refunded so far, this refund included.
    #[schema(schema_with = amount)]
    refunded_total: String,
    /// Captured minus refunded.
    #[schema(schema_with = amount)]
    refundable: String,
    currency: Currency,
    payment_status: PaymentState,
    status: OrderStatus,
}

/// The answer of a cancel (the same for the first and any repeat).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CancelView {
    order_id: OrderId,
    status: OrderStatus,
    payment_status: PaymentState,
    /// The automatic refund of a captured payment; null when nothing was captured.
    refund: Option<RefundView>,
}

/// The answer of an inspection (the same for the first and any repeat).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct InspectionView {
    #[schema(rename = "return")]
    ret: Option<ReturnAuthorization>,
    /// Where the accepted units went back on the shelf.
    restocked: Vec<LineRestock>,
    /// The refund of the accepted units; null when none were accepted for value.
    refund: Option<RefundView>,
}

/// Cancel an order that has not shipped.
///
/// Releases its held stock and refunds a captured payment in full. A repeated cancel
/// changes nothing and answers the same. The customer's own order (its access token) or
/// staff.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/cancel",
    operation_id = "cancelOrder",
    tag = "after-sales",
    security(("customer" = []), ("staff" = [])),
    params(
        ("id" = OrderId, Path, description = "the order id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,255}$",
            description = "optional: same key and body → the first answer again; same key, other body → 422"),
    ),
    request_body(content = Option<CancelRequest>, content_type = "application/json",
        description = "optional: an empty body is fine"),
    responses(
        (status = 200, description = "Cancelled (or already): the statuses and the automatic refund", body = CancelView),
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
fn cancel_order() {}

/// Refund part or all of a shipped order (staff).
///
/// Never above captured minus refunded. The refund records its `Idempotency-Key` as its
/// cause, so a retry finds its own refund instead of booking a second.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/refunds",
    operation_id = "refundOrder",
    tag = "after-sales",
    security(("staff" = [])),
    params(
        ("id" = OrderId, Path, description = "the order id"),
        ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,255}$",
            description = "required: same key and body → the first answer again; same key, other body → 422; kept 24 h"),
    ),
    request_body(content = RefundRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Refunded", body = RefundView,
            links(
                ("getOrder" = (operation_id = "getOrder", parameters(("id" = "$response.body#/order_id")))),
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
fn refund_order() {}

/// Request a return of shipped units.
///
/// Opens a return authorisation in state `requested`, capped by the units shipped and not
/// yet returned. With an `Idempotency-Key` the return's id derives from the key, so a retry
/// finds the same return. The customer's own order (its access token) or staff.
#[utoipa::path(
    post,
    path = "/v1/orders/{id}/returns",
    operation_id = "requestReturn",
    tag = "after-sales",
    security(("customer" = []), ("staff" = [])),
    params(
        ("id" = OrderId, Path, description = "the order id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = r"^[!-~]{1,255}$",
            description = "optional: same key and body → the first answer again; same key, other body → 422"),
    ),
    request_body(content = ReturnRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The return authorisation, state `requested`", body = ReturnAuthorization,
            links(
                ("getReturn" = (operation_id = "getReturn", parameters(("id" = "$response.body#/id")))),
                ("returnReceived" = (operation_id = "returnReceived", parameters(("id" = "$response.body#/id")))),
                ("inspectReturn" = (operation_id = "inspectReturn", parameters(("id" = "$response.body#/id")))),
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
fn request_return() {}

/// Read a return (staff).
#[utoipa::path(
    get,
    path = "/v1/returns/{id}",
    operation_id = "getReturn",
    tag = "after-sales",
    security(("staff" = [])),
    params(("id" = ReturnId, Path, description = "the return id")),
    responses(
        (status = 200, description = "The return", body = ReturnAuthorization),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn get_return() {}

/// Book a return's parcel in: `requested → received` (staff). A repeat answers the same.
#[utoipa::path(
    post,
    path = "/v1/returns/{id}/received",
    operation_id = "returnReceived",
    tag = "after-sales",
    security(("staff" = [])),
    params(("id" = ReturnId, Path, description = "the return id")),
    responses(
        (status = 200, description = "The return, state `received`", body = ReturnAuthorization,
            links(
                ("inspectReturn" = (operation_id = "inspectReturn", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn return_received() {}

/// Inspect a received return (staff).
///
/// Records the verdict per line, refunds the accepted units and restocks them where they
/// shipped from. The same inspection again changes nothing and answers the same.
#[utoipa::path(
    post,
    path = "/v1/returns/{id}/inspection",
    operation_id = "inspectReturn",
    tag = "after-sales",
    security(("staff" = [])),
    params(("id" = ReturnId, Path, description = "the return id")),
    request_body(content = InspectionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Inspected: the return, the restock and the refund", body = InspectionView),
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
fn inspect_return() {}
