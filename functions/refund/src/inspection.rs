//! `POST /v1/returns/{id}/inspection`: records the verdict per returned line, refunds the
//! accepted units and puts them back on the shelf where they shipped from.
//!
//! 1. One step of the runner on the order ([`OrderRecord::inspect_return`]): `return.inspected`
//!    with the restock plan, the refund of the accepted units and `return.refunded`, all in
//!    one compare-and-swap (or none: a refusal changes nothing).
//! 2. The restock the step recorded as owed stock moves is applied (once per return line and
//!    location: receipt tokens on the stock documents), by this request or, if it dies first,
//!    by the reconciler. A repeat of the inspection with the same verdicts changes
//!    nothing on the order and restocks only what an interrupted attempt had not.

use oms_domain::{OrderRecord, RefundCause, ReturnId};
use oms_edge::{
    apply_stock_moves, json_body, run, Actor, Env, FunctionError, Problem, StoredResponse,
};
use serde_json::{json, Value};
use spin_sdk::http::Request;

use crate::problems;
use crate::refunds::refund_view;
use crate::requests::InspectionRequest;
use crate::returns::locate;
use crate::routes::{decision, json, return_id};

/// The answer, the same for the first inspection and any repeat.
fn view(record: &OrderRecord, rid: ReturnId) -> Value {
    let refund = record.refund_for(&RefundCause::Return { return_id: rid });
    json!({
        "return": record.find_return(rid),
        "restocked": record.restock_of(rid),
        "refund": refund.map(|r| refund_view(record, &r)),
    })
}

/// Inspects a received return: refunds and restocks the accepted units; answers 200 with
/// the return, the restock and the refund.
///
/// # Errors
/// 404 for an unknown return; 422 naming the verdict at fault; 409 before the parcel is
/// received or for other verdicts than an earlier inspection's; storage errors (500; the
/// same inspection again completes it).
pub fn handle<E: Env>(
    env: &E,
    actor: &Actor,
    id: &str,
    req: &Request,
) -> Result<StoredResponse, FunctionError> {
    let rid = return_id(id)?;
    let asked = InspectionRequest::parse(&json_body(req)?).map_err(|v| problems::invalid(&v))?;
    let order = locate(env, rid)?;
    let verdict_lines: Vec<usize> = asked.verdicts.iter().map(|v| v.line).collect();
    let answer = run(env, &order, |r| {
        r.act_as(actor.audit());
        let ra = r
            .find_return(rid)
            .ok_or_else(|| Problem::not_found("return", id))?;
        let verdicts = asked.inspections(&ra);
        let ids = [env.new_id(), env.new_id(), env.new_id()];
        let changed = match r.inspect_return(rid, &verdicts, ids, env.now()) {
            Ok(changed) => changed,
            Err(e) => return Err(problems::inspection(e, r, &ra, &verdicts, &verdict_lines)),
        };
        Ok(decision(changed, view(r, rid)))
    })?;
    if let Err(e) = apply_stock_moves(env, &order) {
        eprintln!("refund: return {rid}: restock left owed ({e:?}); the reconciler applies it");
    }
    Ok(json(200, &answer))
}
