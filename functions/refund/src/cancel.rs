//! `POST /v1/orders/{id}/cancel`: cancels an order that has not shipped and refunds a
//! captured payment in full ([`OrderRecord::cancel`]), then releases its stock.
//!
//! The cancellation and its refund are one step of the runner: one compare-and-swap records
//! `order.cancelled` (and `order.refunded`) in the outbox while the record keeps listing the
//! order's stock — the release is then *pending*, and owed. [`release_cancelled`] releases
//! it and clears the listing; if that fails or the process dies first, the order still owes
//! `order.cancelled` to reserve, which the reconciler re-drives until the stock is released.
//! A repeated cancel changes nothing and answers the same.

use oms_domain::{OrderRecord, RefundCause};
use oms_edge::{json_body, release_cancelled, run, Actor, Env, FunctionError, StoredResponse};
use serde_json::{json, Value};
use spin_sdk::http::Request;

use crate::problems;
use crate::refunds::refund_view;
use crate::requests::CancelRequest;
use crate::routes::{decision, idempotency_key, json, once, order_id};

/// The answer, the same for the first cancel and any repeat.
fn view(record: &OrderRecord) -> Value {
    let refund = record.refund_for(&RefundCause::Cancellation);
    json!({
        "order_id": record.order().id(),
        "status": record.status(),
        "payment_status": record.payment_status(),
        "refund": refund.map(|r| refund_view(record, &r)),
    })
}

/// Cancels the order (or finds it cancelled) and answers 200 with its statuses and the
/// automatic refund.
///
/// # Errors
/// 404 for an unknown order; 422 naming the field of a bad body; 409 once something has
/// shipped; storage errors (500; a retry completes the cancel).
pub fn handle<E: Env>(
    env: &E,
    actor: &Actor,
    order: &str,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    let id = order_id(order)?.to_string();
    let key = idempotency_key(req)?;
    let body = (!req.body().is_empty())
        .then(|| json_body(req))
        .transpose()?;
    let cancel = CancelRequest::parse(body.as_ref()).map_err(|v| problems::invalid(&v))?;
    let scope = format!("cancel:{id}");
    once(
        env,
        &scope,
        key.as_ref(),
        &body.unwrap_or(Value::Null),
        || {
            let answer = run(env, &id, |r| {
                r.act_as(actor.audit());
                let ids = [env.new_id(), env.new_id()];
                let changed = r
                    .cancel(cancel.reason.clone(), ids, env.now())
                    .map_err(problems::payment)?;
                Ok(decision(changed, view(r)))
            })?;
            if let Err(e) = release_cancelled(env, &id) {
                // The cancel stands and the release stays owed: the reconciler re-drives it.
                eprintln!("refund: releasing the stock of cancelled order {id} failed: {e:?}");
            }
            Ok(json(200, &answer))
        },
    )
}
