//! `POST /v1/returns/{id}/inspection`: records the verdict per returned line, refunds the
//! accepted units and puts them back on the shelf where they shipped from.
//!
//! Ordering, so that a crash anywhere is completed by repeating the call with the same
//! verdicts and nothing happens twice:
//! 1. check everything that could refuse (verdicts, refund, restock locations) — a refusal
//!    changes nothing;
//! 2. the return document: `received → inspected` with the verdicts;
//! 3. one compare-and-swap of the order: `return.inspected` (carrying the restock plan), the
//!    refund through the ledger and `return.refunded`, each skipped when this return's event
//!    is already there;
//! 4. restock the plan recorded in step 3, once per return line and location (receipt
//!    tokens on the stock documents);
//! 5. publish the events (again, on a repeat: same ids, subscribers de-duplicate);
//! 6. the return document: `inspected → refunded`. Only now is the return finished, and a
//!    repeat of a finished inspection just answers.

use oms_domain::{
    EventEnvelope, EventType, Inspection, LocationId, RefundError, RefundItem, ReturnAuthorization,
    ReturnError, ReturnId, ReturnState, Sku,
};
use oms_edge::{
    keys, update_json, Bus, Change, FunctionError, Kv, OrderRecord, Problem, ShipmentStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::context::Ctx;
use crate::ledger;
use crate::order_store::{self, find_event, find_refund_event, timeline_error};
use crate::problems;
use crate::requests::InspectionRequest;
use crate::returns::{self, RETURN_ID};
use crate::stock_moves::{self, Placement};

/// Where the accepted units of one returned line go back on hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRestock {
    /// The order line.
    pub line: usize,
    /// Units per location.
    pub placements: Vec<Placement>,
}

/// Whether `inspections` are exactly the verdicts `ra` recorded.
fn same_verdicts(ra: &ReturnAuthorization, inspections: &[Inspection]) -> bool {
    inspections.len() == ra.lines().len()
        && inspections.iter().all(|i| {
            ra.lines()
                .iter()
                .any(|l| l.line == i.line && l.accepted == Some(i.accepted))
        })
}

/// Decides where accepted units go: back to the locations their SKU shipped from, in
/// shipment order, up to what shipped there less what this order's other returns already
/// put back; any excess goes to the first location that shipped the SKU.
///
/// # Errors
/// 409 when an accepted line's SKU never shipped (there is nowhere to put it back).
fn plan(record: &OrderRecord, ra: &ReturnAuthorization) -> Result<Vec<LineRestock>, Problem> {
    let mut capacity: Vec<(Sku, LocationId, u32)> = Vec::new();
    let shipped = record.shipments.iter().filter(|s| {
        matches!(
            s.status,
            ShipmentStatus::Shipped | ShipmentStatus::Delivered
        )
    });
    for s in shipped {
        for l in &s.lines {
            match capacity
                .iter_mut()
                .find(|(sku, loc, _)| *sku == l.sku && *loc == s.location)
            {
                Some(slot) => slot.2 += l.units,
                None => capacity.push((l.sku.clone(), s.location.clone(), l.units)),
            }
        }
    }
    let rid = ra.id().to_string();
    let earlier = record
        .events
        .iter()
        .filter(|e| {
            e.event_type() == EventType::ReturnInspected
                && e.data()[RETURN_ID].as_str() != Some(&rid)
        })
        .filter_map(|e| {
            serde_json::from_value::<Vec<LineRestock>>(e.data()["restock"].clone()).ok()
        })
        .flatten()
        .flat_map(|r| r.placements);
    for p in earlier {
        if let Some(slot) = capacity
            .iter_mut()
            .find(|(sku, loc, _)| *sku == p.sku && *loc == p.location)
        {
            slot.2 = slot.2.saturating_sub(p.units);
        }
    }
    let mut out = Vec::new();
    for line in ra.lines() {
        let mut left = line.accepted.unwrap_or(0);
        if left == 0 {
            continue;
        }
        let mut placements: Vec<Placement> = Vec::new();
        for (sku, location, cap) in capacity
            .iter_mut()
            .filter(|(sku, _, cap)| *sku == line.sku && *cap > 0)
        {
            let take = left.min(*cap);
            *cap -= take;
            left -= take;
            placements.push(Placement {
                sku: sku.clone(),
                location: location.clone(),
                units: take,
            });
            if left == 0 {
                break;
            }
        }
        if left > 0 {
            let home = record
                .shipments
                .iter()
                .find(|s| {
                    s.status != ShipmentStatus::Allocated
                        && s.lines.iter().any(|l| l.sku == line.sku)
                })
                .map(|s| s.location.clone())
                .ok_or_else(|| {
                    Problem::conflict(format!(
                        "line {} ({}) never shipped, so it cannot be restocked",
                        line.line, line.sku
                    ))
                })?;
            match placements.iter_mut().find(|p| p.location == home) {
                Some(p) => p.units += left,
                None => placements.push(Placement {
                    sku: line.sku.clone(),
                    location: home,
                    units: left,
                }),
            }
        }
        out.push(LineRestock {
            line: line.line,
            placements,
        });
    }
    Ok(out)
}

