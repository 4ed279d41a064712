//! The reference data the steps read: catalog prices, the fulfilment network, stock counts,
//! backorder and routing policies. Each `put_*` validates the whole body first (a 422 problem
//! naming the field, nothing written), then stores it under its `keys::*` key.

use std::collections::BTreeMap;

use oms_domain::{
    BackorderPolicy, Currency, Location, LocationId, Money, RoutingPolicy, Sku, Violation,
    ViolationCode,
};
use oms_edge::{
    json_response, keys, purge, update_json, Change, FunctionError, Kv, Problem, StockDoc,
};
use serde::Deserialize;
use serde_json::{json, Value};
use spin_sdk::http::Response;

fn violation(field: &str, code: ViolationCode, detail: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        code,
        detail: detail.into(),
    }
}

fn parse_sku(sku: &str) -> Result<Sku, FunctionError> {
    Sku::parse(sku).map_err(|e| invalid("sku", e.to_string()).into())
}

/// 422 naming the field (`/` for the whole body) whose value has the wrong format.
pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Problem {
    Problem::field(
        422,
        "validation",
        "Invalid request",
        field,
        "invalid_format",
        reason,
    )
}

pub(crate) fn put_catalog(
    kv: &impl Kv,
    sku: &str,
    body: &Value,
) -> Result<Response, FunctionError> {
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

pub(crate) fn put_locations(kv: &impl Kv, body: Value) -> Result<Response, FunctionError> {
    let locations: Vec<Location> =
        serde_json::from_value(body).map_err(|e| invalid("/", e.to_string()))?;
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
    // Every availability lists the network's locations.
    purge::wrote(keys::LOCATIONS);
    Ok(json_response(200, &locations))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockCount {
    on_hand: u32,
}

pub(crate) fn put_stock(
    kv: &impl Kv,
    sku: &str,
    location: &str,
    body: &Value,
) -> Result<Response, FunctionError> {
    let sku = parse_sku(sku)?;
    let location = LocationId::parse(location).map_err(|e| invalid("location", e.to_string()))?;
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

pub(crate) fn put_backorder(
    kv: &impl Kv,
    sku: &str,
    body: Value,
) -> Result<Response, FunctionError> {
    let sku = parse_sku(sku)?;
    let policy: BackorderPolicy = serde_json::from_value(body).map_err(|e| {
        invalid(
            "/",
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

pub(crate) fn put_routing_policy(kv: &impl Kv, body: &Value) -> Result<Response, FunctionError> {
    let raw: PolicyBody =
        serde_json::from_value(body.clone()).map_err(|e| invalid("/", e.to_string()))?;
    let cost = raw
        .cost_per_km
        .parse()
        .map_err(|_| invalid("/cost_per_km", "a decimal string"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use oms_edge::MemKv;
    use std::collections::BTreeSet;

    fn purged() -> BTreeSet<String> {
        purge::take_purged()
    }

    fn tags(t: &[&str]) -> BTreeSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn writes_purge_the_availability_they_change_and_nothing_else() {
        let kv = MemKv::new();
        purge::take_sent();
        let network = json!([{"id": "wh-1", "kind": "warehouse", "coordinates": {"lat": 0, "lon": 0},
            "cost_per_shipment": "0", "cost_per_unit": "0", "ships": true, "pickup": false,
            "priority": 0}]);
        put_locations(&kv, network).unwrap();
        assert_eq!(purged(), tags(&["availability"]), "locations");
        put_stock(&kv, "SKU-1", "wh-1", &json!({"on_hand": 20})).unwrap();
        assert_eq!(purged(), tags(&["sku-SKU-1"]), "a stock count");
        // What no cached read shows purges nothing.
        put_catalog(&kv, "SKU-1", &json!({"USD": "19.99"})).unwrap();
        put_backorder(&kv, "SKU-1", json!("never")).unwrap();
        put_routing_policy(&kv, &json!({"split_limit": 2, "cost_per_km": "0.02"})).unwrap();
        assert_eq!(purged(), tags(&[]), "catalog, backorder, routing policy");
        // Refused writes change nothing and purge nothing.
        assert!(put_stock(&kv, "SKU-1", "nowhere", &json!({"on_hand": 1})).is_err());
        assert!(put_locations(&kv, json!([{"id": 5}])).is_err());
        assert_eq!(purged(), tags(&[]), "refused writes");
    }
}
