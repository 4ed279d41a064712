//! validate: order intake. Parses a request into a domain `Order` (every problem reported
//! with its JSON Pointer), checks it against catalog prices, stores it with its
//! `order.validated` event and publishes that event for the reserve step.
//!
//! - `POST /v1/orders` — storefronts; `Idempotency-Key` required (same key and body → the
//!   first response again; same key, other body → 422; keys kept 24 h).
//! - `POST /v1/channels/{channel}/orders` — marketplace webhooks, signed per channel
//!   (Shopify `X-Shopify-Hmac-Sha256`, or Standard Webhooks); a redelivery never makes a
//!   second order.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

mod intake;
mod marketplace;

use oms_domain::{Fingerprint, IdempotencyKey};
use oms_edge::{
    idempotent, json_body, keys, new_id, now, FunctionError, Problem, SpinBus, SpinKv,
    StoredResponse,
};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    let result = match (req.method(), matched_route(&req).as_str()) {
        (Method::Post, "/v1/orders") => storefront(&req),
        (Method::Post, "/v1/channels/:channel/orders") => marketplace::intake(&req),
        _ => Err(Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            "orders are created with POST",
        )
        .into()),
    };
    match result {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn matched_route(req: &Request) -> String {
    req.header("spin-matched-route")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn storefront(req: &Request) -> Result<Response, FunctionError> {
    let key = req
        .header("idempotency-key")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            Problem::field(
                400,
                "idempotency-key-required",
                "Idempotency-Key required",
                "Idempotency-Key",
                "missing",
                "send a unique Idempotency-Key header with every order",
            )
        })?;
    let key = IdempotencyKey::parse(key).map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "Idempotency-Key",
            "invalid_format",
            e.to_string(),
        )
    })?;
    let body = json_body(req)?;
    let kv = SpinKv::open_default()?;
    let fingerprint = Fingerprint::of_json(&body);
    let stored = idempotent(
        &kv,
        &keys::idempotency("orders", key.as_str()),
        &fingerprint,
        now,
        || {
            let bus = SpinBus::open().map_err(FunctionError::Internal)?;
            intake::accept(&kv, &bus, &body, new_id(), new_id(), now())
        },
    )?;
    Ok(respond(&stored))
}

/// The HTTP response for a stored (possibly replayed) result.
pub(crate) fn respond(r: &StoredResponse) -> Response {
    let mut b = Response::builder();
    b.status(r.status)
        .header("content-type", r.content_type.as_str())
        .header("cache-control", "no-store");
    if r.status == 202 {
        if let Some(id) = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string))
        {
            b.header("location", format!("/v1/orders/{id}"));
        }
    }
    b.body(r.body.clone()).build()
}
