//! admin: catalog prices, fulfilment locations, stock counts and policies, behind a bearer
//! token (the `admin_token` Spin variable).
//!
//! - `PUT /v1/admin/catalog/{sku}` `{"USD": "19.99", ...}`
//! - `PUT /v1/admin/locations` `[Location, ...]` (the whole network)
//! - `PUT /v1/admin/stock/{sku}/{location}` `{"on_hand": 20}` (a count; reservations kept)
//! - `PUT /v1/admin/backorder/{sku}` `"never"` | `"unlimited"` | `{"up_to": 50}`
//! - `PUT /v1/admin/routing-policy` `{"split_limit": 2, "cost_per_km": "0.02"}`
//!
//! Bad input is a 422 problem naming the field; nothing is written.

// The spin-sdk export macros expand to the FFI glue (export_name, unsafe) of the component
// ABI; nothing else in this crate is unsafe.
#![allow(unsafe_code)]

use std::collections::BTreeMap;

use oms_domain::{
    BackorderPolicy, Currency, Location, LocationId, Money, RoutingPolicy, Sku, Violation,
    ViolationCode,
};
use oms_edge::{
    json_body, json_response, keys, require_admin, update_json, Change, FunctionError, Kv, Problem,
    SpinKv, StockDoc,
};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    match route(&req) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn route(req: &Request) -> Result<Response, FunctionError> {
    require_admin(req)?;
    let path = req
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if *req.method() != Method::Put {
        return Err(Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            "admin resources are written with PUT",
        )
        .into());
    }
    let kv = SpinKv::open_default()?;
    let body = json_body(req)?;
    match segments.as_slice() {
        ["catalog", sku] => put_catalog(&kv, sku, &body),
        ["locations"] => put_locations(&kv, body),
        ["stock", sku, location] => put_stock(&kv, sku, location, &body),
        ["backorder", sku] => put_backorder(&kv, sku, body),
        ["routing-policy"] => put_routing_policy(&kv, &body),
        _ => Err(Problem::not_found("admin resource", &path).into()),
    }
}

fn violation(field: &str, code: ViolationCode, detail: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        code,
        detail: detail.into(),
    }
}

fn parse_sku(sku: &str) -> Result<Sku, FunctionError> {
    Sku::parse(sku).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "sku",
            "invalid_format",
            e.to_string(),
        )
        .into()
    })
}

fn put_catalog(kv: &SpinKv, sku: &str, body: &Value) -> Result<Response, FunctionError> {
    let sku = parse_sku(sku)?;
    let Some(prices) = body.as_object() else {
        return Err(Problem::field(
            422,
            "validation",
            "Invalid request",
            "/",
            "invalid_type",
            "expected an object of currency → price",
        )
        .into());
    };
    let mut parsed = BTreeMap::new();
    let mut problems = Vec::new();
    for (code, amount) in prices {
        let field = format!("/{code}");
        let currency = match Currency::parse(code) {
            Ok(c) => c,
            Err(e) => {
                problems.push(violation(
                    &field,
                    ViolationCode::UnknownCurrency,
                    e.to_string(),
                ));
                continue;
            }
        };
        match amount.as_str().map(|a| Money::parse(a, currency)) {
            Some(Ok(m)) => {
                parsed.insert(code.clone(), m.amount().to_string());
            }
            Some(Err(e)) => problems.push(violation(
                &field,
                ViolationCode::InvalidFormat,
                e.to_string(),
            )),
            None => problems.push(violation(
                &field,
                ViolationCode::InvalidType,
                "a price is a decimal string, e.g. \"19.99\"",
            )),
        }
    }
    if parsed.is_empty() && problems.is_empty() {
        problems.push(violation(
            "/",
            ViolationCode::Empty,
            "at least one price is required",
        ));
    }
    if !problems.is_empty() {
        return Err(Problem::invalid("the prices are invalid", &problems).into());
    }
    kv.set_json(&keys::catalog(sku.as_str()), &parsed)?;
    Ok(json_response(200, &json!({"sku": sku, "prices": parsed})))
}