/// The answer, the same for the first inspection and any repeat.
fn view(
    ra: &ReturnAuthorization,
    inspected: Option<&EventEnvelope>,
    refund: Option<&EventEnvelope>,
) -> Value {
    json!({
        "return": ra,
        "restocked": inspected.map_or(json!([]), |e| e.data()["restock"].clone()),
        "refund": refund.map(ledger::view),
    })
}

/// What an inspection will do, decided before anything changes.
struct Decision {
    /// The return with its verdicts.
    inspected: ReturnAuthorization,
    /// The refund of the accepted units; `None` when every unit was rejected.
    items: Option<Vec<RefundItem>>,
    /// Where the accepted units go back on hand.
    restock: Vec<LineRestock>,
}

/// A refund the ledger refused, pointing at the verdict of the line concerned.
fn refund_problem(
    e: RefundError,
    before: &OrderRecord,
    items: &[RefundItem],
    verdict_lines: &[usize],
) -> Problem {
    problems::refund_refused(
        e,
        &before.ledger,
        &before.order,
        items,
        "/lines",
        |i, field| {
            let RefundItem::Line { line, .. } = items[i] else {
                return format!("/lines/{i}/{field}");
            };
            let at = verdict_lines.iter().position(|&l| l == line).unwrap_or(i);
            format!("/lines/{at}/accepted")
        },
    )
}

/// Step 1: everything that could refuse — the verdicts, the refund, where to restock.
fn decide(
    inspected: ReturnAuthorization,
    record: &OrderRecord,
    verdict_lines: &[usize],
) -> Result<Decision, FunctionError> {
    let items = match inspected.refund_items() {
        Ok(items) => Some(items),
        Err(ReturnError::NothingAccepted) => None,
        Err(e) => {
            return Err(problems::return_refused(e, verdict_lines, "/lines", "accepted").into())
        }
    };
    let restock = plan(record, &inspected)?;
    let rid = inspected.id().to_string();
    if let Some(items) = &items {
        if find_refund_event(record, RETURN_ID, &rid).is_none() {
            ledger::check_refundable_status(record)?;
            record
                .ledger
                .refund(&record.order, items)
                .map_err(|e| refund_problem(e, record, items, verdict_lines))?;
        }
    }
    Ok(Decision {
        inspected,
        items,
        restock,
    })
}

/// Step 2: stores the verdicts (`received → inspected`); a repeat with the same verdicts
/// changes nothing.
fn save_verdicts<K: Kv>(kv: &K, inspected: &ReturnAuthorization) -> Result<(), FunctionError> {
    let rid = inspected.id().to_string();
    update_json(
        kv,
        &keys::return_(&rid),
        |cur: Option<ReturnAuthorization>| match cur {
            Some(cur) if cur.state() == ReturnState::Received => {
                Ok(Change::Write(inspected.clone(), ()))
            }
            Some(cur) if cur.lines() == inspected.lines() => Ok(Change::Keep(())),
            Some(_) => Err(FunctionError::from(Problem::conflict(
                "the return was inspected concurrently with different verdicts",
            ))),
            None => Err(Problem::not_found("return", &rid).into()),
        },
    )
}

/// Step 3: records on the order (or finds there from an earlier attempt) `return.inspected`
/// and, for accepted units, the refund and `return.refunded`; one compare-and-swap.
fn record_on_order<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    d: &Decision,
    verdict_lines: &[usize],
) -> Result<Vec<EventEnvelope>, FunctionError> {
    let rid = d.inspected.id().to_string();
    let (ids, now) = ([ctx.id(), ctx.id(), ctx.id()], ctx.now());
    order_store::update(ctx.kv, d.inspected.order_id(), |mut record| {
        let mut changed = false;
        let found = find_event(&record, EventType::ReturnInspected, RETURN_ID, &rid);
        let inspected = found_or(found, &mut changed, || {
            let data = json!({RETURN_ID: rid, "lines": d.inspected.lines(), "restock": d.restock});
            record
                .record(EventType::ReturnInspected, data, ids[0], now)
                .map_err(timeline_error)
        })?;
        let mut events = vec![inspected];
        if let Some(items) = &d.items {
            let found = find_refund_event(&record, RETURN_ID, &rid);
            let refund = found_or(found, &mut changed, || {
                let before = record.clone();
                let tags = Map::from_iter([(RETURN_ID.to_string(), json!(rid))]);
                ledger::apply(&mut record, items, tags, ids[1], now, |e| {
                    refund_problem(e, &before, items, verdict_lines)
                })
            })?;
            let found = find_event(&record, EventType::ReturnRefunded, RETURN_ID, &rid);
            let returned = found_or(found, &mut changed, || {
                let data = json!({RETURN_ID: rid, "refund": refund.data()["refund"]});
                record
                    .record(EventType::ReturnRefunded, data, ids[2], now)
                    .map_err(timeline_error)
            })?;
            events.extend([refund, returned]);
        }
        Ok(if changed {
            Change::Write(record, events)
        } else {
            Change::Keep(events)
        })
    })
}

