//! notify (`functions/notify`): outbound webhook subscriptions and their delivery log.
//!
//! Subscriptions are answered with `json!` (`Subscription::redacted`, the list and the
//! delivery log), mirrored here; the event filter's values come from the domain's event
//! types (`EventType::ALL`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use oms_domain::EventType;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{OpenApi, PartialSchema, ToSchema};

/// The routes of the notify component.
#[derive(OpenApi)]
#[openapi(paths(
    subscribe,
    list_subscriptions,
    get_subscription,
    unsubscribe,
    deliveries,
    redrive,
    redrive_all
))]
pub struct Api;

/// Which events a subscriber wants: `*`, a family (`order.*`, `return.*`) or one type.
#[derive(Serialize)]
pub struct EventFilter;

impl PartialSchema for EventFilter {
    fn schema() -> RefOr<Schema> {
        let mut values = vec!["*".to_string()];
        for t in EventType::ALL {
            let family = format!("{}.*", t.as_str().split('.').next().unwrap_or_default());
            if !values.contains(&family) {
                values.push(family);
            }
        }
        values.extend(EventType::ALL.iter().map(|t| t.as_str().to_string()));
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values))
                .build(),
        ))
    }
}

impl ToSchema for EventFilter {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("EventFilter")
    }
}

/// `POST /v1/webhooks`.
#[derive(ToSchema, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SubscribeRequest {
    /// An absolute `https://` URL (plain `http://` only to 127.0.0.1 or localhost), without
    /// credentials or fragment.
    #[schema(
        max_length = 2048,
        pattern = r"^(https://[A-Za-z0-9.-]+|http://(127\.0\.0\.1|localhost))(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[A-Za-z0-9._~/-]*)?$",
        example = "https://example.com/hooks/oms"
    )]
    url: String,
    /// 1 to 32 filters.
    #[schema(min_items = 1, max_items = 32)]
    events: Vec<EventFilter>,
    /// A Standard Webhooks secret `whsec_<base64 of 24-64 bytes>`; generated when absent (or null).
    #[schema(required = false, pattern = r"^whsec_(?:[A-Za-z0-9+/]{4}){8,21}$")]
    secret: Option<String>,
}

/// A subscription as listed (its secret is shown only at registration).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Subscription {
    #[schema(format = Uuid)]
    id: String,
    url: String,
    events: Vec<EventFilter>,
    created_at: DateTime<Utc>,
}

/// The 201 of a registration: the subscription with its signing secret, shown this once.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewSubscription {
    #[schema(format = Uuid)]
    id: String,
    url: String,
    events: Vec<EventFilter>,
    created_at: DateTime<Utc>,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks).
    secret: String,
}

/// `GET /v1/webhooks`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Subscriptions {
    webhooks: Vec<Subscription>,
}

/// Where a webhook delivery is.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum DeliveryState {
    /// Another attempt will be made.
    Pending,
    /// The subscriber answered 2xx.
    Delivered,
    /// Every allowed attempt failed: dead-lettered.
    Dead,
}

/// What is known about delivering one event to one subscriber
/// (`functions/notify/src/delivery.rs`, `DeliveryRecord`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Delivery {
    /// The event's id (the `webhook-id` header).
    #[schema(format = Uuid)]
    event_id: String,
    event_type: EventType,
    #[schema(format = Uuid)]
    order_id: String,
    sequence: u64,
    state: DeliveryState,
    attempts: u32,
    /// The subscriber's last HTTP status.
    #[schema(required = false)]
    last_status: u16,
    /// The last transport error.
    #[schema(required = false)]
    last_error: String,
    first_attempt_at: DateTime<Utc>,
    last_attempt_at: DateTime<Utc>,
    #[schema(required = false)]
    settled_at: DateTime<Utc>,
    #[schema(required = false)]
    in_flight_until: DateTime<Utc>,
    /// Its re-drives by staff, oldest first (the last 10); absent when never re-driven.
    #[schema(required = false)]
    redrives: Vec<Redrive>,
}

/// A dead delivery put back to pending by staff with a fresh attempt budget.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Redrive {
    at: DateTime<Utc>,
    /// Who: `staff:root` (the bootstrap token) or `staff:<key id>`.
    by: String,
    /// Attempts made before it (counted again from 0).
    attempts: u32,
    /// Why the last of them failed.
    #[schema(required = false)]
    last_error: String,
}

/// A dead delivery that `POST /v1/webhooks/{id}/redrive` could not re-drive.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RedriveFailure {
    #[schema(format = Uuid)]
    event_id: String,
    /// Why (e.g. 410: its order is no longer stored).
    problem: crate::problem::Problem,
}

