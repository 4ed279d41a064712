//! Accepting one order: parse, price-check, store, publish — over any `Kv` and `Bus`, so it
//! runs natively in unit tests.

use chrono::{DateTime, Utc};
use oms_domain::{Catalog, Currency, Money, Order, OrderId, Sku};
use oms_edge::{keys, Bus, FunctionError, Kv, OrderRecord, Problem, StoredResponse};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Validates and stores an order; the 202 response to keep for idempotent replay.
///
/// If the event cannot be published the order is removed again and the client gets a 503:
/// an order is accepted only once its `order.validated` event is on the queue.
///
/// # Errors
/// 422 with every violation (shape, values, totals, catalog prices); storage errors.
pub fn accept(
    kv: &impl Kv,
    bus: &impl Bus,
    body: &Value,
    order_id: Uuid,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<StoredResponse, FunctionError> {
    let order = Order::from_request(body, OrderId::new(order_id), now)
        .map_err(|v| Problem::invalid("the order is invalid", &v.0))?;
    catalog_for(kv, &order)?
        .check(&order)
        .map_err(|v| Problem::invalid("the order does not match the catalog", &v.0))?;
    store_and_publish(kv, bus, order, event_id, now)
}

/// Stores a validated order and publishes `order.validated` (shared with marketplace intake).
///
/// # Errors
/// Storage errors; 503 when the event cannot be published (the order is then not kept).
pub fn store_and_publish(
    kv: &impl Kv,
    bus: &impl Bus,
    order: Order,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<StoredResponse, FunctionError> {
    let id = order.id().to_string();
    let record = OrderRecord::accept(order, event_id, now)
        .map_err(|e| FunctionError::Internal(e.to_string()))?;
    let key = keys::order(&id);
    let (existing, cas) = kv.read(&key)?;
    if existing.is_some() || !kv.swap(cas, &serde_json::to_vec(&record)?)? {
        return Err(FunctionError::Internal(format!(
            "order id {id} already exists"
        )));
    }
    if let Err(e) = bus.publish_event(&record.events[0]) {
        kv.delete(&key)?;
        return Err(Problem::new(
            503,
            "unavailable",
            "Service unavailable",
            format!("the order could not be queued ({e}); it was not accepted, retry"),
        )
        .into());
    }
    Ok(StoredResponse {
        status: 202,
        content_type: "application/json".into(),
        body: json!({"id": id, "status": "validated", "links": {"self": format!("/v1/orders/{id}"), "events": format!("/v1/orders/{id}/events")}}).to_string(),
    })
}

/// The catalog prices of the order's SKUs (`catalog:{sku}` = `{"USD": "19.99"}`).
fn catalog_for(kv: &impl Kv, order: &Order) -> Result<Catalog, FunctionError> {
    let skus: Vec<Sku> = order.units_by_sku().into_keys().collect();
    let stored = kv.get_many(
        &skus
            .iter()
            .map(|s| keys::catalog(s.as_str()))
            .collect::<Vec<_>>(),
    )?;
    let mut catalog = Catalog::new();
    for (sku, raw) in skus.into_iter().zip(stored) {
        let Some(raw) = raw else { continue };
        let prices: BTreeMap<String, String> = serde_json::from_slice(&raw)?;
        for (code, amount) in prices {
            let price = Currency::parse(&code)
                .ok()
                .and_then(|c| Money::parse(&amount, c).ok());
            if let Some(price) = price {
                catalog.set_price(sku.clone(), price);
            }
        }
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oms_edge::{MemBus, MemKv};

    fn body(price: &str) -> Value {
        json!({
            "channel": "web", "customer": {"email": "a@example.com"}, "currency": "USD",
            "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price": price}],
            "shipping": {"method": "standard", "amount": "5.00",
                "address": {"country": "US", "postal_code": "94107", "line1": "1 Main", "city": "SF"}},
            "tax": "0.00",
            "totals": {"subtotal": "39.98", "discount": "0.00", "shipping": "5.00", "tax": "0.00", "grand_total": "44.98"},
            "payment": {"reference": "pi_1", "status": "captured", "amount": "44.98"}
        })
    }

    fn setup() -> (MemKv, MemBus) {
        let kv = MemKv::new();
        kv.set_json(&keys::catalog("SKU-1"), &json!({"USD": "19.99"}))
            .unwrap();
        (kv, MemBus::default())
    }

    #[test]
    fn accepts_stores_and_publishes() {
        let (kv, bus) = setup();
        let r = accept(
            &kv,
            &bus,
            &body("19.99"),
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(r.status, 202);
        let record: OrderRecord = kv
            .get_json(&keys::order(&Uuid::from_u128(1).to_string()))
            .unwrap()
            .unwrap();
        assert_eq!(record.status().as_str(), "validated");
        assert_eq!(bus.sent.borrow()[0].0, "order.validated");
    }

    #[test]
    fn a_price_that_differs_from_the_catalog_is_named_and_nothing_is_stored() {
        let (kv, bus) = setup();
        let mut b = body("18.99");
        b["totals"] = json!({"subtotal": "37.98", "discount": "0.00", "shipping": "5.00", "tax": "0.00", "grand_total": "42.98"});
        b["payment"]["amount"] = json!("42.98");
        match accept(
            &kv,
            &bus,
            &b,
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Utc::now(),
        ) {
            Err(FunctionError::Problem(p)) => {
                assert_eq!(p.status, 422);
                assert_eq!(p.invalid_params[0].name, "/lines/0/unit_price");
                assert_eq!(p.invalid_params[0].code, "price_mismatch");
            }
            other => panic!("{other:?}"),
        }
        assert!(kv
            .get(&keys::order(&Uuid::from_u128(1).to_string()))
            .unwrap()
            .is_none());
        assert!(bus.sent.borrow().is_empty());
    }
}
