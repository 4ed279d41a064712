//! reserve (`functions/reserve`): the reservation-expiry sweep over HTTP (the
//! `expiry-sweeper` cron component runs the same sweep every minute).

use utoipa::{OpenApi, ToSchema};

/// The routes of the reserve component.
#[derive(OpenApi)]
#[openapi(paths(expire_reservations))]
pub struct Api;

/// What one sweep did (`functions/reserve/src/expiry.rs`, `Swept`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Swept {
    /// Orders this sweep cancelled.
    expired: Vec<String>,
    /// Index entries not yet due.
    pending: u64,
    /// Orders that failed this time (their entries stay for the next sweep).
    failed: Vec<String>,
}

/// Expire reservations now (staff).
///
/// Cancels orders whose payment is only authorized and whose reservation expired while
/// still reserved or backordered, releasing their stock. Drive it with any scheduler (cron,
/// a Kubernetes CronJob).
#[utoipa::path(
    post,
    path = "/v1/reservations/expire",
    operation_id = "expireReservations",
    tag = "admin",
    security(("staff" = [])),
    responses(
        (status = 200, description = "Orders expired by this sweep", body = Swept),
        (status = 401, response = crate::problem::Unauthorized),
        (status = 403, response = crate::problem::Forbidden),
        (status = 503, response = crate::problem::Unavailable),
    ),
)]
#[allow(dead_code)]
fn expire_reservations() {}
