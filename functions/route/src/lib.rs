//! route: on `order.reserved`, plans fulfilment (single location if possible, else the fewest
//! shipments within the split limit, then lowest cost; pickup orders only from their store)
//! and turns the reservation into per-location allocations by compare-and-swap. When an
//! allocation loses a race the order is re-planned on fresh stock; when no plan exists it is
//! backordered with the reason. Emits `order.routed`.
//!
//! Also takes fulfilment updates from warehouses and 3PLs over HTTP:
//! - `POST /v1/shipments/{id}/shipped` `{"carrier": "ups", "tracking": "1Z..."}`
//! - `POST /v1/shipments/{id}/delivered`
//!
//! by staff or a fulfilment key of the shipment's location (401 / 403 otherwise, before
//! anything changes; the key is recorded on the event).
//!
//! Both run through the step runner (`oms_edge::run`): the change and its events are stored
//! in one compare-and-swap, then published; what a crash leaves owed goes out on the next
//! retry or redelivery, or from the reconciler.
//!
//! And staff's order holds (see `holds`): `POST /v1/orders/{id}/holds`,
//! `POST /v1/orders/{id}/holds/{reason}/release`, served by this code under the component id
//! `holds` (HTTP triggers only, deployed with the HTTP API: spin.toml). A held order is not
//! routed; on `order.hold_released` the routing step runs if the order is now reserved and
//! not held.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

mod fulfilment;
mod holds;
#[cfg(test)]
mod holds_tests;
mod routing;
#[cfg(test)]
mod tests;

use fulfilment::Update;
use oms_domain::{EventEnvelope, EventType, OrderId};
use oms_edge::{caller, json_body, json_response, Actor, Env, FunctionError, Problem, SpinEnv};
use spin_sdk::http::{Params, Request, Response, Router};
use spin_sdk::{http_component, redis_component};

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let event: EventEnvelope = match serde_json::from_slice(&message) {
        Ok(e) => e,
        Err(e) => {
            // A message that can never parse would only be retried into the dead letters.
            eprintln!("route: dropping unreadable message: {e}");
            return Ok(());
        }
    };
    if !matches!(
        event.event_type(),
        EventType::OrderReserved | EventType::OrderHoldReleased
    ) {
        return Ok(());
    }
    let env = SpinEnv::open().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    routing::handle(&env, &event.order_id().to_string()).map_err(|e| anyhow::anyhow!("{e:?}"))
}

#[http_component]
fn shipment_update(req: Request) -> Response {
    let mut router = Router::new();
    router.post("/v1/shipments/:id/shipped", |req: Request, p: Params| {
        respond(update_shipment(&req, &p, || {
            Update::shipped(&json_body(&req)?)
        }))
    });
    router.post("/v1/shipments/:id/delivered", |req: Request, p: Params| {
        respond(update_shipment(&req, &p, || Ok(Update::Delivered)))
    });
    router.any("/v1/shipments/:id/:update", |_: Request, _: Params| {
        Problem::method_not_allowed("POST").response()
    });
    router.post("/v1/orders/:id/holds", |req: Request, p: Params| {
        respond(place_hold(&req, &p))
    });
    router.post(
        "/v1/orders/:id/holds/:reason/release",
        |req: Request, p: Params| respond(release_hold(&req, &p)),
    );
    for path in [
        "/v1/orders/:id/holds",
        "/v1/orders/:id/holds/:reason/release",
    ] {
        router.any(path, |_: Request, _: Params| {
            Problem::method_not_allowed("POST").response()
        });
    }
    router.any("/*", |req: Request, _: Params| {
        Problem::not_found("resource", req.path()).response()
    });
    router.handle(req)
}

/// `POST /v1/orders/{id}/holds` (staff): 201 with the order's holds.
fn place_hold(req: &Request, params: &Params) -> Result<Response, FunctionError> {
    let env = SpinEnv::open()?;
    let (actor, order) = staff(&env, req, params)?;
    let hold = holds::PlaceHold::parse(&json_body(req)?)?;
    Ok(json_response(
        201,
        &holds::place(&env, &actor, &order, &hold)?,
    ))
}

/// `POST /v1/orders/{id}/holds/{reason}/release` (staff): 200 with the holds left.
fn release_hold(req: &Request, params: &Params) -> Result<Response, FunctionError> {
    let env = SpinEnv::open()?;
    let (actor, order) = staff(&env, req, params)?;
    let reason = holds::path_reason(params.get("reason").unwrap_or_default())?;
    let body = match req.body() {
        [] => serde_json::Value::Null,
        _ => json_body(req)?,
    };
    let release = holds::ReleaseHold::parse(&body)?;
    let view = holds::release(&env, &actor, &order, reason, &release)?;
    Ok(json_response(200, &view))
}

/// The caller, who must be staff (401/403 before anything is read), and the path's order.
fn staff(env: &SpinEnv, req: &Request, params: &Params) -> Result<(Actor, OrderId), FunctionError> {
    let order = holds::order_id(params.get("id").unwrap_or_default());
    let actor = caller(req, env.kv(), order.as_ref().ok().copied())?;
    actor.require_staff()?;
    Ok((actor, order?))
}

/// Check the caller (staff or a fulfilment key, before anything is read), parse the path's
/// shipment id and the update, apply it through the runner (which checks the key's location
/// against the shipment's), answer the shipment.
fn update_shipment(
    req: &Request,
    params: &Params,
    update: impl FnOnce() -> Result<Update, FunctionError>,
) -> Result<Response, FunctionError> {
    let env = SpinEnv::open()?;
    let actor = caller(req, env.kv(), None)?;
    actor.require_staff_or_any_fulfilment()?;
    let id = fulfilment::shipment_id(params.get("id").unwrap_or_default())?;
    let shipment = fulfilment::apply(&env, &actor, &id, &update()?)?;
    Ok(json_response(200, &shipment))
}

fn respond(result: Result<Response, FunctionError>) -> Response {
    result.unwrap_or_else(|e| e.response())
}
