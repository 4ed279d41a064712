//! The component's HTTP surface: which request goes to which handler, and the HTTP details
//! around it (methods, headers, bodies, `Idempotency-Key` replay).
//!
//! | route | handler |
//! | --- | --- |
//! | `POST /v1/orders/{id}/cancel` (optional `Idempotency-Key`) | [`crate::cancel`] |
//! | `POST /v1/orders/{id}/refunds` (`Idempotency-Key` required) | [`crate::refunds`] |
//! | `POST /v1/orders/{id}/returns` (optional `Idempotency-Key`) | open a return |
//! | `GET /v1/returns/{id}` | read a return |
//! | `POST /v1/returns/{id}/received` | book the parcel in |
//! | `POST /v1/returns/{id}/inspection` | [`crate::inspection`] |

use oms_domain::{Fingerprint, IdempotencyKey};
use oms_edge::{
    idempotent, json_body, keys, path_match, Bus, FunctionError, Kv, Problem, StoredResponse,
};
use serde_json::Value;
use spin_sdk::http::{Method, Request, Response};

use crate::context::Ctx;
use crate::order_store::order_id;
use crate::requests::CancelRequest;
use crate::returns::return_id;
use crate::{cancel, inspection, problems, refunds, returns};

/// Serves one request.
pub fn handle<K: Kv, B: Bus>(ctx: &Ctx<K, B>, req: &Request) -> Response {
    match dispatch(ctx, req) {
        Ok(stored) => Response::builder()
            .status(stored.status)
            .header("content-type", stored.content_type)
            .header("cache-control", "no-store")
            .body(stored.body)
            .build(),
        Err(e) => e.response(),
    }
}

fn stored((status, body): (u16, Value)) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: body.to_string(),
    }
}

fn method_not_allowed(allowed: &str) -> FunctionError {
    Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
        format!("use {allowed}"),
    )
    .into()
}

fn dispatch<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    if req.path().starts_with("/v1/returns") {
        returns_route(ctx, req)
    } else {
        orders_route(ctx, req)
    }
}

/// `/v1/returns/{id}[/received|/inspection]`, from Spin's `spin-path-info` (the path below
/// the `/v1/returns/...` route).
fn returns_route<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    let info = req
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let mut parts = info.trim_matches('/').splitn(2, '/');
    let id = return_id(parts.next().unwrap_or_default())?;
    match (parts.next(), req.method()) {
        (None, Method::Get) => Ok(stored((200, serde_json::json!(returns::load(ctx.kv, id)?)))),
        (None, _) => Err(method_not_allowed("GET")),
        (Some("received"), Method::Post) => returns::receive(ctx, id).map(stored),
        (Some("inspection"), Method::Post) => {
            inspection::inspect(ctx, id, &json_body(req)?).map(stored)
        }
        (Some("received" | "inspection"), _) => Err(method_not_allowed("POST")),
        (Some(other), _) => Err(Problem::not_found("return resource", other).into()),
    }
}

/// `POST /v1/orders/{id}/cancel|refunds|returns`; the id is Spin's `:id` route parameter.
fn orders_route<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    let id = order_id(&path_match(req, "id").unwrap_or_default())?;
    if !matches!(req.method(), Method::Post) {
        return Err(method_not_allowed("POST"));
    }
    let key = idempotency_key(req)?;
    match req.path().trim_end_matches('/').rsplit('/').next() {
        Some("cancel") => {
            let body = if req.body().is_empty() {
                None
            } else {
                Some(json_body(req)?)
            };
            let run = || {
                let cancel =
                    CancelRequest::parse(body.as_ref()).map_err(|v| problems::invalid(&v))?;
                cancel::cancel(ctx, id, &cancel).map(stored)
            };
            match key {
                Some(key) => once(ctx, &format!("cancel:{id}"), &key, body.as_ref(), run),
                None => run(),
            }
        }
        Some("refunds") => {
            let key = key.ok_or_else(|| {
                let why = "a refund needs an Idempotency-Key header so a retry cannot refund twice";
                Problem::field(
                    400,
                    "idempotency-key-required",
                    "Idempotency-Key required",
                    "Idempotency-Key",
                    "missing",
                    why,
                )
            })?;
            let body = json_body(req)?;
            once(ctx, &format!("refund:{id}"), &key, Some(&body), || {
                refunds::refund(ctx, id, key.as_str(), &body).map(stored)
            })
        }
        Some("returns") => {
            let body = json_body(req)?;
            let run = || returns::open(ctx, id, &body).map(stored);
            match key {
                Some(key) => once(ctx, &format!("return:{id}"), &key, Some(&body), run),
                None => run(),
            }
        }
        _ => Err(Problem::not_found("resource", req.path()).into()),
    }
}

/// The `Idempotency-Key` header, when sent.
///
/// # Errors
/// 400 naming the header when it is malformed.
fn idempotency_key(req: &Request) -> Result<Option<IdempotencyKey>, Problem> {
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

/// Runs `run` at most once per (`scope`, key, body).
fn once<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    scope: &str,
    key: &IdempotencyKey,
    body: Option<&Value>,
    run: impl FnOnce() -> Result<StoredResponse, FunctionError>,
) -> Result<StoredResponse, FunctionError> {
    let fingerprint = Fingerprint::of_json(body.unwrap_or(&Value::Null));
    idempotent(
        ctx.kv,
        &keys::idempotency(scope, key.as_str()),
        &fingerprint,
        ctx.clock,
        run,
    )
}
