//! Return authorisations: `POST /v1/orders/{id}/returns` opens one
//! ([`OrderRecord::request_return`]: capped by the units shipped, not ordered), `POST
//! /v1/returns/{id}/received` books the parcel in, `GET /v1/returns/{id}` reads one. The
//! inspection that refunds and restocks is in `inspection.rs`.
//!
//! A return lives on its order (its state is replayed from the order's `return.*` events),
//! so each step is one step of the runner on the order. A small pointer document
//! (`keys::return_`, `{"order_id"}`) finds the order from a return id; it is written before
//! the compare-and-swap that opens the return, so an open return always has one. With an
//! `Idempotency-Key` the return's id derives from the key, so a retried request finds the
//! return it opened instead of opening another; without one, a retry after a lost answer
//! opens a second return (still capped by the units shipped and not yet returned).

use oms_domain::{OrderId, OrderRecord, ReturnAuthorization, ReturnId};
use oms_edge::{json_body, keys, run, Actor, Env, FunctionError, Kv, Problem, StoredResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use spin_sdk::http::Request;
use uuid::Uuid;

use crate::problems;
use crate::requests::ReturnRequest;
use crate::routes::{decision, idempotency_key, json, once, order_id, return_id};

/// Where a return's order is (`keys::return_`).
#[derive(Debug, Serialize, Deserialize)]
struct ReturnPointer {
    order_id: OrderId,
}

/// The order a return belongs to.
///
/// # Errors
/// 404 for an unknown return; storage errors.
pub fn locate<E: Env>(env: &E, id: ReturnId) -> Result<String, FunctionError> {
    let pointer: Option<ReturnPointer> = env.kv().get_json(&keys::return_(&id.to_string()))?;
    pointer
        .map(|p| p.order_id.to_string())
        .ok_or_else(|| Problem::not_found("return", &id.to_string()).into())
}

/// Return `id` as its order records it.
fn find(record: &OrderRecord, id: ReturnId) -> Result<ReturnAuthorization, FunctionError> {
    record
        .find_return(id)
        .ok_or_else(|| Problem::not_found("return", &id.to_string()).into())
}

/// Opens a return for part of a shipped order; answers 201 with the return.
///
/// # Errors
/// 404 for an unknown order; 422 naming the item for lines and quantities that cannot be
/// returned (more than shipped and not yet returned); 409 when nothing has shipped; storage
/// errors (500; a retry with the same key completes it).
pub fn open<E: Env>(
    env: &E,
    actor: &Actor,
    order: &str,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    let id = order_id(order)?;
    let key = idempotency_key(req)?;
    let body = json_body(req)?;
    let asked = ReturnRequest::parse(&body).map_err(|v| problems::invalid(&v))?;
    let rid = ReturnId::new(match &key {
        Some(k) => Uuid::new_v5(&id.as_uuid(), format!("return:{}", k.as_str()).as_bytes()),
        None => env.new_id(),
    });
    let lines: Vec<usize> = asked.items.iter().map(|i| i.line).collect();
    once(env, &format!("return:{id}"), key.as_ref(), &body, || {
        let ra = run(env, &id.to_string(), |r| {
            r.act_as(actor.audit());
            let (event_id, now, reason) = (env.new_id(), env.now(), asked.reason.clone());
            let changed = r
                .request_return(rid, &asked.items, reason, event_id, now)
                .map_err(|e| problems::return_request(e, &lines))?;
            if changed {
                let pointer = ReturnPointer { order_id: id };
                env.kv()
                    .set_json(&keys::return_(&rid.to_string()), &pointer)?;
            }
            Ok(decision(changed, find(r, rid)?))
        })?;
        Ok(json(201, &json!(ra)))
    })
}

/// Reads a return.
///
/// # Errors
/// 404 for an unknown return; storage errors.
pub fn read<E: Env>(
    env: &E,
    _: &Actor,
    id: &str,
    _: &Request,
) -> Result<StoredResponse, FunctionError> {
    let rid = return_id(id)?;
    let order = locate(env, rid)?;
    let record: Option<OrderRecord> = env.kv().get_json(&keys::order(&order))?;
    let record = record.ok_or_else(|| Problem::not_found("return", id))?;
    Ok(json(200, &json!(find(&record, rid)?)))
}

/// Books a return's parcel in (`requested → received`); a repeat answers the same.
///
/// # Errors
/// 404 for an unknown return; 409 once it is past `received`; storage errors.
pub fn receive<E: Env>(
    env: &E,
    actor: &Actor,
    id: &str,
    _: &Request,
) -> Result<StoredResponse, FunctionError> {
    let rid = return_id(id)?;
    let order = locate(env, rid)?;
    let ra = run(env, &order, |r| {
        r.act_as(actor.audit());
        let changed = r
            .receive_return(rid, env.new_id(), env.now())
            .map_err(problems::payment)?;
        Ok(decision(changed, find(r, rid)?))
    })?;
    Ok(json(200, &json!(ra)))
}
