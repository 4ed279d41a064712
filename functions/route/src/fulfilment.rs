//! Shipment updates from a warehouse or 3PL. Each is idempotent: repeating an update that is
//! already applied answers the shipment as it is, so a retrying 3PL integration is safe.

use oms_domain::{EventEnvelope, OrderStatus};
use oms_edge::{
    json_body, json_response, keys, new_id, now, path_match, update_json, update_stock, Bus,
    Change, FunctionError, Kv, OrderRecord, Problem, ShipmentStatus, SpinBus, SpinKv,
};
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};

/// Handles `POST /v1/shipments/{id}/shipped|delivered`.
///
/// # Errors
/// 404 unknown shipment, 409 wrong state, 422 bad body.
pub fn handle(req: &Request) -> Result<Response, FunctionError> {
    if *req.method() != Method::Post {
        return Err(
            Problem::new(405, "method-not-allowed", "Method not allowed", "use POST").into(),
        );
    }
    let id = path_match(req, "id").unwrap_or_default();
    // Shipment ids are `{order id}-{n}` with a 36-character order id.
    let order_id = id
        .get(..36)
        .filter(|_| id.len() > 37)
        .ok_or_else(|| Problem::not_found("shipment", &id))?
        .to_string();
    let route = req
        .header("spin-matched-route")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let kv = SpinKv::open_default()?;
    let bus = SpinBus::open().map_err(FunctionError::Internal)?;
    let (view, event) = if route.ends_with("/shipped") {
        let body = json_body(req)?;
        let field = |name: &str| -> Result<String, FunctionError> {
            body.get(name)
                .and_then(|v| v.as_str())
                .filter(|s| !s.trim().is_empty() && s.len() <= 128)
                .map(str::to_string)
                .ok_or_else(|| {
                    Problem::field(
                        422,
                        "validation",
                        "Invalid request",
                        &format!("/{name}"),
                        "missing",
                        format!("{name} is required (1-128 characters)"),
                    )
                    .into()
                })
        };
        let (carrier, tracking) = (field("carrier")?, field("tracking")?);
        shipped(&kv, &order_id, &id, carrier, tracking)?
    } else {
        delivered(&kv, &order_id, &id)?
    };
    if let Some(e) = event {
        bus.publish_event(&e).map_err(FunctionError::Internal)?;
    }
    Ok(json_response(200, &view))
}

type Outcome = (serde_json::Value, Option<EventEnvelope>);

fn load(kv: &impl Kv, order_id: &str, shipment: &str) -> Result<OrderRecord, FunctionError> {
    let rec: OrderRecord = kv
        .get_json(&keys::order(order_id))?
        .ok_or_else(|| Problem::not_found("shipment", shipment))?;
    if !rec.shipments.iter().any(|s| s.id == shipment) {
        return Err(Problem::not_found("shipment", shipment).into());
    }
    Ok(rec)
}

fn shipped(
    kv: &impl Kv,
    order_id: &str,
    shipment: &str,
    carrier: String,
    tracking: String,
) -> Result<Outcome, FunctionError> {
    let rec = load(kv, order_id, shipment)?;
    let s = rec
        .shipments
        .iter()
        .find(|s| s.id == shipment)
        .cloned()
        .unwrap();
    let (event_id, at) = (new_id(), now());
    // The order changes first: once (partially) shipped it can no longer be cancelled, so a
    // cancel racing this call either wins (409 here, nothing ships) or loses. Stock then
    // leaves the building — idempotent per order and location, and done again on every call
    // for a shipped shipment, so a retry completes a crash between the two steps.
    let outcome = update_json(kv, &keys::order(order_id), |cur: Option<OrderRecord>| {
        let mut rec = cur.ok_or_else(|| Problem::not_found("shipment", shipment))?;
        let i = rec.shipments.iter().position(|s| s.id == shipment).unwrap();
        if rec.shipments[i].status != ShipmentStatus::Allocated {
            return Ok(Change::Keep((json!(rec.shipments[i]), None)));
        }
        let status = rec.status();
        if !matches!(status, OrderStatus::Routed | OrderStatus::PartiallyShipped) {
            let detail = format!("the order is {}; it cannot ship", status.as_str());
            return Err(FunctionError::from(Problem::conflict(detail)));
        }
        let ship = &mut rec.shipments[i];
        ship.status = ShipmentStatus::Shipped;
        ship.carrier = Some(carrier.clone());
        ship.tracking = Some(tracking.clone());
        ship.shipped_at = Some(at);
        let view = json!(ship);
        let all = rec
            .shipments
            .iter()
            .all(|s| s.status != ShipmentStatus::Allocated);
        let to = if all {
            OrderStatus::Shipped
        } else {
            OrderStatus::PartiallyShipped
        };
        let data = json!({"shipment": shipment, "carrier": carrier, "tracking": tracking});
        let event = rec
            .transition(to, data, event_id, at)
            .map_err(|e| FunctionError::Internal(e.to_string()))?;
        Ok(Change::Write(rec, (view, Some(event))))
    })?;
    for line in &s.lines {
        update_stock(kv, line.sku.as_str(), s.location.as_str(), |d| {
            d.ship(order_id)
        })?;
    }
    Ok(outcome)
}

fn delivered(kv: &impl Kv, order_id: &str, shipment: &str) -> Result<Outcome, FunctionError> {
    load(kv, order_id, shipment)?;
    let (event_id, at) = (new_id(), now());
    update_json(kv, &keys::order(order_id), |cur: Option<OrderRecord>| {
        let mut rec = cur.ok_or_else(|| Problem::not_found("shipment", shipment))?;
        let i = rec.shipments.iter().position(|s| s.id == shipment).unwrap();
        match rec.shipments[i].status {
            ShipmentStatus::Delivered => return Ok(Change::Keep((json!(rec.shipments[i]), None))),
            ShipmentStatus::Allocated => {
                return Err(Problem::conflict("the shipment has not shipped yet").into())
            }
            ShipmentStatus::Shipped => {}
        }
        rec.shipments[i].status = ShipmentStatus::Delivered;
        rec.shipments[i].delivered_at = Some(at);
        let view = json!(rec.shipments[i]);
        let all = rec
            .shipments
            .iter()
            .all(|s| s.status == ShipmentStatus::Delivered);
        let event = if all && rec.status() == OrderStatus::Shipped {
            Some(
                rec.transition(
                    OrderStatus::Delivered,
                    json!({"shipment": shipment}),
                    event_id,
                    at,
                )
                .map_err(|e| FunctionError::Internal(e.to_string()))?,
            )
        } else {
            None
        };
        Ok::<_, FunctionError>(Change::Write(rec, (view, event)))
    })
}
