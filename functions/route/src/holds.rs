//! Order holds over HTTP (staff only), on the step runner:
//!
//! - `POST /v1/orders/{id}/holds` `{"reason": "fraud_review", "note": "…"}` → 201 with the
//!   order's active holds;
//! - `POST /v1/orders/{id}/holds/{reason}/release` `{"note": "…"}` → 200 with the holds left.
//!   Releasing `address_needed` on an order delivered to an address takes the address
//!   obtained (`{"address": {…}}`, the intake's address shape), which becomes the shipping
//!   address. Releasing `unmapped_item` first maps the order's unmapped lines through the
//!   channel's SKU aliases (`oms_edge::aliases`); while a line has none it is refused (409
//!   naming the line), and nothing changes.
//!
//! The change and its event (`order.held` / `order.hold_released`) are stored in one
//! compare-and-swap with the caller recorded on the event (audit trail), then published:
//! notify sends the webhooks; reserve and route take `order.hold_released` and do their step
//! if it is now their turn. Neither request is idempotent by key: a retry of a place that
//! was stored answers 409 (already held), of a release 409 (not held) — the order is as
//! asked either way, and nothing is recorded twice.

use oms_domain::{
    Address, Hold, HoldError, HoldNote, HoldReason, OrderId, OrderRecord, ShippingMethod,
    MAX_HOLD_NOTE_LEN,
};
use oms_edge::aliases::map_unmapped_lines;
use oms_edge::{run, Actor, Decision, Env, FunctionError, Problem};
use serde::Serialize;
use serde_json::Value;

/// The answer of both routes: the order's active holds after the change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoldsView {
    /// The order.
    pub order_id: OrderId,
    /// Its active holds, oldest first.
    pub holds: Vec<Hold>,
}

/// A parsed hold-placing body.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceHold {
    /// Why.
    pub reason: HoldReason,
    /// The staff member's note.
    pub note: Option<HoldNote>,
}

impl PlaceHold {
    /// Parses `{"reason": "…", "note": "…"}` (`note` optional).
    ///
    /// # Errors
    /// 422 naming the field: `reason` missing or not a hold reason, `note` blank or too long,
    /// an unknown field.
    pub fn parse(body: &Value) -> Result<PlaceHold, FunctionError> {
        let object = fields(body, &["reason", "note"])?;
        let reason = match object.get("reason") {
            None | Some(Value::Null) => {
                return Err(invalid("reason", "missing", "a hold reason is required"))
            }
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse::<HoldReason>().ok())
                .ok_or_else(|| invalid("reason", "invalid_format", reasons()))?,
        };
        Ok(PlaceHold {
            reason,
            note: note(object)?,
        })
    }
}

/// A parsed release body.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseHold {
    /// The staff member's note.
    pub note: Option<HoldNote>,
    /// The delivery address as sent (releasing `address_needed` only): read once the order
    /// is known to be held for `address_needed`, so a release of another hold, or of no hold,
    /// is a conflict whatever the address says.
    pub address: Option<Value>,
}

impl ReleaseHold {
    /// Parses `{"note": "…", "address": {…}}` (both optional; an empty body is `{}`).
    ///
    /// # Errors
    /// 422 naming the field: a bad note, an unknown field, a body that is not an object.
    pub fn parse(body: &Value) -> Result<ReleaseHold, FunctionError> {
        let empty = serde_json::Map::new();
        let object = match body {
            Value::Null => &empty,
            body => fields(body, &["note", "address"])?,
        };
        Ok(ReleaseHold {
            note: note(object)?,
            address: object.get("address").filter(|v| !v.is_null()).cloned(),
        })
    }

    /// The address, for releasing `reason`.
    fn address(&self, reason: HoldReason) -> Result<Option<Address>, FunctionError> {
        let Some(raw) = &self.address else {
            return Ok(None);
        };
        if reason != HoldReason::AddressNeeded {
            let why = "an address is given only when releasing address_needed";
            let p = Problem::field(409, "conflict", "Conflict", "/address", "not_allowed", why);
            return Err(p.into());
        }
        serde_json::from_value::<Address>(raw.clone())
            .map(Some)
            .map_err(|e| invalid("address", "invalid_format", e.to_string()))
    }
}

/// Places a hold on `order` for `actor` (already checked to be staff).
///
/// # Errors
/// 404 unknown order; 409 already held for this reason or routed/finished; storage errors.
pub fn place<E: Env>(
    env: &E,
    actor: &Actor,
    order: &OrderId,
    hold: &PlaceHold,
) -> Result<HoldsView, FunctionError> {
    run(env, &order.to_string(), |record| {
        record.act_as(actor.audit());
        record
            .place_hold(hold.reason, hold.note.clone(), env.new_id(), env.now())
            .map_err(problem)?;
        Ok(Decision::Changed(view(record)))
    })
}

