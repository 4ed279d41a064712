//! query: the read side, edge-cacheable. Every read answers with a strong `ETag` and
//! `Cache-Control: no-cache` (caches keep it but revalidate; `If-None-Match` → 304 without a
//! body); a write changes the body and so the ETag, which is the invalidation.
//!
//! - `GET /v1/orders/{id}`: status, lines, totals, reservation, plan, shipments, refunds
//! - `GET /v1/orders/{id}/events`: the order's timeline
//! - `GET /v1/availability/{sku}`: stock per location and available-to-promise
//! - `GET /v1/openapi.json`: the API description (OpenAPI 3.1)

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use oms_domain::{Location, OrderId, Sku};
use oms_edge::{
    keys, path_match, read_response, FunctionError, Kv, OrderRecord, Problem, SpinKv, StockDoc,
};
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

/// The OpenAPI document, kept beside this crate.
const OPENAPI: &str = include_str!("../openapi.json");

#[http_component]
fn handle(req: Request) -> Response {
    match route(&req) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn route(req: &Request) -> Result<Response, FunctionError> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Err(Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            "reads only: use GET",
        )
        .into());
    }
    let matched = req
        .header("spin-matched-route")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    match matched.as_str() {
        "/v1/openapi.json" => {
            let doc: Value = serde_json::from_str(OPENAPI)?;
            Ok(read_response(req, &doc))
        }
        "/v1/availability/:sku" => availability(req, &SpinKv::open_default()?),
        "/v1/orders/:id" => {
            let record = load(req, &SpinKv::open_default()?)?;
            Ok(read_response(req, &order_view(&record)))
        }
        "/v1/orders/:id/events" => {
            let record = load(req, &SpinKv::open_default()?)?;
            Ok(read_response(
                req,
                &json!({"order_id": record.order.id(), "events": record.events}),
            ))
        }
        other => Err(Problem::not_found("route", other).into()),
    }
}

fn load(req: &Request, kv: &impl Kv) -> Result<OrderRecord, FunctionError> {
    let raw = path_match(req, "id").unwrap_or_default();
    let id = OrderId::parse(&raw).map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "id",
            "invalid_format",
            e.to_string(),
        )
    })?;
    kv.get_json(&keys::order(&id.to_string()))?
        .ok_or_else(|| Problem::not_found("order", &raw).into())
}

/// What a client sees of an order.
pub fn order_view(r: &OrderRecord) -> Value {
    let o = &r.order;
    json!({
        "id": o.id(),
        "status": r.status().as_str(),
        "placed_at": o.placed_at(),
        "channel": o.channel(),
        "customer": o.customer(),
        "currency": o.currency(),
        "lines": o.lines(),
        "shipping": o.shipping(),
        "discounts": o.discounts(),
        "totals": o.totals(),
        "payment": o.payment(),
        "metadata": o.metadata(),
        "reservation": r.reservation,
        "plan": r.plan,
        "shipments": r.shipments,
        "refunds": r.refunds,
        "refunded_total": r.ledger.refunded(),
        "refundable": r.ledger.refundable(),
        "returns": r.returns,
        "reason": r.reason,
        "links": {"events": format!("/v1/orders/{}/events", o.id())},
    })
}

fn availability(req: &Request, kv: &impl Kv) -> Result<Response, FunctionError> {
    let raw = path_match(req, "sku").unwrap_or_default();
    let sku = Sku::parse(&raw).map_err(|e| {
        Problem::field(
            400,
            "malformed",
            "Malformed request",
            "sku",
            "invalid_format",
            e.to_string(),
        )
    })?;
    let locations: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    let stock_keys: Vec<String> = locations
        .iter()
        .map(|l| keys::stock(sku.as_str(), l.id().as_str()))
        .collect();
    let docs = kv.get_many(&stock_keys)?;
    let mut total = (0u64, 0u64, 0u64, 0u64);
    let mut per_location = Vec::new();
    for (loc, raw) in locations.iter().zip(docs) {
        let doc: StockDoc = match raw {
            Some(bytes) => serde_json::from_slice(&bytes)?,
            None => continue,
        };
        let l = doc.level;
        total.0 += u64::from(l.on_hand());
        total.1 += u64::from(l.reserved());
        total.2 += u64::from(l.allocated());
        total.3 += u64::from(l.available());
        per_location.push(json!({
            "location": loc.id(), "kind": loc.kind(), "on_hand": l.on_hand(), "reserved": l.reserved(),
            "allocated": l.allocated(), "available": l.available(), "pickup": loc.pickup(),
        }));
    }
    Ok(read_response(
        req,
        &json!({
            "sku": sku, "on_hand": total.0, "reserved": total.1, "allocated": total.2,
            "available": total.3, "locations": per_location,
        }),
    ))
}
