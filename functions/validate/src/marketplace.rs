//! Marketplace webhook intake: `POST /v1/channels/{channel}/orders`.
//!
//! Each channel (Spin variable `channel_secrets`, JSON `{"<channel>": {"kind", "secret"}}`)
//! signs its deliveries one of two ways, checked on the raw body before anything is parsed:
//! - `shopify`: `X-Shopify-Hmac-Sha256` (see [`crate::shopify`]); the body is Shopify's
//!   order payload, mapped to our order, and `X-Shopify-Topic` says what happened
//!   (`orders/create`, `orders/cancelled`: see [`crate::shopify_intake`]).
//! - `standard` (Standard Webhooks, [`oms_edge::standard_webhooks`]): `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature` with a `whsec_` secret; the body is our own
//!   order document (its `channel` is the one in the path).
//!
//! A bad or missing signature is a 401 and nothing is stored. The order's id is derived from
//! (channel, external id) — Shopify's order id, or the `webhook-id` — and the order is created
//! only if absent, so a redelivery answers `200 duplicate` exactly when the order exists: a
//! delivery that died before its order was stored is taken in by the next one.
//!
//! Marketplace orders are taken in under the marketplace rules
//! ([`Order::from_marketplace_request`]: e-mail optional, unmapped lines, no address yet,
//! pending payments) and never refused for what staff can fix: the order is stored on the
//! holds that say what is missing (`unmapped_item`, `address_needed`, `payment_pending`),
//! placed in the same write as the order ([`hold_and_cancel`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use oms_domain::{ChannelId, HoldNote, HoldReason, Order, OrderId, OrderRecord, PaymentStatus};
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

/// A delivery's order: the channel's id for it, our order document and what intake must do
/// besides storing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The channel's external id (Shopify order id, or `webhook-id`).
    pub external: String,
    /// The order document, ready for [`Order::from_marketplace_request`].
    pub order: Value,
    /// Holds to place at take-in, with their notes (more are derived from the order itself).
    pub holds: Vec<(HoldReason, String)>,
    /// Why the order is cancelled as soon as it is taken in (a voided payment, an order the
    /// marketplace cancelled before we saw it).
    pub cancelled: Option<String>,
}

/// A verified delivery.
#[derive(Debug)]
pub enum Verified {
    /// A Standard Webhooks delivery of our own order document.
    Standard(Delivery),
    /// A Shopify delivery, still to be mapped ([`crate::shopify_intake`]).
    Shopify {
        /// `X-Shopify-Topic`.
        topic: shopify::Topic,
        /// `X-Shopify-Event-Id`, when sent.
        event: Option<String>,
        /// The payload.
        payload: Map<String, Value>,
    },
}

/// Verifies a delivery's signature on the raw body, then reads the body (and, for Shopify,
/// the topic).
///
/// # Errors
/// 401 naming the header for a bad signature; 400 for a body that is not JSON; 422 naming
/// `body` for a JSON body that is not an object.
pub fn verify(
    channel: &ChannelId,
    config: &Channel,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, FunctionError> {
    match config {
        Channel::Shopify { secret } => {
            shopify::verify(header(shopify::SIGNATURE_HEADER).as_deref(), body, secret)?;
            let topic = shopify::Topic::parse(header(shopify::TOPIC_HEADER).as_deref());
            // A key for the store: anything unusual is ignored (the order id still
            // de-duplicates), never refused.
            let event = header(shopify::EVENT_ID_HEADER)
                .map(|e| e.trim().to_string())
                .filter(|e| {
                    (1..=128).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_graphic())
                });
            Ok(Verified::Shopify {
                topic,
                event,
                payload: object(body)?,
            })
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
            Ok(Verified::Standard(Delivery {
                external,
                order: Value::Object(order),
                holds: Vec::new(),
                cancelled: None,
            }))
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
    let order = Order::from_marketplace_request(&delivery.order, id, env.now()).map_err(|v| {
        Problem::invalid(
            "the marketplace order is invalid (fields refer to the order after mapping)",
            &v.0,
        )
    })?;
    let token = oms_edge::order_token::issue(env.kv(), id)?;
    let mut record = OrderRecord::take_in_by(order, format!("marketplace:{channel}"), env.now())
        .map_err(|e| FunctionError::Internal(e.to_string()))?;
    hold_and_cancel(&mut record, delivery, env.now())?;
    let created = create(env, record)?;
    Ok(if created.new {
        // A delivery taken in cancelled (a voided payment) says so; the status is the
        // record's as built from the delivery, the same for every attempt.
        TakenIn::New(Accepted {
            status: created.record.status().to_string(),
            ..Accepted::of(&created.record, token)
        })
    } else {
        TakenIn::Duplicate(Duplicate {
            id: created.record.order().id().to_string(),
            status: "duplicate".into(),
            external_id: delivery.external.clone(),
            access_token: token,
        })
    })
}

/// The holds a marketplace order is taken in on: those the mapping asked for (with its
/// notes), plus any the order itself calls for that the mapping did not name (a Standard
/// Webhooks document with unmapped lines, no address or a pending payment).
pub fn intake_holds(order: &Order, asked: &[(HoldReason, String)]) -> Vec<(HoldReason, String)> {
    let mut holds = asked.to_vec();
    let implied = [
        (
            order.unmapped_lines().next().is_some(),
            HoldReason::UnmappedItem,
            "lines without a SKU",
        ),
        (
            order.needs_address(),
            HoldReason::AddressNeeded,
            "no shipping address",
        ),
        (
            matches!(
                order.payment().status(),
                PaymentStatus::Pending | PaymentStatus::PartiallyPaid
            ),
            HoldReason::PaymentPending,
            "payment not complete",
        ),
    ];
    for (applies, reason, note) in implied {
        if applies && !holds.iter().any(|(r, _)| *r == reason) {
            holds.push((reason, note.to_string()));
        }
    }
    holds
}

/// Places the delivery's holds on a freshly taken-in record, or cancels it at once when the
/// delivery says so, in the value that is then created in one write. Event ids derive from
/// the order id, so every attempt at the same delivery builds the same record.
///
/// # Errors
/// 500 for a hold or cancellation the fresh record refuses (a bug: a validated order takes
/// both).
pub fn hold_and_cancel(
    record: &mut OrderRecord,
    delivery: &Delivery,
    now: DateTime<Utc>,
) -> Result<(), FunctionError> {
    let id = record.order().id().as_uuid();
    let internal = |e: &dyn std::fmt::Display| FunctionError::Internal(e.to_string());
    if let Some(reason) = &delivery.cancelled {
        let ids = [
            uuid::Uuid::new_v5(&id, b"order.cancelled"),
            uuid::Uuid::new_v5(&id, b"order.refunded"),
        ];
        record
            .cancel(Some(reason.clone()), ids, now)
            .map_err(|e| internal(&e))?;
        return Ok(());
    }
    for (reason, note) in intake_holds(record.order(), &delivery.holds) {
        let event = uuid::Uuid::new_v5(&id, format!("order.held:{reason}").as_bytes());
        let note = HoldNote::parse(&note).ok();
        record
            .place_hold(reason, note, event, now)
            .map_err(|e| internal(&e))?;
    }
    Ok(())
}
