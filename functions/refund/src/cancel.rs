//! `POST /v1/orders/{id}/cancel`: cancels an order that has not shipped, releases the stock
//! it holds, and refunds a captured payment in full.
//!
//! Crash safety. The cancel is one compare-and-swap of the order record that records
//! `order.cancelled` (and `order.refunded` for a captured payment) but deliberately *keeps*
//! the record's reservation and allocated shipments: while a cancelled record still lists
//! stock, that stock is marked "release pending". The stock is then released document by
//! document (each release idempotent per order), the events are published, and only then a
//! second compare-and-swap clears the mark. A crash anywhere after the first write leaves the
//! mark in place, and a repeated cancel — which answers as the first did — releases whatever
//! is still marked and publishes the events again (same event ids; subscribers
//! de-duplicate). Clearing the holdings in the first write instead would lose the list of
//! stock to release if the process died before releasing it.

use oms_domain::{EventEnvelope, EventType, OrderId, OrderStatus, RefundItem};
use oms_edge::{Bus, Change, FunctionError, Kv, OrderRecord, Problem, ShipmentStatus};
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::ledger;
use crate::order_store::{self, find_event, timeline_error};
use crate::requests::CancelRequest;
use crate::stock_moves::{self, Placement};

/// Why an automatic refund was issued (event data `cause`).
const CAUSE: &str = "cancellation";

/// Stock the record says the order holds (its reservation) or has allocated (shipments not
/// yet shipped): what a cancellation must release.
fn holdings(record: &OrderRecord) -> Vec<Placement> {
    let mut out: Vec<Placement> = record
        .reservation
        .iter()
        .flat_map(|r| r.lines())
        .map(|l| Placement {
            sku: l.sku.clone(),
            location: l.location.clone(),
            units: l.units,
        })
        .chain(
            record
                .shipments
                .iter()
                .filter(|s| s.status == ShipmentStatus::Allocated)
                .flat_map(|s| {
                    s.lines.iter().map(|l| Placement {
                        sku: l.sku.clone(),
                        location: s.location.clone(),
                        units: l.units,
                    })
                }),
        )
        .collect();
    out.sort();
    out
}

/// Records the cancellation (and the full refund of a captured payment) on `record`.
fn record_cancellation(
    record: &mut OrderRecord,
    req: &CancelRequest,
    ids: (uuid::Uuid, uuid::Uuid),
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), FunctionError> {
    let status = record.status();
    if !status.is_cancellable() {
        return Err(Problem::conflict(format!(
            "an order that is {status} cannot be cancelled; request a return or a refund instead"
        ))
        .into());
    }
    let data = json!({"reason": req.reason, "from": status, "released": holdings(record)});
    record
        .transition(OrderStatus::Cancelled, data, ids.0, now)
        .map_err(timeline_error)?;
    let refundable = record.ledger.refundable();
    if !refundable.is_zero() {
        let mut tags = Map::new();
        tags.insert("cause".into(), json!(CAUSE));
        let items = [RefundItem::Amount { amount: refundable }];
        ledger::apply(record, &items, tags, ids.1, now, |e| {
            Problem::conflict(e.to_string())
        })?;
    }
    Ok(())
}

/// The cancellation's events as recorded: `order.cancelled` and its automatic refund.
fn cancellation_events(record: &OrderRecord) -> Vec<EventEnvelope> {
    let cancelled = record
        .events
        .iter()
        .find(|e| e.event_type() == EventType::OrderCancelled)
        .cloned();
    cancelled
        .into_iter()
        .chain(find_event(record, EventType::OrderRefunded, "cause", CAUSE))
        .collect()
}

/// The answer, the same for the first cancel and any repeat.
fn view(record: &OrderRecord, events: &[EventEnvelope]) -> Value {
    let released = events
        .first()
        .map_or(Value::Null, |e| e.data()["released"].clone());
    json!({
        "order_id": record.order.id(),
        "status": record.status(),
        "released": released,
        "refund": events.get(1).map(ledger::view),
    })
}

/// Cancels the order (or completes an earlier cancellation) and answers 200 with its status.
///
/// # Errors
/// 404 for an unknown order, 409 once something has shipped, 503 when stock contention or
/// the broker make it retry; storage errors.
pub fn cancel<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    id: OrderId,
    req: &CancelRequest,
) -> Result<(u16, Value), FunctionError> {
    let (ids, now) = ((ctx.id(), ctx.id()), ctx.now());
    let record = order_store::update(ctx.kv, id, |mut record| {
        if record.has_event(EventType::OrderCancelled) {
            return Ok(Change::Keep(record));
        }
        record_cancellation(&mut record, req, ids, now)?;
        Ok(Change::Write(record.clone(), record))
    })?;
    stock_moves::release(ctx.kv, &id.to_string(), &holdings(&record))?;
    let events = cancellation_events(&record);
    ctx.publish(&events)?;
    let record = order_store::update(ctx.kv, id, |mut record| {
        if holdings(&record).is_empty() {
            return Ok(Change::Keep(record));
        }
        record.reservation = None;
        record
            .shipments
            .retain(|s| s.status != ShipmentStatus::Allocated);
        Ok(Change::Write(record.clone(), record))
    })?;
    Ok((200, view(&record, &events)))
}
