//! Reading and updating the stored order record (`keys::order`), and finding events on its
//! timeline that an earlier attempt of the same request already recorded.

use oms_domain::{EventEnvelope, EventType, OrderId, TimelineError};
use oms_edge::{keys, update_json, Change, FunctionError, Kv, OrderRecord, Problem};

/// Parses an order id from the path; anything that is not an order id names no order.
///
/// # Errors
/// 404 for a malformed id.
pub fn order_id(raw: &str) -> Result<OrderId, Problem> {
    OrderId::parse(raw).map_err(|_| Problem::not_found("order", raw))
}

/// Loads an order record.
///
/// # Errors
/// 404 when there is no such order; storage errors.
pub fn load<K: Kv>(kv: &K, id: OrderId) -> Result<OrderRecord, FunctionError> {
    kv.get_json::<OrderRecord>(&keys::order(&id.to_string()))?
        .ok_or_else(|| Problem::not_found("order", &id.to_string()).into())
}

/// Compare-and-swap of an order record: `f` sees the current record (and may run several
/// times, so it must be free of side effects).
///
/// # Errors
/// 404 when there is no such order; `f`'s error; storage errors and contention (503).
pub fn update<K: Kv, R>(
    kv: &K,
    id: OrderId,
    mut f: impl FnMut(OrderRecord) -> Result<Change<OrderRecord, R>, FunctionError>,
) -> Result<R, FunctionError> {
    let key = keys::order(&id.to_string());
    update_json(kv, &key, |cur: Option<OrderRecord>| match cur {
        Some(record) => f(record),
        None => Err(Problem::not_found("order", &id.to_string()).into()),
    })
}

/// A timeline refusal: an illegal status change is a 409 (the order moved on), anything
/// else means a corrupted history (500).
pub fn timeline_error(e: TimelineError) -> FunctionError {
    match e {
        TimelineError::Illegal(t) => Problem::conflict(t.to_string()).into(),
        other => FunctionError::Internal(format!("order timeline: {other}")),
    }
}

/// The first event of `event_type` whose data has `field` equal to `value` (how a retried
/// request finds what its earlier attempt recorded).
pub fn find_event(
    record: &OrderRecord,
    event_type: EventType,
    field: &str,
    value: &str,
) -> Option<EventEnvelope> {
    record
        .events
        .iter()
        .find(|e| {
            e.event_type() == event_type
                && e.data().get(field).and_then(|v| v.as_str()) == Some(value)
        })
        .cloned()
}

/// The refund event (`order.refunded` or `order.partially_refunded`) whose data has `field`
/// equal to `value`.
pub fn find_refund_event(record: &OrderRecord, field: &str, value: &str) -> Option<EventEnvelope> {
    find_event(record, EventType::OrderPartiallyRefunded, field, value)
        .or_else(|| find_event(record, EventType::OrderRefunded, field, value))
}
