//! admin: the operator's component, for staff: a bootstrap token (the `admin_token` Spin
//! variable, a comma-separated list) or a staff API key.
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
//! Credentials (see `keys`): staff and fulfilment API keys (`/keys`, `/keys/{id}/rotate`,
//! `DELETE /keys/{id}`) and the customers' order-token secret (`/order-tokens/rotate`).
//!
//! Bad input is a 422 problem naming the field; nothing is written. Without a credential a
//! 401, with one of another role a 403, on every route, known or not.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

mod aliases;
mod keys;
mod reconcile;
mod reference_data;

use oms_edge::{caller, json_body, purge, Actor, FunctionError, Problem, SpinKv};
use spin_sdk::http::{Params, Request, Response, Router};
use spin_sdk::http_component;

/// A route's work once the caller is known to be an operator.
type Handler = fn(&Request, &Params) -> Result<Response, FunctionError>;
/// The same, for work that records who did it.
type StaffHandler = fn(&Actor, &Request, &Params) -> Result<Response, FunctionError>;

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
    router.post("/keys", as_staff(|actor, req, _| keys::create(actor, req)));
    router.get("/keys", guarded(|_, _| keys::list()));
    router.any(
        "/keys",
        guarded(|_, _| Err(Problem::method_not_allowed("GET, POST").into())),
    );
    router.post(
        "/keys/:id/rotate",
        guarded(|req, p| keys::rotate(&SpinKv::open_default()?, req, param(p, "id"))),
    );
    router.delete(
        "/keys/:id",
        guarded(|_, p| keys::revoke(&SpinKv::open_default()?, param(p, "id"))),
    );
    router.any(
        "/keys/:id",
        guarded(|_, _| Err(Problem::method_not_allowed("DELETE").into())),
    );
    router.post(
        "/order-tokens/rotate",
        guarded(|_, _| keys::rotate_order_tokens(&SpinKv::open_default()?)),
    );
    router.get(
        "/channels/:channel/aliases",
        guarded(|_, p| aliases::list(&SpinKv::open_default()?, param(p, "channel"))),
    );
    router.put(
        "/channels/:channel/aliases/:kind/:external_id",
        guarded(|req, p| {
            let (c, k, id) = (
                param(p, "channel"),
                param(p, "kind"),
                param(p, "external_id"),
            );
            aliases::put(
                &SpinKv::open_default()?,
                c,
                k,
                id,
                &json_body(req)?,
                oms_edge::now(),
            )
        }),
    );
    router.delete(
        "/channels/:channel/aliases/:kind/:external_id",
        guarded(|_, p| {
            let (c, k, id) = (
                param(p, "channel"),
                param(p, "kind"),
                param(p, "external_id"),
            );
            aliases::delete(&SpinKv::open_default()?, c, k, id)
        }),
    );
    router.any(
        "/channels/:channel/aliases",
        guarded(|_, _| Err(Problem::method_not_allowed("GET").into())),
    );
    router.any(
        "/channels/:channel/aliases/:kind/:external_id",
        guarded(|_, _| Err(Problem::method_not_allowed("PUT, DELETE").into())),
    );
    for known in [
        "/catalog/:sku",
        "/locations",
        "/stock/:sku/:location",
        "/backorder/:sku",
        "/routing-policy",
        "/reconcile",
        "/keys/:id/rotate",
        "/order-tokens/rotate",
    ] {
        router.any(known, guarded(|req, _| Err(wrong_method(req))));
    }
    router.any(
        "/*",
        guarded(|req, _| Err(Problem::not_found("admin resource", req.path()).into())),
    );
    router.handle(req)
}

/// Checks that the caller is staff, then runs `handler`; any error becomes its problem
/// response. What the handler's writes made stale is purged before the response goes
/// (`oms_edge::purge`: one request for all of them).
fn guarded(handler: Handler) -> impl Fn(Request, Params) -> Response {
    move |req, params| {
        purge::batch(|| staff(&req).and_then(|_| handler(&req, &params)))
            .unwrap_or_else(|e| e.response())
    }
}

/// [`guarded`], handing the caller to `handler`.
fn as_staff(handler: StaffHandler) -> impl Fn(Request, Params) -> Response {
    move |req, params| {
        purge::batch(|| staff(&req).and_then(|actor| handler(&actor, &req, &params)))
            .unwrap_or_else(|e| e.response())
    }
}

/// The caller, if staff (a bootstrap token or a staff key).
///
/// # Errors
/// 401 without a valid credential, 403 for another role, 503 when the store does not answer.
fn staff(req: &Request) -> Result<Actor, FunctionError> {
    let actor = caller(req, &SpinKv::open_default()?, None)?;
    actor.require_staff()?;
    Ok(actor)
}

/// A path parameter the route pattern guarantees.
fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).unwrap_or_default()
}

fn wrong_method(req: &Request) -> FunctionError {
    let path = req.path();
    let allow = if path.ends_with("/reconcile") || path.ends_with("/rotate") {
        "POST"
    } else {
        "PUT"
    };
    Problem::method_not_allowed(allow).into()
}
