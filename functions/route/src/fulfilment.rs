//! Shipment updates from a warehouse or 3PL, on the step runner: the order records the update
//! and its event (outbox) in one compare-and-swap, then the event is published and the
//! shipment's stock leaves the building.
//!
//! Each update is idempotent: repeating one that is already applied changes nothing, but
//! still publishes whatever the order owes (a shipped event whose publish failed after the
//! write goes out on the retry, or from the reconciler) and ships the stock again (idempotent
//! per order and location), so a retrying integration finishes a crash at any point.

use oms_domain::{FulfilmentError, ShipmentId, ShipmentLabel, ShipmentRecord};
use oms_edge::{apply_stock_moves, run, Actor, Decision, Env, FunctionError, Problem};

/// What a warehouse or 3PL reports about a shipment.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Handed to `carrier` with `tracking`.
    Shipped {
        /// The carrier.
        carrier: ShipmentLabel,
        /// Its tracking number.
        tracking: ShipmentLabel,
    },
    /// Delivered (or collected).
    Delivered,
}

impl Update {
    /// Parses a `shipped` body: `{"carrier": "ups", "tracking": "1Z..."}`.
    ///
    /// # Errors
    /// A 422 problem naming the first missing or malformed field.
    pub fn shipped(body: &serde_json::Value) -> Result<Update, FunctionError> {
        let field = |name: &str| {
            body.get(name)
                .and_then(|v| v.as_str())
                .and_then(|s| ShipmentLabel::parse(s).ok())
                .ok_or_else(|| {
                    let reason = format!("{name} is required (1-128 characters, not blank)");
                    let pointer = format!("/{name}");
                    Problem::field(
                        422,
                        "validation",
                        "Invalid request",
                        &pointer,
                        "invalid",
                        reason,
                    )
                })
        };
        Ok(Update::Shipped {
            carrier: field("carrier")?,
            tracking: field("tracking")?,
        })
    }
}

/// Parses a shipment id from the path; anything else names no shipment (404).
///
/// # Errors
/// A 404 problem.
pub fn shipment_id(text: &str) -> Result<ShipmentId, FunctionError> {
    ShipmentId::parse(text).map_err(|_| Problem::not_found("shipment", text).into())
}

/// Applies `update` to the shipment for `actor` (staff or a fulfilment key of the shipment's
/// location; recorded on the event) and answers the shipment as it now is.
///
/// # Errors
/// 404 unknown shipment or order; 403 for a key of another location (nothing changes); 409
/// when the order may not ship (cancelled — also when a cancellation raced this update — or
/// not routed) or delivery before shipping; storage errors (a retry of the same request is
/// safe).
pub fn apply<E: Env>(
    env: &E,
    actor: &Actor,
    id: &ShipmentId,
    update: &Update,
) -> Result<ShipmentRecord, FunctionError> {
    let order_id = id.order_id().to_string();
    let shipment = run(env, &order_id, |record| {
        match record.shipment(id) {
            Some(s) => actor.require_staff_or_fulfilment(s.location.as_str())?,
            // Staff learn from the domain why it is not there (a cancel raced it, 409); a
            // key learns nothing about another location's order.
            None if !actor.is_staff() => {
                return Err(Problem::not_found("shipment", &id.to_string()).into())
            }
            None => {}
        }
        record.act_as(actor.audit());
        let (event_id, now) = (env.new_id(), env.now());
        let changed = match update {
            Update::Shipped { carrier, tracking } => {
                record.ship(id, carrier.clone(), tracking.clone(), event_id, now)
            }
            Update::Delivered => record.deliver(id, event_id, now),
        }
        .map_err(|e| problem(id, e))?;
        let view = record
            .shipment(id)
            .cloned()
            .ok_or_else(|| Problem::not_found("shipment", &id.to_string()))?;
        Ok(if changed {
            Decision::Changed(view)
        } else {
            Decision::Unchanged(view)
        })
    })
    .map_err(|e| match e {
        FunctionError::Problem(p) if p.status == 404 => {
            Problem::not_found("shipment", &id.to_string()).into()
        }
        e => e,
    })?;
    // The order changed first (once shipped it can no longer be cancelled, so a racing
    // cancel either won — 409 above, nothing ships — or lost); the stock moves it recorded
    // are applied now, and by the reconciler if this attempt dies first.
    if let Err(e) = apply_stock_moves(env, &order_id) {
        eprintln!(
            "route: shipment {id}: stock moves left owed ({e:?}); the reconciler applies them"
        );
    }
    Ok(shipment)
}

fn problem(id: &ShipmentId, e: FulfilmentError) -> FunctionError {
    match e {
        FulfilmentError::UnknownShipment(_) => {
            Problem::not_found("shipment", &id.to_string()).into()
        }
        FulfilmentError::OrderStatus { .. } | FulfilmentError::NotShipped(_) => {
            Problem::conflict(e.to_string()).into()
        }
        e => FunctionError::Internal(e.to_string()),
    }
}
