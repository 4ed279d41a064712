//! Return authorisations: `POST /v1/orders/{id}/returns` opens one, `POST
//! /v1/returns/{id}/received` books the parcel in, `GET /v1/returns/{id}` reads one. The
//! inspection that refunds and restocks is in `inspection.rs`.
//!
//! The return document (`keys::return_`) holds the return's state; the order's timeline gets
//! one `return.*` event per step, tagged with the return id so a repeated step finds it
//! instead of recording it twice.

use oms_domain::{EventEnvelope, EventType, OrderId, ReturnAuthorization, ReturnId, ReturnState};
use oms_edge::{keys, update_json, Bus, Change, FunctionError, Kv, OrderRecord, Problem};
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::order_store::{self, find_event, timeline_error};
use crate::problems;
use crate::requests::ReturnRequest;

/// Event data field naming the return.
pub const RETURN_ID: &str = "return_id";
/// Attempts at opening a return while other returns of the same order are opened
/// concurrently (each attempt re-reads them).
const OPEN_ATTEMPTS: usize = 20;

/// Parses a return id from the path; anything else names no return.
///
/// # Errors
/// 404 for a malformed id.
pub fn return_id(raw: &str) -> Result<ReturnId, Problem> {
    ReturnId::parse(raw).map_err(|_| Problem::not_found("return", raw))
}

/// Loads a return.
///
/// # Errors
/// 404 when there is no such return; storage errors.
pub fn load<K: Kv>(kv: &K, id: ReturnId) -> Result<ReturnAuthorization, FunctionError> {
    kv.get_json(&keys::return_(&id.to_string()))?
        .ok_or_else(|| Problem::not_found("return", &id.to_string()).into())
}

/// The order's returns so far (what a new return is checked against).
///
/// # Errors
/// Storage errors; a listed return that is missing means a corrupted store (500).
pub fn all<K: Kv>(kv: &K, record: &OrderRecord) -> Result<Vec<ReturnAuthorization>, FunctionError> {
    let ids = &record.returns;
    let keys: Vec<String> = ids.iter().map(|r| keys::return_(&r.to_string())).collect();
    let docs = get_returns(kv, &keys)?;
    ids.iter()
        .zip(docs)
        .map(|(id, doc)| {
            doc.ok_or_else(|| {
                FunctionError::Internal(format!("order lists return {id}, which is missing"))
            })
        })
        .collect()
}

fn get_returns<K: Kv>(
    kv: &K,
    keys: &[String],
) -> Result<Vec<Option<ReturnAuthorization>>, FunctionError> {
    kv.get_many(keys)?
        .into_iter()
        .zip(keys)
        .map(|(bytes, key)| {
            bytes
                .map(|b| {
                    serde_json::from_slice(&b)
                        .map_err(|e| FunctionError::Internal(format!("{key}: {e}")))
                })
                .transpose()
        })
        .collect()
}

/// Records a `return.*` event on the order unless this return's event of that type is
/// already there; returns the event either way.
///
/// # Errors
/// 404 for a missing order; storage errors and contention (503).
pub fn record_step<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    ra: &ReturnAuthorization,
    event_type: EventType,
    data: Value,
) -> Result<EventEnvelope, FunctionError> {
    let (event_id, now, rid) = (ctx.id(), ctx.now(), ra.id().to_string());
    order_store::update(ctx.kv, ra.order_id(), |mut record| {
        if let Some(done) = find_event(&record, event_type, RETURN_ID, &rid) {
            return Ok(Change::Keep(done));
        }
        let mut data = data.clone();
        data[RETURN_ID] = json!(rid);
        let event = record
            .record(event_type, data, event_id, now)
            .map_err(timeline_error)?;
        Ok(Change::Write(record, event))
    })
}

/// Opens a return for part of a shipped order; answers 201 with the return.
///
/// The return document is written before the order lists it: an attempt that dies in
/// between leaves an unreachable document (its id was never handed out), never an order
/// that lists a return that does not exist.
///
/// # Errors
/// 404 for an unknown order; 422 naming the item for lines and quantities that cannot be
/// returned; 409 when the order has not shipped; 503 under contention or broker failure.
pub fn open<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    order_id: OrderId,
    body: &Value,
) -> Result<(u16, Value), FunctionError> {
    let req = ReturnRequest::parse(body).map_err(|v| problems::invalid(&v))?;
    let lines: Vec<usize> = req.items.iter().map(|i| i.line).collect();
    let refused = |e| problems::return_refused(e, &lines, "/items", "quantity");
    let (rid, event_id, now) = (ReturnId::new(ctx.id()), ctx.id(), ctx.now());
    let mut record = order_store::load(ctx.kv, order_id)?;
    for _ in 0..OPEN_ATTEMPTS {
        let previous = all(ctx.kv, &record)?;
        let ra = ReturnAuthorization::request(
            rid,
            &record.order,
            record.status(),
            &req.items,
            &previous,
        )
        .map_err(refused)?;
        ctx.kv.set_json(&keys::return_(&rid.to_string()), &ra)?;
        let seen = record.returns.clone();
        let data = json!({RETURN_ID: rid, "lines": ra.lines(), "reason": req.reason});
        // Stale: another return was opened meanwhile, so the units still returnable changed.
        let outcome = order_store::update(ctx.kv, order_id, |mut current| {
            if current.returns != seen {
                return Ok(Change::Keep(Err(current)));
            }
            ReturnAuthorization::request(
                rid,
                &current.order,
                current.status(),
                &req.items,
                &previous,
            )
            .map_err(refused)?;
            current.returns.push(rid);
            let event = current
                .record(EventType::ReturnRequested, data.clone(), event_id, now)
                .map_err(timeline_error)?;
            Ok(Change::Write(current, Ok(event)))
        })?;
        match outcome {
            Ok(event) => {
                // The return exists now: a failed publish must not make the client retry and
                // open a second one. The event stays on the order's timeline (logged here).
                let _ = ctx.publish(std::slice::from_ref(&event));
                return Ok((201, json!(ra)));
            }
            Err(current) => record = current,
        }
    }
    Err(Problem::new(
        503,
        "contention",
        "Busy",
        "too many returns opened at once for this order; retry",
    )
    .into())
}

/// Books a return's parcel in (`requested → received`); a repeat answers the same.
///
/// # Errors
/// 404 for an unknown return; 409 once it is past `received`; 503 under contention or
/// broker failure.
pub fn receive<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    id: ReturnId,
) -> Result<(u16, Value), FunctionError> {
    let key = keys::return_(&id.to_string());
    let ra = update_json(ctx.kv, &key, |cur: Option<ReturnAuthorization>| {
        let ra = cur.ok_or_else(|| Problem::not_found("return", &id.to_string()))?;
        match ra.state() {
            ReturnState::Requested => {
                let next = ra.receive().map_err(|e| Problem::conflict(e.to_string()))?;
                Ok(Change::Write(next.clone(), next))
            }
            ReturnState::Received => Ok(Change::Keep(ra)),
            state => Err(FunctionError::from(Problem::conflict(format!(
                "the return is already {state}"
            )))),
        }
    })?;
    let event = record_step(ctx, &ra, EventType::ReturnReceived, json!({}))?;
    ctx.publish(std::slice::from_ref(&event))?;
    Ok((200, json!(ra)))
}
