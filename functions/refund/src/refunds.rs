//! `POST /v1/orders/{id}/refunds`: partial and full refunds, never above captured minus
//! already refunded ([`OrderRecord::refund`]).
//!
//! Exactly once, twice over: the `Idempotency-Key` entry replays a finished request's
//! answer, and the refund's event records the key as its cause in the same compare-and-swap
//! that books it — so a request whose first attempt died after booking (or runs twice at
//! once) finds its own refund instead of booking a second one.

use oms_domain::{OrderRecord, RefundCause, RefundRecorded};
use oms_edge::{json_body, run, Actor, Env, FunctionError, Problem, StoredResponse};
use serde_json::{json, Value};
use spin_sdk::http::Request;

use crate::problems;
use crate::requests::RefundRequest;
use crate::routes::{decision, idempotency_key, json, once, order_id};

/// The client's view of a refund: `{"refund", "refunded_total", "refundable", "currency",
/// "payment_status"}` as its event recorded them, and the order's current status.
pub fn refund_view(record: &OrderRecord, refund: &RefundRecorded) -> Value {
    json!({
        "order_id": record.order().id(),
        "refund": refund.refund,
        "refunded_total": refund.refunded_total,
        "refundable": refund.refundable,
        "currency": refund.currency,
        "payment_status": refund.payment_status,
        "status": record.status(),
    })
}

fn key_required() -> Problem {
    Problem::idempotency_key_required(
        "a refund needs an Idempotency-Key header so a retry cannot refund twice",
    )
}

/// Books the refund the body asks for (or finds the one this key booked) and answers 201
/// with the refund, the totals and the payment status.
///
/// # Errors
/// 400 without an `Idempotency-Key` or body; 404 for an unknown order; 422 naming the field
/// of an invalid or excessive refund; 409 when nothing has shipped (cancel instead) or all
/// was refunded; storage errors (500; a retry with the same key completes it).
pub fn handle<E: Env>(
    env: &E,
    actor: &Actor,
    order: &str,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    let id = order_id(order)?.to_string();
    let key = idempotency_key(req)?.ok_or_else(key_required)?;
    let body = json_body(req)?;
    let cause = RefundCause::Request {
        idempotency_key: key.as_str().to_string(),
    };
    once(env, &format!("refund:{id}"), Some(&key), &body, || {
        let answer = run(env, &id, |r| {
            r.act_as(actor.audit());
            let asked = RefundRequest::parse(&body, r.order().currency())
                .map_err(|v| problems::invalid(&v))?;
            let (event_id, now) = (env.new_id(), env.now());
            let changed = match r.refund(cause.clone(), &asked.items, asked.reason, event_id, now) {
                Ok(changed) => changed,
                Err(e) => return Err(problems::refund_request(e, r, &asked.items)),
            };
            let booked = r.refund_for(&cause).ok_or_else(|| {
                FunctionError::Internal(format!("order {id}: the refund just booked is missing"))
            })?;
            Ok(decision(changed, refund_view(r, &booked)))
        })?;
        Ok(json(201, &answer))
    })
}
