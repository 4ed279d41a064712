//! What a verified Shopify delivery does, by topic (`X-Shopify-Topic`):
//!
//! - `orders/create` → the order is mapped ([`shopify::map_order`], SKUs of lines without one
//!   from the channel's alias table) and taken in ([`marketplace::take_in`]) on the holds
//!   the mapping calls for; a voided order is taken in cancelled.
//! - `orders/cancelled` → the order is cancelled through the step runner with the domain's
//!   cancel ([`OrderRecord::cancel`], the same transition as `POST /v1/orders/{id}/cancel`,
//!   with its automatic refund of anything captured), then its stock is released
//!   ([`release_cancelled`]). An order we never saw (its `orders/create` lost or still to
//!   come: Shopify does not guarantee delivery order) is taken in from the cancellation's
//!   payload — it carries the whole order — already cancelled, so a late `orders/create`
//!   finds it. An order that has shipped cannot be cancelled: 409 (Shopify retries, and
//!   its delivery log shows the failure to whoever watches the app).
//! - any other topic the app is subscribed to → `200 {"status": "ignored"}`: the delivery is
//!   authentic and there is nothing for us to do; a 4xx would only make Shopify retry it
//!   for hours and finally count it against the subscription.
//!
//! **De-duplication.** Every attempt at one event carries the same `X-Shopify-Event-Id`
//! (while `X-Shopify-Webhook-Id` changes per attempt): the first answer is kept under the
//! event id for 24 hours and replayed to every later attempt with the same body, without
//! running anything again. Underneath, the order's id is derived from (channel, Shopify
//! order id), so even a delivery without the header, or the same order sent as two events,
//! never makes a second order (`200 duplicate`).

use oms_domain::{ChannelId, Fingerprint, Order, OrderId, OrderRecord, Violation};
use oms_edge::{
    aliases, idempotent_with, keys, release_cancelled, run, Decision, Env, FunctionError, Problem,
    Repeat, StoredResponse,
};
use serde_json::{json, Map, Value};

use crate::marketplace::{self, Delivery, TakenIn};
use crate::shopify::{self, Topic};

/// Handles one verified Shopify delivery; the answer (kept for replay under the event id).
///
/// # Errors
/// 422 for an order that cannot be mapped; 409 for a cancellation of an order that has
/// shipped; storage errors (5xx: Shopify retries).
pub fn receive<E: Env>(
    env: &E,
    channel: &ChannelId,
    topic: &Topic,
    event: Option<&str>,
    payload: &Map<String, Value>,
) -> Result<StoredResponse, FunctionError> {
    let handle = || match topic {
        Topic::OrdersCreate => create(env, channel, payload),
        Topic::OrdersCancelled => cancel(env, channel, payload),
        Topic::Other(topic) => Ok(stored(200, &json!({"status": "ignored", "topic": topic}))),
    };
    match event {
        Some(event) => idempotent_with(
            env.kv(),
            &keys::idempotency(&format!("shopify-event:{channel}"), event),
            &Fingerprint::of_json(&json!({"topic": topic_name(topic), "payload": payload})),
            || env.now(),
            Repeat::Rerun,
            handle,
        ),
        None => handle(),
    }
}

fn topic_name(topic: &Topic) -> &str {
    match topic {
        Topic::OrdersCreate => "orders/create",
        Topic::OrdersCancelled => "orders/cancelled",
        Topic::Other(t) => t,
    }
}

fn stored(status: u16, body: &Value) -> StoredResponse {
    StoredResponse {
        status,
        content_type: "application/json".into(),
        body: body.to_string(),
    }
}

/// Maps the payload (`cancelled` overriding what the payload itself says).
fn delivery<E: Env>(
    env: &E,
    channel: &ChannelId,
    payload: &Map<String, Value>,
    cancelled: Option<String>,
) -> Result<Delivery, FunctionError> {
    let external = shopify::external_id(payload)?;
    let mapped = shopify::map_order(channel, &Value::Object(payload.clone()), |item| {
        aliases::resolve(env.kv(), channel, item).map_err(FunctionError::from)
    })?;
    // Checked here so that problems name the Shopify field they came from.
    let id = OrderId::for_marketplace(channel, &external);
    if let Err(v) = Order::from_marketplace_request(&mapped.order, id, env.now()) {
        let named: Vec<Violation> =
            v.0.into_iter()
                .map(|v| Violation::new(shopify::payload_pointer(&v.field), v.code, v.detail))
                .collect();
        return Err(Problem::invalid(
            "the Shopify order is invalid (fields refer to the Shopify payload)",
            &named,
        )
        .into());
    }
    Ok(Delivery {
        external,
        order: mapped.order,
        holds: mapped.holds,
        cancelled: cancelled.or(mapped.cancelled),
    })
}

fn answer(taken: TakenIn) -> Result<StoredResponse, FunctionError> {
    Ok(match taken {
        TakenIn::New(accepted) => accepted.stored(),
        TakenIn::Duplicate(duplicate) => {
            let body = serde_json::to_value(&duplicate)
                .map_err(|e| FunctionError::Internal(e.to_string()))?;
            stored(200, &body)
        }
    })
}

/// `orders/create`.
fn create<E: Env>(
    env: &E,
    channel: &ChannelId,
    payload: &Map<String, Value>,
) -> Result<StoredResponse, FunctionError> {
    let delivery = delivery(env, channel, payload, None)?;
    answer(marketplace::take_in(env, channel, &delivery)?)
}

/// `orders/cancelled`.
fn cancel<E: Env>(
    env: &E,
    channel: &ChannelId,
    payload: &Map<String, Value>,
) -> Result<StoredResponse, FunctionError> {
    let external = shopify::external_id(payload)?;
    let id = OrderId::for_marketplace(channel, &external).to_string();
    let reason = shopify::cancel_reason(&Value::Object(payload.clone()));
    let actor = format!("marketplace:{channel}");
    let outcome = run(env, &id, |record: &mut OrderRecord| {
        record.act_as(actor.clone());
        let changed = record
            .cancel(
                Some(reason.clone()),
                [env.new_id(), env.new_id()],
                env.now(),
            )
            .map_err(|e| Problem::conflict(format!("the order cannot be cancelled: {e}")))?;
        let status = record.status();
        Ok(if changed {
            Decision::Changed(status)
        } else {
            Decision::Unchanged(status)
        })
    });
    match outcome {
        Ok(status) => {
            if let Err(e) = release_cancelled(env, &id) {
                // The cancel stands and the release stays owed: the reconciler re-drives it.
                eprintln!("validate: releasing the stock of cancelled order {id} failed: {e:?}");
            }
            Ok(stored(
                200,
                &json!({"id": id, "status": status, "external_id": external}),
            ))
        }
        Err(FunctionError::Problem(p)) if p.status == 404 => {
            // Not seen yet: take it in from this payload, cancelled.
            let delivery = delivery(env, channel, payload, Some(reason))?;
            answer(marketplace::take_in(env, channel, &delivery)?)
        }
        Err(e) => Err(e),
    }
}
