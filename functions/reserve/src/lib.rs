//! reserve: on `order.validated`, holds stock for the order against availability — one
//! compare-and-swap per (SKU, location), so concurrent orders never oversell — and moves the
//! order to `reserved`, `backordered` (shortfall allowed by the SKU's backorder policy) or
//! `rejected` (holds released, reason recorded), publishing that event.
//!
//! Also the sweeper that cancels orders whose unpaid reservation expired and releases their
//! stock (see `expiry`), run two ways with the same code: on a schedule by a cron trigger
//! (`handle-cron-event`, Spin's cron trigger plugin, and `oms up`), and on demand by
//! `POST /v1/reservations/expire` (admin token; e.g. a Kubernetes CronJob where there is no
//! cron trigger, as on SpinKube).
//!
//! Redelivery-safe: holds are per order inside each stock document (a repeat finds its own
//! hold), the status change is a compare-and-swap from `validated`, and an order already past
//! this step gets its outcome event re-published (in case a crash came between the store and
//! the publish).

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

use oms_domain::EventEnvelope;
use oms_edge::{
    json_response, new_id, now, require_admin, FunctionError, Problem, SpinBus, SpinKv,
};
use spin_sdk::http::{Method, Request, Response};
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
    let ttl = spin_sdk::variables::get("reservation_ttl_minutes")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(30);
    let kv = SpinKv::open_default()?;
    let bus = SpinBus::open().map_err(anyhow::Error::msg)?;
    reservation::handle(&kv, &bus, &event, now(), ttl, new_id).map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// The scheduled sweep (cron trigger).
struct Sweeper;

impl cron::Guest for Sweeper {
    fn handle_cron_event(
        _: cron::fermyon::spin_cron::cron_types::Metadata,
    ) -> Result<(), cron::fermyon::spin_cron::cron_types::Error> {
        let run = || -> Result<serde_json::Value, FunctionError> {
            let kv = SpinKv::open_default()?;
            let bus = SpinBus::open().map_err(FunctionError::Internal)?;
            expiry::sweep(&kv, &bus, now(), new_id)
        };
        match run() {
            Ok(report) => {
                if report["expired"].as_array().is_some_and(|e| !e.is_empty()) {
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

#[http_component]
fn expire(req: Request) -> Response {
    let run = || -> Result<Response, FunctionError> {
        require_admin(&req)?;
        if *req.method() != Method::Post {
            return Err(
                Problem::new(405, "method-not-allowed", "Method not allowed", "use POST").into(),
            );
        }
        let kv = SpinKv::open_default()?;
        let bus = SpinBus::open().map_err(FunctionError::Internal)?;
        Ok(json_response(
            200,
            &expiry::sweep(&kv, &bus, now(), new_id)?,
        ))
    };
    run().unwrap_or_else(|e| e.response())
}
