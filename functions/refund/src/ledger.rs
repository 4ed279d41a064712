//! Recording a refund on an order: the ledger (never above captured minus refunded), the
//! refund list and the status change, all in the caller's one compare-and-swap of the record.

use chrono::{DateTime, Utc};
use oms_domain::{EventEnvelope, Money, OrderStatus, RefundError, RefundItem};
use oms_edge::{FunctionError, OrderRecord, Problem};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::order_store::timeline_error;

/// The status a refund moves the order into.
fn target(record: &OrderRecord) -> OrderStatus {
    if record.ledger.is_fully_refunded() {
        OrderStatus::Refunded
    } else {
        OrderStatus::PartiallyRefunded
    }
}

/// Whether the order's lifecycle allows a refund now (shipped, delivered, cancelled or
/// partially refunded — before shipment an order is cancelled instead).
///
/// # Errors
/// 409 naming the current status.
pub fn check_refundable_status(record: &OrderRecord) -> Result<(), Problem> {
    let status = record.status();
    if status.can_transition_to(OrderStatus::PartiallyRefunded)
        || status.can_transition_to(OrderStatus::Refunded)
    {
        Ok(())
    } else if status == OrderStatus::Refunded {
        Err(Problem::conflict("the order is already fully refunded"))
    } else {
        Err(Problem::conflict(format!(
            "an order that is {status} cannot be refunded; cancel it instead, or wait until it ships"
        )))
    }
}

/// A money amount as written in responses (`"12.50"`; the currency is the order's).
pub fn amount(m: Money) -> String {
    m.amount().to_string()
}

/// Applies a refund of `items` to `record` and records the `order.partially_refunded` or
/// `order.refunded` event; `tags` are added to the event data (what caused the refund, so a
/// retry can find it). Returns the new event.
///
/// # Errors
/// 409 when the status forbids a refund; `refused(e)` when the ledger refuses (nothing is
/// changed then); a corrupted timeline (500).
pub fn apply(
    record: &mut OrderRecord,
    items: &[RefundItem],
    tags: Map<String, Value>,
    event_id: Uuid,
    now: DateTime<Utc>,
    refused: impl Fn(RefundError) -> Problem,
) -> Result<EventEnvelope, FunctionError> {
    check_refundable_status(record)?;
    let (ledger, refund) = record
        .ledger
        .refund(&record.order, items)
        .map_err(&refused)?;
    record.ledger = ledger;
    record.refunds.push(refund.clone());
    let mut data = tags;
    data.insert("refund".into(), json!(refund));
    data.insert(
        "refunded_total".into(),
        json!(amount(record.ledger.refunded())),
    );
    data.insert(
        "refundable".into(),
        json!(amount(record.ledger.refundable())),
    );
    data.insert("currency".into(), json!(record.order.currency().code()));
    record
        .transition(target(record), Value::Object(data), event_id, now)
        .map_err(timeline_error)
}

/// The client's view of a refund event: `{"refund", "refunded_total", "refundable",
/// "status"}` — built from the stored event so a replay answers exactly the same.
pub fn view(event: &EventEnvelope) -> Value {
    let data = event.data();
    json!({
        "order_id": event.order_id(),
        "refund": data["refund"],
        "refunded_total": data["refunded_total"],
        "refundable": data["refundable"],
        "currency": data["currency"],
        "status": event.event_type().status().map(OrderStatus::as_str),
    })
}