/// The event an earlier attempt recorded, or the one `add` records now (noting the change).
fn found_or(
    found: Option<EventEnvelope>,
    changed: &mut bool,
    add: impl FnOnce() -> Result<EventEnvelope, FunctionError>,
) -> Result<EventEnvelope, FunctionError> {
    match found {
        Some(event) => Ok(event),
        None => {
            *changed = true;
            add()
        }
    }
}

/// Step 6: the return is finished (`inspected → refunded`) once something was refunded.
fn finish<K: Kv>(kv: &K, d: &Decision) -> Result<ReturnAuthorization, FunctionError> {
    if d.items.is_none() {
        return Ok(d.inspected.clone());
    }
    let rid = d.inspected.id().to_string();
    update_json(
        kv,
        &keys::return_(&rid),
        |cur: Option<ReturnAuthorization>| {
            let cur = cur.ok_or_else(|| Problem::not_found("return", &rid))?;
            if cur.state() != ReturnState::Inspected {
                return Ok(Change::Keep(cur));
            }
            let next = cur
                .mark_refunded()
                .map_err(|e| FunctionError::Internal(e.to_string()))?;
            Ok::<_, FunctionError>(Change::Write(next.clone(), next))
        },
    )
}

/// Inspects a received return: refunds and restocks the accepted units; answers 200 with
/// the return, the restock and the refund.
///
/// # Errors
/// 404 for an unknown return; 422 naming the verdict at fault; 409 before the parcel is
/// received, for different verdicts than an earlier inspection, or when the order can no
/// longer be refunded; 503 under contention or broker failure.
pub fn inspect<K: Kv, B: Bus>(
    ctx: &Ctx<K, B>,
    rid: ReturnId,
    body: &Value,
) -> Result<(u16, Value), FunctionError> {
    let req = InspectionRequest::parse(body).map_err(|v| problems::invalid(&v))?;
    let ra = returns::load(ctx.kv, rid)?;
    let verdict_lines: Vec<usize> = req.verdicts.iter().map(|v| v.line).collect();
    let inspections = req.inspections(&ra);
    let inspected = match ra.state() {
        ReturnState::Requested => {
            return Err(Problem::conflict("the return has not been received yet").into())
        }
        ReturnState::Received => ra
            .inspect(&inspections)
            .map_err(|e| problems::return_refused(e, &verdict_lines, "/lines", "accepted"))?,
        state if !same_verdicts(&ra, &inspections) => {
            return Err(Problem::conflict(format!(
                "the return was already {state} with different verdicts"
            ))
            .into())
        }
        _ => ra.clone(),
    };
    let record = order_store::load(ctx.kv, ra.order_id())?;
    if ra.state() == ReturnState::Refunded {
        let inspected_event = find_event(
            &record,
            EventType::ReturnInspected,
            RETURN_ID,
            &rid.to_string(),
        );
        let refund = find_refund_event(&record, RETURN_ID, &rid.to_string());
        return Ok((200, view(&ra, inspected_event.as_ref(), refund.as_ref())));
    }
    let decision = decide(inspected, &record, &verdict_lines)?;
    save_verdicts(ctx.kv, &decision.inspected)?;
    let events = record_on_order(ctx, &decision, &verdict_lines)?;
    // Step 4: restock what step 3 recorded (an earlier attempt's plan wins over this one's).
    let recorded: Vec<LineRestock> = serde_json::from_value(events[0].data()["restock"].clone())?;
    for r in &recorded {
        stock_moves::restock(ctx.kv, &format!("return:{rid}:{}", r.line), &r.placements)?;
    }
    // Step 5.
    ctx.publish(&events)?;
    let done = finish(ctx.kv, &decision)?;
    Ok((200, view(&done, events.first(), events.get(1))))
}
