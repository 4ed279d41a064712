//! Marketplace webhook intake: `POST /v1/channels/{channel}/orders`.
//!
//! Each channel (Spin variable `channel_secrets`, JSON `{"<channel>": {"kind", "secret"}}`)
//! signs its deliveries one of two ways, checked on the raw body before anything is parsed:
//! - `shopify`: `X-Shopify-Hmac-Sha256` (see [`crate::shopify`]); the body is Shopify's
//!   `orders/create` payload, mapped to our order.
//! - `standard` (Standard Webhooks, [`oms_edge::standard_webhooks`]): `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature` with a `whsec_` secret; the body is our own
//!   order document (its `channel` is the one in the path).
//!
//! A bad or missing signature is a 401 and nothing is stored. The order's id is derived from
//! (channel, external id) — Shopify's order id, or the `webhook-id` — and the order is created
//! only if absent, so a redelivery answers `200 duplicate` exactly when the order exists: a
//! delivery that died before its order was stored is taken in by the next one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use oms_domain::{ChannelId, Order, OrderId, OrderRecord};
use oms_edge::standard_webhooks::{WebhookHeaders, WebhookSecret};
use oms_edge::{create, Env, FunctionError, Problem};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::receipt::{Accepted, Duplicate};
use crate::shopify;

/// How a channel signs and shapes its deliveries, with its secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// Shopify's own signature and payload.
    Shopify {
        /// The app's shared secret.
        secret: String,
    },
    /// Standard Webhooks with our order document.
    Standard {
        /// `whsec_<base64 key>`.
        secret: WebhookSecret,
    },
}

/// A 401 problem naming the header at fault.
pub fn unauthorized(header: &str, reason: &str) -> FunctionError {
    Problem::field(
        401,
        "bad-signature",
        "Signature verification failed",
        header,
        "bad_signature",
        reason,
    )
    .into()
}

/// The configuration of `channel` from `channel_secrets` (JSON text).
///
/// # Errors
/// 404 for a channel that is not configured; 500 for a configuration that does not parse
/// (e.g. a `standard` secret that is not `whsec_` base64).
pub fn channel_config(secrets: &str, channel: &ChannelId) -> Result<Channel, FunctionError> {
    let mut all: HashMap<String, Channel> = serde_json::from_str(secrets).map_err(|e| {
        FunctionError::Internal(format!("channel_secrets is not a valid configuration: {e}"))
    })?;
    all.remove(channel.as_str())
        .ok_or_else(|| Problem::not_found("channel", channel.as_str()).into())
}

/// A verified delivery: the channel's id for the order and our order document.
#[derive(Debug)]
pub struct Delivery {
    /// The channel's external id (Shopify order id, or `webhook-id`).
    pub external: String,
    /// The order document, ready for [`Order::from_request`].
    pub order: Value,
}

/// Verifies a delivery's signature on the raw body, then reads the body.
///
/// # Errors
/// 401 naming the header for a bad signature; 400 for a body that is not JSON; 422 naming
/// `body` for a JSON body that is not an object; 422 for a Shopify payload that cannot be
/// mapped.
pub fn verify(
    channel: &ChannelId,
    config: &Channel,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Delivery, FunctionError> {
    match config {
        Channel::Shopify { secret } => {
            shopify::verify(header(shopify::SIGNATURE_HEADER).as_deref(), body, secret)?;
            let payload = object(body)?;
            let external = shopify::external_id(&payload)?;
            let order = shopify::to_order(channel, &Value::Object(payload))?;
            Ok(Delivery { external, order })
        }
        Channel::Standard { secret } => {
            let (id, timestamp, signature) = (
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
            );
            let headers = WebhookHeaders {
                id: id.as_deref(),
                timestamp: timestamp.as_deref(),
                signature: signature.as_deref(),
            };
            let external = secret
                .verify(&headers, body, now)
                .map_err(|e| unauthorized(e.header(), &e.to_string()))?
                .to_string();
            let mut order = object(body)?;
            order.insert("channel".into(), Value::String(channel.as_str().into()));
            Ok(Delivery {
                external,
                order: Value::Object(order),
            })
        }
    }
}

/// The body as a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>, FunctionError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "body",
            "invalid_json",
            format!("not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::field(
            422,
            "validation",
            "Invalid request",
            "body",
            "invalid_type",
            "the order must be a JSON object",
        )
        .into()),
    }
}

/// What taking a delivery in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenIn {
    /// This delivery created the order.
    New(Accepted),
    /// The order already exists (a redelivery).
    Duplicate(Duplicate),
}

/// Creates the delivery's order under its derived id unless it exists.
///
/// # Errors
/// 422 with every violation of the (mapped) order; storage errors (5xx: the marketplace
/// redelivers and finds the same id).
pub fn take_in<E: Env>(
    env: &E,
    channel: &ChannelId,
    delivery: &Delivery,
) -> Result<TakenIn, FunctionError> {
    let id = OrderId::for_marketplace(channel, &delivery.external);
    let order = Order::from_request(&delivery.order, id, env.now()).map_err(|v| {
        Problem::invalid(
            "the marketplace order is invalid (fields refer to the order after mapping)",
            &v.0,
        )
    })?;
    let token = oms_edge::order_token::issue(env.kv(), id)?;
    let record = OrderRecord::take_in_by(order, format!("marketplace:{channel}"), env.now())
        .map_err(|e| FunctionError::Internal(e.to_string()))?;
    let created = create(env, record)?;
    Ok(if created.new {
        TakenIn::New(Accepted::of(&created.record, token))
    } else {
        TakenIn::Duplicate(Duplicate {
            id: created.record.order().id().to_string(),
            status: "duplicate".into(),
            external_id: delivery.external.clone(),
            access_token: token,
        })
    })
}