/// `POST /v1/webhooks/{id}/redrive`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Redriven {
    /// The subscription id.
    subscription: String,
    /// The deliveries now pending again, newest first.
    redriven: Vec<Delivery>,
    failed: Vec<RedriveFailure>,
    /// Dead deliveries left for another call (at most 50 are re-driven per call).
    remaining: u32,
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Deliveries {
    /// The subscription id.
    subscription: String,
    /// Newest first.
    deliveries: Vec<Delivery>,
}

/// Subscribe a URL to events (staff).
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "subscribe",
    tag = "webhooks",
    security(("staff" = [])),
    request_body(content = SubscribeRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "The subscription with its signing secret (shown this once)", body = NewSubscription,
            headers(("Location" = String, description = "`/v1/webhooks/{id}`")),
            links(
                ("getSubscription" = (operation_id = "getSubscription", parameters(("id" = "$response.body#/id")))),
                ("deliveries" = (operation_id = "deliveries", parameters(("id" = "$response.body#/id")))),
                ("unsubscribe" = (operation_id = "unsubscribe", parameters(("id" = "$response.body#/id")))),
            )),
        (status = 400, response = crate::problem::BadRequest),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 409, response = crate::problem::Conflict),
        (status = 422, response = crate::problem::Unprocessable),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn subscribe() {}

/// List the subscriptions, oldest first, secrets left out (staff).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "listSubscriptions",
    tag = "webhooks",
    security(("staff" = [])),
    params(("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current")),
    responses(
        (status = 200, description = "The subscriptions", body = Subscriptions,
            headers(
                ("ETag" = String, description = "strong ETag of the body"),
                ("Cache-Control" = String, description = "`no-cache`"),
            )),
        (status = 304, response = crate::problem::NotModified),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn list_subscriptions() {}

/// Read a subscription, secret left out (staff).
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    operation_id = "getSubscription",
    tag = "webhooks",
    security(("staff" = [])),
    params(
        ("id" = String, Path, description = "the subscription id"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "The subscription", body = Subscription,
            headers(
                ("ETag" = String, description = "strong ETag of the body"),
                ("Cache-Control" = String, description = "`no-cache`"),
            )),
        (status = 304, response = crate::problem::NotModified),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn get_subscription() {}

/// Delete a subscription and its delivery log (staff).
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "unsubscribe",
    tag = "webhooks",
    security(("staff" = [])),
    params(("id" = String, Path, description = "the subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn unsubscribe() {}

/// Recent deliveries of a subscription, newest first (staff).
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    operation_id = "deliveries",
    tag = "webhooks",
    security(("staff" = [])),
    params(
        ("id" = String, Path, description = "the subscription id"),
        ("state" = Option<DeliveryState>, Query, description = "only deliveries in this state"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "an ETag of an earlier answer: 304 while it is current"),
    ),
    responses(
        (status = 200, description = "Attempts, last status, delivered | pending | dead", body = Deliveries,
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
fn deliveries() {}

/// Re-drive a dead-lettered delivery (staff): back to `pending` with a fresh budget of
/// `webhook_max_attempts`, sent again with the same `webhook-id` and retried like a first
/// delivery; the re-drive is noted in its `redrives`. 409 when it is `pending` or
/// `delivered` (the problem names the state), 410 when its order is no longer stored, 503 when
/// the queue did not take it: in each case it stays as it was.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{event_id}/redrive",
    operation_id = "redrive",
    tag = "webhooks",
    security(("staff" = [])),
    params(
        ("id" = String, Path, description = "the subscription id"),
        ("event_id" = String, Path, format = Uuid, description = "the delivery's event id (its `webhook-id`)"),
    ),
    responses(
        (status = 202, description = "Pending again, its attempts to come", body = Delivery,
            links(("deliveries" = (operation_id = "deliveries", parameters(("id" = "$request.path.id")))))),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 409, response = crate::problem::Conflict),
        (status = 410, response = crate::problem::Gone),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn redrive() {}

/// Re-drive a subscription's dead-lettered deliveries, the newest 50 per call (staff).
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/redrive",
    operation_id = "redriveAll",
    tag = "webhooks",
    security(("staff" = [])),
    params(("id" = String, Path, description = "the subscription id")),
    responses(
        (status = 200, description = "What was re-driven, what could not be, and how many dead ones are left", body = Redriven),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 404, response = crate::problem::NotFound),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn redrive_all() {}