/// Releases the `reason` hold of `order` for `actor` (already checked to be staff).
///
/// # Errors
/// 404 unknown order; 409 not held for this reason, `unmapped_item` while a line has no
/// alias, an address for another reason; 422 `address` missing for an order that has none
/// or malformed; storage errors.
pub fn release<E: Env>(
    env: &E,
    actor: &Actor,
    order: &OrderId,
    reason: HoldReason,
    body: &ReleaseHold,
) -> Result<HoldsView, FunctionError> {
    run(env, &order.to_string(), |record| {
        record.act_as(actor.audit());
        if !record.has_hold(reason) {
            return Err(problem(HoldError::NotHeld(reason)));
        }
        let mut note = body.note.clone();
        // A resting order (cancelled, rejected …) only has the hold cleared: it will not be
        // reserved or shipped, so it needs neither SKUs nor an address.
        let resting = record.status().is_terminal();
        if reason == HoldReason::UnmappedItem && !resting {
            // The lines' SKUs from the channel's aliases as staff set them now; refused
            // (nothing stored) while a line still has none.
            let remapped = map_unmapped_lines(env.kv(), record)?;
            if !remapped.complete() {
                return Err(remapped.problem().into());
            }
            note = note.or_else(|| HoldNote::parse(&remapped.note()).ok());
        }
        let (id, now) = (env.new_id(), env.now());
        match body.address(reason)? {
            Some(address) => record.release_address_hold(address, note, id, now),
            None if reason == HoldReason::AddressNeeded && !resting && lacks_address(record) => {
                let why = "the order has no shipping address: give the one obtained";
                return Err(invalid("address", "missing", why));
            }
            None => record.release_hold(reason, note, id, now),
        }
        .map_err(problem)?;
        Ok(Decision::Changed(view(record)))
    })
}

/// Whether the order is to be delivered to an address but has none.
fn lacks_address(record: &OrderRecord) -> bool {
    let shipping = record.order().shipping();
    let delivered = matches!(
        shipping.method(),
        ShippingMethod::Standard | ShippingMethod::Express
    );
    delivered && shipping.address().is_none()
}

fn view(record: &OrderRecord) -> HoldsView {
    HoldsView {
        order_id: record.order().id(),
        holds: record.holds().to_vec(),
    }
}

/// Parses the path's order id; anything else names no order (404).
///
/// # Errors
/// A 404 problem.
pub fn order_id(text: &str) -> Result<OrderId, FunctionError> {
    OrderId::parse(text)
        .ok()
        .filter(|id| id.to_string() == text)
        .ok_or_else(|| Problem::not_found("order", text).into())
}

/// Parses the path's hold reason; anything else names no hold (404).
///
/// # Errors
/// A 404 problem.
pub fn path_reason(text: &str) -> Result<HoldReason, FunctionError> {
    text.parse()
        .map_err(|_| Problem::not_found("hold reason", text).into())
}

fn problem(e: HoldError) -> FunctionError {
    match e {
        HoldError::AlreadyHeld(_)
        | HoldError::NotHeld(_)
        | HoldError::OrderStatus(_)
        | HoldError::NotDelivered => Problem::conflict(e.to_string()).into(),
        HoldError::UnknownReason(_) => invalid("reason", "invalid_format", reasons()),
        HoldError::Note => invalid("note", "invalid_format", e.to_string()),
        HoldError::Timeline(e) => FunctionError::Internal(e.to_string()),
    }
}

/// The body as an object with only `allowed` fields.
fn fields<'a>(
    body: &'a Value,
    allowed: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, FunctionError> {
    let object = body.as_object().ok_or_else(|| {
        let p = Problem::field(
            422,
            "validation",
            "Invalid request",
            "",
            "invalid_type",
            "the body must be a JSON object",
        );
        FunctionError::from(p)
    })?;
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(
            unknown,
            "unknown_field",
            "not a field of this request",
        )),
        None => Ok(object),
    }
}

fn note(object: &serde_json::Map<String, Value>) -> Result<Option<HoldNote>, FunctionError> {
    match object.get("note") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| HoldNote::parse(s).ok())
            .map(Some)
            .ok_or_else(|| {
                let why = format!("a string of 1 to {MAX_HOLD_NOTE_LEN} characters, not blank");
                invalid("note", "invalid_format", why)
            }),
    }
}

fn reasons() -> String {
    let names: Vec<&str> = HoldReason::ALL.iter().map(|r| r.as_str()).collect();
    format!("one of {}", names.join(", "))
}

/// 422 naming the body field `name` (as a JSON Pointer).
fn invalid(name: &str, code: &str, reason: impl Into<String>) -> FunctionError {
    let pointer = format!("/{name}");
    Problem::field(422, "validation", "Invalid request", &pointer, code, reason).into()
}
