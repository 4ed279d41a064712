//! `POST /v1/orders/{id}/refunds`: partial and full refunds, never above captured minus
//! already refunded.
//!
//! Exactly once, twice over: the `Idempotency-Key` entry replays a finished request's answer,
//! and the refund event on the order records the key in the same compare-and-swap that books
//! the refund — so even a request whose first attempt crashed after booking (its key's lease
//! then runs out and it runs again) finds its own refund instead of booking a second one.

use oms_domain::{EventEnvelope, OrderId};
use oms_edge::{Bus, Change, FunctionError, Kv};
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::ledger;
use crate::order_store::{self, find_refund_event};
use crate::problems;
use crate::requests::RefundRequest;

/// Event data field naming the request's `Idempotency-Key`.
const KEY: &str = "idempotency_key";

/// Books the refund `body` asks for (or finds the one this key already booked), publishes
/// its event and answers 201 with the refund, the totals and the order's status.
///
/// # Errors
/// 404 for an unknown order; 422 naming the field for an invalid or excessive refund; 409
/// when the order's status allows no refund; 503 under contention or when the broker fails.
pub fn refund<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    id: OrderId,
    key: &str,
    body: &Value,
) -> Result<(u16, Value), FunctionError> {
    let record = order_store::load(ctx.kv, id)?;
    let req =
        RefundRequest::parse(body, record.order.currency()).map_err(|v| problems::invalid(&v))?;
    let (event_id, now) = (ctx.id(), ctx.now());
    let event: EventEnvelope = order_store::update(ctx.kv, id, |mut record| {
        if let Some(done) = find_refund_event(&record, KEY, key) {
            return Ok(Change::Keep(done));
        }
        let mut tags = Map::new();
        tags.insert(KEY.into(), json!(key));
        tags.insert("reason".into(), json!(req.reason));
        let (before, order) = (record.ledger.clone(), record.order.clone());
        let event = ledger::apply(&mut record, &req.items, tags, event_id, now, |e| {
            problems::refund_refused(e, &before, &order, &req.items, "/items", |i, f| {
                format!("/items/{i}/{f}")
            })
        })?;
        Ok(Change::Write(record, event))
    })?;
    ctx.publish(std::slice::from_ref(&event))?;
    Ok((201, ledger::view(&event)))
}
