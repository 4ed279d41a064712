//! The component's HTTP surface: Spin's [`Router`] maps each route to its handler; the HTTP
//! details every handler shares (path ids, the `Idempotency-Key` header and its replay, JSON
//! answers, problem documents for unknown routes and methods) are here once.
//!
//! | route | who | handler |
//! | --- | --- | --- |
//! | `POST /v1/orders/{id}/cancel` (optional `Idempotency-Key`) | staff, the order's customer | [`crate::cancel`] |
//! | `POST /v1/orders/{id}/refunds` (`Idempotency-Key` required) | staff | [`crate::refunds`] |
//! | `POST /v1/orders/{id}/returns` (optional `Idempotency-Key`) | staff, the order's customer | [`crate::returns::open`] |
//! | `GET /v1/returns/{id}` | staff | [`crate::returns::read`] |
//! | `POST /v1/returns/{id}/received` | staff | [`crate::returns::receive`] |
//! | `POST /v1/returns/{id}/inspection` | staff | [`crate::inspection`] |
//!
//! The caller is checked before anything is read or changed (401 without a credential, 403
//! for the wrong role or another order's token), and handed to the handler, which records it
//! on the events it makes (the audit trail).

use std::rc::Rc;

use oms_domain::{Fingerprint, IdempotencyKey, OrderId, ReturnId};
use oms_edge::{
    caller, idempotent_with, keys, Actor, Decision, Env, FunctionError, Problem, Repeat,
    StoredResponse,
};
use serde_json::Value;
use spin_sdk::http::{Method, Params, Request, Response, Router};

use crate::{cancel, inspection, refunds, returns};

/// A handler: the environment, the authorized caller, the route's `:id` and the request.
type Handler<E> = fn(&E, &Actor, &str, &Request) -> Result<StoredResponse, FunctionError>;

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Staff, or the customer of the order the path's `:id` names.
    StaffOrCustomer,
    /// Staff only.
    Staff,
}

/// The component's routes over `env`.
pub fn router<E: Env + 'static>(env: Rc<E>) -> Router {
    use Access::{Staff, StaffOrCustomer};
    let mut router = Router::new();
    let routes: [(&str, Method, Access, Handler<E>); 6] = [
        (
            "/v1/orders/:id/cancel",
            Method::Post,
            StaffOrCustomer,
            cancel::handle,
        ),
        (
            "/v1/orders/:id/refunds",
            Method::Post,
            Staff,
            refunds::handle,
        ),
        (
            "/v1/orders/:id/returns",
            Method::Post,
            StaffOrCustomer,
            returns::open,
        ),
        ("/v1/returns/:id", Method::Get, Staff, returns::read),
        (
            "/v1/returns/:id/received",
            Method::Post,
            Staff,
            returns::receive,
        ),
        (
            "/v1/returns/:id/inspection",
            Method::Post,
            Staff,
            inspection::handle,
        ),
    ];
    for (path, method, access, handler) in routes {
        let env = Rc::clone(&env);
        let allowed = method.to_string();
        router.add(path, method, move |req: Request, params: Params| {
            let id = params.get("id").unwrap_or_default();
            reply(
                authorize(&*env, access, id, &req)
                    .and_then(|actor| handler(&env, &actor, id, &req)),
            )
        });
        router.any(path, move |_: Request, _: Params| {
            Problem::method_not_allowed(&allowed).response()
        });
    }
    router.any("/*", |req: Request, _: Params| {
        FunctionError::from(Problem::not_found("resource", req.path())).response()
    });
    router
}

/// The caller of `req`, if `access` lets them in.
///
/// # Errors
/// 401 without a valid credential; 403 for another role, or a customer token of another
/// order than the path's `id`; 503 when the store does not answer.
fn authorize<E: Env>(
    env: &E,
    access: Access,
    id: &str,
    req: &Request,
) -> Result<Actor, FunctionError> {
    let order = match access {
        Access::StaffOrCustomer => OrderId::parse(id).ok(),
        Access::Staff => None,
    };
    let actor = caller(req, env.kv(), order)?;
    match order {
        Some(order) => actor.require_staff_or_customer(order)?,
        None => actor.require_staff()?,
    }
    Ok(actor)
}

/// The HTTP response for a handler's outcome.
fn reply(outcome: Result<StoredResponse, FunctionError>) -> Response {
    match outcome {
        Ok(stored) => Response::builder()
            .status(stored.status)
            .header("content-type", stored.content_type)
            .header("cache-control", "no-store")
            .body(stored.body)
            .build(),
        Err(e) => e.response(),
    }
}

/// A JSON answer (also what an `Idempotency-Key` replays).
pub fn json(status: u16, body: &Value) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: body.to_string(),
    }
}

/// What a domain transition's "did anything change" means to the step runner.
pub fn decision<R>(changed: bool, answer: R) -> Decision<R> {
    if changed {
        Decision::Changed(answer)
    } else {
        Decision::Unchanged(answer)
    }
}

/// Parses an order id from the path; anything that is not an order id names no order.
///
/// # Errors
/// 404 for a malformed id.
pub fn order_id(raw: &str) -> Result<OrderId, Problem> {
    OrderId::parse(raw).map_err(|_| Problem::not_found("order", raw))
}

/// Parses a return id from the path; anything else names no return.
///
/// # Errors
/// 404 for a malformed id.
pub fn return_id(raw: &str) -> Result<ReturnId, Problem> {
    ReturnId::parse(raw).map_err(|_| Problem::not_found("return", raw))
}

/// The `Idempotency-Key` header, when sent.
///
/// # Errors
/// 400 naming the header when it is malformed.
pub fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
    let Some(value) = req.header("idempotency-key") else {
        return Ok(None);
    };
    value
        .as_str()
        .and_then(|v| IdempotencyKey::parse(v).ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::field(
                400,
                "malformed",
                "Malformed request",
                "Idempotency-Key",
                "invalid_format",
                "must be 1 to 255 visible ASCII characters",
            )
        })
}

/// Runs `run` under `key` (when sent): a repeat with the same body replays the first
/// answer, another body is a 422. A repeat while an earlier run is unfinished (or died) runs
/// again at once ([`Repeat::Rerun`]): every effect of these handlers is keyed by the intent
/// (the refund's cause names the key, a return's id derives from it, a cancel happens once),
/// so overlapping runs converge on one result.
///
/// # Errors
/// As [`idempotent_with`], and `run`'s own.
pub fn once<E: Env>(
    env: &E,
    scope: &str,
    key: Option<&IdempotencyKey>,
    body: &Value,
    run: impl FnOnce() -> Result<StoredResponse, FunctionError>,
) -> Result<StoredResponse, FunctionError> {
    let Some(key) = key else { return run() };
    idempotent_with(
        env.kv(),
        &keys::idempotency(scope, key.as_str()),
        &Fingerprint::of_json(body),
        || env.now(),
        Repeat::Rerun,
        run,
    )
}
