//! reserve: on `order.validated`, holds stock for the order against availability — one
//! compare-and-swap per (SKU, location), so concurrent orders never oversell — and moves the
//! order to `reserved`, `backordered` (shortfall allowed by the SKU's backorder policy) or
//! `rejected` (holds released, reason recorded), publishing that event.
//!
//! Also `POST /v1/reservations/expire` (admin token): the sweeper that cancels orders whose
//! unpaid reservation expired and releases their stock (see `expiry`).
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
