//! admin: the operator's component, behind a bearer token (the `admin_token` Spin variable).
//!
//! Reference data the steps read (see `reference_data`):
//! - `PUT /v1/admin/catalog/{sku}` `{"USD": "19.99", ...}`
//! - `PUT /v1/admin/locations` `[Location, ...]` (the whole network)
//! - `PUT /v1/admin/stock/{sku}/{location}` `{"on_hand": 20}` (a count; reservations kept)
//! - `PUT /v1/admin/backorder/{sku}` `"never"` | `"unlimited"` | `{"up_to": 50}`
//! - `PUT /v1/admin/routing-policy` `{"split_limit": 2, "cost_per_km": "0.02"}`
//!
//! The lifecycle's reconciler (see `reconcile`):
//! - `POST /v1/admin/reconcile?grace_seconds=60&limit=500` — one pass over the owed-work
//!   index; answers what it did (`oms_edge::Reconciled`).
//! - the same pass every minute as a cron trigger's `handle-cron-event` (the `reconciler`
//!   component of spin.toml runs this .wasm).
//!
//! Bad input is a 422 problem naming the field; nothing is written. A missing or wrong token
//! is a 401 on every route, known or not.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

mod reconcile;
mod reference_data;

use oms_edge::{json_body, require_admin, FunctionError, Problem, SpinKv};
use spin_sdk::http::{Params, Request, Response, Router};
use spin_sdk::http_component;

/// A route's work once the caller is known to be an operator.
type Handler = fn(&Request, &Params) -> Result<Response, FunctionError>;

#[http_component]
fn handle(req: Request) -> Response {
    // Routes are relative to the manifest's `/v1/admin/...` (Spin's `spin-path-info`).
    let mut router = Router::suffix();
    router.put(
        "/catalog/:sku",
        guarded(|req, p| {
            reference_data::put_catalog(&SpinKv::open_default()?, param(p, "sku"), &json_body(req)?)
        }),
    );
    router.put(
        "/locations",
        guarded(|req, _| reference_data::put_locations(&SpinKv::open_default()?, json_body(req)?)),
    );
    router.put(
        "/stock/:sku/:location",
        guarded(|req, p| {
            let (sku, location) = (param(p, "sku"), param(p, "location"));
            reference_data::put_stock(&SpinKv::open_default()?, sku, location, &json_body(req)?)
        }),
    );
    router.put(
        "/backorder/:sku",
        guarded(|req, p| {
            reference_data::put_backorder(
                &SpinKv::open_default()?,
                param(p, "sku"),
                json_body(req)?,
            )
        }),
    );
    router.put(
        "/routing-policy",
        guarded(|req, _| {
            reference_data::put_routing_policy(&SpinKv::open_default()?, &json_body(req)?)
        }),
    );
    router.post("/reconcile", guarded(reconcile::http));
    for known in [
        "/catalog/:sku",
        "/locations",
        "/stock/:sku/:location",
        "/backorder/:sku",
        "/routing-policy",
        "/reconcile",
    ] {
        router.any(known, guarded(|req, _| Err(wrong_method(req))));
    }
    router.any(
        "/*",
        guarded(|req, _| Err(Problem::not_found("admin resource", req.path()).into())),
    );
    router.handle(req)
}

/// Checks the admin token, then runs `handler`; any error becomes its problem response.
fn guarded(handler: Handler) -> impl Fn(Request, Params) -> Response {
    move |req, params| {
        require_admin(&req)
            .and_then(|()| handler(&req, &params))
            .unwrap_or_else(|e| e.response())
    }
}

/// A path parameter the route pattern guarantees.
fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).unwrap_or_default()
}

fn wrong_method(req: &Request) -> FunctionError {
    let allow = if req.path().ends_with("/reconcile") {
        "POST"
    } else {
        "PUT"
    };
    Problem::method_not_allowed(allow).into()
}
