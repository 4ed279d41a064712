//! reserve: the owner of holds. On `order.validated`, holds stock for the order against
//! availability — one compare-and-swap per (SKU, location), so concurrent orders never
//! oversell — and moves the order to `reserved`, `backordered` (shortfall promised within the
//! SKU's backorder limit) or `rejected` (reason recorded), through the step runner (see
//! `reservation`). On `order.cancelled`, releases what the cancelled order still lists
//! (`oms_edge::release_cancelled`; re-driven by the reconciler until done).
//!
//! Also the sweeper that cancels orders whose unpaid reservation expired and releases their
//! stock (see `expiry`), run two ways with the same code: on a schedule by a cron trigger
//! (`handle-cron-event`, Spin's cron trigger plugin, and `oms up`), and on demand by
//! `POST /v1/reservations/expire` (admin token; e.g. a Kubernetes CronJob where there is no
//! cron trigger, as on SpinKube). Both also prune what is only kept for a while (idempotency
//! entries, marketplace event de-duplication) once it is `retention_seconds` old
//! (`oms_edge::retention`; 24 hours by default).
//!
//! Redelivery-safe: holds and backorder promises are per order inside each document (a
//! repeat finds its own), the outcome is stored once by the runner, and a redelivery of a step
//! that already ran changes nothing but publishes what the order still owes.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

mod expiry;
mod reservation;

/// The cron trigger's export: `handle-cron-event`, the world of Spin's cron trigger plugin
/// (its WIT is vendored in the host, `host/wit`). Generated with the wit-bindgen spin-sdk
/// re-exports, so it is the same version the rest of the component uses.
mod cron {
    #![allow(missing_docs)]
    spin_sdk::wit_bindgen::generate!({
        path: "../../host/wit",
        world: "oms:host/cron-trigger",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
    use super::Sweeper;
    export!(Sweeper);
}

use chrono::Duration;
use oms_domain::{EventEnvelope, EventType};
use oms_edge::{caller, json_response, release_cancelled, Env, FunctionError, Problem, SpinEnv};
use spin_sdk::http::{Params, Request, Response, Router};
use spin_sdk::{http_component, redis_component};

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let event: EventEnvelope = match serde_json::from_slice(&message) {
        Ok(e) => e,
        Err(e) => {
            // A message that can never parse would only be retried into the dead letters.
            eprintln!("reserve: dropping unreadable message: {e}");
            return Ok(());
        }
    };
    let env = SpinEnv::open().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let order_id = event.order_id().to_string();
    match event.event_type() {
        // A released hold may have unblocked reserving (the step checks it is its turn).
        EventType::OrderValidated | EventType::OrderHoldReleased => {
            reservation::handle(&env, &order_id, ttl())
        }
        EventType::OrderCancelled => match release_cancelled(&env, &order_id) {
            Err(FunctionError::Problem(p)) if p.status == 404 => Ok(()),
            other => other,
        },
        _ => Ok(()),
    }
    .map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// How long an order paid by authorization only holds its stock (`reservation_ttl_minutes`,
/// 30 when unset or unreadable).
fn ttl() -> Duration {
    let minutes = spin_sdk::variables::get("reservation_ttl_minutes")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(30);
    Duration::minutes(minutes)
}

/// How long records indexed for pruning are kept (`retention_seconds`, 24 hours when unset
/// or unreadable; at least a second — tests and soaks use a short window).
fn retention() -> Duration {
    let seconds = spin_sdk::variables::get("retention_seconds")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(oms_edge::retention::DEFAULT_RETENTION_SECONDS);
    Duration::seconds(seconds.max(1))
}

/// Prunes what outlived the retention window; failures are logged (the next sweep repeats).
fn prune(env: &SpinEnv) {
    match oms_edge::retention::prune(env.kv(), env.now(), retention()) {
        Ok(p) if p.deleted > 0 => eprintln!(
            "reserve: pruned {} records ({} buckets)",
            p.deleted, p.buckets
        ),
        Ok(_) => {}
        Err(e) => eprintln!("reserve: pruning failed: {e:?}; next sweep"),
    }
}

/// The scheduled sweep (cron trigger).
struct Sweeper;

impl cron::Guest for Sweeper {
    fn handle_cron_event(
        _: cron::fermyon::spin_cron::cron_types::Metadata,
    ) -> Result<(), cron::fermyon::spin_cron::cron_types::Error> {
        match SpinEnv::open().and_then(|env| {
            let swept = expiry::sweep(&env);
            prune(&env);
            swept
        }) {
            Ok(swept) => {
                if !swept.expired.is_empty() || !swept.failed.is_empty() {
                    let report = serde_json::to_string(&swept).unwrap_or_default();
                    eprintln!("reserve: expiry sweep: {report}");
                }
                Ok(())
            }
            Err(e) => Err(cron::fermyon::spin_cron::cron_types::Error::Other(format!(
                "expiry sweep failed: {e:?}"
            ))),
        }
    }
}

/// `POST /v1/reservations/expire` (staff: a bootstrap token or a staff key): one sweep now;
/// answers what it did.
#[http_component]
fn expire(req: Request) -> Response {
    let mut router = Router::new();
    router.post("/v1/reservations/expire", |req: Request, _: Params| {
        respond(SpinEnv::open().and_then(|env| {
            require_staff(&req, &env)?;
            let swept = expiry::sweep(&env)?;
            prune(&env);
            Ok(json_response(200, &swept))
        }))
    });
    router.any("/v1/reservations/expire", |req: Request, _: Params| {
        respond(SpinEnv::open().and_then(|env| {
            require_staff(&req, &env)?;
            Err(Problem::method_not_allowed("POST").into())
        }))
    });
    router.handle(req)
}

/// 401 / 403 unless the caller is staff.
fn require_staff(req: &Request, env: &SpinEnv) -> Result<(), FunctionError> {
    caller(req, env.kv(), None)?.require_staff()
}

fn respond(result: Result<Response, FunctionError>) -> Response {
    result.unwrap_or_else(|e| e.response())
}
