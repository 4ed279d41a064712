//! validate: order intake. Parses a request into a domain `Order` (every problem reported
//! with its JSON Pointer), and stores it through the step runner (`oms_edge::create`) with
//! its `order.validated` event in the order's outbox, for the reserve step.
//!
//! - `POST /v1/orders` — storefronts; `Idempotency-Key` required. The order id is derived
//!   from the key, so any retry finds the same order; same key and body → the first 202
//!   again; same key, other body → 422; a refused request (4xx) is not kept (keys kept 24 h).
//! - `POST /v1/channels/{channel}/orders` — marketplace webhooks, signed per channel
//!   (Shopify `X-Shopify-Hmac-Sha256`, or Standard Webhooks); the order id is derived from
//!   (channel, external id), so a redelivery never makes a second order. Shopify deliveries
//!   are dispatched by `X-Shopify-Topic` and de-duplicated by `X-Shopify-Event-Id`
//!   (`shopify_intake`); what the marketplace sends is never refused for what staff can fix
//!   (unmapped items, a missing address, a pending payment: the order is held instead).
//!
//! A publish that fails after the order is stored does not undo it: the event stays owed in
//! the order's outbox and the reconciler sends it.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

#[cfg(test)]
mod golden;
mod marketplace;
mod receipt;
mod shopify;
mod shopify_intake;
mod storefront;
#[cfg(test)]
mod tests;

use oms_domain::{ChannelId, IdempotencyKey};
use oms_edge::{json_body, json_response, now, FunctionError, Problem, SpinEnv};
use spin_sdk::http::{Params, Request, Response, Router};
use spin_sdk::http_component;

use crate::marketplace::{TakenIn, Verified};
use crate::receipt::respond;

#[http_component]
fn handle(req: Request) -> Response {
    let mut router = Router::new();
    router.post("/v1/orders", |req: Request, _: Params| {
        answer(storefront(&req))
    });
    router.post(
        "/v1/channels/:channel/orders",
        |req: Request, params: Params| {
            answer(marketplace(&req, params.get("channel").unwrap_or_default()))
        },
    );
    router.any("/v1/orders", not_allowed);
    router.any("/v1/channels/:channel/orders", not_allowed);
    router.handle(req)
}

fn answer(result: Result<Response, FunctionError>) -> Response {
    result.unwrap_or_else(|e| e.response())
}

fn not_allowed(_: Request, _: Params) -> Response {
    Problem::method_not_allowed("POST").response()
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.header(name)
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

fn storefront(req: &Request) -> Result<Response, FunctionError> {
    let key = header(req, "idempotency-key").ok_or_else(|| {
        Problem::idempotency_key_required("send a unique Idempotency-Key header with every order")
    })?;
    let key = IdempotencyKey::parse(&key).map_err(|e| {
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
    let stored = storefront::place(&SpinEnv::open()?, &key, &body)?;
    Ok(respond(&stored))
}

fn marketplace(req: &Request, channel: &str) -> Result<Response, FunctionError> {
    let channel = ChannelId::parse(channel).map_err(|_| Problem::not_found("channel", channel))?;
    let secrets = spin_sdk::variables::get("channel_secrets")
        .map_err(|e| FunctionError::Internal(format!("channel_secrets: {e}")))?;
    let config = marketplace::channel_config(&secrets, &channel)?;
    let verified = marketplace::verify(&channel, &config, |h| header(req, h), req.body(), now())?;
    let env = SpinEnv::open()?;
    Ok(match verified {
        Verified::Standard(delivery) => match marketplace::take_in(&env, &channel, &delivery)? {
            TakenIn::New(accepted) => respond(&accepted.stored()),
            TakenIn::Duplicate(duplicate) => json_response(200, &duplicate),
        },
        Verified::Shopify {
            topic,
            event,
            payload,
        } => respond(&shopify_intake::receive(
            &env,
            &channel,
            &topic,
            event.as_deref(),
            &payload,
        )?),
    })
}
