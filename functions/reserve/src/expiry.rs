//! Expiry of unpaid reservations. An order whose payment is only authorized holds stock until
//! `reservation.expires_at` (`reservation_ttl_minutes` after reservation). The sweeper — run
//! by the app's cron trigger (`[[trigger.cron]]` in spin.toml), or on demand by
//! `POST /v1/reservations/expire` (admin token) from any scheduler (a Kubernetes CronJob,
//! cron + curl) — cancels every such order that is still `reserved` or `backordered` past its
//! expiry and releases its holds. Orders already routed keep their allocation (their
//! fulfilment is under way); either way they leave the index.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oms_domain::{OrderStatus, PaymentStatus};
use oms_edge::{keys, update_json, Bus, Change, FunctionError, Kv, OrderRecord};
use serde_json::{json, Value};
use uuid::Uuid;

/// Sweeps the index once; the orders it cancelled.
///
/// # Errors
/// Storage or publish failures (a later sweep picks up where this one stopped).
pub fn sweep(
    kv: &impl Kv,
    bus: &impl Bus,
    now: DateTime<Utc>,
    mut ids: impl FnMut() -> Uuid,
) -> Result<Value, FunctionError> {
    let index: BTreeMap<String, DateTime<Utc>> = kv.get_json(keys::EXPIRING)?.unwrap_or_default();
    let mut cancelled = Vec::new();
    for (order_id, at) in index.iter().filter(|(_, at)| **at <= now) {
        if expire_one(kv, bus, order_id, now, ids())? {
            cancelled.push(order_id.clone());
        }
        update_json(
            kv,
            keys::EXPIRING,
            |cur: Option<BTreeMap<String, DateTime<Utc>>>| {
                let mut index = cur.unwrap_or_default();
                // Only if unchanged: a re-reservation may have set a new expiry meanwhile.
                if index.get(order_id) == Some(at) {
                    index.remove(order_id);
                    Ok::<_, FunctionError>(Change::Write(index, ()))
                } else {
                    Ok(Change::Keep(()))
                }
            },
        )?;
    }
    Ok(
        json!({"expired": cancelled, "pending": index.len() - index.iter().filter(|(_, at)| **at <= now).count()}),
    )
}

fn expire_one(
    kv: &impl Kv,
    bus: &impl Bus,
    order_id: &str,
    now: DateTime<Utc>,
    event_id: Uuid,
) -> Result<bool, FunctionError> {
    let Some(record) = kv.get_json::<OrderRecord>(&keys::order(order_id))? else {
        return Ok(false);
    };
    let expired = matches!(
        record.status(),
        OrderStatus::Reserved | OrderStatus::Backordered
    ) && record.order.payment().status() == PaymentStatus::Authorized
        && record
            .reservation
            .as_ref()
            .and_then(|r| r.expires_at())
            .is_some_and(|at| at <= now);
    if !expired {
        return Ok(false);
    }
    // Cancel first (so the route step cannot allocate it any more), then release the holds;
    // a crash in between leaves holds that the next sweep releases (release is idempotent).
    let event = update_json(kv, &keys::order(order_id), |cur: Option<OrderRecord>| {
        let Some(mut rec) = cur else {
            return Ok(Change::Keep(None));
        };
        if !matches!(
            rec.status(),
            OrderStatus::Reserved | OrderStatus::Backordered
        ) {
            return Ok(Change::Keep(None));
        }
        let e = rec
            .transition(
                OrderStatus::Cancelled,
                json!({"reason": "reservation_expired"}),
                event_id,
                now,
            )
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        rec.reason = Some("reservation expired: payment not captured in time".into());
        Ok::<_, FunctionError>(Change::Write(rec, Some(e)))
    })?;
    if let Some(reservation) = &record.reservation {
        crate::reservation::release_holds(kv, order_id, reservation.lines())?;
    }
    match event {
        Some(e) => {
            bus.publish_event(&e).map_err(FunctionError::Internal)?;
            Ok(true)
        }
        None => Ok(false),
    }
}