fn put_locations(kv: &SpinKv, body: Value) -> Result<Response, FunctionError> {
    let locations: Vec<Location> = serde_json::from_value(body).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/",
            "invalid_format",
            e.to_string(),
        )
    })?;
    let mut seen = std::collections::BTreeSet::new();
    for (i, l) in locations.iter().enumerate() {
        if !seen.insert(l.id().clone()) {
            return Err(Problem::field(
                422,
                "validation",
                "Invalid request",
                &format!("/{i}/id"),
                "duplicate",
                format!("location {} appears twice", l.id()),
            )
            .into());
        }
    }
    kv.set_json(keys::LOCATIONS, &locations)?;
    Ok(json_response(200, &locations))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockCount {
    on_hand: u32,
}

fn put_stock(
    kv: &SpinKv,
    sku: &str,
    location: &str,
    body: &Value,
) -> Result<Response, FunctionError> {
    let sku = parse_sku(sku)?;
    let location = LocationId::parse(location).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "location",
            "invalid_format",
            e.to_string(),
        )
    })?;
    let known: Vec<Location> = kv.get_json(keys::LOCATIONS)?.unwrap_or_default();
    if !known.iter().any(|l| *l.id() == location) {
        return Err(Problem::field(
            422,
            "validation",
            "Invalid request",
            "location",
            "unknown_location",
            format!("no location {location}; PUT /v1/admin/locations first"),
        )
        .into());
    }
    let count: StockCount = serde_json::from_value(body.clone()).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/on_hand",
            "invalid_type",
            e.to_string(),
        )
    })?;
    let doc = update_json(
        kv,
        &keys::stock(sku.as_str(), location.as_str()),
        |cur: Option<StockDoc>| {
            let next = cur
                .unwrap_or_default()
                .recount(count.on_hand)
                .map_err(|e| {
                    FunctionError::from(Problem::field(
                        409,
                        "conflict",
                        "Conflict",
                        "/on_hand",
                        "below_committed",
                        e.to_string(),
                    ))
                })?;
            Ok::<_, FunctionError>(Change::Write(next.clone(), next))
        },
    )?;
    Ok(json_response(
        200,
        &json!({
            "sku": sku, "location": location, "on_hand": doc.level.on_hand(),
            "reserved": doc.level.reserved(), "allocated": doc.level.allocated(), "available": doc.available()
        }),
    ))
}

fn put_backorder(kv: &SpinKv, sku: &str, body: Value) -> Result<Response, FunctionError> {
    let sku = parse_sku(sku)?;
    let policy: BackorderPolicy = serde_json::from_value(body).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/",
            "invalid_format",
            format!("expected \"never\", \"unlimited\" or {{\"up_to\": N}}: {e}"),
        )
    })?;
    kv.set_json(&keys::backorder(sku.as_str()), &policy)?;
    Ok(json_response(200, &json!({"sku": sku, "policy": policy})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    split_limit: usize,
    cost_per_km: String,
}

fn put_routing_policy(kv: &SpinKv, body: &Value) -> Result<Response, FunctionError> {
    let raw: PolicyBody = serde_json::from_value(body.clone()).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/",
            "invalid_format",
            e.to_string(),
        )
    })?;
    let cost = raw.cost_per_km.parse().map_err(|_| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/cost_per_km",
            "invalid_format",
            "a decimal string",
        )
    })?;
    RoutingPolicy::new(raw.split_limit, cost).map_err(|e| {
        Problem::field(
            422,
            "validation",
            "Invalid request",
            "/split_limit",
            "out_of_range",
            e.to_string(),
        )
    })?;
    // Stored as given (validated above); the route step builds the RoutingPolicy from it.
    let stored = json!({"split_limit": raw.split_limit, "cost_per_km": raw.cost_per_km});
    kv.set_json(keys::ROUTING_POLICY, &stored)?;
    Ok(json_response(200, &stored))
}
